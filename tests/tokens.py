# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real PKCS#11 tokens for the tests (not a test module): SoftHSM2, and TPM 2.0 through swtpm.

Importable as ``tokens`` wherever ``helpers`` is (the suites' conftest.py put tests/ on sys.path).

``SoftHSMToken(directory)`` initialises a SoftHSM2 token in a directory of its own (a
softhsm2.conf there, selected by ``SOFTHSM2_CONF``). ``TPMToken(directory)``, as a context
manager, starts a software TPM (swtpm), a private session D-Bus, the tpm2-abrmd resource
manager on that bus, and creates a tpm2-pkcs11 store with one token; leaving the ``with`` block
stops every process it started. Both expose ``module_path``, ``label``, ``pin``, ``so_pin``,
``env`` (the variables the PKCS#11 module and its tools need), ``pin_file(path)`` and
``uri(object_label, **extra)`` (an RFC 7512 PKCS#11 URI). Tests put ``env`` into the
environment themselves: ``monkeypatch.setenv`` for in-process use, ``env=`` for subprocesses.

A PKCS#11 module reads its configuration (``SOFTHSM2_CONF``, ``TPM2_PKCS11_STORE``, ...) once,
in C_Initialize, and python-pkcs11 keeps one ``pkcs11.lib`` per module path for the whole
process: ``pkcs11_lib(token)`` initialises it again under the token's environment. That also
releases what libtpm2_pkcs11 holds per process: with tpm2-abrmd's default of 27 loaded objects
per client, one C_Initialize can generate at most 14 key pairs (each keeps its private and its
public object loaded until C_Finalize, destroyed or not).

If a token cannot be set up, ``TokenUnavailable`` says which step failed, the command (PINs
masked) and what it wrote to stderr. Several test processes can each run their own tokens at the
same time: every token has its own directory and the software TPM gets free ports (retried if
another process takes them first). The PINs are random test PINs; they appear on the command
lines of softhsm2-util and tpm2_ptool, which is acceptable for throw-away test tokens only.
"""

import ctypes
import os
import platform
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from urllib.parse import quote

START_TIMEOUT = 30
COMMAND_TIMEOUT = 120
TABRMD_NAME = "com.intel.tss2.Tabrmd"

# The Debian package behind each command, for the messages.
PACKAGES = {
    "softhsm2-util": "softhsm2",
    "swtpm": "swtpm",
    "dbus-daemon": "dbus",
    "dbus-send": "dbus (dbus-bin)",
    "tpm2-abrmd": "tpm2-abrmd",
    "tpm2_ptool": "libtpm2-pkcs11-tools",
}

# RFC 7512 attributes, in the order they are written.
URI_PATH_ATTRIBUTES = ("token", "object", "type", "id", "serial", "manufacturer", "model",
                       "library-manufacturer", "library-description", "library-version",
                       "slot-description", "slot-manufacturer", "slot-id")
URI_QUERY_ATTRIBUTES = ("module-path", "module-name", "pin-source", "pin-value")


class TokenUnavailable(Exception):
    """A token could not be set up. The message names the step, the command and its stderr."""

    def __init__(self, kind, step, command=None, detail="", secrets_to_mask=()):
        self.kind = kind
        self.step = step
        rendered = None
        if command:
            rendered = " ".join(shlex.quote(str(part)) for part in command)
            for secret in secrets_to_mask:
                if secret:
                    rendered = rendered.replace(secret, "***")
                    detail = detail.replace(secret, "***")
        self.command = rendered
        self.detail = detail.strip()
        message = "%s unavailable: step '%s' failed" % (kind, step)
        if rendered:
            message += ": `%s`" % rendered
        if self.detail:
            message += ": %s" % self.detail
        super().__init__(message)


def multiarch():
    """The Debian multiarch triplet of this machine (x86_64-linux-gnu, aarch64-linux-gnu, ...)."""
    return sysconfig.get_config_var("MULTIARCH") or "%s-linux-gnu" % platform.machine()


def _first_file(paths):
    for path in paths:
        if os.path.isfile(path):
            return path
    return None


def softhsm2_module_candidates():
    """Where distributions install libsofthsm2.so, most likely first."""
    return ["/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/%s/softhsm/libsofthsm2.so" % multiarch(),
            "/usr/lib64/pkcs11/libsofthsm2.so",
            "/usr/lib/pkcs11/libsofthsm2.so",
            "/usr/local/lib/softhsm/libsofthsm2.so"]


def tpm2_pkcs11_module_candidates():
    """Where distributions install libtpm2_pkcs11.so, most likely first."""
    return ["/usr/lib/%s/pkcs11/libtpm2_pkcs11.so" % multiarch(),
            "/usr/lib/%s/libtpm2_pkcs11.so.1" % multiarch(),
            "/usr/lib64/pkcs11/libtpm2_pkcs11.so",
            "/usr/lib/pkcs11/libtpm2_pkcs11.so",
            "/usr/local/lib/pkcs11/libtpm2_pkcs11.so"]


def pkcs11_uri(path_attributes, query_attributes):
    """An RFC 7512 URI from two dicts of attributes (values None are left out).

    Values are str or bytes (``id`` is a byte string: every byte is percent-encoded). Everything
    but the unreserved characters is percent-encoded, in the query everything but "/" as well,
    which RFC 7512 allows everywhere and which keeps ";", "?", "&", "=" and "%" in labels from
    being read as delimiters.
    """
    def encode(value, safe):
        if isinstance(value, bytes):
            return "".join("%%%02X" % byte for byte in value)
        return quote(str(value), safe=safe)

    unknown = (set(path_attributes) - set(URI_PATH_ATTRIBUTES)) | (set(query_attributes) - set(URI_QUERY_ATTRIBUTES))
    if unknown:
        raise ValueError("not an RFC 7512 attribute: %s" % ", ".join(sorted(unknown)))
    path = ";".join("%s=%s" % (name, encode(path_attributes[name], ""))
                    for name in URI_PATH_ATTRIBUTES if path_attributes.get(name) is not None)
    query = "&".join("%s=%s" % (name, encode(query_attributes[name], "/"))
                     for name in URI_QUERY_ATTRIBUTES if query_attributes.get(name) is not None)
    return "pkcs11:" + path + ("?" + query if query else "")


def _run(kind, step, command, env, secrets_to_mask=(), timeout=COMMAND_TIMEOUT):
    """Run one set-up command; TokenUnavailable unless it exits 0."""
    try:
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, check=False)
    except FileNotFoundError:
        raise TokenUnavailable(kind, step, command, "%s is not installed (Debian package %s)"
                               % (command[0], PACKAGES.get(command[0], "?")), secrets_to_mask) from None
    except subprocess.TimeoutExpired as error:
        raise TokenUnavailable(kind, step, command, "no exit after %d s; stderr: %s"
                               % (timeout, (error.stderr or b"").decode("utf-8", "replace")),
                               secrets_to_mask) from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip()
        stdout = done.stdout.decode("utf-8", "replace").strip()
        raise TokenUnavailable(kind, step, command, "exit status %d; stderr: %s%s"
                               % (done.returncode, stderr or "(empty)", "; stdout: " + stdout if stdout else ""),
                               secrets_to_mask)
    return done


class _Token:
    """What both kinds of token expose."""

    kind = "PKCS#11 token"

    def __init__(self, directory, label, pin, so_pin):
        self._remove_directory = directory is None
        self._parent = tempfile.gettempdir() if directory is None else str(directory)
        self.directory = None
        self.label = label
        self.pin = pin if pin is not None else secrets.token_hex(8)
        self.so_pin = so_pin if so_pin is not None else secrets.token_hex(8)
        self.module_path = None
        self.env = {}
        self.timings = {}
        self.setup_seconds = None

    def _timed(self, step, function, *args):
        start = time.monotonic()
        result = function(*args)
        self.timings[step] = time.monotonic() - start
        return result

    def _module(self, candidates, library, package):
        path = _first_file(candidates)
        if path is None:
            raise TokenUnavailable(self.kind, "find " + library, None, "none of %s exists (Debian package %s)"
                                   % (", ".join(candidates), package))
        return path

    def _tool_env(self):
        environment = dict(os.environ)
        environment.update(self.env)
        return environment

    def pin_file(self, path):
        """Write the user PIN (no newline) to ``path``, mode 0600; returns the path."""
        path = str(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, self.pin.encode("utf-8"))
        finally:
            os.close(fd)
        return path

    def uri(self, object_label=None, **extra):
        """RFC 7512 URI of an object of this token (of the token itself when object_label is None).

        ``pkcs11:token=<label>;object=<object_label>;type=private?module-path=<module_path>``;
        ``extra`` adds or replaces attributes, "_" standing for "-" (``id=b"\\x01"``,
        ``type="public"``, ``pin_source="file:/path"``, ``module_path=None`` to leave it out).
        """
        attributes = {"token": self.label, "object": object_label,
                      "type": "private" if object_label is not None else None,
                      "module-path": self.module_path}
        for name, value in extra.items():
            attributes[name.replace("_", "-")] = value
        path = {name: value for name, value in attributes.items() if name not in URI_QUERY_ATTRIBUTES}
        query = {name: value for name, value in attributes.items() if name in URI_QUERY_ATTRIBUTES}
        return pkcs11_uri(path, query)

    def _remove(self):
        if self._remove_directory and self.directory and os.path.isdir(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)


class SoftHSMToken(_Token):
    """A SoftHSM2 token, initialised at once in a new directory below ``directory``.

    ``directory`` None means the system's temporary directory; only then does ``close()`` (or
    leaving a ``with`` block) remove the token's files.
    """

    kind = "SoftHSM2 token"

    def __init__(self, directory=None, label="selfjwt-test", pin=None, so_pin=None):
        super().__init__(directory, label, pin, so_pin)
        start = time.monotonic()
        self.module_path = self._module(softhsm2_module_candidates(), "libsofthsm2.so", "softhsm2")
        os.makedirs(self._parent, exist_ok=True)
        self.directory = tempfile.mkdtemp(prefix="softhsm-", dir=self._parent)
        tokendir = os.path.join(self.directory, "tokens")
        os.mkdir(tokendir, 0o700)
        conf = os.path.join(self.directory, "softhsm2.conf")
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % tokendir)
        self.env = {"SOFTHSM2_CONF": conf}
        try:
            self._timed("softhsm2-util --init-token", _run, self.kind, "initialise the token",
                        ["softhsm2-util", "--init-token", "--free", "--label", self.label,
                         "--pin", self.pin, "--so-pin", self.so_pin],
                        self._tool_env(), (self.pin, self.so_pin))
        except BaseException:
            self._remove()
            raise
        self.setup_seconds = time.monotonic() - start

    def init_token(self, label):
        """Initialise one more token, labelled ``label``, in the same store, with the same PINs."""
        _run(self.kind, "initialise the token " + label,
             ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", self.pin, "--so-pin", self.so_pin],
             self._tool_env(), (self.pin, self.so_pin))

    def close(self):
        """Remove the token's files if they are in the system's temporary directory."""
        self._remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _free_port_pair():
    """A TCP port P of 127.0.0.1 such that P and P + 1 are free (the swtpm TCTI wants both)."""
    for _attempt in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise OSError("no two consecutive free TCP ports on 127.0.0.1")


_LIBC = None


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies, so nothing outlives a crash."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


class TPMToken(_Token):
    """A tpm2-pkcs11 token on a software TPM; a context manager (``start()`` / ``stop()``).

    ``directory`` None means the system's temporary directory; only then does ``stop()`` remove
    the token's files (TPM state, store, logs). ``processes`` maps each started program to its
    ``subprocess.Popen``; ``port`` is swtpm's server port (its control port is ``port + 1``).
    """

    kind = "TPM 2.0 token"

    def __init__(self, directory=None, label="selfjwt-tpm", pin=None, so_pin=None):
        super().__init__(directory, label, pin, so_pin)
        self.processes = {}
        self.port = None
        self._bus_dir = None
        self._dbus_stdout = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        """Start swtpm, dbus-daemon and tpm2-abrmd; create the store and the token."""
        global _LIBC  # pylint: disable=global-statement
        if _LIBC is None:
            try:
                _LIBC = ctypes.CDLL(None, use_errno=True)
            except OSError:
                pass
        start = time.monotonic()
        try:
            self.module_path = self._module(tpm2_pkcs11_module_candidates(), "libtpm2_pkcs11.so",
                                            "libtpm2-pkcs11-1")
            self.directory = tempfile.mkdtemp(prefix="tpm-", dir=self._parent)
            self._timed("start swtpm", self._start_swtpm)
            self._timed("start dbus-daemon", self._start_dbus)
            self._timed("start tpm2-abrmd", self._start_abrmd)
            primary = self._timed("tpm2_ptool init", self._ptool_init)
            self._timed("tpm2_ptool addtoken", self._ptool_addtoken, primary)
        except BaseException:
            self.stop()
            raise
        self.setup_seconds = time.monotonic() - start

    def stop(self):
        """Stop every process this token started (also after a failed start); wait for each."""
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(list(self.processes.values())):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dbus_stdout is not None:
            self._dbus_stdout.close()
            self._dbus_stdout = None
        if self._bus_dir is not None:
            shutil.rmtree(self._bus_dir, ignore_errors=True)
            self._bus_dir = None
        self._remove()

    def _spawn(self, name, command, env, log, stdout=None):
        try:
            with open(log, "ab") as log_file:
                proc = subprocess.Popen(  # pylint: disable=consider-using-with,subprocess-popen-preexec-fn
                    command, env=env, stdin=subprocess.DEVNULL, stdout=stdout or log_file, stderr=log_file,
                    start_new_session=True, preexec_fn=_die_with_parent)
        except FileNotFoundError:
            raise TokenUnavailable(self.kind, "start " + name, command, "%s is not installed (Debian package %s)"
                                   % (command[0], PACKAGES.get(command[0], "?"))) from None
        self.processes[name] = proc
        return proc

    def _exited(self, step, name, command, log):
        proc = self.processes[name]
        return TokenUnavailable(self.kind, step, command, "exited with status %s; stderr: %s"
                                % (proc.returncode, _read(log) or "(empty)"))

    def _start_swtpm(self):
        state = os.path.join(self.directory, "swtpm")
        os.mkdir(state, 0o700)
        pid_file = os.path.join(self.directory, "swtpm.pid")
        log = os.path.join(self.directory, "swtpm.log")
        for attempt in range(5):
            port = _free_port_pair()
            command = ["swtpm", "socket", "--tpm2", "--tpmstate", "dir=%s" % state,
                       "--server", "type=tcp,port=%d,bindaddr=127.0.0.1" % port,
                       "--ctrl", "type=tcp,port=%d,bindaddr=127.0.0.1" % (port + 1),
                       "--flags", "not-need-init,startup-clear", "--pid", "file=%s" % pid_file]
            open(log, "wb").close()  # pylint: disable=consider-using-with
            proc = self._spawn("swtpm", command, None, log)
            # swtpm writes its pid file once both sockets listen.
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if _read(pid_file) == str(proc.pid):
                    self.port = port
                    return
                if proc.poll() is not None:
                    break
                time.sleep(0.01)
            else:
                raise TokenUnavailable(self.kind, "start swtpm", command, "no pid file after %d s; stderr: %s"
                                       % (START_TIMEOUT, _read(log) or "(empty)"))
            # Another process took one of the two ports between the check and swtpm's bind.
            if "Address already in use" in _read(log) and attempt < 4:
                del self.processes["swtpm"]
                continue
            raise self._exited("start swtpm", "swtpm", command, log)

    def _start_dbus(self):
        # A short directory of its own: a unix socket path must stay below 108 bytes.
        self._bus_dir = tempfile.mkdtemp(prefix="selfjwt-bus-")
        log = os.path.join(self.directory, "dbus-daemon.log")
        command = ["dbus-daemon", "--session", "--nofork", "--nopidfile",
                   "--address=unix:path=%s" % os.path.join(self._bus_dir, "bus"), "--print-address=1"]
        environment = {key: value for key, value in os.environ.items() if not key.startswith("DBUS_")}
        proc = self._spawn("dbus-daemon", command, environment, log, stdout=subprocess.PIPE)
        self._dbus_stdout = proc.stdout
        # dbus-daemon prints its address once it listens.
        readable = select.select([proc.stdout], [], [], START_TIMEOUT)[0]
        address = proc.stdout.readline().decode("utf-8", "replace").strip() if readable else ""
        if not address:
            if proc.poll() is None:
                raise TokenUnavailable(self.kind, "start dbus-daemon", command, "no address after %d s; stderr: %s"
                                       % (START_TIMEOUT, _read(log) or "(empty)"))
            raise self._exited("start dbus-daemon", "dbus-daemon", command, log)
        self.env["DBUS_SESSION_BUS_ADDRESS"] = address

    def _start_abrmd(self):
        log = os.path.join(self.directory, "tpm2-abrmd.log")
        command = ["tpm2-abrmd", "--session", "--allow-root", "--tcti=swtpm:host=127.0.0.1,port=%d" % self.port]
        proc = self._spawn("tpm2-abrmd", command, self._tool_env(), log)
        ask = ["dbus-send", "--session", "--dest=org.freedesktop.DBus", "--type=method_call", "--print-reply",
               "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", "string:" + TABRMD_NAME]
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise self._exited("start tpm2-abrmd", "tpm2-abrmd", command, log)
            done = _run(self.kind, "wait for tpm2-abrmd on the session bus", ask, self._tool_env())
            if b"boolean true" in done.stdout:
                self.env["TPM2TOOLS_TCTI"] = "tabrmd:bus_type=session"
                self.env["TPM2_PKCS11_TCTI"] = "tabrmd:bus_type=session"
                return
            time.sleep(0.02)
        raise TokenUnavailable(self.kind, "wait for tpm2-abrmd on the session bus", command,
                               "%s not registered after %d s; tpm2-abrmd log: %s"
                               % (TABRMD_NAME, START_TIMEOUT, _read(log) or "(empty)"))

    def _ptool_init(self):
        store = os.path.join(self.directory, "store")
        os.mkdir(store, 0o700)
        self.env["TPM2_PKCS11_STORE"] = store
        done = _run(self.kind, "tpm2_ptool init", ["tpm2_ptool", "init"], self._tool_env())
        match = re.search(r"^id:\s*(\d+)\s*$", done.stdout.decode("utf-8", "replace"), re.M)
        return int(match.group(1)) if match else 1

    def _ptool_addtoken(self, primary):
        _run(self.kind, "tpm2_ptool addtoken",
             ["tpm2_ptool", "addtoken", "--pid=%d" % primary, "--label", self.label,
              "--userpin", self.pin, "--sopin", self.so_pin],
             self._tool_env(), (self.pin, self.so_pin))


def pkcs11_lib(token):
    """python-pkcs11's ``lib`` of ``token.module_path``, initialised again under ``token.env``.

    ``token.env`` must already be in os.environ (``monkeypatch.setenv``): the module reads it in
    C_Initialize. The re-initialisation also closes every session still open on that module.
    """
    import pkcs11  # pylint: disable=import-outside-toplevel,import-error

    differing = sorted(name for name, value in token.env.items() if os.environ.get(name) != value)
    if differing:
        raise RuntimeError("set the token's environment first (monkeypatch.setenv): %s" % ", ".join(differing))
    lib = pkcs11.lib(token.module_path)
    lib.reinitialize()
    return lib


def use_token(monkeypatch, token):
    """Point this process at ``token``: its environment set, its PKCS#11 module initialised again.

    A module run is one process, so _pkcs11 keeps the module loaded; an in-process test that
    makes a new token must initialise it again (see :func:`pkcs11_lib`). Returns ``token``.
    """
    for name, value in token.env.items():
        monkeypatch.setenv(name, value)
    pkcs11_lib(token)
    return token
