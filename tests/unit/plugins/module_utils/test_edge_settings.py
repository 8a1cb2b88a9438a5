# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the edge_keys role's first step (module_utils/_edge_settings.py, action edge_keys_plan)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

import pytest

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
    "edge_keys_audience": "edge-api",
    "edge_keys_jku": "",
    "edge_keys_shard": "",
    "edge_keys_key_dir": "/etc/selfjwt",
    "edge_keys_key_filename": "signing.pem",
    "edge_keys_key_type": "ec",
    "edge_keys_key_size": "4096",
    "edge_keys_key_curve": "P-256",
    "edge_keys_key_kid": "",
    "edge_keys_key_algorithm": "",
    "edge_keys_key_regenerate": "fail",
    "edge_keys_key_scope": "host",
    "edge_keys_site": "",
    "edge_keys_certificate": False,
    "edge_keys_certificate_filename": "signing.crt",
    "edge_keys_certificate_subject": "",
    "edge_keys_certificate_valid_days": "3650",
    "edge_keys_refresher_python": "",
    "edge_keys_token_dir": "/var/lib/selfjwt",
    "edge_keys_token_filename": "token",
    "edge_keys_token_group": "",
    "edge_keys_token_not_before": 0,
    "edge_keys_key_dir_update": False,
    "edge_keys_key_backend": "file",
    "edge_keys_key_backup": False,
    "edge_keys_pkcs11_uri": "",
    "edge_keys_pkcs11_pin_file": "",
    "edge_keys_owner": "",
    "edge_keys_group": "",
    "edge_keys_refresher_bin_dir": "/usr/local/bin",
    "edge_keys_refresher_lib_dir": "/usr/local/lib/selfjwt",
    "edge_keys_refresher_command_name": "selfjwt-token",
    "edge_keys_refresher_unit_name": "selfjwt-token",
    "edge_keys_refresher_cron_file": "/etc/cron.d/selfjwt-token",
}


def problems(**changes):
    return _edge_settings.role_problems(dict(GOOD, **changes))


def plan(**changes):
    return _edge_settings.plan(dict(GOOD, **changes))


def test_the_defaults_pass():
    assert problems() == []
    planned = plan()
    assert (planned["problems"], planned["warnings"], planned["steps"]) == ([], [], ["key", "refresher"])


def test_good_reads_every_variable_of_the_plan_and_nothing_else():
    assert sorted(GOOD) == sorted(set(_edge_settings.VARIABLES) | {"passphrase_file"})


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


def test_systemd_needs_a_unit_directory_once():
    """The refresher's installation check names the empty unit directory; nothing else repeats it."""
    found = plan(edge_keys_refresher_scheduler="systemd", edge_keys_refresher_systemd_unit_dir="")["problems"]
    assert found == ["edge_keys_refresher_systemd_unit_dir is empty: set it (the token refresher's command, systemd "
                     "unit or cron line needs it)"]
    assert plan(edge_keys_refresher_scheduler="cron", edge_keys_refresher_systemd_unit_dir="")["problems"] == []


def test_every_problem_is_reported_at_once():
    found = plan(edge_keys_issuer="", edge_keys_refresher_scheduler="systemd", edge_keys_token_refresh_margin=30,
                 edge_keys_refresher_interval=60, edge_keys_key_passphrase=True,
                 edge_keys_refresher_systemd_unit_dir="")["problems"]
    assert len(found) == 4, found


def test_the_plan_also_runs_the_refresher_check():
    """The role's one check task refuses, by role variable, what the refresher's units cannot hold."""
    found = plan(edge_keys_token_dir="/var/lib/my tokens", edge_keys_refresher_systemd_unit_dir="/etc/systemd:/run")
    found = found["problems"]
    assert [message.split()[0] for message in found] == ["edge_keys_token_dir", "edge_keys_refresher_systemd_unit_dir"]
    assert "holds a space" in found[0] and "holds ':'" in found[1]


@pytest.mark.parametrize("issuer", ["edge-jwks", "edge-jwks.selfjwt-system.svc.cluster.local",
                                    "https://edge-jwks.example?x=1", "https://edge-jwks.example#top",
                                    "ftp://edge-jwks.example", "https://edge jwks.example"])
