# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Keys in a PKCS#11 token (HSM, smart card, TPM 2.0): URIs, PINs, sessions, key pairs, signing.

PRIVATE to the collection: do not import it from other collections.

A key named by an RFC 7512 PKCS#11 URI stays in its token. It is generated there as a
sensitive, non-extractable token object, and every signature is made by the token (C_Sign).
:meth:`TokenSession.key` returns a ``cryptography`` private-key object (a subclass of the
library's key interfaces) whose ``sign()`` calls the token and whose ``private_bytes()``
refuses, so ``_jws``, ``_jwk`` and ``_certificates`` treat it like a key loaded from a file.

The PKCS#11 binding is python-pkcs11 (PyPI ``python-pkcs11``): typed exceptions for every
``CKR_`` code, sessions as context managers, and the EC helpers (named-curve parameters,
``CKA_EC_POINT`` decoding) that a raw binding such as PyKCS11 leaves to the caller.

Part of the JOSE core (see ``_jose``): no Ansible imports, the refresher runs it on edge hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import time

from urllib.parse import quote, unquote_to_bytes

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
except ImportError:
    pass  # _jose.missing_dependencies() reports the missing library before any use

#: Whether python-pkcs11 can be imported. It is imported only when a token is used
#: (:func:`check_library`): the import costs 0.1-0.3 s of CPU, more than a whole key-file run.
HAS_PKCS11 = importlib.util.find_spec("pkcs11") is not None
pkcs11 = Attribute = KeyType = Mechanism = ObjectClass = pkcs11_errors = DEFAULT = None
encode_named_curve_parameters = None

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files
from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import JoseError
from ansible_collections.selfjwt.kyma.plugins.module_utils._keys import CURVE_BY_NAME, MAX_RSA_BITS, MIN_RSA_BITS

#: Where the refresher and the modules look for the binding; the message names the package.
MISSING_LIBRARY = ("the pkcs11 key backend needs the Python package python-pkcs11 on this host "
                   "(pip install python-pkcs11; selfjwt.kyma.edge_keys installs it when "
                   "edge_keys_key_backend is pkcs11)")

#: RFC 7512 attributes this collection understands. Others are refused: a URI attribute that
#: is ignored could make the URI name another token or object than its author meant.
PATH_ATTRIBUTES = ("token", "manufacturer", "serial", "model", "object", "id", "type")
QUERY_ATTRIBUTES = ("module-path", "pin-source")
#: The length limit of a PIN read from a file (PKCS#11 PINs are short; a large file is a mistake).
MAX_PIN_BYTES = 256
#: Pauses (s) before a token lookup and login that failed as SoftHSM2 does while another process
#: rewrites its store is tried again (see open_session).
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)
#: The length of the CKA_ID given to a key pair generated without an id in its URI.
GENERATED_ID_BYTES = 16

_EDWARDS_CURVE_OID = "1.3.101.112"  # id-Ed25519 (RFC 8410)


class Pkcs11Error(JoseError):
    """A PKCS#11 URI, PIN, module, token or key problem, with what to do next."""


def check_library():
    """Import python-pkcs11 (once); Pkcs11Error when it cannot be imported."""
    global pkcs11, Attribute, KeyType, Mechanism, ObjectClass, pkcs11_errors, DEFAULT  # pylint: disable=global-statement
    global encode_named_curve_parameters  # pylint: disable=global-statement
    if not HAS_PKCS11:
        raise Pkcs11Error(MISSING_LIBRARY)
    if pkcs11 is None:
        try:
            import pkcs11 as binding  # pylint: disable=import-outside-toplevel
            from pkcs11 import exceptions as errors  # pylint: disable=import-outside-toplevel
            from pkcs11.constants import DEFAULT as default  # pylint: disable=import-outside-toplevel
            from pkcs11.util.ec import encode_named_curve_parameters as encode  # pylint: disable=import-outside-toplevel
        except ImportError as exc:
            raise Pkcs11Error("%s: %s" % (MISSING_LIBRARY, exc))
        Attribute, KeyType, Mechanism, ObjectClass = (binding.Attribute, binding.KeyType, binding.Mechanism,
                                                      binding.ObjectClass)
        pkcs11_errors, DEFAULT, encode_named_curve_parameters = errors, default, encode
        pkcs11 = binding


# --------------------------------------------------------------------------------------
# RFC 7512 URIs
# --------------------------------------------------------------------------------------

