# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Checks of the edge_keys role variables, before anything is written on a host.

PRIVATE to the collection: do not import it from other collections.

Standard library only. The role runs :func:`role_problems` through the filter
``selfjwt.kyma.edge_keys_problems`` in one task per host (instead of one task per check, each a
worker process per host), and every message names the role variable to set. The installer
(``_refresher_install``) checks its own options again on the host, where ``auto`` is resolved.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re


def scheduler_period(scheduler, interval):
    """Seconds between two runs of the refresher with this scheduler (None without one).

    Cron runs at most once a minute, so its period is the interval rounded up to whole
    minutes; ``auto`` may become cron, so it gets cron's (the longer) period.
    """
    if scheduler in ("cron", "auto"):
        return max(1, (interval + 59) // 60) * 60
    if scheduler == "systemd":
        return interval
    return None


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


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

    if scheduler == "systemd" and not v.get("edge_keys_refresher_systemd_unit_dir"):
        problems.append("Set edge_keys_refresher_systemd_unit_dir (default /etc/systemd/system) for the systemd "
                        "scheduler.")
    return problems
