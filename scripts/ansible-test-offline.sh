#!/usr/bin/env bash
# Run ansible-test on a staged copy of the collection, using this virtualenv and no
# container, and without the network access ansible-test would otherwise want for pip:
#
#   scripts/ansible-test-offline.sh sanity [ansible-test options...]
#   scripts/ansible-test-offline.sh integration [targets...] [ansible-test options...]
#
# Every virtualenv ansible-test creates (sanity tests get their own) bootstraps pip by
# running ~/.ansible/test/cache/get_pip_<version>.py, which it would otherwise download
# from a host outside PyPI. A stand-in that installs pip from the pip wheel (from PyPI)
# is put there first.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
need_venv

[ $# -ge 1 ] || die "usage: $0 COMMAND [ansible-test options...]"
command=$1
shift

install_pip_bootstrap() {
    local version cache shim wheel
    # The pip version ansible-test installs into its virtualenvs (get_venv_packages()).
    version=$(python - <<'PY'
import os
import re

import ansible_test

path = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
with open(path) as source:
    match = re.search(r"\bpip='([0-9.]+)'", source.read())
print(match.group(1) if match else '')
PY
)
    [ -n "$version" ] || die "cannot tell which pip version this ansible-test bootstraps"

    cache=${HOME:?}/.ansible/test/cache
    shim=$cache/get_pip_${version//./_}.py
    wheel=$cache/pip-$version-py3-none-any.whl
    mkdir -p "$cache"
    # Both files are written under temporary names and renamed, because other work trees
    # share this cache.
    if [ ! -f "$wheel" ]; then
        local tmp
        tmp=$(mktemp -d "$cache/.download.XXXXXX")
        python -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "pip==$version"
        mv "$tmp/$(basename "$wheel")" "$wheel"
        rm -rf "$tmp"
    fi
    if [ ! -f "$shim" ]; then
        cat > "$shim.tmp.$$" <<PY
# offline stand-in for ansible-test's pip bootstrap: run pip from the pip wheel beside this file
import os, runpy, sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, 'pip-$version-py3-none-any.whl'))
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.argv = ['pip', 'install', '--upgrade', '--force-reinstall', '--find-links', here] + args
runpy.run_module('pip', run_name='__main__', alter_sys=True)
PY
        mv "$shim.tmp.$$" "$shim"
        echo "installed the offline pip $version bootstrap in $cache"
    fi
}

# One run of each command at a time per work tree: every run re-stages that command's directory.
mkdir -p "$SELFJWT_CACHE"
exec 9>"$SELFJWT_CACHE/ansible-test-$command.lock"
if ! flock -n 9; then
    echo "waiting for another ansible-test $command run in this work tree to finish"
    flock 9
fi

install_pip_bootstrap
dest=$("$SELFJWT_ROOT/scripts/stage-collection.sh" "$command")
echo "staged $(find "$dest" -type f | wc -l) files in $dest"
cd "$dest"

if [ "$command" = integration ]; then
    targets=$(find tests/integration/targets -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)
    if [ "$targets" -eq 0 ]; then
        echo "SKIPPED integration: no targets in tests/integration/targets"
        exit 0
    fi
fi

# The staged copy lies inside this git work tree, in an ignored directory: pin the content
# root so that ansible-test lists the staged files instead of asking git about them.
export ANSIBLE_TEST_CONTENT_ROOT=$dest
exec ansible-test "$command" --local --python "$(venv_python_version)" "$@"
