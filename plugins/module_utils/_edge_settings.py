# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The edge_keys role's first step: its variables checked, its run planned, on the controller.

PRIVATE to the collection: do not import it from other collections.

The action ``selfjwt.kyma.edge_keys_plan`` runs :func:`plan` once per host on the controller,
before the role touches any host. The checks are the modules' own (``_keypair.KeypairSpec``,
``_refresher_install.problems``, the issuer rule of ``_publish``, the shard names of ``_fleet``),
and every message names the role variable to set. The installer checks its options again on the
host, where ``auto`` is resolved.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet, _keypair, _publish, _refresher_install
from ansible_collections.selfjwt.kyma.plugins.module_utils._refresher_install import scheduler_period

#: The jwt_keypair options the role sets, and the role variables that set them.
KEY_OPTION_NAMES = {
    "path": "edge_keys_key_dir / edge_keys_key_filename",
    "type": "edge_keys_key_type",
    "size": "edge_keys_key_size",
    "curve": "edge_keys_key_curve",
    "kid": "edge_keys_key_kid",
    "algorithm": "edge_keys_key_algorithm",
    "regenerate": "edge_keys_key_regenerate",
    "certificate_path": "edge_keys_key_dir / edge_keys_certificate_filename",
    "certificate_subject": "edge_keys_certificate_subject",
    "certificate_valid_days": "edge_keys_certificate_valid_days",
    "pkcs11_uri": "edge_keys_pkcs11_uri",
    "passphrase": "edge_keys_key_passphrase",
}
#: The values of edge_keys_key_backend: a key file, or a key in a PKCS#11 token.
KEY_BACKENDS = ("file", "pkcs11")

#: The registered claims and what sets them in this role (edge_keys_extra_claims may not).
CLAIM_VARIABLES = {"iss": "edge_keys_issuer", "sub": "edge_keys_subject", "aud": "edge_keys_audience",
                   "exp": "edge_keys_token_lifetime", "nbf": "edge_keys_token_not_before",
                   "iat": "the time of signing", "jti": "a random value per token"}

#: The role's task files in the order they run; plan() picks the ones a host needs.
STEPS = ("refresher_python", "site_key", "key", "refresher")


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _number(value):
    """``value`` as an int when it is one (also in text), else as given, for a message that shows it."""
    if isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def _text(value):
    return value if isinstance(value, str) else ""


