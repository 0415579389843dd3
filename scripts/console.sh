#!/usr/bin/env bash
# Set up what is missing, then open the Corral console. Arguments go to `corral`.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
ensure_venv
ensure_installed ""
exec "$VENV/bin/corral" "$@"
