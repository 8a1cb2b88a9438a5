# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Section 8: signing keys in a PKCS#11 token (SoftHSM2) against key files.

A SoftHSM2 token is initialised in a fresh directory below .cache/bench/work with
tests/tokens.py's ``SoftHSMToken`` (``SOFTHSM2_CONF`` points this process at it); its key pairs
are generated inside the token by ``_pkcs11`` (sensitive, not extractable; checked), the PIN is
read from a 0600 file. Per algorithm (ES256 on P-256, RS256 on RSA-2048), four candidates run
in-process, interleaved in shuffled rounds of windows like the mint section:

* ``file``: ``_token.mint`` with the key object loaded once from its PEM file;
* ``softhsm2``: ``_token.mint`` with the token's key object: the steady rate of a signer that
  keeps its session. Each window opens and logs in to a session before its clock starts and
  closes it after, so no session is open while another candidate runs (a PKCS#11 login is per
  token and process: a second login while a session is logged in fails);
* ``file first token``: load the key file, then the first token (its signature is verified
  once, as for every new key object);
* ``softhsm2 first token``: parse the URI, read the PIN file, open a session, log in, find the
  key and its public half, the first token, close the session.

A refresher process pays the first-token cost for every token it writes, plus the start of
Python and the loading of the PKCS#11 library (``C_Initialize``), which only fresh processes
show. Ratios are SoftHSM2 / file, of the medians and of the windows of the same round; CPU
time is the process's (SoftHSM2 signs inside it), wall time is recorded beside it.

The refresher's cost per token, as fresh processes like the refresher section: one local edge
host is provisioned with ``selfjwt.kyma.edge_keys`` (bench/refresher.py's playbook: EC P-256 key
file, refresher installed, scheduler ``none``), an RSA-2048 key file is added beside it, and two
more refresher configurations name the SoftHSM2 keys (``key.pkcs11_uri``,
``key.pkcs11_pin_file``). Candidates per algorithm, interleaved: ``selfjwt-token --force`` with
the key file and with the SoftHSM2 key (load the key or open the token, mint, write the token
file atomically, print), every printed token checked against its key first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time

import harness
import keys
import mint
import refresher

TESTS_DIR = os.path.join(harness.ROOT, "tests")

#: label, cached file key (keys.py), key pair generated in the token, algorithm
ALGORITHMS = (
    ("ES256", "p256", ("ec", None, "P-256"), "ES256"),
    ("RS256-2048", "rsa2048", ("rsa", 2048, None), "RS256"),
)
CANDIDATES = ("file", "softhsm2", "file first token", "softhsm2 first token")
TOKEN_LABEL = "bench"


def _tokens_module():
    sys.path.insert(0, TESTS_DIR)
    try:
        import tokens  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.remove(TESTS_DIR)
    return tokens


