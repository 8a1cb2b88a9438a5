#!/usr/bin/env bash
# Copy the collection, as git sees it (tracked files plus untracked files that are not
# ignored), to .cache/ansible-test/<name>/ansible_collections/selfjwt/kyma and print that path:
#
#   scripts/stage-collection.sh [NAME]      (NAME defaults to "default")
#
# Each ansible-test command stages its own copy, so sanity and integration can run at once.
# ansible-test needs a real directory below ansible_collections/ (it resolves symlinks).
# The copy is made afresh every time, so files deleted from the work tree do not linger.
# The other collections in .cache/collections are linked beside it, because
# `ansible-test integration` points ANSIBLE_COLLECTIONS_PATH at this collection root.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"

name=${1:-default}
case $name in */* | .* | '') die "bad staging name: $name" ;; esac
root=$SELFJWT_CACHE/ansible-test/$name
dest=$root/ansible_collections/selfjwt/kyma

cd "$SELFJWT_ROOT"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || die "$SELFJWT_ROOT is not a git work tree (staging uses git ls-files)"

export LC_ALL=C
rm -rf "$root"
mkdir -p "$dest"
comm -z -23 \
    <(git ls-files -z --cached --others --exclude-standard | sort -z -u) \
    <(git ls-files -z --deleted | sort -z -u) \
    | tar --null --files-from=- -cf - \
    | tar -xf - -C "$dest"

deps=$SELFJWT_CACHE/collections/ansible_collections
if [ -d "$deps" ]; then
    for ns in "$deps"/*/; do
        ns=$(basename "$ns")
        [ "$ns" = selfjwt ] || ln -s "$deps/$ns" "$root/ansible_collections/$ns"
    done
fi

echo "$dest"
