# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Local stand-in of the Kyma API Gateway (Istio) for APIRule v2 ``jwt`` rules.

Not a cluster and not Istio: a small HTTP server on 127.0.0.1 that reads a rendered APIRule
and a JWKS and answers like the Istio sidecar in front of a workload would (401 with Envoy's
``jwt_authn`` status text, 403 ``RBAC: access denied``), with a built-in sample upstream.
See ``python -m tools.kyma_standin --help``.
"""
