# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the token refresher program (module_utils/_refresher.py) that
selfjwt.kyma.token_refresher installs on edge hosts as selfjwt_refresher.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import errno
import io
import json
import os
import time

import jwt
import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher as refresher

ISSUER = "http://edge-jwks.kyma-system.svc.cluster.local"


@pytest.fixture(scope="module")
def ec_key_pem():
    return _keys.private_key_pem(_keys.generate_private_key("ec", curve="P-256"))


@pytest.fixture
def setup(tmp_path, ec_key_pem):
    """A key, a token directory and a configuration as the role writes them."""
    key_dir = tmp_path / "keys"
    key_dir.mkdir(mode=0o700)
    key_path = key_dir / "signing.pem"
    key_path.write_bytes(ec_key_pem)
    key_path.chmod(0o600)
    token_dir = tmp_path / "state"
    token_dir.mkdir(mode=0o700)
    config = {
        "version": 1,
        "user": None,
        "key": {"path": str(key_path), "kid": None, "algorithm": None, "passphrase_file": None},
        "token": {"issuer": ISSUER, "subject": "edge-01", "audience": "orders-api", "expires_in": 600,
                  "max_lifetime": 3600, "not_before": 0, "scopes": ["orders.read", "orders.write"],
                  "claims": {}, "jku": ISSUER + "/.well-known/jwks.json"},
        "token_file": {"path": str(token_dir / "token"), "mode": "0600", "group": None, "refresh_margin": 200},
    }
    config_path = tmp_path / "refresher.json"
    config_path.write_text(json.dumps(config))
    public_jwk = _jwk.public_jwk(_keys.load_private_key(ec_key_pem))
    return {"config": config, "config_path": str(config_path), "jwk": public_jwk, "tmp": tmp_path}


def _write_config(setup, config):
    with open(setup["config_path"], "w") as handle:
        json.dump(config, handle)


def _main(args, setup=None):
    out, err = io.StringIO(), io.StringIO()
    default = setup["config_path"] if setup else None
    status = refresher.main(args, default_config=default, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _verify(token, jwk, audience="orders-api"):
    key = jwt.PyJWK.from_dict(jwk)
    return jwt.decode(token, key.key, algorithms=[jwk["alg"]], issuer=ISSUER, audience=audience,
                      options={"require": ["iss", "sub", "exp", "iat", "nbf", "jti"]})


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

def test_load_config_accepts_what_the_role_writes(setup):
    assert refresher.load_config(setup["config_path"]) == setup["config"]


def test_load_config_missing_file_names_the_role(tmp_path):
    with pytest.raises(refresher.RefresherError, match="does not exist: run the selfjwt.kyma.edge_keys role"):
        refresher.load_config(str(tmp_path / "nope.json"))


def test_load_config_refuses_broken_json(setup):
    with open(setup["config_path"], "w") as handle:
        handle.write("{not json")
    with pytest.raises(refresher.RefresherError, match="not valid JSON"):
        refresher.load_config(setup["config_path"])


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.update(version=2), "has version 2"),
    (lambda c: c.pop("token"), "lacks the object 'token'"),
    (lambda c: c["token"].update(expires_in="600"), r"token.expires_in .* must be an integer"),
    (lambda c: c["token"].update(expires_in=True), r"token.expires_in .* must be an integer"),
    (lambda c: c["token"].update(audience=5), r"token.audience .* must be a string or a list or null"),
    (lambda c: c["key"].update(path=None), r"key.path .* must be a string"),
    (lambda c: c["token_file"].update(mode="rw-"), "must be an octal mode"),
    (lambda c: c["token"].update(scopes=["orders read"]), "scope names without spaces"),
    (lambda c: c.update(user=["root"]), "user name, a uid or null"),
])
def test_load_config_refuses_bad_members(setup, mutate, message):
    config = copy.deepcopy(setup["config"])
    mutate(config)
    _write_config(setup, config)
    with pytest.raises(refresher.RefresherError, match=message):
        refresher.load_config(setup["config_path"])


