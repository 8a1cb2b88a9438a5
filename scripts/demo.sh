#!/usr/bin/env bash
# Run the selfjwt.kyma demo: playbooks/demo.yml with the inventory
# playbooks/inventory/demo.yml (when present), using this repository's virtualenv and
# collections. Extra arguments go to ansible-playbook, e.g. `scripts/demo.sh -v`.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
need_venv
cd "$SELFJWT_ROOT"

playbook=playbooks/demo.yml
inventory=playbooks/inventory/demo.yml

[ -f "$playbook" ] || die "$playbook does not exist yet, so there is no demo to run"
[ -e "$SELFJWT_CACHE/collections/ansible_collections/selfjwt/kyma" ] \
    || die "the collections are not set up: run 'make collections' (or 'make demo')"

args=()
[ -f "$inventory" ] && args+=(-i "$inventory")
exec ansible-playbook "${args[@]}" "$playbook" "$@"
