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

__all__ = ["S3Proxy", "Seen", "verify"]

import collections
import hashlib
import hmac
import http.client
import http.server
import re
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape

from irsa_testing.servers import LoopbackServer

Seen = collections.namedtuple("Seen", "time method path access_key verdict user_agent")
Seen.__doc__ = "One request: its access key (None if unsigned) and 'ok' or S3's error code."

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<scope>[^,\s]+),\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)\s*$"
)
_HOP_BY_HOP = frozenset(
    "connection keep-alive proxy-authenticate proxy-authorization te trailer "
    "transfer-encoding upgrade expect host content-length".split()
)
_MESSAGES = {
    "AccessDenied": "Access Denied (the request was not signed)",
    "InvalidAccessKeyId": "The AWS Access Key Id you provided does not exist in our records.",
    "ExpiredToken": "The provided token has expired.",
    "InvalidToken": "The provided token is malformed or otherwise invalid.",
    "SignatureDoesNotMatch": "The request signature we calculated does not match the "
    "signature you provided.",
}


def _quote(text):
    return urllib.parse.quote(text, safe="-_.~")


def _canonical_query(query):
    pairs = []
    for part in query.split("&") if query else ():
        key, _, value = part.partition("=")
        pairs.append((_quote(urllib.parse.unquote(key)), _quote(urllib.parse.unquote(value))))
    return "&".join("%s=%s" % pair for pair in sorted(pairs))


def verify(method, target, headers, secret_key, body=b""):
    """Whether ``headers["authorization"]`` is a valid SigV4 signature by ``secret_key``.

    ``target`` is the request line's path and query as sent; ``headers`` maps
    lower-case names to lists of values.  S3 rules: the path is not normalised
    (no ``.`` or ``//`` removed) but, like the query, is compared URI-encoded
    once, however the client escaped it on the wire (the AWS SDK for C++ of
    pyarrow 6 sends ``key=value`` raw and signs it as ``key%3Dvalue``); the
    payload hash is ``x-amz-content-sha256``.
    """
    match = _AUTH.match(" ".join(headers.get("authorization", [""])))
    if match is None:
        return False
    path, _, query = target.partition("?")
    signed = match.group("headers").split(";")
    canonical_headers = "".join(
        "%s:%s\n" % (name, ",".join(" ".join(v.split()) for v in headers.get(name, [])))
        for name in signed
    )
    payload = (headers.get("x-amz-content-sha256") or [hashlib.sha256(body).hexdigest()])[0]
    canonical = "\n".join(
        [method, urllib.parse.quote(urllib.parse.unquote(path or "/"), safe="-_.~/"),
         _canonical_query(query), canonical_headers,
         match.group("headers"), payload]
    )
    scope = match.group("scope")
    date, region, service = scope.split("/")[:3]
    amz_date = (headers.get("x-amz-date") or [""])[0]
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group("signature"))


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
                Seen(self.clock(), handler.command, handler.path, access_key, verdict,
                     (headers.get("user-agent") or [""])[0])
            )
        if verdict != "ok":
            self._reply(handler, 403, {"Content-Type": "application/xml"}, _error(verdict))
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
        match = _AUTH.match(" ".join(headers.get("authorization", [""])))
        if match is None:
            return None, "AccessDenied"
        key = match.group("key")
        found = [each for each in self.issued() if each["access_key"] == key]
        if not found:
            return key, "InvalidAccessKeyId"
        creds = found[-1]
        if self.clock() >= creds["expiration"]:
            return key, "ExpiredToken"
        if (headers.get("x-amz-security-token") or [None])[0] != creds["session_token"]:
            return key, "InvalidToken"
        if not verify(method, target, headers, creds["secret_key"], body):
            return key, "SignatureDoesNotMatch"
        return key, "ok"

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


def _error(code):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
        "<RequestId>%s</RequestId></Error>" % (escape(code), escape(_MESSAGES[code]), uuid.uuid4())
    ).encode()
