# shellcheck shell=bash
# Environment shared by the helper scripts; `make` exports the same variables.
# Values that are already set are kept.

SELFJWT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELFJWT_VENV="$SELFJWT_ROOT/.venv"
SELFJWT_CACHE="$SELFJWT_ROOT/.cache"

: "${ANSIBLE_COLLECTIONS_PATH:=$SELFJWT_CACHE/collections}"
: "${ANSIBLE_COLLECTIONS_SCAN_SYS_PATH:=false}"
: "${SELFJWT_SHARED_DIR:=$(dirname "$SELFJWT_ROOT")/shared}"
export ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_SCAN_SYS_PATH SELFJWT_SHARED_DIR

case ":$PATH:" in
    *":$SELFJWT_VENV/bin:"*) ;;
    *) PATH="$SELFJWT_VENV/bin:$PATH" ;;
esac
export PATH

die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

need_venv() {
    [ -x "$SELFJWT_VENV/bin/python" ] || die "no virtualenv at $SELFJWT_VENV: run 'make venv' first"
}

# X.Y of the virtualenv's Python, as ansible-test wants it for --python.
venv_python_version() {
    "$SELFJWT_VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}