def test_token_claims_joins_scopes_with_spaces(setup):
    assert refresher.token_claims(setup["config"]["token"]) == {"scope": "orders.read orders.write"}


def test_token_claims_without_scopes_keeps_claims(setup):
    token = dict(setup["config"]["token"], scopes=[], claims={"tenant": "acme"})
    assert refresher.token_claims(token) == {"tenant": "acme"}


def test_token_claims_refuses_scope_twice(setup):
    token = dict(setup["config"]["token"], claims={"scope": "x"})
    with pytest.raises(refresher.RefresherError, match="both by scopes and by claims"):
        refresher.token_claims(token)


def test_token_options_leave_out_unset_values(setup):
    config = copy.deepcopy(setup["config"])
    config["token"].update(audience=None, jku=None, scopes=[])
    options = refresher.token_options(config)
    assert options == {"issuer": ISSUER, "subject": "edge-01", "expires_in": 600, "max_lifetime": 3600,
                       "not_before": 0, "claims": None}


def test_token_options_pass_kid_and_algorithm(setup):
    config = copy.deepcopy(setup["config"])
    config["key"].update(kid="edge-01-2026", algorithm="ES256")
    options = refresher.token_options(config)
    assert options["kid"] == "edge-01-2026"
    assert options["algorithm"] == "ES256"
    assert options["audience"] == "orders-api"
    assert options["jku"] == ISSUER + "/.well-known/jwks.json"


# --------------------------------------------------------------------------------------
# Passphrase files
# --------------------------------------------------------------------------------------

def test_read_passphrase_strips_the_line_end(tmp_path):
    path = tmp_path / "pass"
    path.write_text("s3cret phrase\n")
    path.chmod(0o600)
    assert refresher.read_passphrase(str(path)) == "s3cret phrase"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_read_passphrase_refuses_a_file_others_may_read(tmp_path, mode):
    path = tmp_path / "pass"
    path.write_text("s3cret")
    path.chmod(mode)
    with pytest.raises(refresher.RefresherError, match="others may read it.*chmod 600"):
        refresher.read_passphrase(str(path))


def test_read_passphrase_refuses_an_empty_file(tmp_path):
    path = tmp_path / "pass"
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(refresher.RefresherError, match="is empty"):
        refresher.read_passphrase(str(path))


def test_read_passphrase_refuses_a_link(tmp_path):
    """The mode and owner checked are those of the file read: a link is refused, its target never looked at."""
    target = tmp_path / "elsewhere"
    target.write_text("s3cret")
    target.chmod(0o644)
    link = tmp_path / "pass"
    os.symlink(str(target), str(link))
    with pytest.raises(refresher.RefresherError, match="symbolic link"):
        refresher.read_passphrase(str(link))


def test_read_passphrase_missing_file(tmp_path):
    with pytest.raises(refresher.RefresherError, match="the passphrase file .* does not exist"):
        refresher.read_passphrase(str(tmp_path / "nope"))


def test_encrypted_key_signs_with_the_passphrase_file(setup):
    key = _keys.load_private_key(open(setup["config"]["key"]["path"], "rb").read())
    key_path = setup["tmp"] / "keys" / "encrypted.pem"
    key_path.write_bytes(_keys.private_key_pem(key, "correct horse"))
    key_path.chmod(0o600)
    passphrase_path = setup["tmp"] / "keys" / "encrypted.pem.passphrase"
    passphrase_path.write_text("correct horse")
    passphrase_path.chmod(0o600)
    config = copy.deepcopy(setup["config"])
    config["key"].update(path=str(key_path), passphrase_file=str(passphrase_path))
    changed, result = refresher.refresh(config)
    assert changed
    assert _verify(result.token, setup["jwk"])["sub"] == "edge-01"