def _decode(name, value, text):
    if "%" in value:
        for index in range(len(value)):
            if value[index] == "%" and not _is_pct(value[index + 1:index + 3]):
                raise Pkcs11Error("PKCS#11 URI %s: the value of %s has a '%%' that does not start a "
                                  "percent-encoded byte (%%XX)" % (text, name))
    if name == "id":
        return unquote_to_bytes(value)
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise Pkcs11Error("PKCS#11 URI %s: the value of %s is not UTF-8 text" % (text, name))


def _is_pct(pair):
    return len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair)


class Pkcs11Uri(object):
    """A parsed ``pkcs11:`` URI that names one private key (RFC 7512).

    ``token``/``serial``/``manufacturer``/``model`` pick the token, ``object`` (CKA_LABEL) and
    ``id`` (CKA_ID, bytes) the key; ``module-path`` is the PKCS#11 library to load and
    ``pin-source`` an optional PIN file. A ``pin-value`` is refused: URIs end up in module
    arguments, configuration files and logs.
    """

    __slots__ = ("token", "manufacturer", "serial", "model", "object", "id", "type", "module_path", "pin_source",
                 "text")

    def __init__(self, text, **attributes):
        self.text = text
        for name in self.__slots__[:-1]:
            setattr(self, name, attributes.get(name))

    @classmethod
    def parse(cls, text):
        if not isinstance(text, str) or not text.startswith("pkcs11:"):
            raise Pkcs11Error("%r is not a PKCS#11 URI: it must start with 'pkcs11:' (RFC 7512), for example "
                              "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/softhsm/"
                              "libsofthsm2.so" % (text,))
        if any(c.isspace() for c in text) or "#" in text:
            raise Pkcs11Error("PKCS#11 URI %s contains white space or '#': percent-encode them (%%20, %%23)" % text)
        body = text[len("pkcs11:"):]
        path, _sep, query = body.partition("?")
        values = {}
        for part, separator, allowed in ((path, ";", PATH_ATTRIBUTES), (query, "&", QUERY_ATTRIBUTES)):
            for item in part.split(separator) if part else []:
                name, equals, value = item.partition("=")
                if not equals:
                    raise Pkcs11Error("PKCS#11 URI %s: %r is not an attribute=value pair" % (text, item))
                if name == "pin-value":
                    raise Pkcs11Error("PKCS#11 URI %s carries the PIN (pin-value): URIs end up in logs and "
                                      "configuration files. Remove it and give the PIN in a file "
                                      "(pkcs11_pin_file, or pin-source=file:/path in the URI)" % cls._masked(text))
                if name not in allowed:
                    where = "path" if separator == ";" else "query"
                    raise Pkcs11Error("PKCS#11 URI %s: the %s attribute %r is not supported; use %s"
                                      % (text, where, name, ", ".join(allowed)))
                key = name.replace("-", "_")
                if key in values:
                    raise Pkcs11Error("PKCS#11 URI %s names %s twice" % (text, name))
                values[key] = _decode(name, value, text)
        uri = cls(text, **values)
        uri.check()
        return uri

    @staticmethod
    def _masked(text):
        head, _sep, query = text.partition("?")
        items = ["pin-value=********" if item.startswith("pin-value=") else item for item in query.split("&")]
        return head + ("?" + "&".join(items) if query else "")

    def check(self):
        if self.type not in (None, "private"):
            raise Pkcs11Error("PKCS#11 URI %s: type=%s does not name a signing key; use type=private or leave "
                              "type out" % (self.text, self.type))
        if not (self.token or self.serial):
            raise Pkcs11Error("PKCS#11 URI %s names no token: add token=<label> (or serial=<serial>)" % self.text)
        if not self.object and not self.id:
            raise Pkcs11Error("PKCS#11 URI %s names no key: add object=<label> (and/or id=<%%XX bytes>)" % self.text)
        if not self.module_path:
            raise Pkcs11Error("PKCS#11 URI %s names no PKCS#11 library: add ?module-path=/path/to/library.so "
                              "(SoftHSM2: /usr/lib/softhsm/libsofthsm2.so; TPM 2.0: "
                              "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so)" % self.text)
        if not os.path.isabs(self.module_path):
            raise Pkcs11Error("PKCS#11 URI %s: module-path must be an absolute path" % self.text)
        if self.pin_source is not None:
            source = self.pin_source[len("file:"):] if self.pin_source.startswith("file:") else self.pin_source
            if source.startswith("//"):
                source = source[2:]
            if not os.path.isabs(source):
                raise Pkcs11Error("PKCS#11 URI %s: pin-source must be an absolute file path or file:/path"
                                  % self.text)
            self.pin_source = source

    def with_object(self, label, key_id):
        """The same token and library, another key: the URI of ``label``/``key_id``."""
        values = dict((name, getattr(self, name)) for name in self.__slots__[:-1])
        values.update(object=label, id=key_id)
        uri = Pkcs11Uri(None, **values)
        uri.text = uri.format()
        return uri

    def format(self):
        """The URI as text, with every value percent-encoded as RFC 7512 requires."""
        path = []
        for name in PATH_ATTRIBUTES:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "id":
                path.append("id=" + "".join("%%%02x" % b for b in bytearray(value)))
            else:
                path.append("%s=%s" % (name, quote(value, safe="")))
        query = ["module-path=" + quote(self.module_path, safe="/")]
        if self.pin_source:
            query.append("pin-source=" + quote(self.pin_source, safe="/"))
        return "pkcs11:%s?%s" % (";".join(path), "&".join(query))

    def describe(self):
        """Safe, short naming of the key for messages and return values."""
        who = "object %r" % self.object if self.object else "id %s" % hex_id(self.id)
        return "%s in token %r" % (who, self.token or self.serial)

    def __repr__(self):
        return "Pkcs11Uri(%s)" % self.text


