"""Role chaining: ``sts:AssumeRole`` signed with another session's credentials, both refreshing.

A chained session's credentials are the library's :class:`~irsa_session.credentials.Credentials`
fed by :class:`AssumeRole`, whose STS client signs with the *source* session's
credentials object: each refresh signs with the source's current credentials,
and the source refreshes itself (on its own schedule) when they are due.  The
settings of a chain (:class:`ChainSettings`) hold the source's settings, so the
same settings in one process give the same session, and a pickle carries the
whole chain as settings, never a secret.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Optional, Sequence

import functools
import json
import os
import random
import time
from collections import namedtuple

import botocore.session
from botocore.exceptions import ClientError

from . import _compat, _redact, config, sessions, sts
from .config import DEFAULT_REGION, ENDPOINT_URL_STS, REGION
from .credentials import Credentials
from .errors import ConfigError, IrsaError, RefreshError
from .source import (
    CONNECT_TIMEOUT, DEFAULT_RETRY, FAIL, READ_TIMEOUT, RETRY, Issued, Source, epoch, odd_value,
    safe_cause,
)

__all__ = [
    "MAX_CHAINED_DURATION",
    "ChainSettings",
    "ChainSession",
    "ChainCredentials",
    "AssumeRole",
    "assume_role",
    "install",
    "resolve",
    "principal_of",
    "trust_statement",
]

#: AWS caps a session assumed with an assumed role's credentials at one hour.
MAX_CHAINED_DURATION = 3600
_MIN_DURATION = 900

ChainSettings = namedtuple(
    "ChainSettings",
    "role_arn source external_id session_name duration_seconds policy policy_arns "
    "region_name sts_endpoint_url",
)
ChainSettings.__doc__ = (
    "The effective settings of one hop; ``source`` holds the source session's own "
    "settings (IRSA's or EKS Pod Identity's; a ChainSettings for a longer chain; None for "
    "boto3's default chain). Secret-free."
)

# Variables that decide a hop's session name, region and STS endpoint (and no others:
# a hop reads no token file and has no role ARN of its own in the environment).
_VARIABLES = (
    config.SESSION_NAME,
    REGION,
    DEFAULT_REGION,
    ENDPOINT_URL_STS,
    config.ENDPOINT_URL,
    config.STS_REGIONAL_ENDPOINTS,
    config.IGNORE_CONFIGURED_ENDPOINT_URLS,
)
_EXTERNAL_ID_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+=,.@:/-"
)
# STS's answers about the credentials that signed the call, rather than the role.
_SIGNING_CODES = frozenset(
    """InvalidClientTokenId ExpiredToken ExpiredTokenException SignatureDoesNotMatch
    IncompleteSignature UnrecognizedClientException MissingAuthenticationToken""".split()
)
_KEY = "assume-role"  # this module's entries in the package's one registry


# -- settings --------------------------------------------------------------------------


def resolve(
    role_arn,
    source,
    *,
    external_id=None,
    session_name=None,
    duration_seconds=None,
    policy=None,
    policy_arns=None,
    region_name=None,
    sts_endpoint_url=None,
    environ=None,
):
    """The :class:`ChainSettings` of assuming ``role_arn`` from session ``source``.

    ``session_name``, ``region_name`` and ``sts_endpoint_url`` come from the
    arguments, then the environment (as for :func:`irsa_session.assumed_role_session`);
    the region last from ``source``.  Raises ConfigError naming the argument at fault.
    """
    env = os.environ if environ is None else environ
    _check_role_arn(role_arn)
    external_id = _check_external_id(external_id)
    duration_seconds = _check_duration(duration_seconds)
    key = _source_key(source)
    only = dict((name, env[name]) for name in _VARIABLES if name in env)
    if region_name is None and not any(env.get(name, "").strip() for name in (REGION, DEFAULT_REGION)):
        region_name = getattr(source, "region_name", None)
    common = config.resolve(
        role_arn=role_arn,
        session_name=session_name,
        region_name=region_name,
        sts_endpoint_url=sts_endpoint_url,
        policy=policy,
        policy_arns=policy_arns,
        environ=only,
    )
    return ChainSettings(
        role_arn=role_arn,
        source=key,
        external_id=external_id,
        session_name=common.session_name,
        duration_seconds=duration_seconds,
        policy=common.policy,
        policy_arns=common.policy_arns,
        region_name=common.region_name,
        sts_endpoint_url=common.sts_endpoint_url,
    )


def _check_role_arn(role_arn):
    if not isinstance(role_arn, str) or not config.is_role_arn(role_arn) or "\n" in role_arn:
        raise ConfigError(
            "assume_role(role_arn=%r): not an IAM role ARN: expected "
            "arn:<partition>:iam::<12-digit account>:role/<path/name>, the role to "
            "assume (in the other account), as its IAM console page shows it" % (role_arn,)
        )


def _check_external_id(external_id):
    if external_id is None:
        return None
    if not isinstance(external_id, str):
        raise ConfigError(
            "external_id must be a string, not %s" % type(external_id).__name__
        )
    if not 2 <= len(external_id) <= 1224 or not _EXTERNAL_ID_CHARS.issuperset(external_id):
        raise ConfigError(
            "external_id %r is not one STS accepts: 2 to 1224 characters of letters, "
            "digits and _+=,.@:/- (the value of the sts:ExternalId condition in the "
            "target role's trust policy)" % (external_id,)
        )
    return external_id


def _check_duration(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problem = "is not a whole number of seconds (an int)"
    elif value > MAX_CHAINED_DURATION:
        problem = (
            "is more than AWS allows: a role assumed with the credentials of another "
            "assumed role (role chaining, as here) gets a session of at most %d s "
            "(1 hour), whatever the target role's maximum session duration. The "
            "credentials refresh themselves, so the shorter life costs nothing"
            % MAX_CHAINED_DURATION
        )
    elif value < _MIN_DURATION:
        problem = "is less than STS accepts (%d s, 15 minutes)" % _MIN_DURATION
    else:
        return value
    raise ConfigError(
        "duration_seconds=%r %s; give %d to %d, or leave it unset (STS's default, %d)"
        % (value, problem, _MIN_DURATION, MAX_CHAINED_DURATION, MAX_CHAINED_DURATION)
    )


def _source_key(source):
    """The settings that rebuild ``source`` in another process (hashable, secret-free)."""
    if not isinstance(source, sessions.Session):
        raise ConfigError(
            "source must be one of irsa_session's sessions (irsa_session.session, "
            "assumed_role_session(), assume_role(), ...), whose settings a pickle can carry, "
            "not %s" % type(source).__name__
        )
    restore, args = source.__reduce__()[:2]
    if restore is not sessions._restore and restore is not _restore:
        raise ConfigError(
            "source %r does not pickle as settings, so it cannot be a chain's source" % (source,)
        )
    return args[0]


def _source_session(key):
    """The session that ``key`` (a ChainSettings' source) stands for, in this process."""
    if isinstance(key, ChainSettings):
        return _restore(key)
    return sessions._restore(key)  # IRSA's or Pod Identity's settings, or None: the default


# -- the exchange ----------------------------------------------------------------------


def _default_client(settings, credentials):
    """An STS client that signs with ``credentials`` (asked for at every request).

    botocore's own retries are off: :class:`AssumeRole` retries.
    """
    session = botocore.session.Session()
    _compat.share_data(session)
    _compat.use_credentials(session, credentials)
    _compat.settle(session)
    return session.create_client(
        "sts",
        region_name=settings.region_name or "us-east-1",
        endpoint_url=settings.sts_endpoint_url,
        config=_compat.sts_config(
            settings.sts_endpoint_url,
            retries={"max_attempts": 0},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        ),
    )


def _policy_arns_params(client, arns):
    """Keyword arguments carrying ``arns``; on botocore 1.8 (no PolicyArns), form fields."""
    model = client.meta.service_model.operation_model("AssumeRole")
    if "PolicyArns" in model.input_shape.members:
        return {"PolicyArns": [{"arn": arn} for arn in arns]}
    fields = dict(
        ("PolicyArns.member.%d.arn" % number, arn) for number, arn in enumerate(arns, 1)
    )

    def add_fields(params, **kwargs):
        params["body"].update(fields)  # before signing, so the signature covers them

    client.meta.events.register_first(
        "before-call.sts.AssumeRole", add_fields, unique_id="irsa-assume-role-policy-arns"
    )
    return {}


class AssumeRole(Source):
    """AssumeRole's source: one exchange signed with the source session's current credentials.

    Calling the object makes one exchange (with retries of STS's throttling, 5xx
    and connection errors) and returns :class:`~irsa_session.source.Issued`; see
    :mod:`irsa_session.source` for the protocol.  An error of the source
    (refreshing its own credentials to sign with) is raised as it is: the source
    has retried already.  Time, randomness and the STS client factory
    (``factory(settings, source_credentials)``) are injectable.
    """

    kind = "AssumeRole"

    def __init__(
        self,
        settings,
        source,
        client_factory=_default_client,
        retry=DEFAULT_RETRY,
        sleep=time.sleep,
        rand=None,
        monotonic=time.monotonic,
        deadline=None,
    ):
        super(AssumeRole, self).__init__(settings, retry, sleep, rand, monotonic, deadline)
        self.source = source
        self.assumed_arn = None  # the AssumedRoleUser of the last answer
        self.last_failure = None  # the last RefreshError made here (not the source's)
        self._principal = None
        self._client_factory = client_factory
        self._client = None
        self._extra = {}
        _redact.install()  # botocore logs this exchange, and its signature, at DEBUG

    def reset(self):
        """Forget the STS client (after a fork its connections belong to the parent)."""
        self._client = None

    def _try(self, prepared):
        return self._call(self._connect())

    def _verdict(self, err, state):
        if isinstance(err, IrsaError):
            return FAIL  # the source's own error, or a refusal made here: as it is
        return RETRY if _classify(err) == "retry" else FAIL

    def _connect(self):
        if self._client is None:
            try:
                credentials = self.source.get_credentials()
                client = None
                if credentials is not None:
                    client = self._client_factory(self.settings, credentials)
            except IrsaError:
                raise
            except Exception as err:  # botocore's own trouble with the source or the client
                failed = err
            else:
                failed = None
            if failed is not None:
                self.last_failure = RefreshError(
                    "could not build the STS client for AssumeRole of role %s at %s: %s: %s"
                    % (self.settings.role_arn, self.settings.sts_endpoint_url,
                       type(failed).__name__, sts._describe(failed))
                )
                raise self.last_failure from safe_cause(failed)
            if client is None:
                self.last_failure = RefreshError(
                    "the source session %r has no credentials to sign AssumeRole of role %s "
                    "with: configure IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE), or "
                    "pass source= a session that has credentials" % (self.source, self.settings.role_arn)
                )
                raise self.last_failure
            self._extra = (
                _policy_arns_params(client, self.settings.policy_arns)
                if self.settings.policy_arns
                else {}
            )
            self._client = client
        return self._client

    def _call(self, client):
        settings = self.settings
        params = dict(RoleArn=settings.role_arn, RoleSessionName=settings.session_name, **self._extra)
        if settings.duration_seconds is not None:
            params["DurationSeconds"] = settings.duration_seconds
        if settings.policy is not None:
            params["Policy"] = settings.policy
        if settings.external_id is not None:
            params["ExternalId"] = settings.external_id
        self.calls += 1
        response = client.assume_role(**params)
        answer = response["Credentials"]
        _redact.remember(answer["SecretAccessKey"], answer["SessionToken"])
        odd = odd_value(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
        if odd:
            self.last_failure = RefreshError(
                "STS at %s answered AssumeRole for role %s with %s; refusing credentials that "
                "could not have come from STS (check sts_endpoint_url, %s and any proxy in "
                "between)" % (settings.sts_endpoint_url, settings.role_arn, odd, ENDPOINT_URL_STS)
            )
            raise self.last_failure
        self.last_date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        self.assumed_arn = response.get("AssumedRoleUser", {}).get("Arn")
        return Issued(
            access_key=answer["AccessKeyId"],
            secret_key=answer["SecretAccessKey"],
            token=answer["SessionToken"],
            expiry=epoch(answer["Expiration"]),
            account_id=settings.role_arn.split(":")[4],
        )

    def _failure(self, err, prepared, attempts, elapsed):
        """The RefreshError for ``err``, naming the cause and the fix (``err`` if it is one)."""
        if isinstance(err, IrsaError):
            return err
        self.last_failure = self._explain(err, attempts, elapsed)
        return self.last_failure

    def _explain(self, err, attempts, elapsed):
        role = self.settings.role_arn
        tries = "after %d attempt%s over %.1f s" % (attempts, "s"[: attempts - 1], elapsed)
        if not isinstance(err, ClientError):
            if isinstance(err, _compat.transient_errors()):
                return RefreshError(
                    "could not reach STS at %s for AssumeRole of role %s %s (last error: "
                    "%s: %s). Check the pod's network egress to STS, the region (region_name, "
                    "%s) and sts_endpoint_url (%s), and any proxy settings"
                    % (self.settings.sts_endpoint_url, role, tries, type(err).__name__,
                       sts._describe(err), REGION, ENDPOINT_URL_STS),
                    attempts=attempts,
                )
            return RefreshError(
                "AssumeRole of role %s failed: %s: %s" % (role, type(err).__name__, sts._describe(err)),
                attempts=attempts,
            )
        error = err.response.get("Error", {})
        code = error.get("Code") or "Unknown"
        said = "%s: %s" % (code, _redact.scrub(error.get("Message") or "no message"))
        status = sts._status(err)
        if code == "AccessDenied":
            text = "STS denied AssumeRole of role %s (%s). %s" % (role, said, self.trust_hint())
        elif code in _SIGNING_CODES:
            text = (
                "STS refused the source credentials that signed AssumeRole of role %s (%s). "
                "They come from the source session %r and were current by this machine's "
                "clock: check the clock (SigV4 refuses requests more than 5 minutes off; "
                "'irsa-session doctor' measures it) and that the source role's sessions were "
                "not revoked" % (role, said, self.source)
            )
        elif code in sts._RETRYABLE_CODES or status >= 500 or status == 429:
            text = "STS kept failing AssumeRole of role %s %s (last: %s)" % (role, tries, said)
        elif code == "RegionDisabledException":
            text = (
                "STS is not activated in region %s for this account (%s): activate it in the "
                "IAM console's account settings, or give region_name or sts_endpoint_url of "
                "an active region" % (self.settings.region_name, said)
            )
        else:
            text = (
                "STS refused AssumeRole of role %s (%s). Check role_arn, duration_seconds (a "
                "chained session lasts at most %d s, and no longer than the role's maximum "
                "session duration), external_id, policy and policy_arns"
                % (role, said, MAX_CHAINED_DURATION)
            )
        return RefreshError(text, code=code, attempts=attempts)

    def principal(self):
        """:func:`principal_of` the source, asking STS (GetCallerIdentity) only if need be."""
        if self._principal is None or self._principal["principal"] == "<unknown>":
            self._principal = principal_of(self.source, client=self._client)
        return self._principal

    def trust_hint(self):
        """What the target role's trust policy must say for this source to assume it."""
        who = self.principal()
        statement = trust_statement(who["principal"], self.settings.external_id)
        if who["session_arn"]:
            signed = "the source's session %s (role %s, %s)" % (who["session_arn"], who["role_arn"], who["how"])
        else:
            signed = "the source's principal %s (%s)" % (who["principal"], who["how"])
        if self.settings.external_id is not None:
            condition = (
                " with the condition StringEquals sts:ExternalId = %s (the external_id given)"
                % json.dumps(self.settings.external_id)
            )
            after = ""
        else:
            condition = ""
            after = ". If the trust policy has an sts:ExternalId condition, pass external_id= its value"
        return (
            "The call was signed by %s. Role %s's trust policy must allow sts:AssumeRole to "
            "the Principal {\"AWS\": \"%s\"}%s, as the statement %s does (a Principal of the "
            "session ARN would admit that session name only), and the source's own "
            "permissions must allow sts:AssumeRole on %s%s"
            % (signed, self.settings.role_arn, who["principal"], condition,
               json.dumps(statement, sort_keys=True), self.settings.role_arn, after)
        )


def _classify(err):
    """'retry' or 'fatal'."""
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code")
        status = sts._status(err)
        if code in sts._RETRYABLE_CODES or status >= 500 or status == 429:
            return "retry"
        return "fatal"
    return "retry" if isinstance(err, _compat.transient_errors()) else "fatal"


def principal_of(source, client=None):
    """Who signs with ``source``'s credentials: a dict of ``principal`` (the ARN a
    trust policy's ``{"AWS": ...}`` names), ``role_arn``, ``session_arn`` and ``how``.

    Derived from the source's settings (``arn:<partition>:sts::<account>:assumed-role/
    <role name>/<session name>``) when it has them; else GetCallerIdentity on
    ``client`` (an STS client signing with the source's credentials), a network call.
    """
    settings = getattr(source, "_irsa_settings", None)
    role_arn = getattr(settings, "role_arn", None)
    session_name = getattr(settings, "session_name", None)
    if role_arn and session_name:
        parts = role_arn.split(":")
        return {
            "principal": role_arn,
            "role_arn": role_arn,
            "session_arn": "arn:%s:sts::%s:assumed-role/%s/%s"
            % (parts[1], parts[4], role_arn.rsplit("/", 1)[-1], session_name),
            "how": "from the source's settings",
        }
    try:
        if client is None:
            region = getattr(source, "region_name", None)
            only = dict((name, os.environ[name]) for name in _VARIABLES if name in os.environ)
            client = _default_client(
                config.resolve(region_name=region, environ=only), source.get_credentials()
            )
        arn = client.get_caller_identity()["Arn"]
    except Exception as err:  # a hint for an error message: say what could not be told
        return {
            "principal": "<unknown>",
            "role_arn": None,
            "session_arn": None,
            "how": "GetCallerIdentity with the source's credentials failed: %s: %s"
            % (type(err).__name__, _redact.scrub(str(err))),
        }
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[5].startswith("assumed-role/") and parts[5].count("/") >= 2:
        name = parts[5].split("/")[1]
        role = "arn:%s:iam::%s:role/%s" % (parts[1], parts[4], name)
        return {
            "principal": role,
            "role_arn": role,
            "session_arn": arn,
            "how": "from GetCallerIdentity; add the role's path to its ARN if it has one",
        }
    return {"principal": arn, "role_arn": None, "session_arn": None, "how": "from GetCallerIdentity"}


def trust_statement(principal, external_id=None):
    """The trust-policy statement (a dict) letting ``principal`` call sts:AssumeRole."""
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return statement


# -- credentials, sessions, the registry ----------------------------------------------


class ChainCredentials(Credentials):
    """Credentials of one hop; they pickle as the chain's settings."""

    @classmethod
    def build(cls, settings, source, clock=None, jitter=None, background=False, **options):
        """New credentials (not in the registry); ``options`` go to :class:`AssumeRole`."""
        fetch = AssumeRole(settings, source, **options)
        extra = {"clock": clock} if clock is not None else {}
        # Valid credentials are still in hand in the advisory window: one try there.
        return cls(
            fetch, settings=settings, advisory_fetch=functools.partial(fetch, attempts=1),
            jitter=jitter, background=background, **extra
        )

    def __reduce__(self):
        return _restore_credentials, (self.settings,)


class ChainSession(sessions.Session):
    """The package's Session for a chained role; ``source`` is the session that signs."""

    def __init__(self, settings, credentials, source, region_name=None):
        super(ChainSession, self).__init__(settings, credentials, region_name=region_name)
        self.source = source

    def __repr__(self):
        return "IrsaSession(role_arn=%r, session_name=%r, region_name=%r, source=%r)" % (
            self._irsa_settings.role_arn,
            self._irsa_settings.session_name,
            self.region_name,
            self.source,
        )

    def __reduce__(self):
        return _restore, (self._irsa_settings,)


def _session_for(settings, source=None):
    key = (_KEY, settings)  # beside the IRSA sessions, in the package's one registry
    registry = sessions._registry
    found = registry.sessions.get(key)
    if found is not None:
        return found
    if source is None:
        source = _source_session(settings.source)  # takes the registry's lock: not held here
    with registry.lock:
        found = registry.sessions.get(key)
        if found is None:
            _redact.install()
            credentials = ChainCredentials.build(settings, source, jitter=random.random, background=True)
            found = ChainSession(settings, credentials, source, region_name=settings.region_name)
            registry.sessions[key] = found
        return found


def _restore(settings):
    """Unpickle a chained session: the same chain of settings, this process's own credentials."""
    return _session_for(settings)


def _restore_credentials(settings):
    return _session_for(settings)._irsa_credentials


# -- the public verbs ------------------------------------------------------------------


def assume_role(
    role_arn: str,
    *,
    source: Optional[sessions.Session] = None,
    external_id: Optional[str] = None,
    session_name: Optional[str] = None,
    duration_seconds: Optional[int] = None,
    policy: Optional[str] = None,
    policy_arns: Optional[Sequence[str]] = None,
    region_name: Optional[str] = None,
    sts_endpoint_url: Optional[str] = None
) -> ChainSession:
    """Return a session whose credentials come from ``sts:AssumeRole`` of ``role_arn``.

    The call is signed with ``source``'s credentials (default
    ``irsa_session.session``); both refresh themselves, each on its own schedule,
    and every refresh signs with the source's current credentials.  Chains nest:
    ``source`` may be another ``assume_role()`` session.  Nothing is fetched (and
    no token read) until the credentials are first used; the same settings in
    one process give the same session.  The session pickles as the settings of
    the whole chain.

    Args:
        role_arn: the role to assume, often in another account.
        source: one of the library's sessions (IRSA, EKS Pod Identity, another
            ``assume_role()``); default ``irsa_session.session``.
        external_id: the value of the target trust policy's ``sts:ExternalId`` condition.
        session_name: default ``AWS_ROLE_SESSION_NAME``, else the host name; sanitised.
        duration_seconds: 900 to 3600 (AWS's cap on a chained session); default 3600.
        policy: a session policy, as a JSON string.
        policy_arns: managed-policy ARNs (a list of strings).
        region_name: default ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the
            source's region; picks the regional STS endpoint and the session's region.
        sts_endpoint_url: default ``AWS_ENDPOINT_URL_STS``, then ``AWS_ENDPOINT_URL``,
            else ``https://sts.<region>.<dns suffix>``.

    Raises:
        ConfigError: an invalid argument (named in the message).
    """
    if source is None:
        source = sessions.default_session()
    settings = resolve(
        role_arn, source=source, external_id=external_id, session_name=session_name,
        duration_seconds=duration_seconds, policy=policy, policy_arns=policy_arns,
        region_name=region_name, sts_endpoint_url=sts_endpoint_url,
    )
    return _session_for(settings, source)


def install(
    role_arn,
    *,
    source=None,
    external_id=None,
    session_name=None,
    duration_seconds=None,
    policy=None,
    policy_arns=None,
    region_name=None,
    sts_endpoint_url=None
):
    """Make the chained role's credentials what unchanged boto3 and botocore code gets.

    As :func:`irsa_session.install` does for IRSA, with the credentials of
    :func:`assume_role` (the same arguments; the source defaults to
    ``irsa_session.session``): ``boto3.client()``, ``boto3.Session()`` and
    ``botocore.session.get_session()`` get them where botocore puts web identity.
    aiobotocore's sessions get them too, as after ``irsa_session.install()``.
    Idempotent; a later ``irsa_session.install()`` puts IRSA back.  Returns the
    chained session.
    """
    installed = assume_role(
        role_arn, source=source, external_id=external_id, session_name=session_name,
        duration_seconds=duration_seconds, policy=policy, policy_arns=policy_arns,
        region_name=region_name, sts_endpoint_url=sts_endpoint_url,
    )
    sessions.install_credentials(installed)
    return installed