def role_problems(variables):
    """Messages for what is wrong with the role variables (an empty list when nothing is).

    ``variables`` holds the ``edge_keys_*`` variables the checks read, plus
    ``passphrase_file`` (where the passphrase would be stored).
    """
    v = variables
    problems = []
    issuer, subject = v.get("edge_keys_issuer"), v.get("edge_keys_subject")
    lifetime, max_lifetime = _int(v.get("edge_keys_token_lifetime")), _int(v.get("edge_keys_token_max_lifetime"))
    margin = _int(v.get("edge_keys_token_refresh_margin"), -1)
    scopes = v.get("edge_keys_scopes") or []
    claims = v.get("edge_keys_extra_claims") or {}
    if not (_text(issuer).strip() and _text(subject).strip() and 0 < lifetime <= max_lifetime and 0 <= margin < lifetime
            and not [scope for scope in scopes if re.search(r"\s", str(scope))]
            and not ("scope" in claims and scopes)):
        problems.append(
            "edge_keys needs: a non-empty edge_keys_issuer (default: selfjwt_issuer, which must equal the APIRule's jwt "
            "issuer; got %s); a non-empty edge_keys_subject (Istio rejects tokens without sub); 0 < "
            "edge_keys_token_lifetime (%s) <= edge_keys_token_max_lifetime (%s); 0 <= edge_keys_token_refresh_margin "
            "(%s) < edge_keys_token_lifetime; scope names in edge_keys_scopes without spaces; and the scope claim set "
            "either by edge_keys_scopes or by edge_keys_extra_claims, not both."
            % (json.dumps(issuer), v.get("edge_keys_token_lifetime"), v.get("edge_keys_token_max_lifetime"),
               v.get("edge_keys_token_refresh_margin")))

    enabled = _bool(v.get("edge_keys_refresher_enabled"))
    scheduler = v.get("edge_keys_refresher_scheduler") if enabled else "none"
    interval = _int(v.get("edge_keys_refresher_interval"))
    period = scheduler_period(scheduler, interval)
    if interval <= 0 or (period is not None and margin <= period):
        problems.append(
            "The %s scheduler runs the refresher every %s s (edge_keys_refresher_interval=%s%s), but tokens are renewed "
            "only %s s (edge_keys_token_refresh_margin) before they expire, so the token file could hold an expired "
            "token. Raise edge_keys_token_refresh_margin above the period (and below edge_keys_token_lifetime), or "
            "lower edge_keys_refresher_interval."
            % (scheduler, interval if period is None else period, v.get("edge_keys_refresher_interval"),
               ", rounded up to whole minutes for cron" + (" (auto may choose cron)" if scheduler == "auto" else "")
               if scheduler in ("cron", "auto") else "", v.get("edge_keys_token_refresh_margin")))

    if v.get("edge_keys_key_passphrase") and enabled and not _bool(v.get("edge_keys_refresher_store_passphrase")):
        problems.append(
            "The signing key is encrypted (edge_keys_key_passphrase is set), so the token refresher needs the "
            "passphrase to sign tokens. Set edge_keys_refresher_store_passphrase=true to store it in %s (mode 0600, "
            "readable by the key's owner only), or set edge_keys_refresher_enabled=false and mint tokens with "
            "selfjwt.kyma.jwt_token instead." % v.get("passphrase_file"))
    return problems


def _path(directory, name):
    return "%s/%s" % (directory, name) if isinstance(directory, str) and isinstance(name, str) else None


def key_problems(variables):
    """The key settings checked with jwt_keypair's own rules; messages name the role variables."""
    v = variables
    certificate = _bool(v.get("edge_keys_certificate"))
    backend = v.get("edge_keys_key_backend") or "file"
    if backend not in KEY_BACKENDS:
        return ["edge_keys_key_backend must be file (a key file in edge_keys_key_dir) or pkcs11 (a key in a PKCS#11 "
                "token named by edge_keys_pkcs11_uri), got %s." % json.dumps(backend)]
    token = backend == "pkcs11"
    if token:
        problems = token_key_problems(v)
        if problems:
            return problems
    try:
        _keypair.KeypairSpec(
            path=None if token else _path(v.get("edge_keys_key_dir"), v.get("edge_keys_key_filename")),
            pkcs11_uri=v.get("edge_keys_pkcs11_uri") if token else None,
            type=v.get("edge_keys_key_type"), size=_number(v.get("edge_keys_key_size")),
            curve=v.get("edge_keys_key_curve"), kid=v.get("edge_keys_key_kid") or None,
            algorithm=v.get("edge_keys_key_algorithm") or None, regenerate=v.get("edge_keys_key_regenerate"),
            certificate_path=_path(v.get("edge_keys_key_dir"), v.get("edge_keys_certificate_filename"))
            if certificate else None,
            certificate_subject=(v.get("edge_keys_certificate_subject") or None) if certificate else None,
            certificate_valid_days=_number(v.get("edge_keys_certificate_valid_days")),
        ).validate(KEY_OPTION_NAMES)
    except _keypair.KeypairError as exc:
        return ["%s." % str(exc).rstrip(".")]
    return []


