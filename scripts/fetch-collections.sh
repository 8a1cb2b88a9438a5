#!/usr/bin/env bash
# Make the collections that selfjwt.kyma uses visible under .cache/collections, without
# Ansible Galaxy:
#   - kubernetes.core, taken from the `ansible` community package wheel on PyPI, which
#     bundles it (downloaded once into .cache/wheels, extracted once);
#   - selfjwt.kyma itself, as a symlink to this working tree, so that ansible-playbook,
#     ansible-doc and `import ansible_collections.selfjwt.kyma...` see the live sources.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
need_venv

bundle_version=12.3.0
bundled_collections=(kubernetes/core)

wheel_dir=$SELFJWT_CACHE/wheels
wheel=$wheel_dir/ansible-$bundle_version-py3-none-any.whl
dest=$SELFJWT_CACHE/collections
stamp=$dest/.from-ansible-$bundle_version

if [ ! -f "$stamp" ]; then
    if [ ! -f "$wheel" ]; then
        echo "downloading ansible==$bundle_version (about 52 MB) into $wheel_dir"
        python -m pip download --quiet --no-deps --only-binary=:all: --dest "$wheel_dir" "ansible==$bundle_version"
    fi
    rm -rf "$dest"/.from-ansible-*
    for c in "${bundled_collections[@]}"; do
        rm -rf "${dest:?}/ansible_collections/$c"
    done
    python - "$wheel" "$dest" "${bundled_collections[@]}" <<'PY'
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
prefixes = tuple('ansible_collections/%s/' % name for name in sys.argv[3:])
with zipfile.ZipFile(wheel) as archive:
    members = [m for m in archive.namelist() if m.startswith(prefixes)]
    for name in prefixes:
        if not any(m.startswith(name) for m in members):
            sys.exit('%s has no %s' % (wheel, name))
    archive.extractall(dest, members)
print('extracted %d files of %s' % (len(members), ' '.join(sys.argv[3:])))
PY
    touch "$stamp"
fi

mkdir -p "$dest/ansible_collections/selfjwt"
ln -sfn ../../../.. "$dest/ansible_collections/selfjwt/kyma"

for c in "${bundled_collections[@]}"; do
    version=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' \
        "$dest/ansible_collections/$c/MANIFEST.json")
    echo "${c/\//.} $version"
done
echo "selfjwt.kyma -> $SELFJWT_ROOT"
