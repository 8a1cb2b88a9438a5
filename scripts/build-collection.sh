#!/usr/bin/env bash
# Build the collection tarball into .cache/dist and check what went into it: no
# virtualenv, caches, Node modules, test output, bytecode, VCS data or demo output.
# The tarball must also install with ansible-galaxy (offline: the collection has no
# Galaxy dependencies).
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
need_venv
cd "$SELFJWT_ROOT"

dist=$SELFJWT_CACHE/dist
rm -rf "$dist"
mkdir -p "$dist"
ansible-galaxy collection build --output-path "$dist" --force .

tarballs=("$dist"/*.tar.gz)
[ "${#tarballs[@]}" -eq 1 ] && [ -f "${tarballs[0]}" ] || die "expected one tarball in $dist"
tarball=${tarballs[0]}

listing=$(tar -tzf "$tarball" | sed 's|^\./||')
forbidden=$(grep -E '(^|/)(\.venv|\.cache|node_modules|__pycache__|\.git|\.ansible|\.pytest_cache|\.hypothesis|demo-out)(/|$)|^tests/output(/|$)|\.pyc$' <<<"$listing" || true)
if [ -n "$forbidden" ]; then
    echo "FAILED: $(basename "$tarball") contains files that must not be shipped:"
    mapfile -t lines <<<"$forbidden"
    printf '    %s\n' "${lines[@]:0:40}"
    exit 1
fi
for required in MANIFEST.json FILES.json meta/runtime.yml; do
    grep -qx "$required" <<<"$listing" || die "$(basename "$tarball") lacks $required"
done

install_dir=$dist/install-check
ANSIBLE_COLLECTIONS_PATH=$install_dir \
    ansible-galaxy collection install --offline --no-deps -p "$install_dir" "$tarball" >/dev/null
[ -f "$install_dir/ansible_collections/selfjwt/kyma/MANIFEST.json" ] || die "installing $(basename "$tarball") failed"
rm -rf "$install_dir"

echo "ok $(basename "$tarball"): $(grep -vc '/$' <<<"$listing") entries, $(du -k "$tarball" | cut -f1) KiB, installs cleanly"
