#!/usr/bin/env bash
# Make sure the Debian/Ubuntu packages that the tests need are installed: every package that
# bindep.txt lists with both the `platform:dpkg` and the `test` profile (SoftHSM2, the software
# TPM stack, python3-venv, ...):
#
#   scripts/system-packages.sh            check, and install what is missing
#   scripts/system-packages.sh --check    check only; exit 1 and name the command if anything is missing
#
# The check is one dpkg-query call, so a machine that has everything is done in well under a
# second. Missing packages are installed with `apt-get install -y --no-install-recommends`, as
# root or through `sudo -n` (never a password prompt); `apt-get update` runs only when that
# install fails because the package lists are missing or stale. Without root and without
# password-less sudo, the script fails and prints the command to run.
#
# SELFJWT_BINDEP overrides the bindep file (for tests of this script).
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"

check_only=false
case ${1:-} in
    --check) check_only=true ;;
    '') ;;
    *) die "usage: $0 [--check]" ;;
esac

bindep=${SELFJWT_BINDEP:-$SELFJWT_ROOT/bindep.txt}
[ -r "$bindep" ] || die "cannot read $bindep"

# bindep lines look like `name [profile profile ...]`; keep the names whose profiles include
# both platform:dpkg and test.
wanted=()
while read -r name profiles; do
    case $name in '' | '#'*) continue ;; esac
    profiles=" ${profiles//[\[\]]/ } "
    case $profiles in *' platform:dpkg '*) ;; *) continue ;; esac
    case $profiles in *' test '*) wanted+=("$name") ;; esac
done <"$bindep"
[ ${#wanted[@]} -gt 0 ] || die "$bindep lists no package with [platform:dpkg test]"

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "NOTE: not a dpkg-based system, so the packages are not checked: install the equivalents of" \
        "${wanted[*]} (see bindep.txt)" >&2
    exit 0
fi

missing_packages() {
    local installed
    # One line per package dpkg knows; unknown packages only produce a message on stderr.
    installed=" $(dpkg-query -W -f='${Package}=${db:Status-Abbrev} ' "${wanted[@]}" 2>/dev/null || true) "
    local name
    for name in "${wanted[@]}"; do
        case $installed in *" $name=ii "*) ;; *) printf '%s\n' "$name" ;; esac
    done
}

mapfile -t missing < <(missing_packages)
[ ${#missing[@]} -eq 0 ] && exit 0

install_command="apt-get install -y --no-install-recommends ${missing[*]}"
if $check_only; then
    die "missing Debian packages: ${missing[*]}. Install them with: sudo $install_command"
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    die "missing Debian packages: ${missing[*]}. This user cannot install them (not root, no" \
        "password-less sudo). Run: sudo $install_command"
fi

echo "installing the missing Debian packages: ${missing[*]}"
apt_get() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! apt_get install -y --no-install-recommends "${missing[@]}" 2>&1 | tee "$log"; then
    # Missing or outdated package lists (fresh containers ship without them): update once, retry.
    if grep -qE 'Unable to locate package|has no installation candidate|Failed to fetch|404 +Not Found' "$log"; then
        echo "the package lists are missing or stale: running apt-get update, then installing again"
        apt_get update -q || die "'apt-get update' failed (see above). Fix the apt sources, then run: sudo $install_command"
        apt_get install -y --no-install-recommends "${missing[@]}" \
            || die "installing ${missing[*]} failed (see above). Run: sudo $install_command"
    else
        die "installing ${missing[*]} failed (see above). Run: sudo $install_command"
    fi
fi

mapfile -t still_missing < <(missing_packages)
[ ${#still_missing[@]} -eq 0 ] \
    || die "still missing after apt-get install: ${still_missing[*]}. Run: sudo $install_command"
echo "installed: ${missing[*]}"