# --------------------------------------------------------------------------------------
# Minting and keeping tokens
# --------------------------------------------------------------------------------------

def test_run_mints_then_keeps_the_token(setup):
    config = setup["config"]
    first, facts, warning = refresher.run(config)
    assert facts["changed"] and facts["source"] == "minted" and warning is None
    claims = _verify(first.token, setup["jwk"])
    assert claims["sub"] == "edge-01"
    assert claims["scope"] == "orders.read orders.write"
    assert claims["exp"] - claims["iat"] == 600
    assert jwt.get_unverified_header(first.token)["kid"] == setup["jwk"]["kid"]
    with open(config["token_file"]["path"]) as handle:
        assert handle.read() == first.token
    assert oct(os.stat(config["token_file"]["path"]).st_mode & 0o777) == "0o600"

    second, facts, _warning = refresher.run(config)
    assert second.token == first.token
    assert not facts["changed"] and facts["source"] == "kept"


def test_run_renews_a_token_within_the_margin(setup):
    config = setup["config"]
    now = int(time.time())
    first, _facts, _warning = refresher.run(config, now=now - 450)  # 150 s left at `now`, margin 200
    kept, facts, _warning = refresher.run(config, now=now - 350)   # 250 s left then: kept
    assert kept.token == first.token and not facts["changed"]
    renewed, facts, _warning = refresher.run(config, now=now)
    assert renewed.token != first.token
    assert facts["changed"] and "refresh margin" in facts["reason"]
    assert renewed.expires_at == now + 600


def test_run_check_writes_nothing(setup):
    config = setup["config"]
    first, _facts, _warning = refresher.run(config)
    _result, facts, _warning = refresher.run(config, check=True, force=False, now=int(time.time()) + 500)
    assert facts["changed"]
    with open(config["token_file"]["path"]) as handle:
        assert handle.read() == first.token


def test_run_force_replaces_a_fresh_token(setup):
    config = setup["config"]
    first, _facts, _warning = refresher.run(config)
    forced, facts, _warning = refresher.run(config, force=True)
    assert forced.token != first.token and facts["changed"]


def test_run_renews_when_the_claims_change(setup):
    config = copy.deepcopy(setup["config"])
    first, _facts, _warning = refresher.run(config)
    config["token"]["audience"] = "billing-api"
    second, facts, _warning = refresher.run(config)
    assert second.token != first.token and facts["changed"]
    assert _verify(second.token, setup["jwk"], audience="billing-api")["aud"] == "billing-api"


def test_run_group_mode(setup):
    config = copy.deepcopy(setup["config"])
    config["token_file"].update(mode="0640", group=os.getgid())
    refresher.run(config)
    status = os.stat(config["token_file"]["path"])
    assert status.st_mode & 0o777 == 0o640
    assert status.st_gid == os.getgid()


# --------------------------------------------------------------------------------------
# Callers that may read the token file but not the key
# --------------------------------------------------------------------------------------

def test_key_readable(setup, monkeypatch):
    assert refresher.key_readable(setup["config"])
    missing = dict(setup["config"], key=dict(setup["config"]["key"], path=str(setup["tmp"] / "nope.pem")))
    assert refresher.key_readable(missing)  # the minting path reports a missing key

    real_open = os.open

    def denied(path, *args, **kwargs):
        if path == setup["config"]["key"]["path"]:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", denied)
    assert not refresher.key_readable(setup["config"])


