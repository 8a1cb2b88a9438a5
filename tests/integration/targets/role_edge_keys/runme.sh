#!/usr/bin/env bash
# Integration test of the selfjwt.kyma.edge_keys role on the controller as the edge host.
# Everything goes below $OUTPUT_DIR; the real system's systemd and cron are not touched.
set -eux

base="${OUTPUT_DIR:?}/role_edge_keys"
rm -rf "$base"
mkdir -p "$base/cron.d"
run() {
    ansible-playbook -i "${INVENTORY_PATH:?}" -e "edge_base=$base" "$@"
}
no_changes() {
    # The recap line of the test host must say changed=0 (and nothing failed).
    grep -E '^testhost +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0 ' "$1"
}

# 1. A first run in check mode on a new host succeeds and creates nothing.
run check_first.yml --check --diff "$@"

# 2. The first real run converges; the second run and a run in check mode change nothing.
run converge.yml "$@"
run converge.yml "$@" | tee "$base/second-run.log"
no_changes "$base/second-run.log"
run converge.yml --check --diff "$@" | tee "$base/check-run.log"
no_changes "$base/check-run.log"

# 3. Facts, file modes, the refresher command and its token, freshness and renewal.
run verify.yml "$@"

# 4. Group-readable token files, systemd units, encrypted keys and refusals.
run variants.yml "$@"
