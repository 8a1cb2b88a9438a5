#!/usr/bin/env bash
# Render the documentation of every module (plugins/modules/*.py), every filter
# (plugins/filter/*.py) and of every role with
# meta/argument_specs.yml through ansible-doc; fail when one does not render or renders
# empty, or when ansible-doc complains.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
need_venv
cd "$SELFJWT_ROOT"

failures=0
checked=0
err=$(mktemp)
trap 'rm -f "$err"' EXIT

check() {
    local type=$1 name=$2 out
    checked=$((checked + 1))
    if ! out=$(ansible-doc -t "$type" "$name" 2>"$err"); then
        echo "FAILED $type $name: ansible-doc exited non-zero"
        sed 's/^/    /' "$err"
        failures=$((failures + 1))
    elif [ -s "$err" ]; then
        echo "FAILED $type $name: ansible-doc printed warnings or errors"
        sed 's/^/    /' "$err"
        failures=$((failures + 1))
    elif ! grep -q "$name" <<<"$out" || [ "$(wc -l <<<"$out")" -lt 5 ]; then
        echo "FAILED $type $name: the rendered documentation is empty"
        failures=$((failures + 1))
    else
        echo "ok     $type $name ($(wc -l <<<"$out") lines)"
    fi
}

shopt -s nullglob
for path in plugins/modules/*.py; do
    module=$(basename "$path" .py)
    [ "$module" = __init__ ] || check module "selfjwt.kyma.$module"
done
for path in plugins/filter/*.py; do
    filter=$(basename "$path" .py)
    [ "$filter" = __init__ ] || check filter "selfjwt.kyma.$filter"
done
for spec in roles/*/meta/argument_specs.yml roles/*/meta/argument_specs.yaml; do
    check role "selfjwt.kyma.$(basename "$(dirname "$(dirname "$spec")")")"
done

if [ "$checked" -eq 0 ]; then
    echo "FAILED: no modules in plugins/modules and no roles with meta/argument_specs.yml"
    exit 1
fi
if [ "$failures" -ne 0 ]; then
    echo "$failures of $checked documentation pages failed"
    exit 1
fi
echo "$checked documentation pages rendered"
