# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests for the token_refresher module: runs main() in-process and reads its real JSON output.

The installed command is run as a real process (with the Python of the tests), so these tests
also show that the installed files work without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import stat
import shutil
import sys
import tempfile

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _jwk, _refresher, _refresher_install
from ansible_collections.selfjwt.kyma.plugins.module_utils import _token
from ansible_collections.selfjwt.kyma.plugins.modules import token_refresher
from helpers import (  # pylint: disable=import-error
    private_directory_above, read_file as read, refresher_host, run_module_main, tree_state)

ISSUER = "https://edge-jwks.kyma-system.svc.cluster.local"
MODULE_UTILS = os.path.dirname(os.path.abspath(_jose.__file__))


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def host(tmp_path, ec_key, monkeypatch):
    """A host with a signing key (mode 0600) and no systemd; returns the module arguments."""
    monkeypatch.setattr(_refresher_install, "SYSTEMD_RUNTIME_DIR", str(tmp_path / "no-systemd"))
    return refresher_host(tmp_path / "host", ec_key, ISSUER)


def run_module(capsys, args, check_mode=False, diff=False):
    """Run the module like Ansible does; returns (raw stdout, parsed result)."""
    return run_module_main(token_refresher, args, capsys, check_mode=check_mode, diff=diff)[:2]


def root_of(args):
    return os.path.dirname(args["token_dir"])


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# --------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------

def test_first_run_installs_everything_with_the_modes_of_the_role(host, capsys, ec_key):
    _out, result = run_module(capsys, host)
    assert result["changed"] is True and "failed" not in result
    lib, module_utils = host["lib_dir"], host["lib_dir"] + "/ansible_collections/selfjwt/kyma/plugins/module_utils"
    for name in ["%s.py" % module.__name__.rsplit(".", 1)[-1] for module in _refresher_install.REFRESHER_MODULE_UTILS]:
        assert read(os.path.join(module_utils, name)) == read(os.path.join(MODULE_UTILS, name))
        assert mode_of(os.path.join(module_utils, name)) == 0o644
    assert read(lib + "/selfjwt_refresher.py") == read(os.path.join(MODULE_UTILS, "_refresher.py"))
    assert read(lib + "/ansible_collections/__init__.py") == b""
    assert mode_of(module_utils) == 0o755 and mode_of(host["bin_dir"]) == 0o755
    assert mode_of(lib + "/refresher.json") == 0o644
    assert mode_of(host["bin_dir"] + "/selfjwt-token") == 0o755
    assert mode_of(host["cron_file"]) == 0o644
    assert mode_of(host["token_dir"]) == 0o700
    assert mode_of(host["token_dir"] + "/token") == 0o600
    # What the role publishes.
    assert result["token_file"] == host["token_dir"] + "/token"
    assert result["command"] == host["bin_dir"] + "/selfjwt-token"
    assert result["scheduler"] == "cron" and result["service_manager"] == "other"
    assert result["python"] == sys.executable
    assert result["user"] == pwd.getpwuid(os.geteuid()).pw_name
    assert result["units_changed"] is True
    assert result["cron"] == {"minute": "*", "user": result["user"], "job": result["command"] + " --quiet"}
    # The first token: signed by the key, with the configured claims; the result names it, never holds it.
    token = read(result["token_file"]).decode("ascii")
    claims = jwt.decode(token, ec_key.public_key(), algorithms=["ES256"], audience="orders-api", issuer=ISSUER)
    assert claims["sub"] == "edge-01" and claims["scope"] == "orders.read"
    assert result["token_status"]["changed"] is True
    assert result["token_status"]["kid"] == _jwk.key_thumbprint(ec_key)
    assert token not in json.dumps(result)


def test_the_configuration_is_what_the_refresher_reads(host, capsys):
    run_module(capsys, host)
    config = _refresher.load_config(host["lib_dir"] + "/refresher.json")
    assert config["user"] == pwd.getpwuid(os.geteuid()).pw_name
    assert config["key"] == {"path": host["key_path"], "kid": None, "algorithm": None, "passphrase_file": None}
    assert config["token"]["jku"] == host["jku"] and config["token"]["audience"] == "orders-api"
    assert config["token_file"] == {"path": host["token_dir"] + "/token", "mode": "0600", "group": None,
                                    "refresh_margin": 200}