def test_the_issuer_must_be_an_http_url_as_the_apirule_crd_requires(issuer):
    found = plan(edge_keys_issuer=issuer)["problems"]
    assert len(found) == 1, found
    assert found[0].startswith("edge_keys_issuer %s is not an http(s) URL without query or fragment"
                               % json.dumps(issuer)), found
    assert "selfjwt_issuer" in found[0]


@pytest.mark.parametrize("issuer", ["http://edge-jwks.selfjwt-system.svc.cluster.local",
                                    "https://issuer.example.com/shards/s001", "http://localhost:8080/x"])
def test_http_urls_are_accepted_as_issuers(issuer):
    assert plan(edge_keys_issuer=issuer)["problems"] == []


def test_the_jku_must_be_an_http_url_when_it_is_set():
    found = plan(edge_keys_jku="jwks.json")["problems"]
    assert len(found) == 1 and found[0].startswith('edge_keys_jku "jwks.json" is not an http(s) URL'), found
    assert plan(edge_keys_jku="http://edge-jwks.selfjwt-system.svc.cluster.local/.well-known/jwks.json")["problems"] == []


def test_the_shard_must_have_a_valid_name():
    found = plan(edge_keys_shard="Shard 1")["problems"]
    assert len(found) == 1 and found[0].startswith("edge_keys_shard: shard name 'Shard 1' is not valid"), found
    assert "selfjwt_shard_groups" in found[0]
    assert plan(edge_keys_shard="s001")["problems"] == []


@pytest.mark.parametrize("audience", [None, "", []])
def test_a_missing_audience_is_a_warning_that_says_what_it_means(audience):
    planned = plan(edge_keys_audience=audience)
    assert planned["problems"] == []
    assert len(planned["warnings"]) == 1
    assert planned["warnings"][0].startswith("edge_keys_audience is empty (selfjwt_audience is not set)")
    assert "accepts any token of this issuer" in planned["warnings"][0]


LONG_SUBJECT = "x" * 65


@pytest.mark.parametrize("changes, start", [
    ({"edge_keys_key_type": "dsa"}, "edge_keys_key_type must be one of rsa, ec, ed25519, got 'dsa'"),
    ({"edge_keys_key_type": "rsa", "edge_keys_key_size": "1024"},
     "edge_keys_key_size must be between 2048 and 16384 bits for RSA keys, got 1024"),
    ({"edge_keys_key_type": "rsa", "edge_keys_key_size": "big"}, "edge_keys_key_size must be between"),
    ({"edge_keys_key_curve": "P-192"}, "edge_keys_key_curve must be one of P-256, P-384, P-521, got 'P-192'"),
    ({"edge_keys_key_type": "rsa", "edge_keys_key_algorithm": "ES256"},
     "algorithm ES256 needs a key of type ec, but edge_keys_key_type is rsa: change edge_keys_key_type or "
     "edge_keys_key_algorithm"),
    ({"edge_keys_key_algorithm": "ES384"},
     "algorithm ES384 needs curve P-384, but edge_keys_key_curve is P-256: change edge_keys_key_curve or "
     "edge_keys_key_algorithm"),
    ({"edge_keys_key_algorithm": "none"}, "edge_keys_key_algorithm 'none' is refused"),
    ({"edge_keys_key_algorithm": "HS256"}, "edge_keys_key_algorithm HS256 is refused"),
    ({"edge_keys_key_algorithm": "ES257"}, "edge_keys_key_algorithm 'ES257' is not supported"),
    ({"edge_keys_key_kid": "a b"}, "edge_keys_key_kid 'a b' is not allowed"),
    ({"edge_keys_key_regenerate": "sometimes"}, "edge_keys_key_regenerate must be one of"),
    ({"edge_keys_certificate": True, "edge_keys_certificate_filename": "signing.pem"},
     "edge_keys_key_dir / edge_keys_certificate_filename must differ from edge_keys_key_dir / edge_keys_key_filename"),
    ({"edge_keys_certificate": True, "edge_keys_certificate_valid_days": "0"},
     "edge_keys_certificate_valid_days must be between 1 and 36500, got 0"),
    ({"edge_keys_certificate": True, "edge_keys_certificate_subject": LONG_SUBJECT},
     "edge_keys_certificate_subject %r cannot be a certificate common name" % LONG_SUBJECT),
], ids=lambda value: value[:50] if isinstance(value, str) else "-".join("%s=%s" % i for i in value.items())[:60])
def test_key_settings_are_checked_with_the_module_rules_and_name_the_role_variable(changes, start):
    found = plan(**changes)["problems"]
    assert len(found) == 1, found
    assert found[0].startswith(start), found
    # No message names a bare module option where the user sets a role variable.
    text = found[0].replace("needs a key of type", "").replace("needs curve", "")
    assert not re.search(r"(^|[ (])(type|size|curve|kid|regenerate|certificate_path|certificate_subject)\b(?!_)",
                         text), found