def parse_uri(text):
    return Pkcs11Uri.parse(text)


def is_uri(value):
    """True when ``value`` is text that claims to be a PKCS#11 URI (it may still be malformed)."""
    return isinstance(value, str) and value.startswith("pkcs11:")


def hex_id(key_id):
    return "".join("%02x" % b for b in bytearray(key_id or b""))


# --------------------------------------------------------------------------------------
# PINs
# --------------------------------------------------------------------------------------

def read_pin_file(path, owners=None):
    """The PIN in ``path``: a regular file (no link followed) that only its owner may read."""
    try:
        return _files.read_secret(path, "PIN file", limit=MAX_PIN_BYTES, owners=owners,
                                  fill_hint=": write the token's user PIN into it (mode 0600)")[0]
    except _files.FileError as exc:
        raise Pkcs11Error(str(exc))


def resolve_pin(uri, pin=None, pin_file=None, owners=None):
    """The user PIN: ``pin``, else the file ``pin_file``, else the URI's pin-source, else None."""
    if pin is not None and pin_file is not None:
        raise Pkcs11Error("give the PIN either directly (pkcs11_pin) or in a file (pkcs11_pin_file), not both")
    if pin is not None:
        if not pin:
            raise Pkcs11Error("pkcs11_pin is empty: give the token's user PIN")
        return pin
    path = pin_file or uri.pin_source
    if path is None:
        return None
    return read_pin_file(path, owners=owners)


# --------------------------------------------------------------------------------------
# Libraries, tokens, sessions
# --------------------------------------------------------------------------------------

_LIBRARIES = {}


def _library(path):
    check_library()
    library = _LIBRARIES.get(path)
    if library is None:
        if not os.path.isfile(path):
            raise Pkcs11Error("the PKCS#11 library %s does not exist: install the token's PKCS#11 module (SoftHSM2: "
                              "apt-get install softhsm2; TPM 2.0: apt-get install libtpm2-pkcs11-1) or fix "
                              "module-path in the URI" % path)
        try:
            library = _LIBRARIES[path] = pkcs11.lib(path)
        except Exception as exc:  # python-pkcs11 raises RuntimeError or a PKCS11Error subclass
            raise Pkcs11Error("cannot load the PKCS#11 library %s: %s" % (path, _reason(exc)))
    return library


def _reason(exc):
    text = str(exc).strip()
    return "%s%s" % (type(exc).__name__, ": " + text if text else "")


class _Unreadable(Exception):
    """A lookup or login failure that SoftHSM2 gives while another process rewrites its store."""

    def __init__(self, error):
        super(_Unreadable, self).__init__(str(error))
        self.error = error


