"""One STS AssumeRoleWithWebIdentity exchange: retries, and errors that say what to do."""

import datetime
import time
from collections import namedtuple

from botocore.exceptions import ClientError

from . import _compat, _redact, token
from .config import REGION, ROLE_ARN, TOKEN_FILE, ENDPOINT_URL_STS
from .errors import IrsaError, RefreshError

__all__ = ["Issued", "RetryPolicy", "DEFAULT_RETRY", "Exchange", "odd_value"]

Issued = namedtuple(
    "Issued", "access_key secret_key token expiry account_id issued_at", defaults=(None,)
)
Issued.__doc__ = "Credentials STS issued; times in seconds since the epoch."
Issued.__repr__ = lambda self: "Issued(access_key=%r, expiry=%r)" % (self.access_key, self.expiry)


class RetryPolicy(namedtuple("RetryPolicy", "attempts base cap")):
    """At most ``attempts`` calls; waits double from ``base`` up to ``cap`` seconds.

    Each wait is drawn between half and all of its step (jitter), so the total
    wait is at most :attr:`budget`.
    """

    __slots__ = ()

    def delay(self, attempt, rand):
        """The wait after failed attempt number ``attempt`` (1-based)."""
        step = min(self.cap, self.base * 2 ** (attempt - 1))
        return step / 2 + rand() * step / 2

    @property
    def budget(self):
        """The longest total wait between the first and the last attempt."""
        return sum(min(self.cap, self.base * 2 ** n) for n in range(self.attempts - 1))


#: 6 attempts, waits of 0.5, 1, 2, 4 and 8 s at most: 15.5 s in all.
DEFAULT_RETRY = RetryPolicy(attempts=6, base=0.5, cap=8.0)
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10

_RETRYABLE_CODES = frozenset(
    """Throttling ThrottlingException ThrottledException RequestThrottledException
    TooManyRequestsException RequestLimitExceeded IDPCommunicationError
    InvalidIdentityToken ServiceUnavailable InternalFailure InternalError
    RequestTimeout RequestTimeoutException PriorRequestNotComplete""".split()
)
_EXPIRED = "ExpiredTokenException"
_TRUST_CODES = frozenset(["AccessDenied", "IDPRejectedClaim"])


def _default_client(settings):
    return _compat.sts_client(
        settings.sts_endpoint_url,
        settings.region_name or "us-east-1",
        CONNECT_TIMEOUT,
        READ_TIMEOUT,
    )


