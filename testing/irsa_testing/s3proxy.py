"""A checking proxy in front of moto's S3: it records which key signed each request.

moto's server accepts any signature, so a test against it alone cannot tell
which credentials a client used.  :class:`S3Proxy` stands in front of it and
checks every request as S3 would: the SigV4 ``Authorization`` header must
name an access key that STS issued (``issued()`` lists them, as
:attr:`irsa_testing.servers.FakeSTS.issued` does), not yet expired, with that key's session
token, and the signature must verify with that key's secret.  Requests that
pass go on to moto; the rest get S3's 403 error.  Every request is recorded
as a :class:`Seen`.

Standard library only, and Python 3.7 syntax, like servers.py.
"""

__all__ = ["S3Proxy", "Seen", "verify", "Objects"]

import collections
import http.client
import http.server
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape

from irsa_testing import sigv4
from irsa_testing.servers import LoopbackServer

Seen = collections.namedtuple("Seen", "time method path access_key verdict user_agent")
Seen.__doc__ = "One request: its access key (None if unsigned) and 'ok' or S3's error code."

_HOP_BY_HOP = frozenset(
    "connection keep-alive proxy-authenticate proxy-authorization te trailer "
    "transfer-encoding upgrade expect host content-length".split()
)


def verify(method, target, headers, secret_key, body=b""):
    """Whether ``headers["authorization"]`` is a valid SigV4 signature by ``secret_key``.

    ``target`` is the request line's path and query as sent; ``headers`` maps
    lower-case names to lists of values.  S3's rules (see :func:`sigv4.check`);
    the key is taken as issued, live, and sent with its session token.
    """
    token = ",".join(headers.get("x-amz-security-token", [])) or None
    record = {"secret_key": secret_key, "session_token": token, "expiration": float("inf")}
    _, refusal = sigv4.check(method, target, headers, body, lambda key: record, "s3")
    return refusal is None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for curl's uploads
    server_version = "S3Proxy/1.0"
    sys_version = ""

    def _any(self):
        self.server.owner._handle(self)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    def log_message(self, format, *args):
        """Log nothing."""


class S3Proxy(LoopbackServer):
    """Checks each request's SigV4 signature against issued credentials, then forwards it.

    ``issued()`` returns dicts with ``access_key``, ``secret_key``,
    ``session_token`` and ``expiration`` (epoch seconds).  ``delay`` seconds
    are waited before each forwarded request (to stretch a read over time).
    """

    handler = _Handler

    def __init__(self, upstream_url, issued, delay=0.0, clock=time.time):
        parts = urllib.parse.urlsplit(upstream_url)
        self.upstream = (parts.hostname, parts.port or 80)
        self.issued = issued
        self.delay = delay
        self.clock = clock
        self._lock = threading.Lock()
        self._seen = []
        self._local = threading.local()

    @property
    def url(self):
        return self.base_url

    @property
    def seen(self):
        """Snapshot list of every request seen, in order."""
        with self._lock:
            return list(self._seen)

    def keys(self, verdict="ok"):
        """Access keys of the requests with ``verdict``, in first-use order."""
        found = []
        for each in self.seen:
            if each.verdict == verdict and each.access_key not in found:
                found.append(each.access_key)
        return found

    def forget(self):
        with self._lock:
            del self._seen[:]

    # -- one request --------------------------------------------------------

    def _handle(self, handler):
        headers = {}
        for name, value in handler.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        body = self._read_body(handler, headers)
        access_key, verdict = self._check(handler.command, handler.path, headers, body)
        with self._lock:
            self._seen.append(
                Seen(self.clock(), handler.command, handler.path, access_key,
                     verdict if verdict == "ok" else verdict.code,
                     (headers.get("user-agent") or [""])[0])
            )
        if verdict != "ok":
            self._reply(handler, verdict.status, {"Content-Type": "application/xml"}, _error(verdict))
            return
        if self.delay:
            time.sleep(self.delay)
        status, reply_headers, reply_body = self._forward(handler, headers, body)
        self._reply(handler, status, reply_headers, reply_body)

    @staticmethod
    def _read_body(handler, headers):
        if "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        length = int((headers.get("content-length") or ["0"])[0])
        return handler.rfile.read(length) if length else b""

    def _check(self, method, target, headers, body):
        """(the access key named, or None; "ok" or the refusal) of one request."""
        def lookup(key):
            found = [each for each in self.issued() if each["access_key"] == key]
            return found[-1] if found else None

        creds, refusal = sigv4.check(method, target, headers, body, lookup, "s3", clock=self.clock)
        key = sigv4.signer(headers)
        return key, ("ok" if refusal is None else refusal)

    def _forward(self, handler, headers, body):
        forwarded = dict(
            (name, ",".join(values)) for name, values in headers.items()
            if name not in _HOP_BY_HOP
        )
        if body or handler.command in ("PUT", "POST"):
            forwarded["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(*self.upstream, timeout=30)
                self._local.connection = connection
            try:
                connection.request(handler.command, handler.path, body=body, headers=forwarded)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        reply = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        if handler.command == "HEAD":
            reply.append(("Content-Length", response.getheader("Content-Length", "0")))
        return response.status, reply, data

    @staticmethod
    def _reply(handler, status, headers, body):
        items = headers.items() if isinstance(headers, dict) else headers
        try:
            handler.send_response(status)
            for name, value in items:
                handler.send_header(name, value)
            if handler.command != "HEAD":
                handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)
        except OSError:
            handler.close_connection = True


class _ObjectsHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Objects/1.0"
    sys_version = ""

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = self.server.owner.body if self.command == "GET" else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.owner.body) if self.command == "HEAD" else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _any

    def log_message(self, format, *args):
        """Log nothing."""


class Objects(LoopbackServer):
    """A stand-in for S3 behind the proxy where moto is too slow to time: every GET
    answers ``body``, every PUT and HEAD 200.  (It checks nothing: the proxy does.)"""

    handler = _ObjectsHandler

    def __init__(self, body=b"payload"):
        self.body = body


def _error(refusal):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
        "<RequestId>%s</RequestId></Error>"
        % (escape(refusal.code), escape(refusal.message), uuid.uuid4())
    ).encode()