def _find_token(uri):
    library = _library(uri.module_path)
    wanted = (("label", uri.token), ("serial", uri.serial), ("manufacturer_id", uri.manufacturer),
              ("model", uri.model))
    try:
        tokens = list(library.get_tokens())
    except pkcs11_errors.GeneralError as exc:
        raise _Unreadable(Pkcs11Error("the PKCS#11 library %s cannot list its tokens: %s"
                                      % (uri.module_path, _reason(exc))))
    except Exception as exc:
        raise Pkcs11Error("the PKCS#11 library %s cannot list its tokens: %s" % (uri.module_path, _reason(exc)))
    found = [token for token in tokens
             if all(value is None or _text(getattr(token, attr)) == value for attr, value in wanted)]
    if not found:
        raise _Unreadable(Pkcs11Error(
            "no token matches %s in %s (tokens: %s): initialise the token, or fix token= in the URI"
            % (uri.text, uri.module_path, ", ".join(repr(token.label) for token in tokens) or "none")))
    if len(found) > 1:
        raise Pkcs11Error("%d tokens match %s: add serial= to the URI to pick one" % (len(found), uri.text))
    return found[0]


def _text(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return (value or "").rstrip(" \x00")


def open_session(uri, pin=None, write=False):
    """A :class:`TokenSession` on the token of ``uri``, logged in with ``pin`` when given.

    SoftHSM2's file store rewrites a token's ``token.object`` on every login. A process that reads
    the store meanwhile (another module run, the refresher) can fail to list the tokens
    (CKR_GENERAL_ERROR), list them without this one, or see it without its user PIN, and keeps that
    view until the library is initialised again. Those failures are tried again after a pause, with
    the library initialised again when this process has no other session open; what persists
    through :data:`RETRY_DELAYS` is reported.
    """
    for delay in RETRY_DELAYS + (None,):
        try:
            return _open_session(uri, pin, write)
        except _Unreadable as exc:
            if delay is None:
                raise exc.error
        time.sleep(delay)
        if not TokenSession.open_count:
            try:
                _library(uri.module_path).reinitialize()
            except pkcs11_errors.PKCS11Error:
                pass  # the next attempt reports what is wrong


def _open_session(uri, pin, write):
    token = _find_token(uri)
    if pin is None and token.flags & pkcs11.TokenFlag.LOGIN_REQUIRED:
        raise Pkcs11Error("token %r needs its user PIN: set pkcs11_pin_file (a 0600 file holding the PIN), "
                          "pkcs11_pin, or pin-source in the URI" % token.label)
    try:
        try:
            session = token.open(user_pin=pin, rw=write)
        except pkcs11_errors.UserAlreadyLoggedIn:
            # PKCS#11 logs in per application: another session of this process is logged in already.
            session = token.open(rw=write)
    except pkcs11_errors.PinIncorrect:
        raise Pkcs11Error("token %r refused the PIN: check the PIN file (or the PIN given); each wrong PIN "
                          "counts towards the token's lockout" % token.label)
    except pkcs11_errors.PinLocked:
        raise Pkcs11Error("token %r has locked its user PIN after too many wrong PINs: set a new user PIN with "
                          "the security officer PIN (TPM 2.0: tpm2_ptool initpin; other tokens: their "
                          "administration tool)" % token.label)
    except (pkcs11_errors.PinExpired, pkcs11_errors.UserPinNotInitialized) as exc:
        error = Pkcs11Error("token %r cannot log in: %s; set the user PIN with the token's tools"
                            % (token.label, _reason(exc)))
        raise _Unreadable(error) if isinstance(exc, pkcs11_errors.UserPinNotInitialized) else error
    except pkcs11_errors.PKCS11Error as exc:
        error = Pkcs11Error("cannot open a session on token %r: %s" % (token.label, _reason(exc)))
        raise _Unreadable(error) if isinstance(exc, pkcs11_errors.GeneralError) else error
    return TokenSession(uri, token, session)


def open_key(uri, pin=None, pin_file=None, owners=None):
    """``(session, key)`` for the key that ``uri`` (text or :class:`Pkcs11Uri`) names; close the session after use."""
    if not isinstance(uri, Pkcs11Uri):
        uri = parse_uri(uri)
    session = open_session(uri, resolve_pin(uri, pin, pin_file, owners))
    try:
        return session, session.key()
    except Exception:
        session.close()
        raise


class TokenSession(object):
    """An open session on one token; use it as a context manager, or call :meth:`close`."""

    #: Sessions of this process not closed yet (open_session initialises the library again only at 0).
    open_count = 0

    def __init__(self, uri, token, session):
        self.uri = uri
        self.token = token
        self.session = session
        self._mechanisms = None
        TokenSession.open_count += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if self.session is not None:
            try:
                self.session.close()
            except pkcs11_errors.PKCS11Error:
                pass
            self.session = None
            TokenSession.open_count -= 1

    def token_facts(self):
        return {"label": _text(self.token.label), "manufacturer": _text(self.token.manufacturer_id),
                "model": _text(self.token.model), "serial": _text(self.token.serial)}

    @property
    def mechanisms(self):
        if self._mechanisms is None:
            try:
                self._mechanisms = frozenset(self.token.slot.get_mechanisms())
            except pkcs11_errors.PKCS11Error:
                self._mechanisms = frozenset()
        return self._mechanisms

    # -- objects ------------------------------------------------------------------------

    def _objects(self, object_class, label=None, key_id=None):
        template = {Attribute.CLASS: object_class}
        if label is not None:
            template[Attribute.LABEL] = label
        if key_id is not None:
            template[Attribute.ID] = key_id
        try:
            return list(self.session.get_objects(template))
        except pkcs11_errors.PKCS11Error as exc:
            raise Pkcs11Error("cannot search token %r: %s" % (self.token.label, _reason(exc)))

    def find(self, label=None, key_id=None):
        """The private key object of ``label``/``key_id`` (default: the URI's), or None."""
        if label is None and key_id is None:
            label, key_id = self.uri.object, self.uri.id
        found = self._objects(ObjectClass.PRIVATE_KEY, label, key_id)
        if len(found) > 1:
            raise Pkcs11Error("%d private keys match %s: give the key a unique label, or add id= to the URI"
                              % (len(found), self.uri.with_object(label, key_id).describe()))
        return found[0] if found else None

    def private_keys(self):
        """Every private key object of the token: list of (label, id) pairs."""
        return [(_attribute(obj, Attribute.LABEL), _attribute(obj, Attribute.ID))
                for obj in self._objects(ObjectClass.PRIVATE_KEY)]

    def key(self, label=None, key_id=None, handle=None):
        """A cryptography private-key object that signs through the token; Pkcs11Error when absent."""
        if handle is None:
            handle = self.find(label, key_id)
        if handle is None:
            raise Pkcs11Error("there is no private key %s: create it with selfjwt.kyma.jwt_keypair (pkcs11_uri), "
                              "or fix object=/id= in the URI" % self.uri.with_object(
                                  label if label is not None else self.uri.object,
                                  key_id if key_id is not None else self.uri.id).describe())
        return _wrap(self, handle, self._public_key(handle))

    def _public_key(self, handle):
        key_type = _attribute(handle, Attribute.KEY_TYPE)
        key_id = _attribute(handle, Attribute.ID)
        label = _attribute(handle, Attribute.LABEL)
        publics = self._objects(ObjectClass.PUBLIC_KEY, None, key_id) if key_id else []
        if len(publics) > 1:
            publics = [obj for obj in publics if _attribute(obj, Attribute.LABEL) == label] or publics
        public = publics[0] if len(publics) == 1 else None
        try:
            if key_type == KeyType.RSA:
                source = public if public is not None else handle  # an RSA private key carries n and e
                return rsa.RSAPublicNumbers(_integer(source[Attribute.PUBLIC_EXPONENT]),
                                            _integer(source[Attribute.MODULUS])).public_key()
            if public is None:
                raise Pkcs11Error("the private key %s has no public key object with the same id in the token, so its "
                                  "public key is unknown: generate the key pair with selfjwt.kyma.jwt_keypair"
                                  % self.uri.with_object(label, key_id).describe())
            if key_type == KeyType.EC:
                return _ec_public_key(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
            if key_type == KeyType.EC_EDWARDS:
                return ed25519.Ed25519PublicKey.from_public_bytes(_octet_string(public[Attribute.EC_POINT], 32))
        except pkcs11_errors.PKCS11Error as exc:
            raise Pkcs11Error("cannot read the public key of %s: %s"
                              % (self.uri.with_object(label, key_id).describe(), _reason(exc)))
        except ValueError as exc:
            raise Pkcs11Error("the public key of %s in the token is not a valid key: %s"
                              % (self.uri.with_object(label, key_id).describe(), exc))
        raise Pkcs11Error("the private key %s is of key type %s: use an RSA, EC (P-256, P-384, P-521) or Ed25519 "
                          "key" % (self.uri.with_object(label, key_id).describe(), key_type))

    def generate(self, key_type="ec", size=None, curve="P-256", label=None, key_id=None):
        """Generate a sensitive, non-extractable key pair as token objects; returns the signing key object."""
        label = self.uri.object if label is None else label
        key_id = (self.uri.id or os.urandom(GENERATED_ID_BYTES)) if key_id is None else key_id
        # A sign-only pair. libtpm2_pkcs11 maps CKA_SIGN/CKA_ENCRYPT and CKA_VERIFY/CKA_DECRYPT onto
        # the TPM key's two usage bits and fails (CKR_GENERAL_ERROR) when the templates disagree
        # with them, so the public template names neither CKA_VERIFY nor CKA_ENCRYPT
        # (DEFAULT removes what python-pkcs11 would add); every token then sets them itself.
        public_template = {Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.WRAP: False,
                           Attribute.VERIFY: DEFAULT, Attribute.ENCRYPT: DEFAULT}
        private_template = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SIGN: True,
                            Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.DECRYPT: False,
                            Attribute.UNWRAP: False, Attribute.DERIVE: False}
        for template in (public_template, private_template):
            if label:
                template[Attribute.LABEL] = label
            template[Attribute.ID] = key_id
        try:
            if key_type == "rsa":
                if not isinstance(size, int) or not MIN_RSA_BITS <= size <= MAX_RSA_BITS:
                    raise Pkcs11Error("RSA size must be between %d and %d bits, got %r"
                                      % (MIN_RSA_BITS, MAX_RSA_BITS, size))
                public_template[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
                _public, private = self.session.generate_keypair(
                    KeyType.RSA, size, store=True, public_template=public_template, private_template=private_template)
            elif key_type == "ec":
                if curve not in CURVE_BY_NAME:
                    raise Pkcs11Error("unsupported curve %r: use one of %s" % (curve, ", ".join(sorted(CURVE_BY_NAME))))
                parameters = self.session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVE_BY_NAME[curve][0])},
                    local=True)
                _public, private = parameters.generate_keypair(
                    store=True, public_template=public_template, private_template=private_template)
            elif key_type == "ed25519":
                parameters = self.session.create_domain_parameters(
                    KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters(_EDWARDS_CURVE_OID)},
                    local=True)
                _public, private = parameters.generate_keypair(
                    store=True, mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                    public_template=public_template, private_template=private_template)
            else:
                raise Pkcs11Error("unsupported key type %r: use rsa, ec or ed25519" % (key_type,))
        except (pkcs11_errors.MechanismInvalid, pkcs11_errors.FunctionNotSupported, pkcs11_errors.KeySizeRange,
                pkcs11_errors.DomainParamsInvalid, pkcs11_errors.AttributeValueInvalid,
                pkcs11_errors.TemplateInconsistent) as exc:
            raise Pkcs11Error("token %r cannot generate %s key pair (%s): choose a key type the token supports "
                              "(a TPM 2.0 has no Ed25519 and RSA up to 2048 or 3072 bits)"
                              % (self.token.label, _describe_request(key_type, size, curve), _reason(exc)))
        except pkcs11_errors.PKCS11Error as exc:
            raise Pkcs11Error("token %r failed to generate %s key pair: %s"
                              % (self.token.label, _describe_request(key_type, size, curve), _reason(exc)))
        return self.key(handle=private)

    def destroy(self, label=None, key_id=None):
        """Destroy the key pair (private and public objects) of ``label``/``key_id``; True when one existed."""
        handle = self.find(label, key_id)
        if handle is None:
            return False
        key_id = _attribute(handle, Attribute.ID)
        label = _attribute(handle, Attribute.LABEL)
        objects = [handle] + ([obj for obj in self._objects(ObjectClass.PUBLIC_KEY, None, key_id)
                               if _attribute(obj, Attribute.LABEL) == label] if key_id else [])
        try:
            for obj in objects:
                obj.destroy()
        except pkcs11_errors.PKCS11Error as exc:
            raise Pkcs11Error("token %r could not destroy %s: %s"
                              % (self.token.label, self.uri.with_object(label, key_id).describe(), _reason(exc)))
        return True

    def relabel(self, key_id, label):
        """Give the key pair with CKA_ID ``key_id`` the label ``label`` (both objects)."""
        objects = (self._objects(ObjectClass.PRIVATE_KEY, None, key_id)
                   + self._objects(ObjectClass.PUBLIC_KEY, None, key_id))
        if not objects:
            raise Pkcs11Error("there is no key pair with id %s in token %r" % (hex_id(key_id), self.token.label))
        try:
            for obj in objects:
                obj[Attribute.LABEL] = label
        except pkcs11_errors.PKCS11Error as exc:
            raise Pkcs11Error("token %r could not relabel the key pair with id %s: %s"
                              % (self.token.label, hex_id(key_id), _reason(exc)))

    def pair_labels(self, key_id):
        """The labels of the private and public key objects with CKA_ID ``key_id``: (private, public) lists.

        A relabel cut short between the two objects of a pair leaves them with different labels;
        a key ring repairs that from what this returns.
        """
        return ([_attribute(obj, Attribute.LABEL) for obj in self._objects(ObjectClass.PRIVATE_KEY, None, key_id)],
                [_attribute(obj, Attribute.LABEL) for obj in self._objects(ObjectClass.PUBLIC_KEY, None, key_id)])