def token_key_problems(variables):
    """edge_keys_key_backend=pkcs11: a URI, a PIN file, and none of what only a key file has."""
    v = variables
    problems = []
    if not _text(v.get("edge_keys_pkcs11_uri")).strip():
        problems.append("edge_keys_key_backend=pkcs11 needs edge_keys_pkcs11_uri, the RFC 7512 URI of the key in the "
                        "host's token, for example pkcs11:token=edge;object=jwt-signing;type=private?module-path="
                        "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so.")
    pin_file = v.get("edge_keys_pkcs11_pin_file")
    if not (_text(pin_file).startswith("/")):
        problems.append("edge_keys_key_backend=pkcs11 needs edge_keys_pkcs11_pin_file, the absolute path of a file on "
                        "the host that holds the token's user PIN (mode 0600, owned by the key's owner), got %s."
                        % json.dumps(pin_file))
    if v.get("edge_keys_key_scope") == "site":
        problems.append("edge_keys_key_scope=site shares one key file among the hosts of a site; a key in a token "
                        "cannot leave it. Use edge_keys_key_scope=host with edge_keys_key_backend=pkcs11.")
    if v.get("edge_keys_key_passphrase"):
        problems.append("edge_keys_key_passphrase encrypts a key file; a key in a token (edge_keys_key_backend=pkcs11) "
                        "is protected by the token and its PIN: leave edge_keys_key_passphrase empty.")
    return problems


def _is_url(value):
    return isinstance(value, str) and bool(_publish.RE_URL.match(value))


def claim_problems(variables):
    """The issuer and jku as the APIRule and istiod need them, and the shard's name."""
    v = variables
    problems = []
    issuer, jku, shard = v.get("edge_keys_issuer"), v.get("edge_keys_jku"), v.get("edge_keys_shard")
    if _text(issuer).strip() and not _is_url(issuer):
        problems.append(
            "edge_keys_issuer %s is not an http(s) URL without query or fragment. The APIRule v2 CRD accepts only "
            "such an issuer, and the tokens' iss must equal it byte for byte. Set selfjwt_issuer once in "
            "group_vars/all to the URL that kyma_publish publishes (by default "
            "http://edge-jwks.selfjwt-system.svc.cluster.local), or set edge_keys_issuer to it."
            % json.dumps(issuer))
    if jku and not _is_url(jku):
        problems.append(
            "edge_keys_jku %s is not an http(s) URL without query or fragment: it is the URL of the JWKS in the "
            "tokens' jku header. Set selfjwt_jwks_uri (or edge_keys_jku) to the jwksUri that kyma_publish publishes, "
            "or leave it empty for tokens without jku." % json.dumps(jku))
    claims = v.get("edge_keys_extra_claims")
    for name in sorted(set(claims or {}) & set(CLAIM_VARIABLES) if isinstance(claims, dict) else []):
        problems.append("edge_keys_extra_claims sets the claim %s, which is set by %s; remove it from "
                        "edge_keys_extra_claims." % (name, CLAIM_VARIABLES[name]))
    if shard:
        try:
            _fleet.check_name(shard, "edge_keys_shard")
        except _fleet.ShardError as exc:
            problems.append("%s; set selfjwt_shard_groups or selfjwt_shard_overrides to valid shard names (or "
                            "edge_keys_shard)." % exc)
    return problems


def warnings(variables):
    """What is allowed but probably not meant."""
    if variables.get("edge_keys_audience") in (None, "", []):
        return ["edge_keys_audience is empty (selfjwt_audience is not set), so the tokens carry no aud claim and "
                "kyma_publish's APIRule checks no audience: it accepts any token of this issuer, also one minted for "
                "another API. Set selfjwt_audience once in group_vars/all (both roles read it)."]
    return []


def site_problems(variables):
    """A site key (edge_keys_key_scope=site) needs a site name and no per-host certificate."""
    v = variables
    scope = v.get("edge_keys_key_scope")
    if scope not in ("host", "site"):
        return ["edge_keys_key_scope must be host (one key per host) or site (one key per site), got %s."
                % json.dumps(scope)]
    if scope == "site" and not (_text(v.get("edge_keys_site")).strip() and not _bool(v.get("edge_keys_certificate"))):
        return ["edge_keys_key_scope=site needs edge_keys_site (default: selfjwt_site, usually set in the group_vars "
                "of the site's inventory group) naming the host's site, and edge_keys_certificate=false (each host "
                "would make its own certificate for the shared key, and the JWKS can publish a key only once)."]
    return []


