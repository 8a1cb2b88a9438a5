# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Minting signed JWTs and keeping token files fresh.

PRIVATE to the collection: do not import it from other collections.

This file is shared by the ``selfjwt.kyma.jwt_token`` module and by the token refresher that
runs on edge hosts without Ansible. It imports only the standard library, ``_files`` and the
JOSE modules (``_jose``, ``_keys``, ``_jws``), never anything from Ansible.

Public API (stable for the refresher):

* :func:`load_key` reads and checks a private signing key (the single place where keys are
  loaded, so the cost of RSA key validation can be tuned in one spot).
* :func:`signing_key` gives the signing key of a file, PEM text or PKCS#11 token (``_pkcs11``)
  for a ``with`` block, and closes the token's session after it.
* :func:`mint` signs a new token and returns a :class:`TokenResult`.
* :func:`reuse_problem` tells why an existing token cannot be kept (or None when it can).
* :func:`ensure_token_file` keeps a token file fresh and returns ``(changed, TokenFileResult)``.
* :func:`default_refresh_margin` is a small helper (user and group names are resolved by
  ``_files.resolve_uid`` and ``_files.resolve_gid``, times written by ``_jose.iso_utc``).

Every function raises ``_jose.JoseError`` (bad option, key or algorithm) or
``_files.FileError`` (file problems) with a message that says what to do next.

The token options shared by :func:`mint`, :func:`reuse_problem` and
:func:`ensure_token_file` are the keyword arguments listed in :data:`TOKEN_OPTIONS`:

