#!/usr/bin/env bash
# Set up what is missing, build the testbed (cached after the first run), then run the whole test suite.
# CORRAL_TESTBED=required (as CI sets it) turns a missing component into a failure instead of a skip.
# Arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
ensure_venv
ensure_installed "test,demo"

# A C/C++ toolchain and make build llama-server and the NVML stub.
missing=()
for tool in gcc g++ make; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt_install build-essential || say "tests that need ${missing[*]} will skip (or fail under CORRAL_TESTBED=required)"
fi

cd "$ROOT"
"$VENV/bin/python" -m tests.testbed prepare
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    say "pytest collected no tests; that is a failure"
fi
exit "$status"
