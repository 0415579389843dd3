# Sourced by console.sh and test.sh: make .venv in the checkout and install Corral into it, once.
# Works on a fresh Debian or Ubuntu machine that has only Python 3.11+ and git.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf 'corral setup: %s\n' "$*" >&2; }

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
    # Only as root, never prompting; otherwise tell the user the one command to run.
    if can_apt; then
        say "installing $* with apt-get"
        # A fresh machine has no package lists yet: update once, only when the first try fails.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
        }
    else
        say "missing: $*. Install it with: sudo apt-get install $*"
        return 1
    fi
}

find_python() {
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    say "Corral needs Python 3.11 or newer; none was found on PATH"
    return 1
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    local python
    python="$(find_python)"
    rm -rf "$VENV"
    if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian and Ubuntu ship venv's pip bootstrap in a separate package.
        local version
        version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        rm -rf "$VENV"
        apt_install "python${version}-venv" || apt_install python3-venv
        "$python" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
}

# ensure_installed EXTRAS: install the checkout (editable) with those extras unless already done for this pyproject.
ensure_installed() {
    local extras="$1" stamp wanted
    stamp="$VENV/.corral-install-stamp"
    wanted="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16) $extras"
    if [ -f "$stamp" ] && grep -qxF -- "$wanted" "$stamp"; then
        return 0
    fi
    say "installing Corral${extras:+ with [$extras]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --editable "$ROOT${extras:+[$extras]}"
    echo "$wanted" >>"$stamp"
}
