# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Start and stop tools/kyma_standin servers from the system tests (not a test module)."""

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 30


class Process:
    """A stand-in server (``gateway`` or ``jwks-server``) on a free port of 127.0.0.1."""

    def __init__(self, args, workdir, name):
        self.port_file = os.path.join(workdir, name + ".port")
        self.pid_file = os.path.join(workdir, name + ".pid")
        self.log_file = os.path.join(workdir, name + ".log")
        command = [sys.executable, "-m", "tools.kyma_standin"] + args + [
            "--port", "0", "--port-file", self.port_file, "--pid-file", self.pid_file,
            "--log-file", self.log_file]
        if "--max-seconds" not in args:
            command += ["--max-seconds", "300"]
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if os.path.exists(self.port_file):
                with open(self.port_file, encoding="ascii") as handle:
                    return int(handle.read())
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError("the stand-in did not start: %s" % self.log())

    def log(self):
        if os.path.exists(self.log_file):
            with open(self.log_file, encoding="utf-8") as handle:
                return handle.read()
        return ""

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)