def steps(variables):
    """The role's task files this host runs, in order (see STEPS)."""
    v = variables
    refresher = _bool(v.get("edge_keys_refresher_enabled"))
    wanted = {
        "refresher_python": refresher and bool(v.get("edge_keys_refresher_python")),
        "site_key": v.get("edge_keys_key_scope") == "site",
        "key": True,
        "refresher": refresher,
    }
    return [step for step in STEPS if wanted[step]]


#: The role variables that plan() reads. The action edge_keys_plan takes them from the task's
#: variables; edge_keys_key_passphrase reaches plan() only as true or false.
VARIABLES = (
    "edge_keys_issuer", "edge_keys_subject", "edge_keys_audience", "edge_keys_jku", "edge_keys_shard",
    "edge_keys_scopes", "edge_keys_extra_claims", "edge_keys_token_lifetime", "edge_keys_token_max_lifetime",
    "edge_keys_token_not_before", "edge_keys_token_refresh_margin", "edge_keys_token_dir", "edge_keys_token_filename",
    "edge_keys_token_group", "edge_keys_key_dir", "edge_keys_key_dir_update", "edge_keys_key_filename",
    "edge_keys_key_type", "edge_keys_key_size", "edge_keys_key_curve", "edge_keys_key_kid", "edge_keys_key_algorithm",
    "edge_keys_key_regenerate", "edge_keys_key_passphrase", "edge_keys_key_scope", "edge_keys_key_backend",
    "edge_keys_key_backup", "edge_keys_pkcs11_uri", "edge_keys_pkcs11_pin_file", "edge_keys_site", "edge_keys_owner",
    "edge_keys_group", "edge_keys_certificate", "edge_keys_certificate_filename", "edge_keys_certificate_subject",
    "edge_keys_certificate_valid_days", "edge_keys_refresher_enabled", "edge_keys_refresher_python",
    "edge_keys_refresher_scheduler", "edge_keys_refresher_interval", "edge_keys_refresher_store_passphrase",
    "edge_keys_refresher_bin_dir", "edge_keys_refresher_lib_dir", "edge_keys_refresher_command_name",
    "edge_keys_refresher_unit_name", "edge_keys_refresher_systemd_unit_dir", "edge_keys_refresher_cron_file",
)

#: What token_refresher's messages call its options: the role variables that set them.
REFRESHER_OPTION_NAMES = {
    "key_path": "edge_keys_key_dir / edge_keys_key_filename",
    "pkcs11_uri": "edge_keys_pkcs11_uri",
    "pkcs11_pin_file": "edge_keys_pkcs11_pin_file",
    "kid": "edge_keys_key_kid",
    "algorithm": "edge_keys_key_algorithm",
    "passphrase_file": "edge_keys_key_dir / edge_keys_key_filename",
    "issuer": "edge_keys_issuer (default selfjwt_issuer)",
    "subject": "edge_keys_subject",
    "audience": "edge_keys_audience (default selfjwt_audience)",
    "expires_in": "edge_keys_token_lifetime",
    "max_lifetime": "edge_keys_token_max_lifetime",
    "not_before": "edge_keys_token_not_before",
    "scopes": "edge_keys_scopes",
    "claims": "edge_keys_extra_claims",
    "jku": "edge_keys_jku (default selfjwt_jwks_uri)",
    "token_dir": "edge_keys_token_dir",
    "token_filename": "edge_keys_token_filename",
    "token_group": "edge_keys_token_group",
    "refresh_margin": "edge_keys_token_refresh_margin",
    "owner": "edge_keys_owner",
    "group": "edge_keys_group",
    "lib_dir": "edge_keys_refresher_lib_dir",
    "bin_dir": "edge_keys_refresher_bin_dir",
    "command_name": "edge_keys_refresher_command_name",
    "python": "edge_keys_refresher_python",
    "scheduler": "edge_keys_refresher_scheduler",
    "interval": "edge_keys_refresher_interval",
    "unit_name": "edge_keys_refresher_unit_name",
    "systemd_unit_dir": "edge_keys_refresher_systemd_unit_dir",
    "cron_file": "edge_keys_refresher_cron_file",
}