def test_the_command_holds_no_setting_as_code(host, capsys, tmp_path):
    """Only the #! line and the two string literals (LIBRARY, CONFIGURATION) differ between two installations."""
    _out, first = run_module(capsys, host)
    other = dict(host, lib_dir=str(tmp_path / "other-lib"), bin_dir=str(tmp_path / "other-bin"),
                 command_name="edge-token", cron_file=str(tmp_path / "other-cron"))
    _out, second = run_module(capsys, other)
    one, two = read(first["command"]).decode().splitlines(), read(second["command"]).decode().splitlines()
    differ = [index for index, (line_one, line_two) in enumerate(zip(one, two)) if line_one != line_two]
    assert len(one) == len(two)
    assert [two[index].split(" = ")[0] for index in differ if index] == ["LIBRARY", "CONFIGURATION"]
    literals = dict(line.split(" = ", 1) for line in two if line.startswith(("LIBRARY = ", "CONFIGURATION = ")))
    assert literals == {"LIBRARY": repr(other["lib_dir"]), "CONFIGURATION": repr(other["lib_dir"] + "/refresher.json")}
    assert other["lib_dir"] not in "\n".join(line for line in two if not line.startswith(("LIBRARY", "CONFIGURATION")))
    assert one[0] == "#!" + sys.executable


def test_second_run_changes_nothing(host, capsys):
    run_module(capsys, host)
    before = tree_state(root_of(host), mtime=True)
    _out, result = run_module(capsys, host)
    assert result["changed"] is False
    assert result["changed_paths"] == [] and result["units_changed"] is False
    assert result["token_status"]["changed"] is False
    assert tree_state(root_of(host), mtime=True) == before
    _out, result = run_module(capsys, host, check_mode=True, diff=True)
    assert result["changed"] is False and result["diff"] == []


def test_check_mode_on_a_new_host_writes_nothing(host, capsys, tmp_path):
    os.unlink(host["key_path"])
    before = tree_state(str(tmp_path))
    _out, result = run_module(capsys, host, check_mode=True, diff=True)
    assert result["changed"] is True and "failed" not in result
    assert tree_state(str(tmp_path)) == before
    assert result["token_file"] == host["token_dir"] + "/token"
    assert result["token_status"]["changed"] is True
    assert host["cron_file"] in result["changed_paths"]


def test_check_mode_on_an_installed_host_predicts_without_writing(host, capsys):
    run_module(capsys, host)
    changed = dict(host, interval=120, audience="billing-api")
    before = tree_state(root_of(host), mtime=True)
    _out, result = run_module(capsys, changed, check_mode=True)
    assert result["changed"] is True and result["units_changed"] is True
    assert result["token_status"]["changed"] is True
    assert tree_state(root_of(host), mtime=True) == before


def test_diff_shows_configuration_and_units_but_never_code_keys_or_tokens(host, capsys):
    out, result = run_module(capsys, host, diff=True)
    token = read(result["token_file"]).decode("ascii")
    texts = [entry.get("prepared", "") + entry.get("before", "") + entry.get("after", "") for entry in result["diff"]]
    whole = "\n".join(texts)
    assert '"issuer": "%s"' % ISSUER in whole
    assert "* * * * * " in whole and "--quiet" in whole
    assert "program installed: %s/selfjwt_refresher.py (sha256 none -> " % host["lib_dir"] in whole
    # No code body: nothing of the program, the module_utils or the command.
    for marker in ("def ", "import ", "sys.exit(", "LIBRARY"):
        assert marker not in whole, marker
    assert token not in out
    assert "PRIVATE KEY" not in out and read(host["key_path"]).decode().splitlines()[1] not in out
    # A changed configuration shows before and after.
    _out, again = run_module(capsys, dict(host, audience="billing-api"), diff=True)
    config = [entry for entry in again["diff"] if entry.get("after_header", "").endswith("refresher.json")]
    assert len(config) == 1 and '"orders-api"' in config[0]["before"] and '"billing-api"' in config[0]["after"]
    assert token not in json.dumps(again)


def test_units_changed_only_when_the_scheduler_files_change(host, capsys):
    run_module(capsys, host)
    _out, result = run_module(capsys, dict(host, audience="billing-api"))
    assert result["changed"] is True and result["units_changed"] is False
    _out, result = run_module(capsys, dict(host, audience="billing-api", interval=180))
    assert result["units_changed"] is True
    assert read(host["cron_file"]).decode().splitlines()[-1].startswith("*/3 * * * * ")