@pytest.mark.parametrize("changes", [
    {"edge_keys_key_type": "rsa", "edge_keys_key_size": "3072", "edge_keys_key_algorithm": "PS256"},
    {"edge_keys_key_type": "ed25519", "edge_keys_key_algorithm": "EdDSA"},
    {"edge_keys_key_curve": "P-521", "edge_keys_key_algorithm": "ES512"},
    {"edge_keys_certificate": True, "edge_keys_certificate_subject": "edge-01.example"},
    {"edge_keys_key_kid": "edge-01"},
])
def test_good_key_settings_pass(changes):
    assert plan(**changes)["problems"] == []


def test_a_site_key_needs_a_site_and_no_certificate():
    found = plan(edge_keys_key_scope="site")["problems"]
    assert len(found) == 1 and found[0].startswith("edge_keys_key_scope=site needs edge_keys_site"), found
    found = plan(edge_keys_key_scope="site", edge_keys_site="berlin", edge_keys_certificate=True)["problems"]
    assert len(found) == 1 and "edge_keys_certificate=false" in found[0], found
    assert plan(edge_keys_key_scope="everywhere")["problems"] == [
        'edge_keys_key_scope must be host (one key per host) or site (one key per site), got "everywhere".']


@pytest.mark.parametrize("changes, steps", [
    ({}, ["key", "refresher"]),
    ({"edge_keys_refresher_enabled": False}, ["key"]),
    ({"edge_keys_refresher_enabled": "false", "edge_keys_refresher_python": "/opt/py/bin/python3"}, ["key"]),
    ({"edge_keys_refresher_python": "/opt/py/bin/python3"}, ["refresher_python", "key", "refresher"]),
    ({"edge_keys_key_scope": "site", "edge_keys_site": "berlin"}, ["site_key", "key", "refresher"]),
])
def test_the_plan_lists_the_steps_the_host_needs_in_order(changes, steps):
    assert plan(**changes)["steps"] == steps


def test_every_problem_of_every_kind_is_reported_at_once():
    found = plan(edge_keys_issuer="edge-jwks", edge_keys_key_curve="P-192", edge_keys_key_scope="site",
                 edge_keys_refresher_scheduler="systemd", edge_keys_refresher_systemd_unit_dir="")["problems"]
    assert [message.split()[0] for message in found] == [
        "edge_keys_issuer", "edge_keys_key_curve", "edge_keys_key_scope=site",
        "edge_keys_refresher_systemd_unit_dir"], found


@pytest.mark.parametrize("claim, source", [("iss", "edge_keys_issuer"), ("sub", "edge_keys_subject"),
                                           ("aud", "edge_keys_audience"), ("exp", "edge_keys_token_lifetime"),
                                           ("nbf", "edge_keys_token_not_before"), ("iat", "the time of signing"),
                                           ("jti", "a random value per token")])
def test_registered_claims_in_the_extra_claims_name_what_sets_them(claim, source):
    found = plan(edge_keys_extra_claims={claim: "x", "tenant": "acme"})["problems"]
    assert found == ["edge_keys_extra_claims sets the claim %s, which is set by %s; remove it from "
                     "edge_keys_extra_claims." % (claim, source)]
    assert plan(edge_keys_extra_claims={"tenant": "acme"})["problems"] == []


TOKEN_URI = "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
TOKEN_KEY = {"edge_keys_key_backend": "pkcs11", "edge_keys_pkcs11_uri": TOKEN_URI,
             "edge_keys_pkcs11_pin_file": "/etc/selfjwt/token.pin"}


def test_a_token_key_with_uri_and_pin_file_passes():
    assert plan(**TOKEN_KEY)["problems"] == []