def _token_key(variables):
    return variables.get("edge_keys_key_backend") == "pkcs11"


def _given(options):
    """``options`` without the ones that are None (the role leaves them out: the module's default applies)."""
    return dict((name, value) for name, value in options.items() if value is not None)


def key_path(variables):
    return _path(variables.get("edge_keys_key_dir"), variables.get("edge_keys_key_filename"))


def passphrase_file(variables):
    """Where the token refresher's copy of the key's passphrase is stored (beside the key)."""
    path = key_path(variables)
    return path + ".passphrase" if path else None


def _key_location(variables):
    """Where the signing key is, as jwt_keypair and jwt_keyring take it: ``path`` (a key file), or
    ``pkcs11_uri`` and ``pkcs11_pin_file`` with ``state_path`` (a token key's ring state, in the key
    directory)."""
    v = variables
    token = _token_key(v)
    path = key_path(v)
    return {"path": None if token else path,
            "pkcs11_uri": v.get("edge_keys_pkcs11_uri") if token else None,
            "pkcs11_pin_file": v.get("edge_keys_pkcs11_pin_file") if token else None,
            "state_path": _keypair.ring_state_path(path) if token and path else None}


def key_dir_mode(variables):
    """The key directory's mode. It belongs to root: with an owner it has mode 0750 and the owner's
    group, so the owner reads its files but cannot put files or links where root writes."""
    return "0750" if variables.get("edge_keys_owner") else "0700"


def install_settings(variables):
    """The values that reach the refresher's command, its units or cron line, by setting (see
    ``_refresher_install.problems``). auto may choose either scheduler: both are checked."""
    v = variables
    settings = {"key_dir": v.get("edge_keys_key_dir"), "key_filename": v.get("edge_keys_key_filename")}
    if not _bool(v.get("edge_keys_refresher_enabled")):
        return settings
    settings.update(
        (setting, v.get(variable)) for setting, variable in _refresher_install.ROLE_VARIABLES.items()
        if setting not in ("python", "unit_name", "unit_dir", "cron_file"))
    if v.get("edge_keys_refresher_python"):
        settings["python"] = v["edge_keys_refresher_python"]
    scheduler = v.get("edge_keys_refresher_scheduler")
    if scheduler in ("systemd", "auto"):
        settings.update(unit_name=v.get("edge_keys_refresher_unit_name"),
                        unit_dir=v.get("edge_keys_refresher_systemd_unit_dir"))
    if scheduler in ("cron", "auto"):
        settings["cron_file"] = v.get("edge_keys_refresher_cron_file")
    return settings


def keypair_options(variables):
    """The options of jwt_keypair for the host's signing key, except ``passphrase`` (the role passes
    that no_log secret itself)."""
    v = variables
    token = _token_key(v)
    certificate = _bool(v.get("edge_keys_certificate"))
    options = dict(_key_location(v), **{
        "parent_mode": None if token else key_dir_mode(v),
        "parent_update": _bool(v.get("edge_keys_key_dir_update")) and not token,
        "type": v.get("edge_keys_key_type"),
        "size": _number(v.get("edge_keys_key_size")),
        "curve": v.get("edge_keys_key_curve"),
        "passphrase_file": None if token else passphrase_file(v),
        "store_passphrase": bool(v.get("edge_keys_key_passphrase")) and _bool(v.get("edge_keys_refresher_enabled"))
        and not token,
        "kid": v.get("edge_keys_key_kid") or None,
        "algorithm": v.get("edge_keys_key_algorithm") or None,
        "certificate_path": _path(v.get("edge_keys_key_dir"), v.get("edge_keys_certificate_filename"))
        if certificate else None,
        "certificate_subject": (v.get("edge_keys_certificate_subject") or None) if certificate else None,
        "certificate_valid_days": _number(v.get("edge_keys_certificate_valid_days")),
        "regenerate": v.get("edge_keys_key_regenerate"),
        "backup": _bool(v.get("edge_keys_key_backup")) and not token,
        "mode": "0600",
        "owner": v.get("edge_keys_owner") or None,
        "group": v.get("edge_keys_group") or None,
    })
    return _given(options)