def test_key_readable_does_not_follow_a_linked_key(setup, monkeypatch):
    """A link at the key path is not followed, not even to see whether the key may be read.

    The link points to a file this user may not read (simulated: the tests run as root): a
    followed link would answer False (a reader); unfollowed, the minting path reports the link.
    """
    target = setup["tmp"] / "elsewhere.pem"
    target.write_bytes(b"not for this user")
    link = setup["tmp"] / "keys" / "linked.pem"
    os.symlink(str(target), str(link))
    real_open = os.open

    def target_denied(path, flags=os.O_RDONLY, *args, **kwargs):
        if not (flags & getattr(os, "O_NOFOLLOW", 0) and os.path.islink(path)) \
                and os.path.realpath(path) == str(target):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    def builtin_denied(path, *args, **kwargs):
        if os.path.realpath(path) == str(target):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return io.open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", target_denied)
    monkeypatch.setattr(refresher, "open", builtin_denied, raising=False)
    config = dict(setup["config"], key=dict(setup["config"]["key"], path=str(link)))
    assert refresher.key_readable(config)


def test_reader_gets_the_valid_token_from_the_file(setup, monkeypatch):
    config = setup["config"]
    first, _facts, _warning = refresher.run(config)
    monkeypatch.setattr(refresher, "key_readable", lambda config: False)
    result, facts, warning = refresher.run(config)
    assert result.token == first.token
    assert facts["source"] == "token file" and not facts["changed"] and warning is None


def test_reader_is_warned_about_a_stale_token(setup, monkeypatch):
    config = setup["config"]
    now = int(time.time())
    refresher.run(config, now=now - 500)
    monkeypatch.setattr(refresher, "key_readable", lambda config: False)
    _result, _facts, warning = refresher.run(config, now=now)
    assert "timer or cron job seems not to run" in warning


def test_reader_refuses_an_expired_token(setup, monkeypatch):
    config = setup["config"]
    refresher.run(config, now=int(time.time()) - 700)
    monkeypatch.setattr(refresher, "key_readable", lambda config: False)
    with pytest.raises(refresher.RefresherError, match="expired at .* check that the refresher timer"):
        refresher.run(config)


def test_reader_without_token_file(setup, monkeypatch):
    monkeypatch.setattr(refresher, "key_readable", lambda config: False)
    with pytest.raises(refresher.RefresherError, match="does not exist yet"):
        refresher.run(setup["config"])


def test_reader_may_not_force(setup, monkeypatch):
    monkeypatch.setattr(refresher, "key_readable", lambda config: False)
    with pytest.raises(refresher.RefresherError, match="--force needs the private key"):
        refresher.run(setup["config"], force=True)


# --------------------------------------------------------------------------------------
# Switching to the key's owner
# --------------------------------------------------------------------------------------

def test_switch_user_without_user_does_nothing(setup):
    assert refresher.switch_user(setup["config"]) is None


def test_switch_user_when_not_root_does_nothing(setup, monkeypatch):
    monkeypatch.setattr(refresher.os, "geteuid", lambda: 4242)
    assert refresher.switch_user(dict(setup["config"], user="nobody")) is None


def test_switch_user_as_root_becomes_the_owner(setup, monkeypatch):
    calls = []
    entry = refresher.pwd.struct_passwd(("svc", "x", 4242, 4343, "", "/", "/bin/false"))
    monkeypatch.setattr(refresher.os, "geteuid", lambda: 0)
    monkeypatch.setattr(refresher.pwd, "getpwnam", lambda name: entry)
    monkeypatch.setattr(refresher.os, "initgroups", lambda name, gid: calls.append(("initgroups", name, gid)))
    monkeypatch.setattr(refresher.os, "setgid", lambda gid: calls.append(("setgid", gid)))
    monkeypatch.setattr(refresher.os, "setuid", lambda uid: calls.append(("setuid", uid)))
    assert refresher.switch_user(dict(setup["config"], user="svc")) == 4242
    assert calls == [("initgroups", "svc", 4343), ("setgid", 4343), ("setuid", 4242)]


def test_switch_user_unknown_owner(setup, monkeypatch):
    def unknown(name):
        raise KeyError(name)
    monkeypatch.setattr(refresher.os, "geteuid", lambda: 0)
    monkeypatch.setattr(refresher.pwd, "getpwnam", unknown)
    with pytest.raises(refresher.RefresherError, match="does not exist on this host"):
        refresher.switch_user(dict(setup["config"], user="ghost"))


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