@pytest.mark.parametrize("changes, expected", [
    ({"edge_keys_key_backend": "tpm"}, "edge_keys_key_backend must be file"),
    ({"edge_keys_pkcs11_uri": ""}, "needs edge_keys_pkcs11_uri"),
    ({"edge_keys_pkcs11_pin_file": ""}, "needs edge_keys_pkcs11_pin_file"),
    ({"edge_keys_pkcs11_pin_file": "token.pin"}, "absolute path"),
    ({"edge_keys_pkcs11_uri": "token=edge"}, "edge_keys_pkcs11_uri: 'token=edge' is not a PKCS#11 URI"),
    ({"edge_keys_pkcs11_uri": TOKEN_URI + "&pin-value=1"}, "carries the PIN"),
    ({"edge_keys_key_scope": "site", "edge_keys_site": "x", "edge_keys_certificate": False},
     "Use edge_keys_key_scope=host"),
    ({"edge_keys_key_passphrase": True}, "leave edge_keys_key_passphrase empty"),
    ({"edge_keys_key_type": "rsa", "edge_keys_key_algorithm": "ES256"}, "change edge_keys_key_type"),
])
def test_token_key_settings_are_checked_and_named_by_role_variable(changes, expected):
    found = plan(**dict(TOKEN_KEY, **changes))["problems"]
    assert any(expected in problem for problem in found), found


# The modules' options: computed here, handed to the modules by the role as they are.

def test_the_key_options_of_a_key_file():
    assert plan()["keypair"] == {
        "path": "/etc/selfjwt/signing.pem", "parent_mode": "0700", "parent_update": False, "type": "ec",
        "size": 4096, "curve": "P-256", "passphrase_file": "/etc/selfjwt/signing.pem.passphrase",
        "store_passphrase": False, "certificate_valid_days": 3650, "regenerate": "fail", "backup": False,
        "mode": "0600"}


def test_the_key_options_follow_owner_certificate_and_passphrase():
    options = plan(edge_keys_owner="edge", edge_keys_group="edge", edge_keys_certificate=True,
                   edge_keys_certificate_subject="edge-01.example", edge_keys_key_passphrase=True,
                   edge_keys_refresher_store_passphrase=True, edge_keys_key_kid="k1", edge_keys_key_algorithm="ES256",
                   edge_keys_key_dir_update="true", edge_keys_key_backup="yes")["keypair"]
    assert options["parent_mode"] == "0750" and options["owner"] == "edge" and options["group"] == "edge"
    assert options["certificate_path"] == "/etc/selfjwt/signing.crt"
    assert options["certificate_subject"] == "edge-01.example"
    assert options["store_passphrase"] is True and options["parent_update"] is True and options["backup"] is True
    assert (options["kid"], options["algorithm"]) == ("k1", "ES256")
    assert "passphrase" not in options
    assert plan(edge_keys_key_passphrase=True, edge_keys_refresher_enabled=False)["keypair"]["store_passphrase"] is False


def test_the_key_options_of_a_token_key_name_the_token_and_no_file():
    options = plan(**TOKEN_KEY)["keypair"]
    assert options["pkcs11_uri"] == TOKEN_URI and options["pkcs11_pin_file"] == "/etc/selfjwt/token.pin"
    assert options["state_path"] == "/etc/selfjwt/signing.pem.ring.json"
    assert not set(options) & {"path", "parent_mode", "passphrase_file"}
    assert (options["parent_update"], options["backup"], options["store_passphrase"]) == (False, False, False)


def test_the_refresher_options_of_the_defaults():
    options = plan()["refresher"]
    assert options == {
        "key_path": "/etc/selfjwt/signing.pem", "issuer": GOOD["edge_keys_issuer"], "subject": "edge-01",
        "audience": "edge-api", "expires_in": 600, "max_lifetime": 3600, "not_before": 0, "scopes": ["orders.read"],
        "claims": {}, "token_dir": "/var/lib/selfjwt", "token_filename": "token", "refresh_margin": 200,
        "lib_dir": "/usr/local/lib/selfjwt", "bin_dir": "/usr/local/bin", "command_name": "selfjwt-token",
        "scheduler": "auto", "interval": 60, "unit_name": "selfjwt-token",
        "systemd_unit_dir": "/etc/systemd/system", "cron_file": "/etc/cron.d/selfjwt-token",
        "option_names": _edge_settings.REFRESHER_OPTION_NAMES}


