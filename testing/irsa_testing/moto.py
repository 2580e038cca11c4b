"""moto's server in a child process, on 127.0.0.1 and a free port: S3 (and STS) for the tests.

The command comes from IRSA_TEST_MOTO_SERVER, else ``moto_server`` on PATH,
else ``python -m moto.server`` when moto is importable here.  moto cannot share a
venv with botocore 1.8, so the nox rows run it from one shared modern venv.
Standard library only, Python 3.7.
"""

__all__ = ["MotoServer"]

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from irsa_testing.servers import free_port, send

# Never send loopback test traffic through a proxy from the environment.
class MotoServer(object):
    """A moto server in a child process, on 127.0.0.1 and a free port."""

    START_TIMEOUT = 30.0

    def __init__(self, executable=None):
        """Find the moto server command; raise RuntimeError if there is none."""
        self.command = self._find_command(executable)
        self.port = None
        self.process = None
        self.log_path = None
        self._log = None

    @staticmethod
    def _find_command(executable):
        """Return the command list that runs moto's server."""
        if executable:
            return [executable] if isinstance(executable, str) else list(executable)
        from_env = os.environ.get("IRSA_TEST_MOTO_SERVER")
        if from_env:
            if not (os.path.isfile(from_env) and os.access(from_env, os.X_OK)):
                raise RuntimeError(
                    "IRSA_TEST_MOTO_SERVER=%r is not an executable file" % from_env
                )
            return [from_env]
        found = shutil.which("moto_server")
        if found:
            return [found]
        if importlib.util.find_spec("moto") is not None:
            return [sys.executable, "-m", "moto.server"]
        raise RuntimeError(
            "no moto server found: run the tests through nox (./dev test), or set "
            "IRSA_TEST_MOTO_SERVER to a moto_server executable (pip install "
            "'moto[server]' in any Python >= 3.9 venv), or put moto_server on PATH"
        )

    @property
    def url(self):
        """Base URL of the running server, e.g. http://127.0.0.1:5000."""
        if self.port is None:
            raise RuntimeError("MotoServer is not started")
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        """Start the server and wait until it answers HTTP; return self."""
        if self.process is not None:
            raise RuntimeError("MotoServer is already started")
        for _ in range(3):
            try:
                self._start_once()
                return self
            except _PortTaken:
                self.stop()
        raise RuntimeError("moto server could not get a free port after 3 tries")

    def _start_once(self):
        """Launch once on a fresh port; raise _PortTaken on a port race."""
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            PYTHONUNBUFFERED="1",
        )
        self.port = free_port()
        fd, self.log_path = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        self._log = os.fdopen(fd, "wb")
        self.process = subprocess.Popen(
            self.command + ["-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                tail = self.log_tail()
                if "Address already in use" in tail:
                    raise _PortTaken()
                code = self.process.returncode
                self.stop()
                raise RuntimeError(
                    "moto server exited with code %s while starting:\n%s" % (code, tail)
                )
            try:
                send("GET", self.url + "/moto-api/", timeout=1.0)
                return
            except (OSError, socket.timeout):
                pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(
                    "moto server did not answer within %.0f s:\n%s"
                    % (self.START_TIMEOUT, tail)
                )
            time.sleep(0.1)

    def log_tail(self, lines=40):
        """Return the last lines of the server's log."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        if self._log is not None:
            self._log.flush()
        with open(self.log_path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def reset(self):
        """Forget every resource moto holds (POST /moto-api/reset)."""
        status, body = send("POST", self.url + "/moto-api/reset", data=b"", timeout=10)
        if status >= 300:
            raise RuntimeError("moto reset failed: HTTP %d %r" % (status, body[:200]))

    def stop(self):
        """Terminate the server (kill after 5 s) and remove its log."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)
        self.log_path = None
        self.port = None

    def __enter__(self):
        """Start on entering a with block."""
        return self.start()

    def __exit__(self, *exc_info):
        """Stop on leaving a with block."""
        self.stop()


class _PortTaken(Exception):
    """The port from free_port() was taken before moto bound it."""
