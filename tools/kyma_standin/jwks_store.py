# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""JWKS fetching and caching the way istiod does it for RequestAuthentication ``jwksUri``.

* istiod (not the gateway) fetches each ``jwksUri`` and inlines the keys into the proxies'
  configuration; it refreshes every ``PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`` (20 min) and does
  NOT refetch when a token carries an unknown ``kid`` (istio/istio#41588, #49044).
* A failed first fetch leaves a public-only fallback key (every token: 401
  ``Jwt verification fails``); a failed refresh keeps the last good keys and retries after
  one minute (at most the refresh interval).

Cluster-local ``jwksUri`` values do not resolve on a workstation, so sources can be mapped:
``--jwks-map ISSUER_OR_URI=LOCAL_FILE_OR_URL``.
"""

import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from . import envoy_jwt

#: istiod's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL default.
DEFAULT_REFRESH_INTERVAL = 20 * 60
#: istiod retries a failed refresh after one minute.
FAILED_REFRESH_RETRY = 60
#: RequestAuthentication jwtRules[].timeout default.
FETCH_TIMEOUT = 5
MAX_JWKS_BYTES = 1024 * 1024


def parse_mapping(items):
    """``["KEY=VALUE", ...]`` -> dict; the last ``=`` separates (URLs rarely end in ``=``)."""
    mapping = {}
    for item in items or []:
        key, sep, value = item.rpartition("=")
        if not sep or not key or not value:
            raise ValueError("--jwks-map %r must look like ISSUER_OR_JWKS_URI=FILE_OR_URL" % item)
        mapping[key] = value
    return mapping


def read_source(source, timeout=FETCH_TIMEOUT):
    """Bytes of a JWKS from a file path, file:// URL or http(s) URL; OSError/ValueError on failure."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        opener = urllib.request.build_opener()
        try:
            with opener.open(source, timeout=timeout) as response:
                data = response.read(MAX_JWKS_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise OSError("HTTP %s from %s" % (exc.code, source))
        except urllib.error.URLError as exc:
            raise OSError("cannot reach %s: %s" % (source, exc.reason))
    else:
        path = parsed.path if parsed.scheme == "file" else source
        with open(path, "rb") as handle:
            data = handle.read(MAX_JWKS_BYTES + 1)
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError("%s is larger than %d bytes" % (source, MAX_JWKS_BYTES))
    return data


class JwksEntry:
    def __init__(self, issuer, jwks_uri, source):
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        self.source = source
        self.jwks = None
        self.fetched_at = None
        self.next_fetch = 0.0
        self.last_error = None
        self.fetch_count = 0


class JwksStore:
    """One cached JWKS per (issuer, jwksUri) of the APIRule, refreshed on a timer only."""

    def __init__(self, authentications, mapping=None, refresh_interval=DEFAULT_REFRESH_INTERVAL,
                 log=None, clock=time.monotonic):
        mapping = mapping or {}
        self.refresh_interval = max(1, int(refresh_interval))
        self.log = log or (lambda message: None)
        self.clock = clock
        self.lock = threading.Lock()
        self.entries = {}
        for issuer, auth in authentications.items():
            source = mapping.get(auth.jwks_uri) or mapping.get(issuer) or auth.jwks_uri
            self.entries[issuer] = JwksEntry(issuer, auth.jwks_uri, source)
        unused = sorted(set(mapping) - set(self.entries) - set(a.jwks_uri for a in authentications.values()))
        for key in unused:
            self.log("warning: --jwks-map %s matches no issuer or jwksUri of the APIRule" % key)

    def refresh_due(self):
        """Fetch every entry whose time has come; returns the number of fetches made."""
        done = 0
        for entry in list(self.entries.values()):
            if self.clock() >= entry.next_fetch:
                self._fetch(entry)
                done += 1
        return done

    def _fetch(self, entry):
        first = entry.jwks is None
        try:
            jwks = envoy_jwt.parse_jwks(read_source(entry.source))
        except (OSError, ValueError) as exc:
            entry.last_error = str(exc)
            retry = min(FAILED_REFRESH_RETRY, self.refresh_interval)
            entry.next_fetch = self.clock() + retry
            if first:
                with self.lock:
                    entry.jwks = envoy_jwt.public_only_fallback()
                self.log("JWKS fetch failed for issuer %s from %s: %s; every token gets 401 "
                         "'Jwt verification fails' until a fetch succeeds (retry in %d s)"
                         % (entry.issuer, entry.source, exc, retry))
            else:
                self.log("JWKS refresh failed for issuer %s from %s: %s; keeping the last keys (retry in %d s)"
                         % (entry.issuer, entry.source, exc, retry))
            return
        with self.lock:
            changed = entry.jwks is None or entry.jwks.kids != jwks.kids or entry.last_error is not None
            entry.jwks = jwks
            entry.fetched_at = time.time()
            entry.last_error = None
            entry.fetch_count += 1
        entry.next_fetch = self.clock() + self.refresh_interval
        for problem in jwks.problems:
            self.log("JWKS for issuer %s: skipped %s" % (entry.issuer, problem))
        if changed:
            self.log("JWKS for issuer %s from %s: %s; kids %s (next refresh in %d s)"
                     % (entry.issuer, entry.source, "ok" if jwks.status == envoy_jwt.OK else jwks.status,
                        ", ".join(jwks.kids) or "-", self.refresh_interval))

    def get(self, issuer):
        with self.lock:
            entry = self.entries.get(issuer)
            return None if entry is None else entry.jwks

    def run(self, stop_event, tick=1.0):
        """Refresh loop for a background thread."""
        while not stop_event.wait(tick):
            self.refresh_due()

    def describe(self):
        return [{"issuer": e.issuer, "jwksUri": e.jwks_uri, "source": e.source,
                 "kids": e.jwks.kids if e.jwks is not None and e.last_error is None else [],
                 "error": e.last_error} for e in self.entries.values()]