def test_systemd_units(host, capsys):
    args = dict(host, scheduler="systemd", interval=45, unit_name="selfjwt-token-test", token_group="0")
    _out, result = run_module(capsys, args)
    assert result["scheduler"] == "systemd" and result["units_changed"] is True and result["cron"] is None
    base = host["systemd_unit_dir"] + "/selfjwt-token-test"
    service, timer = read(base + ".service").decode(), read(base + ".timer").decode()
    assert "\nType=oneshot\n" in service
    assert "\nExecStart=%s --quiet\n" % result["command"] in service
    assert "\nReadWritePaths=%s\n" % host["token_dir"] in service
    assert "\nUser=" not in service
    assert "\nOnUnitActiveSec=45s\n" in timer and "\nUnit=selfjwt-token-test.service\n" in timer
    assert timer.endswith("\nWantedBy=timers.target\n")
    assert mode_of(base + ".service") == 0o644 and mode_of(host["systemd_unit_dir"]) == 0o755
    # The group-readable token file in its setgid directory, as the role made them.
    assert mode_of(host["token_dir"]) == 0o2750 and mode_of(result["token_file"]) == 0o640
    assert not os.path.exists(host["cron_file"])
    _out, again = run_module(capsys, dict(args, owner="root"))
    assert again["units_changed"] is True and "\nUser=root\n" in read(base + ".service").decode()


def test_auto_chooses_systemd_when_systemd_runs_the_host(host, capsys, tmp_path, monkeypatch):
    runtime = tmp_path / "run-systemd"
    runtime.mkdir()
    monkeypatch.setattr(_refresher_install, "SYSTEMD_RUNTIME_DIR", str(runtime))
    _out, result = run_module(capsys, dict(host, scheduler="auto"))
    assert result["scheduler"] == "systemd" and result["service_manager"] == "systemd"
    assert os.path.exists(host["systemd_unit_dir"] + "/selfjwt-token.timer")


def test_auto_chooses_cron_without_systemd(host, capsys):
    _out, result = run_module(capsys, dict(host, scheduler="auto"))
    assert result["scheduler"] == "cron" and os.path.exists(host["cron_file"])


def test_scheduler_none_and_a_user_crontab(host, capsys):
    _out, result = run_module(capsys, dict(host, scheduler="none"))
    assert result["scheduler"] == "none" and result["cron"] is None and result["units_changed"] is False
    assert not os.path.exists(host["cron_file"]) and not os.path.exists(host["systemd_unit_dir"])
    _out, result = run_module(capsys, dict(host, cron_file="", interval=120))
    assert result["cron"]["minute"] == "*/2" and result["units_changed"] is False
    assert not os.path.exists(host["cron_file"])


def test_a_replaced_program_file_is_restored(host, capsys):
    run_module(capsys, host)
    program = host["lib_dir"] + "/selfjwt_refresher.py"
    with open(program, "ab") as handle:
        handle.write(b"\nraise SystemExit('tampered')\n")
    os.chmod(host["bin_dir"] + "/selfjwt-token", 0o777)
    _out, result = run_module(capsys, host, diff=True)
    assert sorted(result["changed_paths"]) == sorted([program, host["bin_dir"] + "/selfjwt-token"])
    assert read(program) == read(os.path.join(MODULE_UTILS, "_refresher.py"))
    assert mode_of(host["bin_dir"] + "/selfjwt-token") == 0o755
    assert any("program updated: %s" % program in entry.get("prepared", "") for entry in result["diff"])


def test_the_token_is_kept_while_fresh_and_renewed_near_expiry(host, capsys):
    _out, first = run_module(capsys, host)
    token = read(first["token_file"])
    _out, second = run_module(capsys, host)
    assert read(first["token_file"]) == token and second["token_status"]["changed"] is False
    # A token close to its expiry (issued 500 s ago, 600 s lifetime, 200 s margin) is replaced.
    config = _refresher.load_config(host["lib_dir"] + "/refresher.json")
    key = _token.load_key(path=host["key_path"])
    old = _token.mint(key, now=int(__import__("time").time()) - 500, **_refresher.token_options(config))
    _files.write_atomic(first["token_file"], old.token.encode("ascii"), mode=0o600)
    _out, third = run_module(capsys, host)
    assert third["changed"] is True and third["changed_paths"] == []
    assert third["token_status"]["changed"] is True and read(first["token_file"]) != old.token.encode("ascii")