class Exchange(object):
    """Trades the token for credentials, reading the token again at every attempt.

    Calling the object makes one exchange (with retries) and returns
    :class:`Issued`, or raises :class:`~irsa_session.errors.IrsaError`.  Time,
    randomness, the token reader and the STS client factory are injectable.
    """

    def __init__(
        self,
        settings,
        client_factory=_default_client,
        read_token=token.read,
        retry=DEFAULT_RETRY,
        sleep=time.sleep,
        rand=None,
        monotonic=time.monotonic,
    ):
        self.settings = settings
        self.calls = 0
        self.last_date = None
        self._client_factory = client_factory
        self._read_token = read_token
        self._retry = retry
        self._sleep = sleep
        self._rand = rand or _random
        self._monotonic = monotonic
        self._client = None
        self._extra = {}
        _redact.install()  # botocore logs this exchange at DEBUG

    def reset(self):
        """Forget the STS client (after a fork its connections belong to the parent)."""
        self._client = None

    def __call__(self, attempts=None):
        """Exchange the token; ``attempts`` caps the tries below the retry policy's."""
        limit = min(attempts or self._retry.attempts, self._retry.attempts)
        started = self._monotonic()
        attempt = 0
        retried_expired = False
        while True:
            attempt += 1
            client = self._connect()  # first, so the token read is as fresh as it can be
            web_token = self._read_token(self.settings.token_file)
            _redact.remember(web_token)
            try:
                return self._call(client, web_token)
            except Exception as err:  # sorted below; nothing unknown is retried
                failed = err
            # Out of the handler: the error raised below must not carry ``failed``
            # (which may quote STS's answer) as its __context__.
            kind = _classify(failed)
            if kind == "expired" and not retried_expired:
                retried_expired = True  # the kubelet may have rotated it since
                continue
            if kind != "retry" or attempt >= limit:
                failure = self._failure(failed, web_token, attempt, self._monotonic() - started)
                if failure is failed:
                    raise failure
                raise failure from _safe_cause(failed)
            self._sleep(self._retry.delay(attempt, self._rand))

    def _connect(self):
        if self._client is None:
            try:
                client = self._client_factory(self.settings)
            except IrsaError:
                raise
            except Exception as err:  # botocore's own trouble building a client
                failed = err
            else:
                failed = None
            if failed is not None:
                raise RefreshError(
                    "could not build the STS client for %s: %s: %s"
                    % (self.settings.sts_endpoint_url, type(failed).__name__, _describe(failed))
                ) from _safe_cause(failed)
            self._extra = (
                _compat.policy_arns_params(client, self.settings.policy_arns)
                if self.settings.policy_arns
                else {}
            )
            self._client = client
        return self._client

    def _call(self, client, web_token):
        params = dict(
            RoleArn=self.settings.role_arn,
            RoleSessionName=self.settings.session_name,
            WebIdentityToken=web_token,
            **self._extra
        )
        if self.settings.duration_seconds is not None:
            params["DurationSeconds"] = self.settings.duration_seconds
        if self.settings.policy is not None:
            params["Policy"] = self.settings.policy
        self.calls += 1
        response = client.assume_role_with_web_identity(**params)
        answer = response["Credentials"]
        _redact.remember(answer["SecretAccessKey"], answer["SessionToken"])
        odd = odd_value(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
        if odd:
            raise RefreshError(
                "STS at %s answered AssumeRoleWithWebIdentity for role %s with %s; refusing "
                "credentials that could not have come from STS (check %s and any proxy in "
                "between)" % (self.settings.sts_endpoint_url, self.settings.role_arn, odd, ENDPOINT_URL_STS)
            )
        # STS's clock, for callers that check this machine's against it.
        self.last_date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        return Issued(
            access_key=answer["AccessKeyId"],
            secret_key=answer["SecretAccessKey"],
            token=answer["SessionToken"],
            expiry=_epoch(answer["Expiration"]),
            account_id=self.settings.role_arn.split(":")[4],
        )

    def _failure(self, err, web_token, attempts, elapsed):
        """The RefreshError for ``err``, naming the cause and the fix."""
        if isinstance(err, IrsaError):
            return err
        role = self.settings.role_arn
        tries = "after %d attempt%s over %.1f s" % (attempts, "s"[: attempts - 1], elapsed)
        if not isinstance(err, ClientError):
            if isinstance(err, _compat.transient_errors()):
                return RefreshError(
                    "could not reach STS at %s %s (last error: %s: %s). Check the "
                    "pod's network egress to STS, the region (%s=%s) and %s, and any "
                    "proxy settings"
                    % (
                        self.settings.sts_endpoint_url,
                        tries,
                        type(err).__name__,
                        _describe(err),
                        REGION,
                        self.settings.region_name,
                        ENDPOINT_URL_STS,
                    ),
                    attempts=attempts,
                )
            return RefreshError(
                "AssumeRoleWithWebIdentity for role %s failed: %s: %s"
                % (role, type(err).__name__, _describe(err)),
                attempts=attempts,
            )
        error = err.response.get("Error", {})
        code = error.get("Code") or "Unknown"
        said = "%s: %s" % (code, _redact.scrub(error.get("Message") or "no message"))
        claims = token.claims(web_token)
        if code in _TRUST_CODES:
            text = "STS denied AssumeRoleWithWebIdentity for role %s (%s). %s" % (
                role,
                said,
                self._trust_hint(claims),
            )
        elif code == _EXPIRED:
            text = (
                "the projected service-account token in %r has expired%s; STS "
                "rejected it twice, and it was read again in between (%s). The "
                "kubelet rewrites this file before the token expires: check that the "
                "kubelet on this node is healthy and the pod's projected token volume "
                "is intact; a restarted pod gets a fresh token"
                % (self.settings.token_file, _expired_ago(claims), said)
            )
        elif code == "InvalidIdentityToken":
            text = (
                "STS could not validate the token in %r for role %s %s (%s). Check that "
                "an IAM OIDC identity provider for the token's issuer exists in the "
                "role's account with audience sts.amazonaws.com. %s"
                % (self.settings.token_file, role, tries, said, _claims_text(claims, self.settings.token_file))
            )
        elif code in _RETRYABLE_CODES or _status(err) >= 500 or _status(err) == 429:
            text = "STS kept failing AssumeRoleWithWebIdentity for role %s %s (last: %s)" % (
                role,
                tries,
                said,
            )
        elif code == "RegionDisabledException":
            text = (
                "STS is not activated in region %s for this account (%s): activate it "
                "in the IAM console's account settings, or set %s to an active "
                "region's endpoint" % (self.settings.region_name, said, ENDPOINT_URL_STS)
            )
        else:
            text = (
                "STS refused AssumeRoleWithWebIdentity for role %s (%s). Check the "
                "role ARN (role_arn or %s), duration_seconds (at most the role's "
                "maximum session duration), policy and policy_arns"
                % (role, said, ROLE_ARN)
            )
        return RefreshError(text, code=code, attempts=attempts)

    def _trust_hint(self, claims):
        where = self.settings.token_file
        if claims is None:
            return _claims_text(None, where)
        issuer = str(claims.get("iss", "<no iss claim>"))
        host = issuer[len("https://"):] if issuer.startswith("https://") else issuer
        account = self.settings.role_arn.split(":")[4]
        partition = self.settings.role_arn.split(":")[1]
        return (
            "The role's trust policy must admit this token: a statement allowing "
            "sts:AssumeRoleWithWebIdentity to the Federated principal "
            "arn:%s:iam::%s:oidc-provider/%s, whose StringEquals conditions "
            "%s:sub and %s:aud match the token's sub (%s) and aud (%s). %s"
            % (
                partition,
                account,
                host,
                host,
                host,
                _claim(claims, "sub"),
                _claim(claims, "aud"),
                _claims_text(claims, where),
            )
        )


def _classify(err):
    """'expired', 'retry' or 'fatal'."""
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code")
        if code == _EXPIRED:
            return "expired"
        status = _status(err)
        if code in _RETRYABLE_CODES or status >= 500 or status == 429:
            return "retry"
        return "fatal"
    if isinstance(err, IrsaError):
        return "fatal"
    return "retry" if isinstance(err, _compat.transient_errors()) else "fatal"


_KEY_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_BASE64_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
)