def test_main_prints_the_token(setup):
    status, out, err = _main([], setup)
    assert status == 0 and err == ""
    assert out.endswith("\n") and out.count("\n") == 1
    assert _verify(out.strip(), setup["jwk"])["iss"] == ISSUER


def test_main_json_never_prints_the_token(setup):
    _status, token, _err = _main([], setup)
    status, out, _err = _main(["--json"], setup)
    facts = json.loads(out)
    assert status == 0
    assert token.strip() not in out
    assert facts["kid"] == setup["jwk"]["kid"] and facts["sub"] == "edge-01" and not facts["changed"]


def test_main_quiet_prints_nothing_but_writes_the_file(setup):
    status, out, err = _main(["--quiet"], setup)
    assert (status, out, err) == (0, "", "")
    assert os.path.getsize(setup["config"]["token_file"]["path"]) > 0


def test_main_error_goes_to_stderr_with_status_1(setup):
    os.remove(setup["config"]["key"]["path"])
    status, out, err = _main([], setup)
    assert status == 1 and out == ""
    assert err.startswith("selfjwt-token: error: ") and "create it with selfjwt.kyma.jwt_keypair" in err


def test_main_other_config(setup, tmp_path):
    other = tmp_path / "other.json"
    config = copy.deepcopy(setup["config"])
    config["token"]["subject"] = "edge-02"
    other.write_text(json.dumps(config))
    status, out, _err = _main(["--config", str(other)], setup)
    assert status == 0 and _verify(out.strip(), setup["jwk"])["sub"] == "edge-02"


def test_main_usage_errors(setup):
    assert _main(["--check", "--force"], setup)[0] == 2
    assert _main([])[0] == 2
    with pytest.raises(SystemExit) as excinfo:
        _main(["--json", "--quiet"], setup)
    assert excinfo.value.code == 2


def test_main_missing_dependencies(setup, monkeypatch):
    monkeypatch.setattr(refresher._jose, "missing_dependencies", lambda: [("PyJWT >= 2.4.0", "trace")])
    status, out, err = _main([], setup)
    assert status == 1 and out == ""
    assert "lacks PyJWT >= 2.4.0" in err and "edge_keys_install_dependencies=true" in err


def test_load_config_refuses_deeply_nested_json(setup):
    with open(setup["config_path"], "w") as handle:
        handle.write('{"version": 1, "key": %s}' % ("[" * 100000 + "]" * 100000))
    with pytest.raises(refresher.RefresherError, match="not valid JSON"):
        refresher.load_config(setup["config_path"])


@pytest.mark.parametrize("section, name", [("key", "kid"), ("key", "algorithm"), ("key", "passphrase_file"),
                                           ("token", "audience"), ("token", "jku"), ("token_file", "group"),
                                           ("token_file", "refresh_margin")])
def test_load_config_refuses_a_missing_member(setup, section, name):
    """Members that may be null must still be there: the refresher reads each of them."""
    config = copy.deepcopy(setup["config"])
    del config[section][name]
    _write_config(setup, config)
    with pytest.raises(refresher.RefresherError, match=r"%s\.%s is missing" % (section, name)):
        refresher.load_config(setup["config_path"])


@pytest.mark.parametrize("section, name, value", [
    (None, "user", "edge\0svc"), ("key", "path", "/etc/x\0y"), ("key", "passphrase_file", "x\0y"),
    ("token_file", "path", "token\0"), ("token_file", "group", "x\0y"), ("key", "path", "\ud800"),
])
def test_load_config_refuses_paths_and_names_no_system_call_takes(setup, section, name, value):
    config = copy.deepcopy(setup["config"])
    (config if section is None else config[section])[name] = value
    _write_config(setup, config)
    with pytest.raises(refresher.RefresherError, match="NUL character or text that is not UTF-8"):
        refresher.load_config(setup["config_path"])
