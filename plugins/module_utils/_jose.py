# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Base of the JOSE code: the error root, strict JSON, base64url, ISO 8601 times and the dependency checks.

PRIVATE to the collection: do not import it from other collections.

The JOSE code is split by concern into modules that import nothing from Ansible, so that the
token refresher installed on edge hosts imports the very same code without Ansible:

* ``_jose`` (this file): errors, JSON and base64url helpers, dependency checks;
* ``_keys``: key objects (generation, PEM loading and serialisation, key family checks);
* ``_algorithms``: the signing algorithm policy;
* ``_jwk``: public JWKs, their validation and RFC 7638 thumbprints;
* ``_certificates``: self-signed X.509 certificates for a JWK's x5c chain;
* ``_jws``: token claims and headers, JWS signing and verifying.

They depend only on the Python standard library, ``cryptography`` and PyJWT. Errors are raised as
:class:`JoseError` with a message that says what to do next; modules turn them into
``fail_json(msg=...)``. This file imports only the standard library (its cryptography import
is guarded): the edge_keys role runs it as a script to check the dependencies.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import datetime
import json
import os
import re
import sys
import traceback

# Imports are kept to what signing needs: a module run pays for every import. PyJWT (only
# needed to verify tokens) and cryptography.x509 (only needed for certificates) are imported
# on first use, see pyjwt() and x509_module(); together they cost more CPU time than Ansible's
# module start-up adds to a task.
CRYPTOGRAPHY_IMPORT_ERROR = None
try:
    import cryptography
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

MIN_CRYPTOGRAPHY_VERSION = "3.4"
MIN_PYJWT_VERSION = "2.4.0"


class CollectionError(Exception):
    """Root of the errors this collection expects: the message says what happened and what to do next.

    ``result`` is None, or a dict of what the run performed before it failed (files it wrote,
    steps it took): a module reports it beside the message (``_common.run_module``), so a run
    that changed something and then failed still says what it changed.
    """

    result = None


class JoseError(CollectionError):
    """A problem with keys, JWKs or tokens, with a message fit for the user."""


def parse_json(text):
    """``json.loads(text)`` for text from outside (files, tokens, options): ValueError for anything not JSON.

    The decoder raises RecursionError, not ValueError, for a document nested deeper than the
    interpreter's recursion limit (``[[[...]]]``, a few kilobytes): every reader catches
    ValueError, so that case is turned into one.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON text is nested too deeply")


def iso_utc(epoch):
    """ISO 8601 UTC text (``2026-01-31T12:00:00Z``) of whole epoch seconds (token expiry, key ring times)."""
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=int(epoch))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def missing_dependencies(pkcs11=False):
    """Return a list of (requirement, traceback) for every missing or unusable dependency.

    ``pkcs11``: a key in a PKCS#11 token signs, so python-pkcs11 is needed as well.
    """
    missing = []
    if pkcs11:
        import importlib.util  # pylint: disable=import-outside-toplevel
        if importlib.util.find_spec("pkcs11") is None:
            missing.append(("python-pkcs11", None))
    if CRYPTOGRAPHY_IMPORT_ERROR is not None:
        missing.append(("cryptography >= %s" % MIN_CRYPTOGRAPHY_VERSION, CRYPTOGRAPHY_IMPORT_ERROR))
    elif version_tuple(cryptography.__version__) < version_tuple(MIN_CRYPTOGRAPHY_VERSION):
        missing.append(("cryptography >= %s (found %s)" % (MIN_CRYPTOGRAPHY_VERSION, cryptography.__version__), None))
    version, trace = _pyjwt_version()
    if version is None:
        missing.append(("PyJWT >= %s" % MIN_PYJWT_VERSION, trace))
    elif version_tuple(version) < version_tuple(MIN_PYJWT_VERSION):
        missing.append(("PyJWT >= %s (found %s)" % (MIN_PYJWT_VERSION, version), None))
    return missing


def _pyjwt_version():
    """(version, None) of the installed PyJWT, or (None, traceback) when it cannot be used.

    Importing PyJWT costs more CPU time than a module run's signing work (and so does
    importlib.metadata), so when the ``jwt`` package found on the path has PyJWT's layout
    (``api_jws.py`` beside its ``__init__.py``), the version is read from its
    ``__init__.py``. In every other case (another package named ``jwt``, no version line, a
    zipped install) PyJWT is imported, as :func:`pyjwt` does on first use.
    """
    if "jwt" not in sys.modules:
        try:
            import importlib.util  # pylint: disable=import-outside-toplevel
            spec = importlib.util.find_spec("jwt")
            origin = spec.origin if spec is not None else None
            if origin and origin.endswith("__init__.py") and os.path.isfile(
                    os.path.join(os.path.dirname(origin), "api_jws.py")):
                with open(origin, "rb") as handle:
                    found = _PYJWT_VERSION_LINE.search(handle.read())
                if found:
                    return found.group(1).decode("ascii"), None
        except (ImportError, ValueError, OSError):
            pass  # find out by importing
    try:
        module = pyjwt()
    except ImportError:
        return None, traceback.format_exc()
    return module.__version__, None


_PYJWT_VERSION_LINE = re.compile(br"""^__version__\s*=\s*["']([0-9][0-9A-Za-z.+-]*)["']""", re.MULTILINE)


def pyjwt():
    """PyJWT, imported on first use (ImportError when the ``jwt`` module is missing or not PyJWT)."""
    import jwt  # pylint: disable=import-outside-toplevel
    # Both PyJWT and the unrelated "jwt" package (python-jwt) install a module named jwt.
    if not hasattr(jwt, "PyJWS"):
        raise ImportError("the installed 'jwt' module is not PyJWT")
    return jwt


def x509_module():
    """cryptography.x509, imported on first use."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    return x509


def import_deferred():
    """Import now what is otherwise imported on first use (PyJWT, cryptography.x509).

    For a process that switches to another user before it signs or verifies, so it does not
    depend on that user being able to read the Python installation. Missing libraries are
    left to :func:`missing_dependencies` to report.
    """
    for function in (pyjwt, x509_module):
        try:
            function()
        except ImportError:
            pass


def version_tuple(version):
    parts = []
    for part in str(version).split("."):
        digits = re.match(r"\d+", part)
        if not digits:
            break
        parts.append(int(digits.group(0)))
    return tuple(parts)


# --------------------------------------------------------------------------------------
# base64url helpers (RFC 7515 section 2, RFC 7518 section 2)
# --------------------------------------------------------------------------------------

# base64.urlsafe_b64encode/-decode are these translations around binascii; calling binascii
# directly saves three Python calls per value (a JWKS of 10,000 EC keys decodes 20,000).
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_PADDING = ("", "", "==", "=")


def b64url_encode(data):
    """base64url without padding."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


_B64URL_PATTERN = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_decode(text, what="value"):
    """Strict base64url decoding (no padding, no foreign characters)."""
    if not isinstance(text, str) or not _B64URL_PATTERN.match(text):
        raise JoseError("%s is not base64url text without padding" % what)
    if len(text) % 4 == 1:
        raise JoseError("%s has an impossible base64url length" % what)
    try:
        return binascii.a2b_base64((text + _PADDING[len(text) % 4]).encode("ascii").translate(_FROM_URLSAFE))
    except (binascii.Error, ValueError) as exc:
        raise JoseError("%s is not valid base64url: %s" % (what, exc))


def uint_to_b64url(value, length=None):
    """Base64urlUInt: minimal octets (RFC 7518 section 2), or exactly ``length`` octets."""
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


def b64url_to_uint(text, what):
    return int.from_bytes(b64url_decode(text, what), "big")


def to_bytes(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
