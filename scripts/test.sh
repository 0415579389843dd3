#!/usr/bin/env bash
# Set up what is missing, build the testbed (cached after the first run), then run the whole test suite.
# CORRAL_TESTBED=required (as CI sets it) turns a missing component into a failure instead of a skip.
# Arguments go to pytest. Tests run in parallel on one worker per core, at most 4 (pytest-xdist; the Docker
# tests share one worker): pass -n N to choose, or -n 0 for one process. CORRAL_TEST_WORKERS sets the default.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
ensure_venv
ensure_installed "test,demo"

# A C/C++ toolchain and make build llama-server and the NVML stub.
missing=()
for tool in gcc g++ make; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt_install build-essential || say "tests that need ${missing[*]} will skip (or fail under CORRAL_TESTBED=required)"
fi

# openssl makes the callback TLS test's certificate at test time.
command -v openssl >/dev/null 2>&1 || apt_install openssl || say "the callback TLS test will skip (or fail under CORRAL_TESTBED=required)"

cd "$ROOT"
"$VENV/bin/python" -m tests.testbed prepare

workers=()
case " $* " in
*" -n"* | *" --numprocesses"* | *" -p no:xdist "*) ;;
*)
    cores="$(nproc 2>/dev/null || echo 2)"
    workers=(-n "${CORRAL_TEST_WORKERS:-$((cores < 4 ? cores : 4))}")
    ;;
esac
set +e
"$VENV/bin/python" -m pytest "${workers[@]}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    say "pytest collected no tests; that is a failure"
fi
exit "$status"