# --------------------------------------------------------------------------------------
# Refusals: nothing is written
# --------------------------------------------------------------------------------------

UNSAFE = [
    ("token_dir", "/var/lib/self jwt", "a space"),
    ("token_dir", "/var/lib/selfjwt\nExecStartPre=/bin/sh", "a newline"),
    ("bin_dir", "/usr/local/%n/bin", "'%'"),
    ("lib_dir", "/usr/local/lib/selfjwt;rm", "';'"),
    ("command_name", "selfjwt\"token", "a double quote"),
    ("python", "/usr/bin/python3 -S", "a space"),
    ("python", "/usr/bin/py'thon", "a single quote"),
    ("owner", "edge agent", "a space"),
    ("owner", "-edge", "starts with '-'"),
    ("command_name", "-token", "starts with '-'"),
    ("unit_name", "-selfjwt", "starts with '-'"),
    ("bin_dir", "/usr/local/sel:fjwt", "':'"),
    ("group", "ops\\x", "a backslash"),
    ("token_group", "api clients", "a space"),
    ("unit_name", "selfjwt\ttoken", "a tab"),
    ("token_filename", "tok%en", "'%'"),
]


@pytest.mark.parametrize("option, value, what", UNSAFE,
                         ids=["%s-%d" % (case[0], index) for index, case in enumerate(UNSAFE)])
def test_unsafe_values_are_refused_by_their_role_variable(host, capsys, tmp_path, option, value, what):
    names = {option: "edge_keys_the_variable"}
    args = dict(host, option_names=names, scheduler="systemd")
    args[option] = value
    before = tree_state(str(tmp_path))
    _out, result = run_module(capsys, args)
    assert result["failed"] is True
    assert result["msg"].startswith("edge_keys_the_variable %r %s" % (value, what if what.startswith("starts")
                                                                      else "holds " + what)), result["msg"]
    assert tree_state(str(tmp_path)) == before


def test_the_one_check_allows_ordinary_values_and_refuses_the_rest():
    assert _refresher_install.problems({"lib_dir": "/usr/local/lib/selfjwt-2.1_x@y+z", "user": None, "group": "",
                                        "interval": 60, "token_group": "_svc.account"}) == []
    for value in ("/a b", "/a\nb", "/a%b", "/a$b", "/a;b", "/a'b", '/a"b', "/a\\b", "/a\rb", "/a*b", "/a:b", "-a",
                  "@a", "+a", "/a#b", "/a`b", "/a|b", "/a&b", "/a>b", "/a(b"):
        (message,) = _refresher_install.problems({"bin_dir": value}, {"bin_dir": "edge_keys_y"})
        assert message.startswith("edge_keys_y %r " % value)


def test_a_failed_first_run_fails_with_the_refreshers_message(host, capsys):
    """The timer would fail the same way: the module says so with the refresher's own error."""
    os.makedirs(host["token_dir"] + "/token")
    _out, result = run_module(capsys, host)
    assert result["failed"] is True
    assert result["msg"].startswith("The token refresher %s/selfjwt-token failed on its first run: token file %s/token "
                                    "is a directory" % (host["bin_dir"], host["token_dir"])), result["msg"]
    assert "would expire" in result["msg"]