def refresher_options(variables):
    """The options of token_refresher (no secret among them: a passphrase is read from its file)."""
    v = variables
    token = _token_key(v)
    options = {
        "key_path": None if token else key_path(v),
        "pkcs11_uri": v.get("edge_keys_pkcs11_uri") if token else None,
        "pkcs11_pin_file": v.get("edge_keys_pkcs11_pin_file") if token else None,
        "kid": v.get("edge_keys_key_kid") or None,
        "algorithm": v.get("edge_keys_key_algorithm") or None,
        "passphrase_file": passphrase_file(v) if v.get("edge_keys_key_passphrase") else None,
        "issuer": v.get("edge_keys_issuer"),
        "subject": v.get("edge_keys_subject"),
        "audience": v.get("edge_keys_audience") or None,
        "expires_in": _number(v.get("edge_keys_token_lifetime")),
        "max_lifetime": _number(v.get("edge_keys_token_max_lifetime")),
        "not_before": _number(v.get("edge_keys_token_not_before") or 0),
        "scopes": v.get("edge_keys_scopes") or [],
        "claims": v.get("edge_keys_extra_claims") or {},
        "jku": v.get("edge_keys_jku") or None,
        "token_dir": v.get("edge_keys_token_dir"),
        "token_filename": v.get("edge_keys_token_filename"),
        "token_group": v.get("edge_keys_token_group") or None,
        "refresh_margin": _number(v.get("edge_keys_token_refresh_margin")),
        "owner": v.get("edge_keys_owner") or None,
        "group": v.get("edge_keys_group") or None,
        "lib_dir": v.get("edge_keys_refresher_lib_dir"),
        "bin_dir": v.get("edge_keys_refresher_bin_dir"),
        "command_name": v.get("edge_keys_refresher_command_name"),
        "python": v.get("edge_keys_refresher_python") or None,
        "scheduler": v.get("edge_keys_refresher_scheduler"),
        "interval": _number(v.get("edge_keys_refresher_interval")),
        "unit_name": v.get("edge_keys_refresher_unit_name"),
        "systemd_unit_dir": v.get("edge_keys_refresher_systemd_unit_dir"),
        "cron_file": v.get("edge_keys_refresher_cron_file"),
        "option_names": REFRESHER_OPTION_NAMES,
    }
    return _given(options)


def token_claims(variables):
    """The claims every token of the host carries besides iat, nbf, exp and jti (a published fact)."""
    v = variables
    claims = {"iss": v.get("edge_keys_issuer"), "sub": v.get("edge_keys_subject")}
    if v.get("edge_keys_audience"):
        claims["aud"] = v["edge_keys_audience"]
    if v.get("edge_keys_scopes"):
        claims["scope"] = " ".join(str(scope) for scope in v["edge_keys_scopes"])
    claims.update(v.get("edge_keys_extra_claims") or {})
    return claims


#: The variables of the rotation entry point (tasks_from: rotation) that plan() reads besides
#: VARIABLES when it plans a rotation run.
ROTATION_VARIABLES = (
    "edge_keys_rotation_action", "edge_keys_rotation_published_kids", "edge_keys_rotation_propagation_window",
    "edge_keys_rotation_clock_skew", "edge_keys_rotation_max_key_age", "edge_keys_rotation_keep_retired_keys",
    "edge_keys_rotation_remove_private_keys",
)


