"""One STS AssumeRoleWithWebIdentity exchange: retries, and errors that say what to do."""

import time

from botocore.exceptions import ClientError

from . import _compat, _redact, token
from .config import REGION, ROLE_ARN, TOKEN_FILE, ENDPOINT_URL_STS
from .errors import IrsaError, RefreshError
from .source import (  # noqa: F401  (Issued and friends: still importable from here)
    AGAIN, CONNECT_TIMEOUT, DEFAULT_RETRY, FAIL, READ_TIMEOUT, RETRY, Issued, RetryPolicy,
    Source, epoch as _epoch, is_parse_error as _is_parse_error, odd_value,
    random as _random, safe_cause as _safe_cause,
)

__all__ = ["Issued", "RetryPolicy", "DEFAULT_RETRY", "Exchange", "odd_value"]

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


class Exchange(Source):
    """IRSA's source: trades the token for credentials, reading it again at every try.

    Calling the object makes one exchange (with retries) and returns
    :class:`Issued`, or raises :class:`~irsa_session.errors.IrsaError`; see
    :mod:`irsa_session.source` for the protocol.  Time, randomness, the token
    reader and the STS client factory are injectable.
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
        deadline=None,
    ):
        super(Exchange, self).__init__(settings, retry, sleep, rand, monotonic, deadline)
        self._client_factory = client_factory
        self._read_token = read_token
        self._client = None
        self._extra = {}
        _redact.install()  # botocore logs this exchange at DEBUG

    def reset(self):
        """Forget the STS client (after a fork its connections belong to the parent)."""
        self._client = None

    def _prepare(self, state):
        client = self._connect()  # first, so the token read is as fresh as it can be
        web_token = self._read_token(self.settings.token_file)
        _redact.remember(web_token)
        return client, web_token

    def _try(self, prepared):
        return self._call(*prepared)

    def _verdict(self, err, state):
        kind = _classify(err)
        if kind == "expired" and not state.get("retried_expired"):
            state["retried_expired"] = True  # the kubelet may have rotated it since
            return AGAIN
        return RETRY if kind == "retry" else FAIL

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

    def _failure(self, err, prepared, attempts, elapsed):
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
        claims = token.claims(prepared[1])
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
        host = issuer_host(str(claims.get("iss", "<no iss claim>")))
        partition, account = self.settings.role_arn.split(":")[1:5:3]
        return (
            "The role's trust policy must admit this token: a statement allowing "
            "sts:AssumeRoleWithWebIdentity to the Federated principal %s, whose "
            "StringEquals conditions %s:sub and %s:aud match the token's sub (%s) and "
            "aud (%s). %s"
            % (
                oidc_principal(host, account, partition),
                host,
                host,
                _claim(claims, "sub"),
                _claim(claims, "aud"),
                _claims_text(claims, where),
            )
        )


def issuer_host(issuer):
    """The issuer without ``https://`` and trailing slashes: the IAM OIDC provider's name."""
    issuer = issuer.strip()
    if issuer.lower().startswith("https://"):
        issuer = issuer[len("https://"):]
    return issuer.rstrip("/")


def oidc_principal(host, account, partition="aws"):
    """The Federated principal of the IAM OIDC provider ``host`` in ``account``."""
    return "arn:%s:iam::%s:oidc-provider/%s" % (partition, account, host)


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