def test_a_symlinked_token_directory_is_refused(host, capsys, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.makedirs(root_of(host), exist_ok=True)
    os.symlink(str(elsewhere), host["token_dir"])
    _out, result = run_module(capsys, host)
    assert result["failed"] is True
    assert "%s is a symbolic link, not a directory" % host["token_dir"] in result["msg"]
    assert os.listdir(str(elsewhere)) == []
    assert mode_of(str(elsewhere)) == 0o755


def test_a_margin_shorter_than_the_cron_period_is_refused_before_anything_is_written(host, capsys, tmp_path):
    before = tree_state(str(tmp_path))
    args = dict(host, interval=90, refresh_margin=100,
                option_names={"refresh_margin": "edge_keys_token_refresh_margin",
                              "interval": "edge_keys_refresher_interval"})
    _out, result = run_module(capsys, args)
    assert result["failed"] is True
    assert "The cron scheduler runs the refresher every 120 s (edge_keys_refresher_interval=90" in result["msg"]
    assert "Raise edge_keys_token_refresh_margin" in result["msg"]
    assert tree_state(str(tmp_path)) == before
    # systemd runs it every 90 s: the same margin is enough there.
    _out, result = run_module(capsys, dict(args, scheduler="systemd"))
    assert result["changed"] is True


def test_an_issuer_that_is_not_a_url_is_refused_before_anything_is_written(host, capsys, tmp_path):
    before = tree_state(str(tmp_path))
    _out, result = run_module(capsys, dict(host, issuer="edge-jwks", option_names={"issuer": "edge_keys_issuer"}))
    assert result["failed"] is True
    assert result["msg"].startswith('edge_keys_issuer must be an http(s) URL')
    assert tree_state(str(tmp_path)) == before


# --------------------------------------------------------------------------------------
# Run as root for another owner
# --------------------------------------------------------------------------------------

def test_run_as_root_the_first_token_is_written_as_the_owner(capsys, ec_key, monkeypatch):
    """The token file and its lock belong to the owner, so the owner's timer can renew the token later."""
    if os.geteuid() != 0:
        pytest.skip("switching to the owner needs root")
    private = private_directory_above(sys.prefix)
    if private:
        pytest.skip("%s lies below %s, which other users cannot enter" % (sys.prefix, private))
    owner = pwd.getpwnam("nobody")
    root = tempfile.mkdtemp(prefix="selfjwt-owner-")
    try:
        os.chmod(root, 0o755)
        monkeypatch.setattr(_refresher_install, "SYSTEMD_RUNTIME_DIR", os.path.join(root, "no-systemd"))
        os.mkdir(os.path.join(root, "keys"), 0o700)
        os.chown(os.path.join(root, "keys"), owner.pw_uid, owner.pw_gid)
        key_path = os.path.join(root, "keys", "signing.pem")
        _files.write_atomic(key_path, ec_key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()),
                            mode=0o600, uid=owner.pw_uid, gid=owner.pw_gid)
        args = {"key_path": key_path, "issuer": ISSUER, "subject": "edge-01", "owner": "nobody",
                "token_dir": os.path.join(root, "state"), "lib_dir": os.path.join(root, "lib"),
                "bin_dir": os.path.join(root, "bin"), "python": sys.executable, "scheduler": "cron",
                "cron_file": os.path.join(root, "cron")}
        _out, result = run_module(capsys, args)
        assert result["changed"] is True and "failed" not in result, result
        for path in (args["token_dir"], result["token_file"], os.path.join(args["token_dir"], ".token.lock")):
            assert os.lstat(path).st_uid == owner.pw_uid, path
        assert os.lstat(result["command"]).st_uid == 0
        assert read(args["cron_file"]).decode().splitlines()[-1] == "* * * * * nobody %s --quiet" % result["command"]
        assert _refresher.load_config(result["config_path"])["user"] == "nobody"
        # The owner's own run of the command (as the timer makes it) keeps the token.
        _out, again = run_module(capsys, args)
        assert again["changed"] is False and again["token_status"]["source"] == "kept"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_check_mode_reports_what_stops_the_refresher_and_a_real_run_fails_on_it(host, capsys, ec_key):
    """A passphrase file that others may read (the key task of the same run would fix its mode)."""
    passphrase = "check mode passphrase 51c2"
    key_path = host["key_path"]
    _files.write_atomic(key_path, ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode())), mode=0o600)
    passphrase_file = key_path + ".passphrase"
    _files.write_atomic(passphrase_file, passphrase.encode(), mode=0o600)
    args = dict(host, passphrase_file=passphrase_file)
    run_module(capsys, args)
    os.chmod(passphrase_file, 0o644)
    out, result = run_module(capsys, args, check_mode=True)
    assert "failed" not in result and result["token_status"]["changed"] is True
    assert "has mode 0644, so others may read it" in result["token_status"]["reason"]
    assert passphrase not in out
    before = tree_state(root_of(host), mtime=True)
    _out, result = run_module(capsys, dict(args, audience="billing-api"))
    assert result["failed"] is True and "has mode 0644, so others may read it" in result["msg"]
    assert tree_state(root_of(host), mtime=True) == before
