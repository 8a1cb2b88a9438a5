#!/usr/bin/env bash
# Run one pytest suite with the collections importable as ansible_collections.*:
#
#   scripts/run-pytest.sh tests/unit [pytest options...]
#   scripts/run-pytest.sh tests/system/test_a.py tests/system/test_b.py [pytest options...]
#
# A suite whose directory does not exist (yet) is reported as SKIPPED. A suite that
# exists but collects no test fails: an empty suite must not pass as a green one.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
need_venv

[ $# -ge 1 ] || die "usage: $0 SUITE_DIR [pytest options...]"
suite=$1
shift

cd "$SELFJWT_ROOT"
if [ ! -e "$suite" ]; then
    echo "SKIPPED $suite: it does not exist"
    exit 0
fi

export PYTHONPATH="$SELFJWT_CACHE/collections${PYTHONPATH:+:$PYTHONPATH}"
status=0
python -m pytest -ra -o cache_dir="$SELFJWT_CACHE/pytest" "$suite" "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "FAILED $suite: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
