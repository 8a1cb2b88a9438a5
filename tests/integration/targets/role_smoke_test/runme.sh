#!/usr/bin/env bash
# Integration test of the selfjwt.kyma.smoke_test role against the gateway stand-in
# (tools/kyma_standin in the collection), started here on a free port of 127.0.0.1 and stopped
# when the script ends. Everything goes below $OUTPUT_DIR.
# (The target is not named smoke_test: ansible-test would run the collection's role of that
# name in place of this script.)
set -eux

base="${OUTPUT_DIR:?}/role_smoke_test"
rm -rf "$base"
mkdir -p "$base"
run() {
    ansible-playbook -i "${INVENTORY_PATH:?}" -e "smoke_base=$base" "$@"
}

# The collection as ansible-test installed it: the stand-in is one of its files.
collection=
IFS=: read -r -a paths <<<"${ANSIBLE_COLLECTIONS_PATH:-}"
for path in "${paths[@]}"; do
    if [ -d "$path/ansible_collections/selfjwt/kyma/tools/kyma_standin" ]; then
        collection=$path/ansible_collections/selfjwt/kyma
        break
    fi
done
[ -n "$collection" ] || { echo "tools/kyma_standin not found in ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-}" >&2; exit 1; }

# 1. Two keys, the JWKS with the first one only, and the APIRule.
run prepare.yml "$@"

# 2. The stand-in gateway with that APIRule and JWKS (it ends by itself after 300 s at the latest).
(cd "$collection" && exec python -m tools.kyma_standin gateway --apirule "$base/apirule.yaml" \
    --jwks-map "http://edge-jwks.kyma-system.svc.cluster.local=$base/jwks.json" --jwks-refresh-interval 3600 \
    --port 0 --port-file "$base/gateway.port" --pid-file "$base/gateway.pid" --log-file "$base/gateway.log" \
    --max-seconds 300) &
gateway=$!
trap 'kill "$gateway" 2>/dev/null || true; wait "$gateway" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    [ -s "$base/gateway.port" ] && break
    kill -0 "$gateway"
    sleep 0.1
done
url="http://127.0.0.1:$(cat "$base/gateway.port")/api/ping"

# 3. In check mode the role sends no request.
run smoke.yml --check -e "smoke_url=$url" -e smoke_case=check "$@"
if grep -q ' -> ' "$base/gateway.log"; then
    echo "the role sent a request in check mode" >&2
    exit 1
fi

# 4. Every check passes with the published key; the unpublished key fails the valid check;
#    plain http without the opt-in is refused before any request.
run smoke.yml -e "smoke_url=$url" -e smoke_case=good "$@"
run smoke.yml -e "smoke_url=$url" -e smoke_case=unpublished "$@"
run smoke.yml -e "smoke_url=$url" -e smoke_case=plain_http "$@"

# 5. The stand-in saw each kind of refusal, so the role really sent those tokens.
for reason in "Jwt is expired" "Jwt issuer is not configured" "Jwt verification fails" \
    "Jwks doesn't have key to match kid or alg from Jwt" "RBAC: access denied" "200 OK"; do
    grep -qF "$reason" "$base/gateway.log"
done
