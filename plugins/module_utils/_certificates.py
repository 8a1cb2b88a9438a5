# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Self-signed X.509 certificates for a key's JWK x5c chain: making, loading and reading them.

PRIVATE to the collection: do not import it from other collections.

The certificates only carry a key into a JWK's x5c member: nothing here verifies a chain.
cryptography.x509 is imported on first use (``_jose.x509_module``). Part of the JOSE core (see
``_jose``): no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

try:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
except ImportError:
    pass  # _jose.missing_dependencies() reports the missing library before any use

from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import JoseError, to_bytes, x509_module
from ansible_collections.selfjwt.kyma.plugins.module_utils._keys import key_family


def _as_naive_utc(dt):
    return dt.replace(tzinfo=None) if dt.tzinfo else dt


def self_signed_certificate(key, common_name, valid_days=3650, not_before=None, serial=None):
    """A self-signed X.509 certificate for the key (for JWK x5c / x5t)."""
    if not common_name:
        raise JoseError("the certificate subject common name must not be empty")
    if not isinstance(valid_days, int) or valid_days < 1:
        raise JoseError("certificate validity must be at least one day, got %r" % (valid_days,))
    start = not_before or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    x509 = x509_module()
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(common_name))])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    digest = None if key_family(key) == "OKP" else hashes.SHA256()
    return builder.sign(key, digest)


def certificate_public_key(certificate, what="the certificate"):
    """The public key of a certificate; a certificate whose key cannot be decoded is a JoseError.

    cryptography parses certificates lazily, so a damaged key inside a certificate that did
    load only shows up here.
    """
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise JoseError("%s holds a public key that cannot be read (%s): give an intact certificate" % (what, exc))


def load_certificate_pem(data, source="the certificate"):
    try:
        return x509_module().load_pem_x509_certificate(to_bytes(data))
    except (ValueError, x509_module().InvalidVersion) as exc:
        raise JoseError("%s is not a valid PEM certificate: %s" % (source, exc))


def certificate_pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_not_after(certificate):
    value = getattr(certificate, "not_valid_after_utc", None)
    return _as_naive_utc(value) if value is not None else certificate.not_valid_after


def certificate_subject_cn(certificate):
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return values[0].value if values else None
