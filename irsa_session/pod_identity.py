"""EKS Pod Identity: credentials from the node's agent, on every botocore.

The pod gets ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (the agent, normally
``http://169.254.170.23/v1/credentials``) and ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``
(a projected token the kubelet rotates).  A GET with the token in the
``Authorization`` header returns JSON credentials.  botocore learnt this in 1.34.41;
this module does it for every botocore, with the library's retries and messages.
"""

import json
import os
import socket
import time
import urllib.error
import urllib.request

from . import _redact, token
from .config import CONTAINER_FULL_URI, CONTAINER_RELATIVE_URI, CONTAINER_TOKEN, CONTAINER_TOKEN_FILE, shown_url
from .errors import IrsaError, RefreshError
from .source import CONNECT_TIMEOUT, DEFAULT_RETRY, FAIL, RETRY, Issued, Source, epoch as _epoch, odd_value

__all__ = ["Agent"]

_TRANSIENT_STATUS = frozenset([429, 500, 502, 503, 504])


class Agent(Source):
    """EKS Pod Identity's source: the node's agent, with the token read again at every try.

    Calling the object makes one fetch (with retries) and returns
    :class:`~irsa_session.source.Issued`, or raises
    :class:`~irsa_session.errors.IrsaError`; see :mod:`irsa_session.source` for
    the protocol.  The opener (urllib), the token reader, time and randomness
    are injectable.
    """

    kind = "EKS Pod Identity"

    def __init__(
        self,
        settings,
        opener=None,
        read_token=None,
        retry=DEFAULT_RETRY,
        sleep=time.sleep,
        rand=None,
        monotonic=time.monotonic,
        deadline=None,
        environ=None,
        timeout=CONNECT_TIMEOUT,
    ):
        super(Agent, self).__init__(settings, retry, sleep, rand, monotonic, deadline)
        # No proxies: the agent is on the node (a proxy would see the token); and no
        # redirect, which would take the token along to wherever it points.
        self._opener = opener or urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirect()
        )
        self._read_token = read_token or (lambda path: token.read(path, source=token.POD_IDENTITY))
        self._environ = os.environ if environ is None else environ
        self._timeout = timeout
        self.attempt_timeout = 2 * timeout  # urllib's timeout bounds connecting and reading
        _redact.install()

    def proof(self):
        """The token this process would send: what the node cache keys entries on."""
        return self._token() or ""

    def _prepare(self, state):
        return self._token()  # each try: the kubelet may have rotated it

    def _try(self, secret):
        return self._fetch(secret)

    def _verdict(self, err, state):
        if isinstance(err, IrsaError) or not _transient(err):
            return FAIL
        return RETRY

    def _cause(self, err):
        return None  # urllib's errors add nothing the message does not say

    def _token(self):
        if self.settings.token_file is not None:
            value = self._read_token(self.settings.token_file)
        elif self.settings.literal_token:
            value = self._environ.get(CONTAINER_TOKEN, "").strip() or None
        else:
            value = None
        _redact.remember(value)
        return value

    def _fetch(self, secret):
        request = urllib.request.Request(self.settings.full_uri, method="GET")
        request.add_header("Accept", "application/json")
        if secret:
            request.add_header("Authorization", secret)
        self.calls += 1
        with self._opener.open(request, timeout=self._timeout) as answer:
            self.last_date = answer.headers.get("Date")
            body = answer.read(64 * 1024 + 1)
        try:
            document = json.loads(body.decode("utf-8"))
            values = [document[name] for name in ("AccessKeyId", "SecretAccessKey", "Token")]
            expiry = _epoch(document["Expiration"])
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeError):
            document = None
        if document is None or len(body) > 64 * 1024:
            raise RefreshError(
                "the EKS Pod Identity agent at %s answered with something other than the "
                "JSON credentials expected (AccessKeyId, SecretAccessKey, Token, "
                "Expiration); check %s" % (shown_url(self.settings.full_uri), CONTAINER_FULL_URI)
            )
        _redact.remember(values[1], values[2])
        odd = odd_value(*values)
        if odd:
            raise RefreshError(
                "the EKS Pod Identity agent at %s answered with %s; refusing credentials "
                "that could not have come from AWS" % (shown_url(self.settings.full_uri), odd)
            )
        account = document.get("AccountId")
        return Issued(
            access_key=values[0],
            secret_key=values[1],
            token=values[2],
            expiry=expiry,
            account_id=account if isinstance(account, str) else None,
        )

    def _failure(self, err, secret, attempts, elapsed):
        """The RefreshError for ``err``, naming the cause and the fix."""
        if isinstance(err, IrsaError):
            return err
        url = shown_url(self.settings.full_uri)
        tries = "after %d attempt%s over %.1f s" % (attempts, "s"[: attempts - 1], elapsed)
        status = err.code if isinstance(err, urllib.error.HTTPError) else None
        said = _said(err) if status is not None else ""
        if status in (401, 403):
            claims = token.claims(secret) if secret else None
            subject = (claims or {}).get("sub", "")
            who = (
                " (the token is for %s)" % subject
                if isinstance(subject, str) and subject.startswith("system:serviceaccount:")
                else ""
            )
            source = (
                "the token file %r (%s)" % (self.settings.token_file, CONTAINER_TOKEN_FILE)
                if self.settings.token_file
                else CONTAINER_TOKEN if self.settings.literal_token else "no token at all (%s is unset)" % CONTAINER_TOKEN_FILE
            )
            text = (
                "the EKS Pod Identity agent at %s refused the token (HTTP %d%s)%s. Check that "
                "a Pod Identity association exists for this pod's namespace and service "
                "account (aws eks list-pod-identity-associations --cluster-name ...) and that "
                "the pod was restarted after it was made; the token sent came from %s"
                % (url, status, said, who, source)
            )
        elif status is not None and 300 <= status < 400:
            text = (
                "the EKS Pod Identity agent at %s answered HTTP %d, a redirect; credentials "
                "come only from the agent's own address, so it was not followed and the "
                "token was sent nowhere else: check %s (or %s)"
                % (url, status, CONTAINER_FULL_URI, CONTAINER_RELATIVE_URI)
            )
        elif status == 404:
            text = (
                "the EKS Pod Identity agent at %s has no such path (HTTP 404%s): check %s; "
                "the agent serves /v1/credentials" % (url, said, CONTAINER_FULL_URI)
            )
        elif status is not None:
            text = "the EKS Pod Identity agent at %s kept failing %s (last: HTTP %d%s)" % (
                url, tries, status, said,
            )
        else:
            text = (
                "could not reach the EKS Pod Identity agent at %s %s (last error: %s). Is "
                "the EKS Pod Identity Agent add-on installed, and its DaemonSet "
                "(eks-pod-identity-agent) running on this node? Check %s"
                % (url, tries, _describe(err), CONTAINER_FULL_URI)
            )
        return RefreshError(text, code=None if status is None else str(status), attempts=attempts)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: a 3xx answer is raised as the HTTPError it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _describe(err):
    """What kind of failure ``err`` is, in words that cannot quote a request.

    An HTTP library's error about a request may quote its headers (the token
    among them: http.client's "Invalid header value"), so only the errors of
    the network itself say more than their type.
    """
    reason = getattr(err, "reason", err)  # URLError wraps the socket's error
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return "%s: %s" % (type(reason).__name__, reason.strerror)
    return type(reason).__name__


def _transient(err):
    if isinstance(err, urllib.error.HTTPError):
        return err.code in _TRANSIENT_STATUS
    return isinstance(err, (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError))


def _said(err):
    """The agent's own message from an error answer, scrubbed and short; or ''."""
    try:
        body = err.read(4096).decode("utf-8", "replace")
    except Exception:  # no body to read: the status says enough
        return ""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    if not isinstance(message, str) or not message.strip():
        return ""
    return ": %s" % _redact.scrub(message.strip()[:200])