def window(function, count):
    """CPU and wall seconds per call of ``function`` over ``count`` back-to-back calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _index in range(count):
        function()
    return {"cpu": (time.process_time() - cpu) / count, "wall": (time.perf_counter() - wall) / count}


def window_in(opened, count):
    """``window`` of the function that the context manager ``opened()`` yields; opening and closing are not timed."""
    with opened() as function:
        return window(function, count)


@contextlib.contextmanager
def _as_is(function):
    yield function


class Setup(object):
    """The token, its key pairs, the PIN file and the candidates; ``close()`` when done.

    ``activate(token)`` points this process's PKCS#11 library at the new token. The default sets
    the token's environment (SOFTHSM2_CONF), which SoftHSM2 reads when this process loads it: the
    bench loads it only here. A test process that may have loaded it already passes the tests'
    helper that also initialises the library again.
    """

    def __init__(self, work, activate=None):
        from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11

        self.saved_environment = {}
        self.token = _tokens_module().SoftHSMToken(work, label=TOKEN_LABEL)
        (activate or self._set_environment)(self.token)
        self.module_path = self.token.module_path
        self.env = dict(self.token.env)
        self.pin_file = self.token.pin_file(os.path.join(work, "token.pin"))
        self.uris, self.public_keys = {}, {}
        for label, _file_key, (key_type, size, curve), _algorithm in ALGORITHMS:
            uri = self.token.uri("bench-" + label.lower())
            with _pkcs11.open_session(_pkcs11.parse_uri(uri), self.token.pin, write=True) as session:
                key = session.generate(key_type, size, curve)
                facts = key.facts()
            if facts["extractable"] or not facts["sensitive"]:
                raise RuntimeError("SoftHSM2 made %s extractable or not sensitive: %r" % (uri, facts))
            self.uris[label], self.public_keys[label] = uri, key.public_key()
        self.token_facts = facts["token"]

    def _set_environment(self, token):
        for name, value in token.env.items():
            self.saved_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def candidates(self, label, file_key):
        """name -> (context manager factory that yields a function returning a TokenResult, public key)."""
        from ansible_collections.selfjwt.kyma.plugins.module_utils import _keys, _pkcs11, _token

        key_path = keys.ensure_key(file_key)
        file_key_object = _token.load_key(path=key_path)
        uri, pin_file = self.uris[label], self.pin_file

        @contextlib.contextmanager
        def steady():
            session, key = _pkcs11.open_key(uri, pin_file=pin_file)
            with session:
                _token.mint(key, **mint.TOKEN_OPTIONS)  # the first token of a key object is verified once: not timed
                yield lambda: _token.mint(key, **mint.TOKEN_OPTIONS)

        def file_first_token():
            return _token.mint(_token.load_key(path=key_path), **mint.TOKEN_OPTIONS)

        def softhsm2_first_token():
            session, key = _pkcs11.open_key(uri, pin_file=pin_file)
            with session:
                return _token.mint(key, **mint.TOKEN_OPTIONS)

        file_public = _keys.public_key_of(file_key_object)
        return {
            "file": (lambda: _as_is(lambda: _token.mint(file_key_object, **mint.TOKEN_OPTIONS)), file_public),
            "softhsm2": (steady, self.public_keys[label]),
            "file first token": (lambda: _as_is(file_first_token), file_public),
            "softhsm2 first token": (lambda: _as_is(softhsm2_first_token), self.public_keys[label]),
        }

    def close(self):
        for name, value in self.saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.saved_environment = {}


def _check(function, public_key, algorithm):
    """Every candidate makes a real token: it verifies with the key's public half, twice in a row."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _jws

    for _index in range(2):
        result = function()
        _jws.verify(result.token, public_key, algorithm)
        if result.header["kid"] != _jwk.key_thumbprint(public_key):
            raise RuntimeError("the token's kid is not the RFC 7638 thumbprint of its key")


def _ratio_entry(samples, numerator, denominator):
    return {
        "cpu": harness.ratio(harness.median(samples["cpu"][numerator]), harness.median(samples["cpu"][denominator])),
        "wall": harness.ratio(harness.median(samples["wall"][numerator]), harness.median(samples["wall"][denominator])),
        "paired_cpu": harness.summary(harness.paired_ratios(samples["cpu"][numerator], samples["cpu"][denominator]),
                                      digits=3),
    }


def summarize(samples, labels):
    """Per algorithm: microseconds per token, tokens per CPU second and SoftHSM2 / file ratios.

    ``samples`` maps (label, candidate) to a list of {"cpu": s, "wall": s} window samples.
    """
    results = []
    for label in labels:
        per = dict((clock, dict((name, [sample[clock] for sample in samples[(label, name)]]) for name in CANDIDATES))
                   for clock in ("cpu", "wall"))
        medians = dict((name, harness.median(per["cpu"][name])) for name in CANDIDATES)
        results.append({
            "algorithm": label,
            "us_per_token": dict((name, harness.summary(per["cpu"][name], scale=1e6, digits=1)) for name in CANDIDATES),
            "wall_us_per_token": dict((name, harness.summary(per["wall"][name], scale=1e6, digits=1))
                                      for name in CANDIDATES),
            "tokens_per_cpu_second": dict((name, round(1.0 / medians[name])) for name in CANDIDATES if medians[name]),
            "ratio_softhsm2_to_file": _ratio_entry(per, "softhsm2", "file"),
            "ratio_first_token_softhsm2_to_file": _ratio_entry(per, "softhsm2 first token", "file first token"),
        })
    return results