def odd_value(access_key, secret_key, session_token):
    """What is wrong with credential values STS could not have issued, else None.

    Access key ids are upper-case letters and digits; secret keys and session
    tokens base64 characters.  Anything else (a newline, a quote, a space) would
    be a forged or garbled answer, and could inject lines where the values are
    written out.  The text never quotes a value.
    """
    for name, value, chars, shortest in (
        ("an access key id", access_key, _KEY_ID_CHARS, 16),
        ("a secret access key", secret_key, _BASE64_CHARS, 16),
        ("a session token", session_token, _BASE64_CHARS, 16),
    ):
        if not isinstance(value, str) or len(value) < shortest or not chars.issuperset(value):
            return "%s that is not %d or more of the characters STS uses" % (name, shortest)
    return None


def _safe_cause(err):
    """``err`` if nothing in it or its chain can quote a secret, else None.

    A garbled answer's parser error quotes the raw body (keys included); any
    error whose text the scrubber changes would show a secret in a traceback.
    """
    seen = err
    while seen is not None:
        if _is_parse_error(seen) or _redact.scrub(str(seen)) != str(seen):
            return None
        seen = seen.__cause__ or seen.__context__
    return err


def _is_parse_error(err):
    return any("Parse" in cls.__name__ for cls in type(err).__mro__)


def _describe(err):
    """``err``'s text for a message: scrubbed, and never a quoted STS answer."""
    if _is_parse_error(err):
        return "STS's answer was not a well-formed AssumeRoleWithWebIdentity response"
    return _redact.scrub(str(err))


def _status(err):
    return err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0


def _claim(claims, name):
    value = claims.get(name, "<none>")
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _claims_text(claims, where):
    if claims is None:
        return (
            "The token in %r is not a JWT (three base64url parts joined by dots), so "
            "its claims cannot be shown: check that %s names the projected "
            "service-account token" % (where, TOKEN_FILE)
        )
    return "Token in %r (decoded, signature not checked): iss=%s, sub=%s, aud=%s" % (
        where,
        _claim(claims, "iss"),
        _claim(claims, "sub"),
        _claim(claims, "aud"),
    )


def _expired_ago(claims):
    exp = claims.get("exp") if claims else None
    if not isinstance(exp, (int, float)):
        return ""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    return " (exp %s, %d s ago)" % (stamp, max(0, time.time() - exp))


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _epoch(value):
    """Seconds since the epoch of botocore's parsed timestamp (or an ISO string)."""
    if isinstance(value, str):
        from botocore.utils import parse_timestamp

        value = parse_timestamp(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return (value - _EPOCH).total_seconds()


def _random():
    import random  # imported on the first retry, not at start-up

    return random.random()