def _describe_request(key_type, size, curve):
    return {"rsa": "an RSA-%s" % size, "ec": "an EC %s" % curve, "ed25519": "an Ed25519"}.get(key_type, key_type)


def _attribute(obj, attribute):
    try:
        value = obj[attribute]
    except (pkcs11_errors.AttributeTypeInvalid, pkcs11_errors.AttributeSensitive):
        return None
    return value


def _integer(value):
    if isinstance(value, int):
        return value
    return int.from_bytes(bytes(value), "big")


def _octet_string(value, size):
    """The content of a DER OCTET STRING, or ``value`` itself when it is raw (tokens differ)."""
    value = bytes(value)
    if len(value) == size + 2 and value[0] == 0x04 and value[1] == size:
        return value[2:]
    if len(value) == size + 3 and value[0] == 0x04 and value[1] == 0x81 and value[2] == size:
        return value[3:]
    return value


def _ec_public_key(params, point):
    curve = None
    for name, (openssl_name, size, _alg) in CURVE_BY_NAME.items():
        if bytes(params) == bytes(encode_named_curve_parameters(openssl_name)):
            curve = name
            break
    if curve is None:
        raise ValueError("its curve is not P-256, P-384 or P-521")
    from ansible_collections.selfjwt.kyma.plugins.module_utils._keys import curve_object
    raw = _octet_string(point, 1 + 2 * CURVE_BY_NAME[curve][1])
    return ec.EllipticCurvePublicKey.from_encoded_point(curve_object(curve), raw)


