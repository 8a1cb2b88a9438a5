# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Check mode on a fresh fleet (no edge host has a key yet): kyma_publish says what a real run
writes instead of rendering nothing silently."""

from __future__ import annotations

import yaml

import kyma_publish_support as support  # pylint: disable=import-error

ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"


def test_check_mode_on_a_fresh_fleet_says_what_a_real_run_writes(tmp_path):
    hosts = dict(("edge-%02d" % index, {}) for index in range(3))
    inventory = support.write_inventory(tmp_path / "inventory.yml", hosts, group_vars={
        "selfjwt_issuer": ISSUER, "selfjwt_audience": "edge-api"})
    out = tmp_path / "manifests"
    playbook = tmp_path / "preview.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "preview", "hosts": "localhost", "gather_facts": False,
        "roles": [{"role": "selfjwt.kyma.kyma_publish", "vars": {
            "kyma_publish_mode": "render", "kyma_publish_output_dir": str(out),
            "kyma_publish_apirule_host": "edge-api", "kyma_publish_apirule_service_name": "edge-api",
            "kyma_publish_apirule_service_namespace": "default",
            "kyma_publish_apirule_rules": [{"path": "/{**}", "methods": ["GET"]}]}}]}]))
    run = support.run_playbook(playbook, inventory, tmp_path, "--check")
    text = " ".join(run.stdout.split())
    assert "Check mode: none of the 3 edge hosts has a key yet" in text, run.stdout[-3000:]
    assert ("A real run writes namespace.yaml, jwks-networkpolicy.yaml, jwks-configmap.yaml, jwks-service.yaml, "
            "jwks-pdb.yaml, jwks-deployment.yaml, apirule.yaml, kustomization.yaml and the JWKS and discovery "
            "documents into %s" % out) in text, run.stdout[-3000:]
    assert "1 issuer(s) (%s)" % ISSUER in text
    assert not out.exists()