def _token_config(base, label, setup):
    """A refresher configuration beside the role's whose key is the SoftHSM2 key of ``label``."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _files

    with open(os.path.join(base, "lib", "refresher.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    config["key"].update(path=None, passphrase_file=None, kid=None, algorithm=None,
                         pkcs11_uri=setup.uris[label], pkcs11_pin_file=setup.pin_file)
    config["token_file"]["path"] = os.path.join(base, "state", "token-softhsm2-%s" % label.lower())
    path = os.path.join(base, "lib", "refresher-softhsm2-%s.json" % label.lower())
    _files.write_atomic(path, json.dumps(config, indent=2).encode("utf-8"), mode=0o644)
    return path


def measure_refresher(quick, rng, setup, work):
    """CPU and wall time of ``selfjwt-token --force`` per backend and algorithm, fresh processes, interleaved."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jws, _keys, _token

    harness.log("pkcs11: provisioning one edge host with edge_keys for the refresher")
    base = refresher._provision(work)  # pylint: disable=protected-access
    command = os.path.join(base, "bin", "selfjwt-token")
    file_configs = {"ES256": os.path.join(base, "lib", "refresher.json"),
                    "RS256-2048": refresher._rsa_config(base)}  # pylint: disable=protected-access
    env = dict(os.environ, **setup.env)
    candidates = {}
    for label, _file_key, _spec, algorithm in ALGORITHMS:
        with open(file_configs[label], encoding="utf-8") as handle:
            key_path = json.load(handle)["key"]["path"]
        for backend, config, public_key in (
                ("file", file_configs[label], _keys.public_key_of(_token.load_key(path=key_path))),
                ("softhsm2", _token_config(base, label, setup), setup.public_keys[label])):
            argv = [command, "--config", config, "--force"]
            for _index in range(2):  # warm up, then check that the printed token is real
                printed = harness.run_timed(argv, env=env)[1]
            _jws.verify(printed.strip(), public_key, algorithm)
            candidates[(label, backend)] = lambda argv=argv: harness.wall_and_cpu(argv, env=env)
    rounds = 5 if quick else 20
    harness.log("pkcs11: refresher, %d rounds of %d commands" % (rounds, len(candidates)))
    both = harness.interleave(candidates, rounds, rng)
    result = {"rounds": rounds, "ms": {}, "ratios": {}}
    for clock in ("wall", "cpu"):
        samples = harness.split_samples(both, clock)
        for (label, backend), values in sorted(samples.items()):
            result["ms"].setdefault(clock, {}).setdefault(label, {})[backend] = harness.summary(
                values, scale=1000.0, digits=1)
        for label, _file_key, _spec, _algorithm in ALGORITHMS:
            mine, peer = samples[(label, "softhsm2")], samples[(label, "file")]
            result["ratios"].setdefault(label, {})[clock] = {
                "ratio": harness.ratio(harness.median(mine), harness.median(peer)),
                "paired": harness.summary(harness.paired_ratios(mine, peer), digits=3),
            }
    return result


def run(quick, rng):
    harness.import_collection()
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11

    _pkcs11.check_library()
    rounds = 5 if quick else 25
    seconds = 0.02 if quick else 0.05
    work = os.path.join(harness.WORK_DIR, "pkcs11")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, mode=0o700)
    harness.log("pkcs11: SoftHSM2 tokens in %s" % work)
    setup = Setup(work)
    try:
        candidates = {}
        for label, file_key, _spec, algorithm in ALGORITHMS:
            for name, (opened, public_key) in setup.candidates(label, file_key).items():
                with opened() as function:
                    _check(function, public_key, algorithm)
                    candidates[(label, name)] = (opened, harness.calibrate(function, seconds))
        harness.log("pkcs11: %d rounds of %d windows" % (rounds, len(candidates)))
        samples = harness.interleave(
            dict((key, (lambda o=o, n=n: window_in(o, n))) for key, (o, n) in candidates.items()), rounds, rng)
        refresher_result = measure_refresher(quick, rng, setup, work)
    finally:
        setup.close()
    return {
        "rounds": rounds,
        "window_seconds": seconds,
        "module_path": setup.module_path,
        "token": dict((name, setup.token_facts[name]) for name in ("manufacturer", "model")),
        "algorithms": summarize(samples, [label for label, _file_key, _spec, _algorithm in ALGORITHMS]),
        "refresher": refresher_result,
    }