# --------------------------------------------------------------------------------------
# Key objects that sign through the token
# --------------------------------------------------------------------------------------

_DIGEST_INFO = {
    # DER DigestInfo prefixes (RFC 8017 section 9.2, note 1) for CKM_RSA_PKCS over a hash.
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _digest(data, algorithm):
    if isinstance(algorithm, utils.Prehashed):
        return data, algorithm._algorithm  # pylint: disable=protected-access
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize(), algorithm


class _TokenKey(object):
    """What the three token key classes share: the handle, the public key, no private bytes."""

    def __init__(self, token_session, handle, public):
        self._session = token_session
        self._handle = handle
        self._public = public
        self.label = _attribute(handle, Attribute.LABEL)
        self.key_id = _attribute(handle, Attribute.ID)

    def public_key(self):
        return self._public

    def _not_extractable(self, *_args, **_kwargs):
        raise Pkcs11Error("the private key %s stays in its token and cannot be exported"
                          % self._session.uri.with_object(self.label, self.key_id).describe())

    private_bytes = private_numbers = private_bytes_raw = _not_extractable

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def facts(self):
        """Safe facts about the key object: label, id, and the token's answer on extractability."""
        # NEVER_EXTRACTABLE and ALWAYS_SENSITIVE are the history: a TPM 2.0 token lets
        # CKA_EXTRACTABLE be set later (the key still cannot be read), the history stays.
        return {"label": self.label, "id": hex_id(self.key_id),
                "extractable": bool(_attribute(self._handle, Attribute.EXTRACTABLE)),
                "never_extractable": bool(_attribute(self._handle, Attribute.NEVER_EXTRACTABLE)),
                "sensitive": bool(_attribute(self._handle, Attribute.SENSITIVE)),
                "always_sensitive": bool(_attribute(self._handle, Attribute.ALWAYS_SENSITIVE)),
                "token": self._session.token_facts()}

    def _sign(self, data, mechanism, mechanism_param=None):
        try:
            return bytes(self._handle.sign(data, mechanism=mechanism, mechanism_param=mechanism_param))
        except pkcs11_errors.PKCS11Error as exc:
            raise Pkcs11Error("token %r could not sign with %s (%s): %s"
                              % (self._session.token.label, self._session.uri.with_object(self.label, self.key_id)
                                 .describe(), mechanism.name, _reason(exc)))


_RSA_MECHANISMS = {
    # hash name: (PKCS#1 v1.5 with hashing, PSS with hashing, hash mechanism, MGF)
    "sha256": ("SHA256_RSA_PKCS", "SHA256_RSA_PKCS_PSS", "SHA256", "SHA256"),
    "sha384": ("SHA384_RSA_PKCS", "SHA384_RSA_PKCS_PSS", "SHA384", "SHA384"),
    "sha512": ("SHA512_RSA_PKCS", "SHA512_RSA_PKCS_PSS", "SHA512", "SHA512"),
}


def _digest_size(name):
    return {"sha256": 32, "sha384": 48, "sha512": 64}[name]


_KEY_CLASSES = {}


def _key_classes():
    """The token key classes by key family, defined on first use.

    They subclass cryptography's key interfaces, which the module cannot name before
    _jose.missing_dependencies() has checked that cryptography is there.
    """
    if _KEY_CLASSES:
        return _KEY_CLASSES

    class _ECTokenKey(_TokenKey, ec.EllipticCurvePrivateKey):

        @property
        def curve(self):
            return self._public.curve

        @property
        def key_size(self):
            return self._public.key_size

        def sign(self, data, signature_algorithm):
            # CKM_ECDSA over a hash computed here: every token has it, while SoftHSM2 lacks CKM_ECDSA_SHA256.
            digest, _algorithm = _digest(data, signature_algorithm.algorithm)
            raw = self._sign(digest, Mechanism.ECDSA)
            size = len(raw) // 2
            return utils.encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))

        def exchange(self, *args, **kwargs):
            raise Pkcs11Error("token keys only sign")

    class _RSATokenKey(_TokenKey, rsa.RSAPrivateKey):

        @property
        def key_size(self):
            return self._public.key_size

        def sign(self, data, padding_, algorithm):
            prehashed = isinstance(algorithm, utils.Prehashed)
            name = (algorithm._algorithm if prehashed else algorithm).name  # pylint: disable=protected-access
            if name not in _RSA_MECHANISMS:
                raise Pkcs11Error("token keys sign with SHA-256, SHA-384 or SHA-512, not %s" % name)
            pkcs1, pss, hash_mechanism, mgf = _RSA_MECHANISMS[name]
            mechanisms = self._session.mechanisms
            if isinstance(padding_, padding.PSS):
                params = (getattr(Mechanism, hash_mechanism), getattr(pkcs11.MGF, mgf), _digest_size(name))
                if not prehashed and getattr(Mechanism, pss) in mechanisms:
                    return self._sign(data, getattr(Mechanism, pss), params)
                return self._sign(_digest(data, algorithm)[0], Mechanism.RSA_PKCS_PSS, params)
            if isinstance(padding_, padding.PKCS1v15):
                if not prehashed and getattr(Mechanism, pkcs1) in mechanisms:
                    return self._sign(data, getattr(Mechanism, pkcs1))
                return self._sign(_DIGEST_INFO[name] + _digest(data, algorithm)[0], Mechanism.RSA_PKCS)
            raise Pkcs11Error("token keys sign with PKCS#1 v1.5 or PSS padding")

        def decrypt(self, *args, **kwargs):
            raise Pkcs11Error("token keys only sign")

    class _Ed25519TokenKey(_TokenKey, ed25519.Ed25519PrivateKey):

        def sign(self, data):
            return self._sign(data, Mechanism.EDDSA)

    _KEY_CLASSES.update(RSA=_RSATokenKey, EC=_ECTokenKey, OKP=_Ed25519TokenKey)
    return _KEY_CLASSES


def _wrap(token_session, handle, public):
    classes = _key_classes()
    if isinstance(public, rsa.RSAPublicKey):
        return classes["RSA"](token_session, handle, public)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return classes["EC"](token_session, handle, public)
    return classes["OKP"](token_session, handle, public)


def is_token_key(key):
    return isinstance(key, _TokenKey)


def public_key_der(key):
    """SubjectPublicKeyInfo DER of a token key's public half (for comparisons)."""
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