def test_the_refresher_options_of_a_token_key_and_of_an_encrypted_key():
    options = plan(**TOKEN_KEY)["refresher"]
    assert "key_path" not in options and options["pkcs11_uri"] == TOKEN_URI
    assert options["pkcs11_pin_file"] == "/etc/selfjwt/token.pin"
    options = plan(edge_keys_key_passphrase=True, edge_keys_refresher_store_passphrase=True,
                   edge_keys_jku="https://j.example/jwks.json", edge_keys_refresher_python="/usr/bin/python3",
                   edge_keys_token_group="readers")["refresher"]
    assert options["passphrase_file"] == "/etc/selfjwt/signing.pem.passphrase"
    assert (options["jku"], options["python"], options["token_group"]) == (
        "https://j.example/jwks.json", "/usr/bin/python3", "readers")


def test_every_refresher_option_has_the_role_variable_that_sets_it():
    import ansible_collections.selfjwt.kyma.plugins.modules.token_refresher as module

    assert set(_edge_settings.REFRESHER_OPTION_NAMES) <= set(module.argument_spec())
    given = set(plan(**dict(TOKEN_KEY, edge_keys_key_passphrase=True, edge_keys_jku="https://j.example/j",
                            edge_keys_refresher_python="/p", edge_keys_token_group="g", edge_keys_owner="o",
                            edge_keys_group="g", edge_keys_key_kid="k", edge_keys_key_algorithm="ES256")
                     )["refresher"]) - {"option_names"}
    assert given == set(_edge_settings.REFRESHER_OPTION_NAMES) - {"key_path"}


def test_the_token_claims_fact():
    assert plan()["facts"]["edge_keys_token_claims"] == {
        "iss": GOOD["edge_keys_issuer"], "sub": "edge-01", "aud": "edge-api", "scope": "orders.read"}
    assert plan(edge_keys_audience=None, edge_keys_scopes=[], edge_keys_extra_claims={"tenant": "acme"})["facts"][
        "edge_keys_token_claims"] == {"iss": GOOD["edge_keys_issuer"], "sub": "edge-01", "tenant": "acme"}
    facts = plan(**TOKEN_KEY)["facts"]
    assert (facts["edge_keys_key_path"], facts["edge_keys_pkcs11_uri"]) == (None, TOKEN_URI)
    assert plan()["facts"]["edge_keys_key_path"] == "/etc/selfjwt/signing.pem"


def test_the_install_settings_follow_the_scheduler():
    settings = _edge_settings.install_settings(dict(GOOD, edge_keys_refresher_scheduler="cron"))
    assert "cron_file" in settings and "unit_dir" not in settings and "python" not in settings
    settings = _edge_settings.install_settings(dict(GOOD, edge_keys_refresher_scheduler="systemd",
                                                    edge_keys_refresher_python="/usr/bin/python3"))
    assert settings["unit_dir"] == "/etc/systemd/system" and "cron_file" not in settings
    assert settings["python"] == "/usr/bin/python3"
    assert _edge_settings.install_settings(dict(GOOD, edge_keys_refresher_enabled=False)) == {
        "key_dir": "/etc/selfjwt", "key_filename": "signing.pem"}


