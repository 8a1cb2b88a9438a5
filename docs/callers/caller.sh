#!/usr/bin/env bash
# Call an API protected by selfjwt.kyma with the token that the edge host's refresher keeps fresh.
#   SELFJWT_TOKEN_FILE=/var/lib/selfjwt/token caller.sh URL [URL ...]
# Prints each response body; on an error prints what to do on stderr and exits 1.
set -euo pipefail

token_file=${SELFJWT_TOKEN_FILE:-/var/lib/selfjwt/token}

fail() {
    printf 'caller: %s\n' "$1" >&2
    exit 1
}

read_token() {
    # Read the file for every call, never once per process: the refresher replaces the token
    # before it expires and when the key rotates, so a kept token expires or names a retired key.
    [ -e "$token_file" ] || fail "token file $token_file does not exist: run the selfjwt.kyma.edge_keys role on this host or set SELFJWT_TOKEN_FILE"
    [ -r "$token_file" ] || fail "cannot read token file $token_file: this user must be in the token file's group (edge_keys_token_group)"
    token=$(<"$token_file")
    [ -n "$token" ] || fail "token file $token_file is empty: run selfjwt-token as the key's owner"
}

get() {
    # The header goes to curl on stdin: a command line argument is visible to every user (ps).
    # curl follows no redirect, so the token goes nowhere else.
    local out
    out=$(printf 'Authorization: Bearer %s\n' "$token" \
          | curl --silent --show-error --max-time 30 --header @- --write-out '\n%{http_code}' -- "$1") \
        || fail "cannot reach $1"
    status=${out##*$'\n'}
    body=${out%$'\n'*}
}

call() {
    local first
    read_token
    get "$1"
    if [ "$status" = 401 ]; then
        first=$token
        read_token
        # The refresher replaced the token after it was read: retry once with the new one.
        [ "$token" = "$first" ] || get "$1"
    fi
    case $status in
        2??) printf '%s\n' "$body" ;;
        401) fail "$1 answered 401 (${body:0:200}): the token in $token_file is expired or its key is not published; check that the refresher runs (selfjwt-token --json)" ;;
        403) fail "$1 answered 403 (${body:0:200}): the token is valid but the API's rules do not allow this call (audience, scopes, path or method)" ;;
        *) fail "$1 answered $status (${body:0:200})" ;;
    esac
}

[ $# -ge 1 ] || { echo "usage: caller.sh URL [URL ...]" >&2; exit 2; }
for url in "$@"; do
    call "$url"
done