``issuer`` (str, required), ``subject`` (str, required, non-empty: Istio rejects tokens without
``sub``), ``audience`` (str or list of str), ``expires_in`` (seconds, default 600),
``max_lifetime`` (seconds, default 3600; ``expires_in`` above it is refused), ``not_before``
(seconds from now for ``nbf``, -300 to 0 for token files), ``claims`` (dict of extra claims;
registered claims are refused), ``headers`` (dict of extra header members; members that decide
how a token is verified are refused), ``algorithm`` (default derived from the key), ``kid``
(default: the key's RFC 7638 thumbprint), ``jku`` (http(s) URL), ``jti`` (default: random,
128 bits) and ``typ`` (default ``JWT``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import re
import stat
import time

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _jws, _keys

JoseError = _jose.JoseError
FileError = _files.FileError

#: Default token lifetime in seconds.
DEFAULT_EXPIRES_IN = 600
#: Default cap on the token lifetime in seconds.
DEFAULT_MAX_LIFETIME = 3600
#: Default ``typ`` header.
DEFAULT_TYP = "JWT"
#: Tokens longer than this are refused: many HTTP servers limit a header line to 8 KiB.
MAX_TOKEN_BYTES = 8192
#: The last second an ``exp`` may name (9999-12-31T23:59:59Z): later times have no ISO 8601 text.
MAX_EXPIRES_AT = 253402300799

#: Keyword arguments of :func:`mint` that describe a token (everything except ``key`` and ``now``).
TOKEN_OPTIONS = ("issuer", "subject", "audience", "expires_in", "max_lifetime", "not_before", "claims",
                 "headers", "algorithm", "kid", "jku", "jti", "typ")

_TIME_CLAIMS = ("iat", "nbf", "exp")
_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_TYP_PATTERN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}(/[A-Za-z0-9!#$&^_.+-]{1,64})?$")


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

class TokenResult(object):
    """A signed token with its header and claims as they are inside the token.

    Attributes: ``token`` (compact JWS text: a bearer secret), ``header`` (dict), ``claims``
    (dict) and ``expires_at`` (``exp``, epoch seconds). Properties: ``kid``, ``algorithm``,
    ``expires_at_iso``. :meth:`metadata` is a view without the token, safe for logs and diffs.
    ``repr()`` never shows the token.
    """

    def __init__(self, token, header, claims, expires_at):
        self.token = token
        self.header = header
        self.claims = claims
        self.expires_at = expires_at

    @classmethod
    def from_token(cls, token):
        """Decode (without verifying) a compact token into a TokenResult."""
        header, claims = _jws.decode_unverified(token)
        expires_at = claims.get("exp")
        if not _is_int(expires_at) or not 0 <= expires_at <= MAX_EXPIRES_AT:
            raise JoseError("the token has no integer 'exp' claim between 1970 and 9999")
        return cls(token, header, claims, expires_at)

    @property
    def kid(self):
        return self.header.get("kid")

    @property
    def algorithm(self):
        return self.header.get("alg")

    @property
    def expires_at_iso(self):
        return _jose.iso_utc(self.expires_at)

    def metadata(self):
        """Header, claims and expiry (ISO 8601), never the token itself."""
        return {"header": dict(self.header), "claims": dict(self.claims), "expires_at": self.expires_at_iso}

    def __repr__(self):
        return "%s(kid=%r, alg=%r, sub=%r, expires_at=%s)" % (
            type(self).__name__, self.kid, self.algorithm, self.claims.get("sub"), self.expires_at_iso)


class TokenFileResult(TokenResult):
    """What :func:`ensure_token_file` found or wrote.

    Adds ``path``; ``reason`` (why a new token was, or in check mode would be, written; None
    when the existing token was kept) and ``previous`` (the :meth:`TokenResult.metadata` of
    the token that was in the file before, or None when there was none).
    """

    def __init__(self, token, header, claims, expires_at, path, reason=None, previous=None):
        super(TokenFileResult, self).__init__(token, header, claims, expires_at)
        self.path = path
        self.reason = reason
        self.previous = previous

    @classmethod
    def of(cls, result, path, reason=None, previous=None):
        return cls(result.token, result.header, result.claims, result.expires_at, path, reason, previous)


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------

def load_key(path=None, content=None, passphrase=None):
    """Load the private signing key from a file (``path``) or from PEM text (``content``).

    Exactly one of ``path`` and ``content`` must be given. The key is checked
    (``_keys.load_private_key``): encrypted without passphrase, wrong passphrase, damaged PEM,
    a public key, unsupported key types and RSA keys under 2048 bits are refused. Load the
    key once and pass the object to :func:`mint` / :func:`ensure_token_file`.

    cryptography's RSA consistency check (primality of p and q, CRT numbers; 50-500 ms per
    load, more than everything else a token costs) is skipped for a key *file* that only its
    owner may access (no group or other permission bits, as selfjwt.kyma.jwt_keypair writes
    it): that file was fully validated by jwt_keypair, which loads it with every check on each
    run, and whoever can change it can sign with it anyway. The first signature made with the
    loaded key is verified with its public key (``_jws.sign_token``), so a damaged file fails
    loudly instead of releasing a bad token. Keys given as ``content`` and key files that group
    or others may access are of unknown origin: they are always fully validated.
    """
    if (path is None) == (content is None):
        raise JoseError("give the private key either as a file path or as PEM content, not both and not neither")
    if path is not None:
        if not path:
            raise JoseError("the private key file path is empty: give the path of the key file")
        data, status = _files.read_file(path, what="private key file")
        if data is None:
            raise FileError("private key file %s does not exist: create it with selfjwt.kyma.jwt_keypair "
                            "or fix the path" % path)
        source = "private key file %s" % path
        validate_rsa = not _owner_only(status)
    else:
        data = content
        source = "the private key content"
        validate_rsa = True
    return _keys.load_private_key(data, passphrase=passphrase, source=source, validate_rsa=validate_rsa)


@contextlib.contextmanager
def signing_key(path=None, content=None, passphrase=None, pkcs11_uri=None, pkcs11_pin=None, pkcs11_pin_file=None,
                pin_owners=None):
    """The private signing key for a ``with`` block: a key file or PEM text, or a key in a PKCS#11 token.

    Without ``pkcs11_uri`` this is :func:`load_key`. With it, the key stays in its token: one
    session is opened on the token (``_pkcs11.open_key``; the PIN is ``pkcs11_pin``, else read
    from ``pkcs11_pin_file`` or the URI's pin-source, a file that must belong to one of
    ``pin_owners`` when given) and closed when the block ends, also on an error. The key object
    signs through the token and works with :func:`mint` and :func:`ensure_token_file` like a
    loaded key. A token key takes no key file, content or passphrase.
    """
    if pkcs11_uri is None:
        if pkcs11_pin is not None or pkcs11_pin_file is not None:
            raise JoseError("a PKCS#11 PIN (pkcs11_pin, pkcs11_pin_file) is given without pkcs11_uri: name the key "
                            "in its token with pkcs11_uri, or leave the PIN out")
        yield load_key(path=path, content=content, passphrase=passphrase)
        return
    if path is not None or content is not None or passphrase is not None:
        raise JoseError("give the signing key either in a PKCS#11 token (pkcs11_uri) or as a key file or PEM content "
                        "(with its passphrase), not both")
    # Imported here: python-pkcs11 is loaded only by the runs that use a token.
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11  # pylint: disable=import-outside-toplevel

    session, key = _pkcs11.open_key(pkcs11_uri, pin=pkcs11_pin, pin_file=pkcs11_pin_file, owners=pin_owners)
    try:
        yield key
    finally:
        session.close()


def _owner_only(status):
    """True when ``status`` (of the file read) is a regular file that neither its group nor others may access."""
    return stat.S_ISREG(status.st_mode) and not status.st_mode & 0o077


# --------------------------------------------------------------------------------------
# Minting
# --------------------------------------------------------------------------------------

def mint(key, issuer, subject, audience=None, expires_in=DEFAULT_EXPIRES_IN, max_lifetime=DEFAULT_MAX_LIFETIME,
         not_before=0, claims=None, headers=None, algorithm=None, kid=None, jku=None, jti=None,
         typ=DEFAULT_TYP, now=None):
    """Sign a new token with ``key`` (a private key object from :func:`load_key`).

    Claims: ``iss``, ``sub``, ``aud`` (when given), ``iat`` = now, ``nbf`` = now + not_before,
    ``exp`` = now + expires_in, ``jti`` (random unless given), then the extra ``claims``.
    Header: ``alg`` (checked against the key), ``typ``, ``kid``, ``jku`` (when given) and the
    extra ``headers``. ``now`` (epoch seconds) defaults to the current time.

    Returns a :class:`TokenResult` whose header and claims are decoded from the signed token.
    """
    _check_names(claims, "claims", "claim")
    _check_names(headers, "headers", "header")
    _check_not_empty(kid=kid, jku=jku)
    header = _jws.build_header(key, algorithm=algorithm, kid=kid, jku=jku, headers=headers, typ=_check_typ(typ))
    claim_set = _jws.build_claims(issuer, subject, audience=audience, expires_in=expires_in,
                                  max_lifetime=max_lifetime, not_before=not_before, claims=claims, jti=jti,
                                  now=now)
    token, signed_header, signed_claims = _jws.sign_token(key, header, claim_set)
    if len(token) > MAX_TOKEN_BYTES:
        raise JoseError("the token would be %d bytes long; many HTTP servers refuse header lines over %d bytes: "
                        "send fewer or shorter claims and headers" % (len(token), MAX_TOKEN_BYTES))
    return TokenResult(token, signed_header, signed_claims, signed_claims["exp"])


def _check_names(mapping, option, what):
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise JoseError("%s must be a dictionary of %s names to values, got %s" % (option, what, type(mapping).__name__))
    for name in mapping:
        if not isinstance(name, str) or not name:
            raise JoseError("%s names must be non-empty strings, got %r" % (what, name))


def _check_not_empty(**values):
    for name, value in sorted(values.items()):
        if value is not None and not value:
            raise JoseError("%s must not be empty: leave it unset for the default" % name)


def _check_typ(typ):
    if not isinstance(typ, str) or not _TYP_PATTERN.match(typ):
        raise JoseError("typ must be a media type name such as JWT or at+jwt, got %r" % (typ,))
    return typ


# --------------------------------------------------------------------------------------
# Keeping tokens
# --------------------------------------------------------------------------------------

def default_refresh_margin(expires_in):
    """Default refresh margin: a third of the lifetime (a 600 s token is replaced 200 s before expiry)."""
    return expires_in // 3


def _margin(refresh_margin, expires_in):
    if refresh_margin is None:
        return default_refresh_margin(expires_in) if _is_int(expires_in) else 0
    if not _is_int(refresh_margin) or refresh_margin < 0:
        raise JoseError("refresh_margin must be a number of seconds >= 0, got %r" % (refresh_margin,))
    return refresh_margin


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _now(now):
    return int(time.time()) if now is None else int(now)


def _normalized(value):
    """The value as it comes back out of a token (JSON round trip)."""
    return json.loads(json.dumps(value))


def _token_options(options):
    unknown = sorted(set(options) - set(TOKEN_OPTIONS))
    if unknown:
        raise TypeError("unknown token option(s): %s" % ", ".join(unknown))
    for required in ("issuer", "subject"):
        if required not in options:
            raise TypeError("the token option %s is required" % required)
    return options


def reuse_problem(token, key, refresh_margin=None, now=None, **options):
    """Why ``token`` cannot be kept for these options, or None when it can.

    A token is kept only when all of this holds:

    * its header equals the header :func:`mint` would write (same ``alg``, ``typ``, ``kid``,
      ``jku`` and extra headers), and its signature verifies with ``key``'s public key and that
      algorithm pinned;
    * its claims other than ``iat``, ``nbf``, ``exp`` and ``jti`` equal the claims ``mint``
      would write (same ``iss``, ``sub``, ``aud`` and extra claims); a ``jti`` given in the
      options must match too;
    * its lifetime (``exp - iat``) equals ``expires_in`` and ``nbf - iat`` equals ``not_before``;
    * ``iat`` and ``nbf`` are not in the future;
    * it stays valid for longer than ``refresh_margin`` seconds (default:
      :func:`default_refresh_margin` of ``expires_in``).

    ``options`` are the :data:`TOKEN_OPTIONS` as for :func:`mint`; invalid options raise
    JoseError exactly as ``mint`` would.
    """
    options = _token_options(options)
    now = _now(now)
    expires_in = options.get("expires_in", DEFAULT_EXPIRES_IN)
    not_before = options.get("not_before", 0)
    margin = _margin(refresh_margin, expires_in)
    _check_names(options.get("claims"), "claims", "claim")
    _check_names(options.get("headers"), "headers", "header")
    _check_not_empty(kid=options.get("kid"), jku=options.get("jku"))
    expected_header = _normalized(_jws.build_header(
        key, algorithm=options.get("algorithm"), kid=options.get("kid"), jku=options.get("jku"),
        headers=options.get("headers"), typ=_check_typ(options.get("typ", DEFAULT_TYP))))
    expected_claims = _normalized(_jws.build_claims(
        options["issuer"], options["subject"], audience=options.get("audience"), expires_in=expires_in,
        max_lifetime=options.get("max_lifetime", DEFAULT_MAX_LIFETIME), not_before=not_before,
        claims=options.get("claims"), jti=options.get("jti"), now=now))

    try:
        header, claims = _jws.decode_unverified(token)
    except JoseError as exc:
        return "the existing token cannot be read (%s)" % exc
    differing = _differences(expected_header, header, ())
    if differing:
        return "the token header differs in %s" % ", ".join(differing)
    try:
        _jws.verify(token, _keys.public_key_of(key), expected_header["alg"])
    except JoseError:
        return "the token's signature does not verify with this key and %s" % expected_header["alg"]
    ignored = _TIME_CLAIMS if options.get("jti") is not None else _TIME_CLAIMS + ("jti",)
    differing = _differences(expected_claims, claims, ignored)
    if differing:
        return "the token claims differ in %s" % ", ".join(differing)
    iat, nbf, exp = claims.get("iat"), claims.get("nbf"), claims.get("exp")
    if not (_is_int(iat) and _is_int(nbf) and _is_int(exp)):
        return "the token lacks integer iat, nbf and exp claims"
    if exp - iat != expires_in:
        return "the token lifetime is %d s, not expires_in %d s" % (exp - iat, expires_in)
    if nbf - iat != not_before:
        return "the token's nbf is %+d s from iat, not not_before %+d s" % (nbf - iat, not_before)
    if iat > now or nbf > now:
        return "the token was issued in the future (iat or nbf after now): the clock was changed"
    if exp - now <= margin:
        if exp <= now:
            return "the token expired %d s ago" % (now - exp)
        return "the token expires in %d s, within the refresh margin of %d s" % (exp - now, margin)
    return None


def _differences(expected, actual, ignored):
    names = (set(expected) | set(actual)) - set(ignored)
    return sorted(name for name in names if expected.get(name, _MISSING) != actual.get(name, _MISSING))


_MISSING = object()


# --------------------------------------------------------------------------------------
# Token files
# --------------------------------------------------------------------------------------

def _read_existing(path):
    """(token text or None, stat result or None) of an existing token file; refuses foreign content."""
    data, status = _files.read_file(path, what="token file", limit=4 * MAX_TOKEN_BYTES)
    if data is None:
        return None, None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        text = None
    if text == "":
        return "", status
    if text is None or not _TOKEN_PATTERN.match(text):
        raise FileError("%s exists but does not hold a JWT: it is left alone; remove it or choose another "
                        "token file path" % path)
    return text, status


def _fix_attributes(path, status, mode, uid, gid, check_mode):
    """Correct the mode and owner of a kept token file through a descriptor (never through a link)."""
    fix_mode = mode is not None and stat.S_IMODE(status.st_mode) != mode
    fix_owner = (uid is not None and status.st_uid != uid) or (gid is not None and status.st_gid != gid)
    if check_mode or not (fix_mode or fix_owner):
        return fix_mode or fix_owner
    fd, current = _files.open_nofollow(path, "token file")
    if fd is None or (current.st_dev, current.st_ino) != (status.st_dev, status.st_ino):
        if fd is not None:
            os.close(fd)
        raise FileError("token file %s was replaced while it was checked: run again" % path)
    try:
        if fix_mode:
            os.fchmod(fd, mode)
        if fix_owner:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
    except OSError as exc:
        raise FileError("cannot set the owner, group or mode of token file %s: %s" % (path, exc.strerror or exc))
    finally:
        os.close(fd)
    return True


def ensure_token_file(path, key, refresh_margin=None, mode=0o600, uid=None, gid=None, check_mode=False,
                      now=None, **options):
    """Keep a valid token in the file ``path``; returns ``(changed, TokenFileResult)``.

    The token in ``path`` is kept when :func:`reuse_problem` finds nothing wrong with it
    (same key, header and claims, valid for longer than ``refresh_margin`` seconds; default a
    third of ``expires_in``). Otherwise a new token is minted with :func:`mint` and written
    atomically: a reader sees the old token or the new one, never a partial file. The file
    holds the token without a trailing newline.

    ``mode`` (int, default 0o600; None keeps the mode of an existing file and uses 0o600 for
    a new one), ``uid`` and ``gid`` (numeric ids, see ``_files.resolve_uid`` and
    ``_files.resolve_gid``; None leaves them as they are or as the writing process makes them)
    apply to new files from the first moment and are corrected on a kept file. With
    ``check_mode`` nothing is written, no lock is taken, and the result tells whether a new
    token would be written (its ``token`` is then a new token that was not stored).

    ``changed`` is True when a new token was (or would be) written, or when the mode or
    ownership of the kept file was (or would be) corrected. Writers of the same path are
    serialized with ``_files.locked``. A file that exists but does not hold a JWT is never
    overwritten (FileError). ``not_before`` must be <= 0: a token file must hold a token that
    is valid now.
    """
    options = _token_options(options)
    if not path:
        raise FileError("the token file path is empty: give the path of a file")
    if mode is not None and (not _is_int(mode) or mode < 0 or mode > 0o7777):
        raise FileError("the token file mode must be an octal permission such as 0o600, got %r" % (mode,))
    not_before = options.get("not_before", 0)
    if _is_int(not_before) and not_before > 0:
        raise JoseError("not_before must be 0 or negative with a token file: the file must hold a token that "
                        "is valid now")
    margin = _margin(refresh_margin, options.get("expires_in", DEFAULT_EXPIRES_IN))
    _files.check_parent_dir(path, "token file")
    with _files.locked_unless(check_mode, path):
        # The time is taken once the lock is held: a token that another writer made while this
        # one waited must not look as if it were issued in the future.
        now = _now(now)
        text, status = _read_existing(path)
        previous = None
        if text is None:
            reason = "the token file does not exist"
        elif text == "":
            reason = "the token file is empty"
        else:
            try:
                previous = TokenResult.from_token(text).metadata()
            except JoseError:
                previous = None
            reason = reuse_problem(text, key, refresh_margin=margin, now=now, **options)
        if reason is None:
            changed = _fix_attributes(path, status, mode, uid, gid, check_mode)
            kept = TokenResult.from_token(text)
            return changed, TokenFileResult.of(kept, path, None, previous)
        result = mint(key, now=now, **options)
        if not check_mode:
            if mode is not None:
                new_mode = mode
            elif status is not None:
                new_mode = stat.S_IMODE(status.st_mode)
            else:
                new_mode = 0o600
            _files.write_atomic(path, result.token.encode("ascii"), mode=new_mode, what="token file",
                                uid=uid, gid=gid)
        return True, TokenFileResult.of(result, path, reason, previous)
