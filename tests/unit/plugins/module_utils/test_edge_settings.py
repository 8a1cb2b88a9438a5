# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the edge_keys role variable checks (module_utils/_edge_settings.py, filter edge_keys_problems)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.selfjwt.kyma.plugins.filter.edge_keys_problems import edge_keys_problems
from ansible_collections.selfjwt.kyma.plugins.module_utils import _edge_settings

#: The role's defaults (as the role passes them: numbers may arrive as strings).
GOOD = {
    "edge_keys_issuer": "https://edge-jwks.kyma-system.svc.cluster.local",
    "edge_keys_subject": "edge-01",
    "edge_keys_token_lifetime": 600,
    "edge_keys_token_max_lifetime": 3600,
    "edge_keys_token_refresh_margin": "200",
    "edge_keys_scopes": ["orders.read"],
    "edge_keys_extra_claims": {},
    "edge_keys_refresher_enabled": True,
    "edge_keys_refresher_scheduler": "auto",
    "edge_keys_refresher_interval": 60,
    "edge_keys_key_passphrase": False,
    "edge_keys_refresher_store_passphrase": False,
    "edge_keys_refresher_systemd_unit_dir": "/etc/systemd/system",
    "passphrase_file": "/etc/selfjwt/signing.pem.passphrase",
}


def problems(**changes):
    return _edge_settings.role_problems(dict(GOOD, **changes))


def test_the_defaults_pass():
    assert problems() == []
    assert edge_keys_problems(dict(GOOD)) == []


@pytest.mark.parametrize("changes", [
    {"edge_keys_issuer": ""},
    {"edge_keys_issuer": "  "},
    {"edge_keys_issuer": None},
    {"edge_keys_subject": ""},
    {"edge_keys_token_lifetime": 0},
    {"edge_keys_token_lifetime": 7200},
    {"edge_keys_token_refresh_margin": 600},
    {"edge_keys_token_refresh_margin": -1},
    {"edge_keys_scopes": ["orders read"]},
    {"edge_keys_extra_claims": {"scope": "a"}},
], ids=lambda changes: "-".join("%s=%s" % item for item in changes.items()))
def test_claims_and_lifetimes(changes):
    found = problems(**changes)
    assert found and found[0].startswith("edge_keys needs: a non-empty edge_keys_issuer"), found


def test_the_issuer_message_names_the_variables_and_shows_the_value():
    message = problems(edge_keys_issuer="")[0]
    assert "edge_keys_issuer (default: selfjwt_issuer" in message and 'got ""' in message


def test_scope_claim_without_scopes_is_fine():
    assert problems(edge_keys_scopes=[], edge_keys_extra_claims={"scope": "a b"}) == []


@pytest.mark.parametrize("scheduler, interval, margin, period", [
    ("cron", 60, 30, 60), ("auto", 90, 100, 120), ("systemd", 90, 80, 90), ("cron", 61, 100, 120),
])
def test_a_margin_within_the_scheduler_period_is_refused(scheduler, interval, margin, period):
    found = problems(edge_keys_refresher_scheduler=scheduler, edge_keys_refresher_interval=interval,
                     edge_keys_token_refresh_margin=margin)
    assert len(found) == 1
    assert found[0].startswith("The %s scheduler runs the refresher every %d s (edge_keys_refresher_interval=%d"
                               % (scheduler, period, interval)), found
    assert "Raise edge_keys_token_refresh_margin" in found[0]


def test_the_margin_fits_systemd_where_it_would_not_fit_cron():
    assert problems(edge_keys_refresher_scheduler="systemd", edge_keys_refresher_interval=90,
                    edge_keys_token_refresh_margin=100) == []


def test_without_a_scheduler_or_refresher_the_period_does_not_matter():
    assert problems(edge_keys_refresher_scheduler="none", edge_keys_token_refresh_margin=10) == []
    assert problems(edge_keys_refresher_enabled=False, edge_keys_token_refresh_margin=10) == []
    assert problems(edge_keys_refresher_enabled="false", edge_keys_token_refresh_margin=10) == []


def test_a_non_positive_interval_is_refused():
    found = problems(edge_keys_refresher_scheduler="none", edge_keys_refresher_interval=0)
    assert len(found) == 1 and "edge_keys_refresher_interval=0" in found[0]


def test_an_encrypted_key_needs_the_stored_passphrase_for_the_refresher():
    found = problems(edge_keys_key_passphrase=True)
    assert len(found) == 1
    assert "Set edge_keys_refresher_store_passphrase=true to store it in /etc/selfjwt/signing.pem.passphrase" in found[0]
    assert problems(edge_keys_key_passphrase=True, edge_keys_refresher_store_passphrase=True) == []
    assert problems(edge_keys_key_passphrase=True, edge_keys_refresher_enabled=False) == []


def test_systemd_needs_a_unit_directory():
    found = problems(edge_keys_refresher_scheduler="systemd", edge_keys_refresher_systemd_unit_dir="")
    assert found == ["Set edge_keys_refresher_systemd_unit_dir (default /etc/systemd/system) for the systemd "
                     "scheduler."]
    assert problems(edge_keys_refresher_systemd_unit_dir="") == []


def test_every_problem_is_reported_at_once():
    found = problems(edge_keys_issuer="", edge_keys_refresher_scheduler="systemd", edge_keys_token_refresh_margin=30,
                     edge_keys_refresher_interval=60, edge_keys_key_passphrase=True,
                     edge_keys_refresher_systemd_unit_dir="")
    assert len(found) == 4


def test_the_filter_refuses_what_is_not_a_dictionary():
    with pytest.raises(AnsibleFilterError, match="expects a dictionary"):
        edge_keys_problems(["edge_keys_issuer"])


def test_the_filter_also_runs_the_refresher_check():
    """The role's one check task refuses, by role variable, what the refresher's units cannot hold."""
    found = edge_keys_problems(dict(GOOD), {"token_dir": "/var/lib/my tokens", "bin_dir": "/usr/local/bin",
                                            "unit_dir": "/etc/systemd:/run"})
    assert [message.split()[0] for message in found] == ["edge_keys_token_dir", "edge_keys_refresher_systemd_unit_dir"]
    assert "holds a space" in found[0] and "holds ':'" in found[1]
    assert edge_keys_problems(dict(GOOD), {"token_dir": "/var/lib/selfjwt"}) == []


@pytest.mark.parametrize("refresher", [["/x"], {"tokendir": "/x"}])
def test_the_filter_refuses_refresher_settings_it_cannot_check(refresher):
    with pytest.raises(AnsibleFilterError):
        edge_keys_problems(dict(GOOD), refresher)