def test_the_role_defines_every_variable_the_plan_reads():
    """The action reads VARIABLES from the task's variables: each must be a role default."""
    import os

    import yaml

    root = os.path.dirname(os.path.abspath(_edge_settings.__file__))
    with open(os.path.join(root, "..", "..", "roles", "edge_keys", "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    assert set(_edge_settings.VARIABLES) <= set(defaults)


class _Recorder(dict):
    """Variables that remember which of them were read."""

    def __init__(self, values, read):
        super().__init__(values)
        self.read = read

    def get(self, name, default=None):
        self.read.add(name)
        return super().get(name, default)

    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)

    def __contains__(self, name):
        self.read.add(name)
        return super().__contains__(name)


@pytest.mark.parametrize("function", [
    "claim_problems", "role_problems", "key_problems", "token_key_problems", "site_problems", "warnings", "steps",
    "key_path", "passphrase_file", "install_settings", "keypair_options", "refresher_options", "token_claims",
    "rotation_problems", "rotation"])
def test_the_functions_read_only_variables_the_action_passes(function):
    """The action passes only VARIABLES (and ROTATION_VARIABLES for a rotation run): a variable read
    but not passed would always look empty."""
    allowed = set(_edge_settings.VARIABLES) | ({"passphrase_file"} if function == "role_problems" else set())
    if function.startswith("rotation"):
        allowed |= set(_edge_settings.ROTATION_VARIABLES)
    read = set()
    for changes in ({}, TOKEN_KEY, {"edge_keys_key_scope": "site", "edge_keys_site": "berlin"},
                    {"edge_keys_key_passphrase": True, "edge_keys_certificate": True, "edge_keys_scopes": []},
                    {"edge_keys_refresher_enabled": False, "edge_keys_key_kid": "k"},
                    {"edge_keys_rotation_action": "mark_published", "edge_keys_refresher_scheduler": "systemd"}):
        getattr(_edge_settings, function)(_Recorder(dict(GOOD, **dict(ROTATION, **changes)), read))
    assert read and read <= allowed, sorted(read - allowed)


ROTATION = {"edge_keys_rotation_action": "auto", "edge_keys_rotation_published_kids": ["k1"],
            "edge_keys_rotation_propagation_window": "1800", "edge_keys_rotation_clock_skew": 60,
            "edge_keys_rotation_max_key_age": 7776000, "edge_keys_rotation_keep_retired_keys": "false",
            "edge_keys_rotation_remove_private_keys": False}


def rotation_plan(**changes):
    return _edge_settings.plan(dict(GOOD, **dict(ROTATION, **changes)), rotation_run=True)


def test_a_rotation_plan_gives_the_key_rings_options():
    import ansible_collections.selfjwt.kyma.plugins.modules.jwt_keyring as module

    planned = rotation_plan()
    assert planned["problems"] == [] and "rotation" not in plan()
    rotation = planned["rotation"]
    assert rotation["keyring"] == {
        "path": "/etc/selfjwt/signing.pem", "action": "auto", "propagation_window": 1800, "token_max_lifetime": 3600,
        "clock_skew": 60, "max_key_age": 7776000, "type": "ec", "size": 4096, "curve": "P-256",
        "keep_retired_keys": False, "remove_private_keys": False}
    assert set(rotation["keyring"]) <= set(module.argument_spec())
    assert rotation["state_dir"] is None and rotation["refresher_command"] == "/usr/local/bin/selfjwt-token"
    assert rotation_plan(edge_keys_rotation_action="mark_published")["rotation"]["keyring"]["published_kids"] == ["k1"]
    assert rotation_plan(edge_keys_refresher_enabled=False)["rotation"]["refresher_command"] is None


def test_a_rotation_plan_of_a_token_key_keeps_the_ring_state_in_the_key_directory():
    rotation = rotation_plan(**dict(TOKEN_KEY, edge_keys_owner="svc", edge_keys_group="svc"))["rotation"]
    assert "path" not in rotation["keyring"] and rotation["keyring"]["pkcs11_uri"] == TOKEN_KEY["edge_keys_pkcs11_uri"]
    assert rotation["keyring"]["state_path"] == "/etc/selfjwt/signing.pem.ring.json"
    assert rotation["keyring"]["pkcs11_pin_file"] == TOKEN_KEY["edge_keys_pkcs11_pin_file"]
    assert rotation["state_dir"] == {"path": "/etc/selfjwt", "mode": "0750", "group": "svc"}


def test_a_rotation_refuses_a_fixed_kid_and_a_site_key_by_role_variable():
    found = rotation_plan(edge_keys_key_kid="edge-01")["problems"]
    assert len(found) == 1 and found[0].startswith('edge_keys_key_kid is set ("edge-01")'), found
    site = dict(edge_keys_key_scope="site", edge_keys_site="berlin")
    found = rotation_plan(**site)["problems"]
    assert len(found) == 1 and found[0].startswith('edge_keys_key_scope=site: the host signs with the site key of '
                                                   '"berlin"'), found
    assert rotation_plan(edge_keys_rotation_action="revoke", **site)["problems"] == []
    assert rotation_plan(edge_keys_rotation_action="status", **site)["problems"] == []
    assert plan(edge_keys_key_kid="edge-01", **site)["problems"] == []