def rotation_problems(variables):
    """What stops a step of the host's key ring (the rotation entry point), by role variable."""
    v = variables
    problems = []
    if v.get("edge_keys_key_kid"):
        problems.append(
            "edge_keys_key_kid is set (%s), but every generation of a rotated key needs its own kid: unset "
            "edge_keys_key_kid (the default kid is the key's RFC 7638 thumbprint, which the token refresher uses too)."
            % json.dumps(v["edge_keys_key_kid"]))
    if v.get("edge_keys_key_scope") == "site" and v.get("edge_keys_rotation_action") not in ("status", "revoke"):
        problems.append(
            "edge_keys_key_scope=site: the host signs with the site key of %s, which the hosts of the site share; a "
            "key ring per host would give each host its own key. Rotating site keys is not supported: rotate host "
            "keys (edge_keys_key_scope=host). Revocation works (edge_keys_rotation_action=revoke cuts off the whole "
            "site's key, which is what a compromised shared key needs)."
            % (json.dumps(v.get("edge_keys_site")) if v.get("edge_keys_site") else "its site"))
    return problems


def rotation(variables):
    """The rotation entry point's run: ``keyring`` (the options of jwt_keyring except
    ``passphrase``), ``state_dir`` (the key directory, which holds the ring state of a key in a
    token and which jwt_keypair creates only for a key file; None for a key file) and
    ``refresher_command`` (run after an activation; None without the refresher)."""
    v = variables
    token = _token_key(v)
    action = v.get("edge_keys_rotation_action")
    keyring = dict(_key_location(v), **{
        "action": action,
        "published_kids": v.get("edge_keys_rotation_published_kids") if action == "mark_published" else None,
        "propagation_window": _number(v.get("edge_keys_rotation_propagation_window")),
        "token_max_lifetime": _number(v.get("edge_keys_token_max_lifetime")),
        "clock_skew": _number(v.get("edge_keys_rotation_clock_skew")),
        "max_key_age": _number(v.get("edge_keys_rotation_max_key_age")),
        "type": v.get("edge_keys_key_type"),
        "size": _number(v.get("edge_keys_key_size")),
        "curve": v.get("edge_keys_key_curve"),
        "algorithm": v.get("edge_keys_key_algorithm") or None,
        "keep_retired_keys": _bool(v.get("edge_keys_rotation_keep_retired_keys")),
        "remove_private_keys": _bool(v.get("edge_keys_rotation_remove_private_keys")),
        "owner": v.get("edge_keys_owner") or None,
    })
    state_dir = {"path": v.get("edge_keys_key_dir"), "mode": key_dir_mode(v),
                 "group": v.get("edge_keys_group") or None} if token else None
    command = (_path(v.get("edge_keys_refresher_bin_dir"), v.get("edge_keys_refresher_command_name"))
               if _bool(v.get("edge_keys_refresher_enabled")) else None)
    return {"keyring": _given(keyring), "state_dir": state_dir, "refresher_command": command}


def plan(variables, rotation_run=False):
    """One host's run of the role, planned from its role variables (by name, see VARIABLES).

    Returns ``problems`` (messages that name the role variable to set; the run stops when there
    is any), ``warnings``, ``steps`` (the task files the host runs), ``keypair`` and
    ``refresher`` (the options of jwt_keypair and token_refresher) and ``facts`` (the published
    facts that do not depend on the host). With ``rotation_run`` (the rotation entry point), also
    ``rotation`` (see rotation()), and the problems of rotation_problems() among the problems.
    """
    v = dict(variables)
    v["passphrase_file"] = passphrase_file(v)
    problems = (claim_problems(v) + role_problems(v) + key_problems(v) + site_problems(v)
                + _refresher_install.problems(install_settings(v)))
    token = _token_key(v)
    facts = {"edge_keys_key_path": None if token else key_path(v),
             "edge_keys_pkcs11_uri": v.get("edge_keys_pkcs11_uri") if token else None,
             "edge_keys_token_claims": token_claims(v)}
    planned = {"problems": problems, "warnings": warnings(v), "steps": steps(v), "keypair": keypair_options(v),
               "refresher": refresher_options(v), "facts": facts}
    if rotation_run:
        planned["problems"] += rotation_problems(v)
        planned["rotation"] = rotation(v)
    return planned
