"""Loopback test servers: a base class, a recording base, and a fake STS that misbehaves on demand.

:class:`LoopbackServer` serves a handler on 127.0.0.1 and a free port from a
background thread; :class:`RecordingServer` adds queued misbehaviour and records
of calls and issued credentials; :class:`FakeSTS` is AssumeRoleWithWebIdentity
and GetCallerIdentity on top of them.  Standard library only, and Python 3.7, so
every row of the test matrix (even the one with boto3 1.4.8 and no moto
installed) can use it.
"""

__all__ = [
    "free_port", "send", "LoopbackServer", "RecordingServer", "FakeSTS", "DEFAULT_STATUS", "ProxyTrap",
]

import base64
import collections
import hashlib
import http.server
import os
import random
import socket
import socketserver
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from xml.sax.saxutils import escape

from irsa_testing import sigv4
from irsa_testing.tokens import claims_of

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"

#: HTTP status that real STS gives for each error code (400 when not listed).
DEFAULT_STATUS = {
    "Throttling": 400,
    "IDPCommunicationError": 400,
    "IDPRejectedClaim": 403,
    "InvalidIdentityToken": 400,
    "ExpiredTokenException": 400,
    "ValidationError": 400,
    "MalformedPolicyDocument": 400,
    "PackedPolicyTooLarge": 400,
    "InvalidAction": 400,
    "AccessDenied": 403,
    "InvalidClientTokenId": 403,
    "RegionDisabledException": 403,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}

_DEFAULT_MESSAGES = {
    "Throttling": "Rate exceeded",
    "IDPCommunicationError": "Couldn't retrieve verification key from your identity provider",
    "IDPRejectedClaim": "Identity provider rejected the claim",
    "InvalidIdentityToken": "Incorrect token audience",
    "ExpiredTokenException": "Token expired: current date/time must be before the expiration date/time",
    "AccessDenied": "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    "InvalidClientTokenId": "The security token included in the request is invalid.",
    "InternalFailure": "An internal error has occurred",
    "ServiceUnavailable": "Service is unavailable, please try again later",
}

_RANDOM = random.SystemRandom()
_UPPER_ALNUM = string.ascii_uppercase + string.digits


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def send(method, url, data=None, headers=None, timeout=2.0):
    """Send one request to a loopback server, never through a proxy; return (status,
    body), HTTP error answers included."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Threaded HTTP server that never prints tracebacks."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        """Stay quiet when a client goes away mid-answer."""


class LoopbackServer(object):
    """A test server's HTTP side: 127.0.0.1 and a free port, served by a background thread.

    A subclass names its request handler class in ``handler``; the handler
    reaches the subclass's object as ``self.server.owner``.  ``_stopping`` is set
    when the server stops, for answers that wait.
    """

    handler = None
    _server = None
    _thread = None

    def start(self):
        """Listen in a background thread; return self."""
        if self._server is not None:
            raise RuntimeError("%s is already started" % type(self).__name__)
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self.handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        """Stop listening; answers still waiting are abandoned."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        self._thread.join(5)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def base_url(self):
        """e.g. http://127.0.0.1:54321"""
        if self._server is None:
            raise RuntimeError("%s is not started" % type(self).__name__)
        return "http://127.0.0.1:%d" % self._server.server_address[1]


class RecordingServer(LoopbackServer):
    """A fake that queues misbehaviour, records its calls and what it issued.

    A subclass sets ``_lock``, ``_queue``, ``_calls`` and ``_issued`` in its
    ``__init__``; its handler appends to them under ``_lock``.
    """

    def _enqueue(self, n, action):
        """Queue one behaviour for the next n calls."""
        with self._lock:
            self._queue.extend([action] * int(n))

    @property
    def calls(self):
        """Snapshot list of every call (dicts: time, what was sent, what was answered)."""
        with self._lock:
            return list(self._calls)

    @property
    def call_count(self):
        """Number of calls received so far."""
        with self._lock:
            return len(self._calls)

    @property
    def issued(self):
        """Snapshot list of credentials handed out: access_key, secret_key, session_token, expiration."""
        with self._lock:
            return list(self._issued)


class _TrapHandler(http.server.BaseHTTPRequestHandler):
    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.owner._lock:
            self.server.owner._seen.append((self.command, self.path, dict(self.headers.items()), body))
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_CONNECT = _any

    def log_message(self, format, *args):
        """Log nothing."""


class ProxyTrap(LoopbackServer):
    """An HTTP proxy that forwards nothing: it records each request it gets, answers 502.

    Set ``HTTP_PROXY`` to its ``base_url`` to see what a client would have sent
    through a proxy; ``seen`` lists (method, target, headers, body).
    """

    handler = _TrapHandler

    def __init__(self):
        self._lock = threading.Lock()
        self._seen = []

    @property
    def seen(self):
        with self._lock:
            return list(self._seen)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Hands every request to the FakeSTS that owns the server."""

    server_version = "FakeSTS/1.0"
    sys_version = ""

    def do_POST(self):
        """Answer a query-protocol POST."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.owner._handle(self, body.decode("utf-8", "replace"))

    def do_GET(self):
        """Answer a query-protocol GET (parameters in the query string)."""
        self.server.owner._handle(self, "")

    def log_message(self, format, *args):
        """Log nothing."""


class FakeSTS(RecordingServer):
    """A fake STS (AssumeRoleWithWebIdentity, GetCallerIdentity) that misbehaves on demand.

    Every control applies to every call, whatever its Action, in this order:
    ``delay``, then the queue filled by ``fail_next``/``drop_next``/
    ``malformed_next`` (first in, first out), then ``always_fail``, then
    ``rate_limit``, then a normal answer.

    ``GetCallerIdentity`` answers, as AWS does, only a request signed (SigV4,
    checked by :func:`irsa_testing.sigv4.check`) by a key this server issued,
    not expired by ``clock``, sent with that key's session token; it names the
    identity of that key.  ``clock`` (seconds since the epoch) also sets the
    expiry of what is issued.
    """

    _MODES = ("delay", "rate_limit", "always_fail", "duration", "honor_duration")

    def __init__(
        self,
        duration=3600,
        honor_duration=True,
        account="123456789012",
        provider="arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/FAKE",
        subject="system:serviceaccount:default:test",
        clock=None,
        max_skew=300,
    ):
        """Configure the answers; call start() to listen."""
        self.clock = clock or _now
        self.max_skew = max_skew
        self._issuers = []
        self._request = threading.local()
        self.duration = duration
        self.honor_duration = honor_duration
        self.account = account
        self.provider = provider
        self.subject = subject
        self.delay = 0.0
        self.rate_limit = None
        self.always_fail = None
        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._window = collections.deque()
        self._calls = []
        self._issued = []

    handler = _Handler

    @property
    def url(self):
        """Endpoint URL, e.g. http://127.0.0.1:54321."""
        return self.base_url

    # -- control -----------------------------------------------------------

    def fail_next(self, n=1, code="Throttling", status=None, message=None):
        """Answer the next n calls with an error (status defaults by code)."""
        self._enqueue(n, ("fail", code, status, message))

    def drop_next(self, n=1):
        """Close the connection without any answer on the next n calls."""
        self._enqueue(n, ("drop",))

    def malformed_next(self, n=1):
        """Answer the next n calls with HTTP 200 and broken XML."""
        self._enqueue(n, ("malformed",))

    def truncated_next(self, n=1):
        """Answer the next n calls with HTTP 200 and a good answer cut off after its secrets."""
        self._enqueue(n, ("truncated",))

    def odd_values_next(self, n=1, **values):
        """Answer the next n calls with these access_key / secret_key / session_token values."""
        self._enqueue(n, ("odd", values))

    def set_mode(self, **modes):
        """Set any of delay, rate_limit, always_fail, duration, honor_duration."""
        unknown = set(modes) - set(self._MODES)
        if unknown:
            raise TypeError("unknown FakeSTS modes: %s" % ", ".join(sorted(unknown)))
        with self._lock:
            for name, value in modes.items():
                setattr(self, name, value)

    def reset(self):
        """Back to good behaviour, and forget calls and issued credentials."""
        with self._lock:
            self.delay = 0.0
            self.rate_limit = None
            self.always_fail = None
            self._queue.clear()
            self._window.clear()
            del self._calls[:]
            del self._issued[:]

    # -- request handling --------------------------------------------------

    def key(self, access_key):
        """The issued record of ``access_key`` (a dict), or None."""
        for creds in self.issued:
            if creds["access_key"] == access_key:
                return creds
        for issuer, arn in list(self._issuers):
            for creds in issuer.issued:
                if creds["access_key"] == access_key:
                    account = arn.split(":")[4]
                    return dict(creds, arn=arn, account=account,
                                assumed_role_id="AROAISSUER:" + arn.rsplit("/", 1)[-1])
        return None

    def accept_keys_of(self, issuer, arn):
        """Take the keys ``issuer`` (an EKS Pod Identity agent's stand-in) hands out as
        issued here, for the assumed-role session ``arn``, as AWS does."""
        self._issuers.append((issuer, arn))

    def _verify(self, headers):
        """(the issued record of the signing key, None), or (None, a failure answer)."""
        method, path, body = self._request.raw
        creds, refusal = sigv4.check(
            method, path, headers, body, self.key, "sts", clock=self.clock, max_skew=self.max_skew
        )
        if refusal is not None:
            return None, ("fail",) + tuple(refusal)
        return creds, None

    def _handle(self, handler, body):
        """Decide what to do with one request and do it."""
        # The signature covers the method, path and raw body, which _answer is not given.
        self._request.raw = (handler.command, handler.path, body.encode("utf-8"))
        query = urllib.parse.urlsplit(handler.path).query
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        params.update(urllib.parse.parse_qsl(body, keep_blank_values=True))
        call = {
            "time": time.time(),
            "action": params.get("Action"),
            "headers": dict(handler.headers.items()),
            "params": params,
            "token": params.get("WebIdentityToken"),
            "answered": None,
        }
        with self._lock:
            self._calls.append(call)
            delay = self.delay
        if delay and self._stopping.wait(delay):
            call["answered"] = "drop"
            handler.close_connection = True
            return
        with self._lock:
            behaviour = self._queue.popleft() if self._queue else None
            if behaviour is None and self.always_fail:
                fail = self.always_fail
                if isinstance(fail, str):
                    fail = (fail, None)
                behaviour = ("fail", fail[0], fail[1], None)
            if behaviour is None and self.rate_limit is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= self.rate_limit:
                    behaviour = ("fail", "Throttling", 400, None)
                else:
                    self._window.append(now)
        cut = behaviour is not None and behaviour[0] == "truncated"
        if behaviour is None or cut:
            behaviour = self._answer(params, call["headers"])
            if cut and behaviour[0] == "ok":
                xml = behaviour[1]
                behaviour = ("cut", xml[: xml.index("</SessionToken>") + len("</SessionToken><Expir")])
        elif behaviour[0] == "odd":
            behaviour = self._answer(params, call["headers"], behaviour[1])
        kind = behaviour[0]
        if kind == "drop":
            call["answered"] = "drop"
            handler.close_connection = True
            self._hard_close(handler)
        elif kind == "malformed":
            call["answered"] = "malformed"
            self._send(handler, 200, _malformed_xml())
        elif kind == "cut":
            call["answered"] = "truncated"
            self._send(handler, 200, behaviour[1])
        elif kind == "fail":
            code, status, message = behaviour[1:]
            status = status or DEFAULT_STATUS.get(code, 400)
            call["answered"] = code
            self._send(handler, status, _error_xml(code, status, message))
        else:
            call["answered"] = "ok"
            self._send(handler, 200, behaviour[1])

    @staticmethod
    def _hard_close(handler):
        """Drop the TCP connection so the client sees no answer at all."""
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def _send(handler, status, xml):
        """Write one XML answer."""
        payload = xml.encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/xml")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout); nothing to tell it

    def _answer(self, params, headers, values=None):
        """Return ("ok", xml) or ("fail", code, status, message) for a good-weather call."""
        action = params.get("Action")
        if action == "AssumeRoleWithWebIdentity":
            return self._assume(params, values or {})
        if action == "GetCallerIdentity":
            caller, failure = self._verify(headers)
            return failure or self._caller_identity(caller)
        return ("fail", "InvalidAction", 400, "Could not find operation %s" % action)

    def _assume(self, params, values):
        """Issue fresh credentials for AssumeRoleWithWebIdentity (``values`` replace some)."""
        for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not params.get(name):
                return ("fail", "ValidationError", 400,
                        "1 validation error detected: Value null at '%s%s' failed to "
                        "satisfy constraint: Member must not be null"
                        % (name[0].lower(), name[1:]))
        duration = self.duration
        if self.honor_duration and params.get("DurationSeconds"):
            try:
                duration = int(params["DurationSeconds"])
            except ValueError:
                return ("fail", "ValidationError", 400, "DurationSeconds is not an integer")
        role_arn = params["RoleArn"]
        session_name = params["RoleSessionName"]
        arn_parts = role_arn.split(":", 5)
        account = arn_parts[4] if len(arn_parts) == 6 and arn_parts[4] else self.account
        claims = claims_of(params["WebIdentityToken"])
        audience = claims.get("aud", "sts.amazonaws.com")
        if isinstance(audience, list):
            audience = audience[0] if audience else "sts.amazonaws.com"
        creds = self.mint(
            role_arn, session_name, int(self.clock() + duration), account, "FwoGZXIvYXdzE", values
        )
        policy = packed_policy(params)
        xml = (
            '<AssumeRoleWithWebIdentityResponse xmlns="%s">'
            "<AssumeRoleWithWebIdentityResult>"
            "<SubjectFromWebIdentityToken>%s</SubjectFromWebIdentityToken>"
            "<Audience>%s</Audience>"
            "<AssumedRoleUser><Arn>%s</Arn><AssumedRoleId>%s</AssumedRoleId></AssumedRoleUser>"
            "<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
            "<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>"
            "%s<Provider>%s</Provider>"
            "</AssumeRoleWithWebIdentityResult>"
            "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>"
            "</AssumeRoleWithWebIdentityResponse>"
        ) % (
            STS_NS,
            escape(str(claims.get("sub", self.subject))),
            escape(str(audience)),
            escape(creds["arn"]),
            escape(creds["assumed_role_id"]),
            creds["access_key"],
            escape(creds["secret_key"]),
            escape(creds["session_token"]),
            _iso8601(creds["expiration"]),
            policy,
            escape(self.provider),
            uuid.uuid4(),
        )
        return ("ok", xml)

    def mint(self, role_arn, session_name, expiration, account, token_prefix, values, partition="aws"):
        """New credentials of an assumed-role session of ``role_arn``, recorded as issued.

        ``values`` replace some of them (a test's odd answers); the record is returned.
        """
        role_name = role_arn.rsplit("/", 1)[-1]
        role_id = "AROA" + hashlib.sha1(role_arn.encode()).hexdigest()[:17].upper()
        creds = {
            "access_key": "ASIA" + "".join(_RANDOM.choice(_UPPER_ALNUM) for _ in range(16)),
            "secret_key": _secret_key(),
            "session_token": token_prefix + base64.b64encode(os.urandom(228)).decode(),
            "expiration": expiration,
            "arn": "arn:%s:sts::%s:assumed-role/%s/%s" % (partition, account, role_name, session_name),
            "assumed_role_id": "%s:%s" % (role_id, session_name),
            "account": account,
        }
        creds.update(values)
        with self._lock:
            self._issued.append(creds)
        return creds

    def _caller_identity(self, creds):
        """Answer GetCallerIdentity for ``creds``, the issued record that signed the call."""
        xml = (
            '<GetCallerIdentityResponse xmlns="%s"><GetCallerIdentityResult>'
            "<Arn>%s</Arn><UserId>%s</UserId><Account>%s</Account>"
            "</GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        ) % (STS_NS, escape(creds["arn"]), escape(creds["assumed_role_id"]),
             escape(creds["account"]), uuid.uuid4())
        return ("ok", xml)


def _now():
    return time.time()  # looked up at each call: a benchmark may simulate time by replacing it


def packed_policy(params):
    """The answer's PackedPolicySize element when a session policy was sent, else ''."""
    if params.get("Policy") or any(k.startswith("PolicyArns.member.") for k in params):
        return "<PackedPolicySize>6</PackedPolicySize>"
    return ""


def _secret_key():
    """Return a 40-character secret key that contains both '/' and '+'."""
    alphabet = string.ascii_letters + string.digits + "/+"
    chars = [_RANDOM.choice(alphabet) for _ in range(38)]
    for special in "/+":
        chars.insert(_RANDOM.randrange(len(chars) + 1), special)
    return "".join(chars)


def _iso8601(epoch):
    """Format epoch seconds as 2026-11-22T23:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _error_xml(code, status, message):
    """Return an STS ErrorResponse document."""
    return (
        '<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code>'
        "<Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>"
    ) % (
        STS_NS,
        "Receiver" if status >= 500 else "Sender",
        escape(code),
        escape(message or _DEFAULT_MESSAGES.get(code, code)),
        uuid.uuid4(),
    )


def _malformed_xml():
    """Return a 200 body that starts like a good answer and breaks off."""
    return (
        '<AssumeRoleWithWebIdentityResponse xmlns="%s"><AssumeRoleWithWebIdentityResult>'
        "<Credentials><AccessKeyId>ASIA" % STS_NS
    )
