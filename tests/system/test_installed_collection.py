# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection as a user gets it: the built tarball installed into an empty collections path,
with ansible-core alone (no kubernetes.core). Render mode, the GitOps path, must work there, and
every playbook must load; apply mode names what it needs (galaxy.yml declares kubernetes.core)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import REPO, ec_public_jwk, recap, require_ansible_playbook  # pylint: disable=import-error

ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"
PLAYBOOKS = ("site", "edge", "cluster", "smoke", "rotate", "revoke", "demo")


def _galaxy():
    return os.path.join(os.path.dirname(require_ansible_playbook()), "ansible-galaxy")


def _jwk(kid):
    return ec_public_jwk(ec.generate_private_key(ec.SECP256R1()), kid)


def _env(collections, workdir):
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("ANSIBLE_"):
            del env[name]
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-local"),
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("installed")
    dist, collections = workdir / "dist", workdir / "collections"
    env = _env(collections, workdir)
    subprocess.run([_galaxy(), "collection", "build", "--output-path", str(dist), str(REPO)], env=env, check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tarball = next(dist.glob("selfjwt-kyma-*.tar.gz"))
    subprocess.run([_galaxy(), "collection", "install", "--offline", "--no-deps", "-p", str(collections),
                    str(tarball)], env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    root = collections / "ansible_collections"
    assert sorted(path.name for path in root.iterdir()) == ["selfjwt"], "only this collection is installed"
    return {"work": workdir, "collections": collections, "env": env,
            "root": root / "selfjwt" / "kyma"}


def test_galaxy_yml_declares_kubernetes_core_for_apply_mode(installed):
    manifest = json.loads((installed["root"] / "MANIFEST.json").read_text())
    assert "kubernetes.core" in manifest["collection_info"]["dependencies"]


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_every_playbook_loads_without_kubernetes_core(installed, name):
    inventory = installed["work"] / "empty.ini"
    inventory.write_text("localhost ansible_connection=local\n")
    result = subprocess.run([require_ansible_playbook(), "-i", str(inventory), "--syntax-check",
                             "selfjwt.kyma." + name], env=installed["env"], cwd=str(installed["work"]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]


def test_render_mode_needs_nothing_beyond_ansible_core(installed):
    work = installed["work"]
    out = work / "manifests"
    edge = {}
    for index in range(3):
        host = "edge-%02d" % index
        edge[host] = {"edge_keys_public_jwks": [_jwk("k%d" % index)],
                      "edge_keys_token_claims": {"iss": ISSUER, "sub": host, "aud": "edge-api"}}
    inventory = work / "inventory.json"
    inventory.write_text(json.dumps({"all": {
        "vars": {"selfjwt_issuer": ISSUER, "selfjwt_audience": "edge-api",
                 "kyma_publish_mode": "render", "kyma_publish_output_dir": str(out),
                 "kyma_publish_apirule_host": "edge-api", "kyma_publish_apirule_service_name": "edge-api",
                 "kyma_publish_apirule_service_namespace": "default",
                 "kyma_publish_apirule_rules": [{"path": "/{**}", "methods": ["GET"]}]},
        "children": {
            "kyma_controller": {"hosts": {"localhost": {"ansible_connection": "local",
                                                        "ansible_python_interpreter": sys.executable}}},
            "edge": {"hosts": edge}}}}))
    result = subprocess.run([require_ansible_playbook(), "-i", str(inventory), "selfjwt.kyma.cluster"],
                            env=installed["env"], cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap(result.stdout)["localhost"]["failed"] == 0
    apirule = yaml.safe_load((out / "apirule.yaml").read_text())
    assert apirule["apiVersion"] == "gateway.kyma-project.io/v2"
    assert apirule["spec"]["rules"][0]["jwt"]["authentications"][0]["issuer"] == ISSUER
    jwks = json.loads((out / "jwks.json").read_text())
    assert sorted(key["kid"] for key in jwks["keys"]) == ["k0", "k1", "k2"]


def test_apply_mode_says_what_it_needs(installed):
    """Without kubernetes.core, apply mode stops with Ansible's message that names the missing module."""
    work = installed["work"]
    inventory = work / "inventory.json"
    if not inventory.exists():
        pytest.skip("the render test writes the inventory")
    result = subprocess.run([require_ansible_playbook(), "-i", str(inventory), "selfjwt.kyma.cluster",
                             "-e", "kyma_publish_mode=apply"], env=installed["env"], cwd=str(work),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert result.returncode != 0
    assert "kubernetes.core" in result.stdout, result.stdout[-3000:]
