"""``serve()``: the library's credentials on a container-credentials endpoint on 127.0.0.1.

Every AWS SDK (Java, Go, C++, Rust, the CRT, the AWS CLI) and the readers built on
them (deltalake, daft, duckdb, pyarrow's own S3FileSystem) fetch credentials from
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with ``AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)``,
the protocol of the EKS Pod Identity agent.  This serves the library's current
credentials there, from memory: one STS call per refresh for every client.

The endpoint listens on 127.0.0.1 only.  It answers ``GET <path>`` whose
``Authorization`` header is the token made at start (random, compared in constant
time, written to a 0600 file) and whose ``Host`` is this address; anything else is
refused, and it redirects nothing.  ``GET /healthz`` says whether credentials can
be served (no token needed, no secret said).  Threads and request sizes are
bounded; nothing secret is logged.  The ``Expiration`` it serves is the start of
the credentials' mandatory window, so an SDK that fetches again only at expiry
gets fresh credentials while the old ones still live.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Any, Dict

import logging
import os
import threading

from . import config, sessions
from ._refresh import windows
from .errors import ConfigError

__all__ = ["serve", "start", "Endpoint", "PATH", "HEALTH"]

logger = logging.getLogger("irsa_session.serve")

PATH = "/v1/credentials"
HEALTH = "/healthz"
_THREADS = 16  # requests answered at once; more are refused
_MOVED = (  # what export=True moves aside: native SDKs would prefer them
    config.ROLE_ARN, config.TOKEN_FILE, config.CONTAINER_FULL_URI, config.CONTAINER_RELATIVE_URI,
    config.CONTAINER_TOKEN, config.CONTAINER_TOKEN_FILE,
)


def serve(*, port: int = 0, export: bool = False, **settings: Any) -> Endpoint:
    """Serve the library's credentials on a container-credentials endpoint on 127.0.0.1.

    Starts the endpoint on a daemon thread and returns it.  ``settings`` are those
    of :func:`assumed_role_session`, plus ``assume_role=`` / ``external_id=`` for a
    chained role, resolved as :func:`install` resolves them (IRSA, else EKS Pod
    Identity).  ``port=0`` picks a free port.

    With ``export=True`` the process's own native readers use it:
    ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` are set in ``os.environ``, and
    ``AWS_ROLE_ARN``, ``AWS_WEB_IDENTITY_TOKEN_FILE``,
    ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` and ``AWS_CONTAINER_AUTHORIZATION_TOKEN``
    are removed (native SDKs would prefer them); ``close()`` puts every one back as
    it was.

    Returns:
        An :class:`Endpoint`: ``url``, ``token_file``, ``environ()`` (the variables
        a client needs), ``close()``; a context manager.

    Raises:
        ConfigError: a setting is invalid, or neither IRSA nor EKS Pod Identity is
            configured (there would be nothing to serve).
    """
    return start(port, export, None, settings)


def start(port, export, folder, settings):
    """:func:`serve`, with the token written to ``folder`` (a directory that must
    exist, e.g. a volume shared with the app's container) instead of a new one."""
    assume_role = settings.pop("assume_role", None)
    external_id = settings.pop("external_id", None)
    source = sessions.resolve_source(fallback=False, **settings) if settings else (
        sessions.current_session()
    )
    if source._irsa_credentials is None:
        raise ConfigError(
            "serve() has no credentials to serve: neither IRSA (%s and %s) nor EKS Pod "
            "Identity (%s) is configured" % (config.ROLE_ARN, config.TOKEN_FILE, config.CONTAINER_FULL_URI)
        )
    if assume_role is not None:
        from . import chain

        source = chain.assume_role(
            assume_role, source=source, external_id=external_id,
            region_name=settings.get("region_name"), sts_endpoint_url=settings.get("sts_endpoint_url"),
        )
    elif external_id is not None:
        raise TypeError("serve(external_id=...) goes with assume_role=")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError("serve(port=%r): give a TCP port from 1 to 65535, or 0 for a free one" % (port,))
    if folder is not None and not os.path.isdir(folder):
        raise ConfigError("the token folder %s is not a directory: make it (an emptyDir volume "
                          "shared with the app's container), or leave it out" % (folder,))
    endpoint = Endpoint(source, port, folder)
    if export:
        endpoint.export()
    return endpoint


class Endpoint(object):
    """A running container-credentials endpoint (see :func:`serve`)."""

    def __init__(self, source, port=0, folder=None):
        import http.server
        import secrets

        self.source = source
        self.credentials = source._irsa_credentials
        self._token = secrets.token_urlsafe(32)
        self._folder, self.token_file = _write_token(self._token, folder)
        self._slots = threading.BoundedSemaphore(_THREADS)
        self._server = _server_class(http.server)(("127.0.0.1", port), _handler_class(http.server))
        self._server.owner = self
        self.port = self._server.server_address[1]
        self.url = "http://127.0.0.1:%d%s" % (self.port, PATH)
        # The Host header names this address (a DNS-rebinding page would send its own
        # name). The CRT's client sends it without the port, as HTTP allows for a
        # client that knows no better; the SDKs send it with.
        self._hosts = ("127.0.0.1:%d" % self.port, "localhost:%d" % self.port, "127.0.0.1", "localhost")
        self._saved = None
        self._thread = threading.Thread(target=self._server.serve_forever, name="irsa-session-serve")
        self._thread.daemon = True
        self._thread.start()
        logger.info("serving credentials at %s (token in %s)", self.url, self.token_file)

    def __repr__(self):
        return "<irsa_session Endpoint %s of %r>" % (self.url, self.source)

    def __reduce_ex__(self, protocol):
        raise TypeError("an endpoint holds its token and is not pickled")

    def environ(self) -> Dict[str, str]:
        """The variables a client needs (the token as a file, never its value)."""
        return {config.CONTAINER_FULL_URI: self.url, config.CONTAINER_TOKEN_FILE: self.token_file}

    def export(self) -> None:
        """Point this process's native readers here (see :func:`serve`)."""
        if self._saved is not None:
            return
        self._saved = dict((name, os.environ.get(name)) for name in _MOVED)
        for name in _MOVED:
            os.environ.pop(name, None)
        os.environ.update(self.environ())

    def close(self) -> None:
        """Stop serving, remove the token file, and put ``os.environ`` back as it was."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._saved is not None:
            for name, value in self._saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._saved = None
        for path, remove in ((self.token_file, os.unlink), (self._folder, os.rmdir)):
            try:
                if path is not None:
                    remove(path)
            except OSError:
                pass
        logger.info("stopped serving credentials at %s", self.url)

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- one request ----------------------------------------------------------------

    def _answer(self, handler):
        """(status, JSON body) for the request ``handler`` holds."""
        import hmac

        if handler.headers.get("Host", "") not in self._hosts:
            return 403, {"message": "wrong Host: this endpoint answers only at %s" % self._hosts[0]}
        if handler.command != "GET":
            return 405, {"message": "only GET"}
        if int(handler.headers.get("Content-Length") or 0):
            return 400, {"message": "a GET here has no body"}
        if handler.path == HEALTH:
            ready = self.credentials._refresher.current is not None
            if not ready:
                try:
                    self.credentials.get_frozen_credentials()
                    ready = True
                except Exception as err:  # the library's error says what to fix
                    return 503, {"message": "no credentials yet: %s" % (err,)}
            return 200, {"status": "ok"}
        if handler.path != PATH:
            return 404, {"message": "not found: credentials are at %s" % PATH}
        sent = handler.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode("utf-8", "replace"), self._token.encode()):
            return 401, {"message": "the Authorization header is not this endpoint's token"}
        try:
            frozen = self.credentials.get_frozen_credentials()
        except Exception as err:
            return 503, {"message": "could not get credentials: %s" % (err,)}
        refresher = self.credentials._refresher
        served = refresher.expiry - windows(refresher.life)[1]  # the mandatory window's start
        body = {
            "AccessKeyId": frozen.access_key,
            "SecretAccessKey": frozen.secret_key,
            "Token": frozen.token,
            "Expiration": _iso(served),
        }
        if refresher.account_id:
            body["AccountId"] = refresher.account_id
        return 200, body


def _write_token(token, folder):
    """(folder to remove on close or None, token file): the token in a 0600 file, in a
    new 0700 folder, or in ``folder`` as ``token`` (replacing one a previous start left)."""
    import tempfile

    made = None
    if folder is None:
        folder = made = tempfile.mkdtemp(prefix="irsa-session-serve-")  # 0700
    descriptor, partial = tempfile.mkstemp(prefix=".token-", dir=folder)  # 0600
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    path = os.path.join(folder, "token")
    os.replace(partial, path)
    return made, path


def _iso(epoch):
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _server_class(http_server):
    import socketserver

    class Server(socketserver.ThreadingMixIn, http_server.HTTPServer):
        daemon_threads = True
        block_on_close = False
        allow_reuse_address = True

        def process_request(self, request, client_address):
            if not self.owner._slots.acquire(False):  # bounded: refuse past _THREADS at once
                self.shutdown_request(request)
                return
            try:
                socketserver.ThreadingMixIn.process_request(self, request, client_address)
            except Exception:
                self.owner._slots.release()
                raise

        def process_request_thread(self, request, client_address):
            try:
                socketserver.ThreadingMixIn.process_request_thread(self, request, client_address)
            finally:
                self.owner._slots.release()

        def handle_error(self, request, client_address):
            """A client that went away is no error of the endpoint's."""

    return Server


def _handler_class(http_server):
    import json
    import socket

    class Handler(http_server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "irsa-session"
        sys_version = ""
        timeout = 10  # seconds a client may take to send its request

        def setup(self):
            http_server.BaseHTTPRequestHandler.setup(self)
            # The answer goes out as headers, then body: without this, Nagle's algorithm
            # and the client's delayed ACK hold the body back 40 ms on keep-alive.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _any(self):
            status, body = self.server.owner._answer(self)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any

        def log_message(self, format, *args):
            """Log nothing: a request line is not worth a record, and headers hold the token."""

    return Handler
