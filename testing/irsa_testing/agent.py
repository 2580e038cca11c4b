"""A fake EKS Pod Identity agent on loopback: checks the token, logs calls, misbehaves on demand.

``GET /v1/credentials`` with ``Authorization: <token>`` answers JSON credentials
when the token is the one the test expects (``expect_token`` is a callable, so a
test can rotate the token file and the agent follow it); 403 otherwise.  Faults,
first in first out: ``fail_next(status)``, ``drop_next()``, ``malformed_next()``;
``delay`` stretches every answer.  Standard library only, Python 3.7 syntax.
"""

__all__ = ["FakeAgent"]

import base64
import collections
import http.server
import json
import os
import random
import socket
import string
import threading
import time

from irsa_testing.servers import RecordingServer

PATH = "/v1/credentials"
_RANDOM = random.SystemRandom()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.owner._handle(self)

    def log_message(self, format, *args):
        pass


class FakeAgent(RecordingServer):
    """The Pod Identity agent's credentials endpoint, on 127.0.0.1 and a free port."""

    handler = _Handler

    def __init__(self, expect_token=None, duration=6 * 3600, account="111122223333"):
        self.expect_token = expect_token  # callable returning the valid token, or None: any
        self.duration = duration
        self.account = account
        self.delay = 0.0
        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._calls = []
        self._issued = []

    @property
    def url(self):
        return self.base_url + PATH

    # -- controls and records -------------------------------------------------

    def fail_next(self, n=1, status=500, message="internal error (test)"):
        self._enqueue(n, ("fail", status, message))

    def drop_next(self, n=1):
        self._enqueue(n, ("drop",))

    def malformed_next(self, n=1):
        self._enqueue(n, ("malformed",))

    def redirect_next(self, location, n=1, status=302):
        """Answer the next n calls with a redirect to ``location``."""
        self._enqueue(n, ("redirect", status, location))

    # -- one request ------------------------------------------------------------

    def _handle(self, handler):
        call = {
            "time": time.time(),
            "path": handler.path,
            "token": handler.headers.get("Authorization"),
            "answered": None,
        }
        with self._lock:
            self._calls.append(call)
            behaviour = self._queue.popleft() if self._queue else None
        if self.delay:
            time.sleep(self.delay)
        if behaviour is not None and behaviour[0] == "drop":
            call["answered"] = "drop"
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            handler.close_connection = True
            return
        if behaviour is not None and behaviour[0] == "malformed":
            call["answered"] = "malformed"
            return self._send(handler, 200, b'{"AccessKeyId": "ASIA')
        if behaviour is not None and behaviour[0] == "redirect":
            call["answered"] = behaviour[1]
            return self._send(handler, behaviour[1], b"", {"Location": behaviour[2]})
        if behaviour is not None:
            call["answered"] = behaviour[1]
            return self._send(handler, behaviour[1], json.dumps({"message": behaviour[2]}).encode())
        if handler.path != PATH:
            call["answered"] = 404
            return self._send(handler, 404, json.dumps({"message": "not found"}).encode())
        expected = self.expect_token() if self.expect_token is not None else None
        if expected is not None and call["token"] != expected:
            call["answered"] = 403
            message = "no token" if not call["token"] else "the token is not valid for this pod"
            return self._send(handler, 403, json.dumps({"message": message}).encode())
        creds = {
            "access_key": "ASIA" + "".join(_RANDOM.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
            "secret_key": base64.b64encode(os.urandom(30)).decode(),
            "session_token": "IQoJb3JpZ2luX2VjE" + base64.b64encode(os.urandom(180)).decode(),
            "expiration": int(time.time() + self.duration),
        }
        with self._lock:
            self._issued.append(creds)
        call["answered"] = 200
        body = {
            "AccessKeyId": creds["access_key"],
            "SecretAccessKey": creds["secret_key"],
            "Token": creds["session_token"],
            "AccountId": self.account,
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(creds["expiration"])),
        }
        self._send(handler, 200, json.dumps(body).encode())

    @staticmethod
    def _send(handler, status, payload, headers=None):
        try:
            handler.send_response(status)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass
