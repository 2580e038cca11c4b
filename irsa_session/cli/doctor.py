"""``irsa-session doctor``: the checks in order, each finding reported as soon as it is made."""

import email.utils
import json
import os
import sys
import time

import botocore
import botocore.credentials
import botocore.session

from .. import _redact, config, sts
from ..config import (
    DEFAULT_REGION,
    ENDPOINT_URL,
    ENDPOINT_URL_STS,
    IGNORE_CONFIGURED_ENDPOINT_URLS,
    REGION,
    ROLE_ARN,
    STS_REGIONAL_ENDPOINTS,
)
from ..errors import ConfigError, IrsaError
from . import sources, tokens
from .chained import assume_role_check
from .commands import STS_AUDIENCE, chain_options, chain_source, irsa_options, known_regions, near_region, trust_policy
from .render import FAIL, INFO, OK, SKIPPED, WARN, finding, header, render, until, utc, verdict

__all__ = ["run", "doctor"]

SKEW_WARN = 60  # seconds
SKEW_FAIL = 300  # SigV4 refuses requests signed more than 5 minutes off


def run(args):
    """The doctor command: the findings as text (each as it is made) or JSON, then the verdict."""
    report = None if args.json else _print
    if report is not None:
        sys.stdout.write(header(sources.versions()))
        sys.stdout.flush()
    findings = doctor(report=report, **irsa_options(args))
    if args.assume_role is not None:
        findings.append(_assume_role(args, findings))
        if report is not None:
            report(findings[-1])
    ok = not any(found["status"] == FAIL for found in findings)
    if args.json:
        sys.stdout.write(json.dumps({"ok": ok, "findings": findings}, indent=2) + "\n")
    else:
        sys.stdout.write(verdict(findings, ok))
    return 0 if ok else 1


def _print(found):
    """Print one finding as soon as it is made: no silence during STS retries."""
    sys.stdout.write(render(found))
    sys.stdout.flush()


class _Probe(object):
    """The settings the checks look at, and what each check learns for the ones after it."""

    def __init__(self, role_arn, token_file, region_name, sts_endpoint_url, env):
        self.env = env
        self.role_arn, self.role_from = config.pick("role_arn", role_arn, env, "--role-arn")
        self.path, self.path_from = config.pick("token_file", token_file, env, "--token-file")
        self.region_name = region_name
        self.sts_endpoint_url = sts_endpoint_url
        self.web_token = self.claims = None  # from tokens.token_file and tokens.token_claims
        self.settings = None  # all of them, resolved, for the exchange
        self.exchange = self.issued = self.failure = self.answered = None  # from _exchange
        self.agent = self.agent_settings = self.agent_refused = None  # EKS Pod Identity's


def doctor(
    role_arn=None, token_file=None, region_name=None, sts_endpoint_url=None, environ=None,
    report=None,
):
    """What is wrong with IRSA in this process: a list of findings (dicts), in order.

    Each has ``check``, ``status`` (ok, warn, fail, info or skipped), ``detail``, ``fix``
    (None unless there is a problem) and fields of its own.  Arguments win over the
    environment, as in :func:`irsa_session.assumed_role_session`.  Makes at most one
    AssumeRoleWithWebIdentity call (with the library's retries) and one
    GetCallerIdentity call; never probes instance metadata; reports no secret.
    ``report(finding)``, if given, is called with each finding as soon as it is made.
    """
    env = os.environ if environ is None else environ
    probe = _Probe(role_arn, token_file, region_name, sts_endpoint_url, env)
    findings = []

    def add(found):
        findings.append(found)
        if report is not None:
            report(found)

    def run_checks(*checks):  # a check returns None where it does not apply
        for check in checks:
            found = check(probe)
            if found is not None:
                add(found)

    run_checks(sources.credential_sources, sources.botocore_support)
    if (probe.role_arn is None or probe.path is None) and sources.pod_identity_set(env):
        run_checks(sources.pod_identity, sources.pod_identity_token, sources.pod_identity_agent)
        if probe.issued is not None:  # the agent's credentials, signing a call as IRSA's do
            try:
                probe.settings = config.resolve(
                    region_name=region_name, sts_endpoint_url=sts_endpoint_url, environ=env
                )
            except ConfigError as err:
                add(finding("settings", FAIL, str(err), "fix the setting it names"))
                return findings
            run_checks(_caller_identity, _clock_skew)
        return findings
    run_checks(tokens.token_file, tokens.token_claims, _role_arn, _sts_endpoint)
    blockers = [found["check"] for found in findings[2:] if found["status"] in (FAIL, SKIPPED)]
    if blockers:
        why = "skipped: %s did not pass" % ", ".join(blockers)
        for check in ("exchange", "caller-identity", "clock-skew"):
            add(finding(check, SKIPPED, why))
        return findings
    try:
        probe.settings = config.resolve(
            role_arn=probe.role_arn, token_file=probe.path, region_name=region_name,
            sts_endpoint_url=sts_endpoint_url, environ=env,
        )
    except ConfigError as err:  # one no check above covers, such as IRSA_SESSION_CACHE_DIR
        add(finding("settings", FAIL, str(err), "fix the setting it names"))
        return findings
    run_checks(_exchange, _caller_identity, _clock_skew, _trust)
    return findings


def _assume_role(args, findings):
    """The finding of --assume-role: one AssumeRole signed with this pod's credentials."""
    failed = [found["check"] for found in findings if found["status"] == FAIL]
    if failed:
        return finding("assume-role", SKIPPED, "skipped: %s failed" % ", ".join(failed))
    try:
        source = chain_source(args)
    except ConfigError as err:
        return finding("assume-role", FAIL, str(err), "fix the setting it names")
    return assume_role_check(args.assume_role, source=source, **chain_options(args))


def _role_arn(probe):
    role_arn, where = probe.role_arn, probe.role_from
    if role_arn is None:
        return finding("role-arn", SKIPPED, "no role ARN: %s (or --role-arn) is unset" % ROLE_ARN)
    try:
        config.check("role_arn", role_arn)
    except ConfigError as err:
        fix = (
            "fix the service account's eks.amazonaws.com/role-arn annotation (or --role-arn) "
            "and restart the pod"
        )
        return finding("role-arn", FAIL, str(err), fix, role_arn=role_arn)
    parts = role_arn.split(":")
    detail = "%s (from %s): account %s, partition %s" % (role_arn, where, parts[4], parts[1])
    return finding(
        "role-arn", OK, detail, role_arn=role_arn, account=parts[4], partition=parts[1]
    )


def _sts_endpoint(probe):
    env = probe.env
    names = (
        REGION, DEFAULT_REGION, ENDPOINT_URL_STS, ENDPOINT_URL, STS_REGIONAL_ENDPOINTS,
        IGNORE_CONFIGURED_ENDPOINT_URLS,
    )
    only = dict((name, env[name]) for name in names if name in env)
    try:
        settings = config.resolve(
            region_name=probe.region_name, sts_endpoint_url=probe.sts_endpoint_url, environ=only
        )
    except ConfigError as err:
        fix = (
            "give an https:// URL of STS (or plain http only to 127.0.0.1, ::1 or "
            "localhost), without user info, or unset the variable it names"
        )
        return finding("sts-endpoint", FAIL, str(err), fix)
    url = settings.sts_endpoint_url
    region, region_from = config.pick("region_name", probe.region_name, env, "--region")
    _, url_from = config.pick("sts_endpoint_url", probe.sts_endpoint_url, env, "--sts-endpoint-url")
    fields = {"url": url, "region": region}
    if url_from is not None:
        detail = "%s (set by %s)" % (url, url_from)
        return finding("sts-endpoint", OK, detail, reason=url_from, **fields)
    ignored = [name for name in (ENDPOINT_URL_STS, ENDPOINT_URL) if sources.is_set(env, name)]
    if config.endpoints_ignored(env) and ignored:
        fields["ignored"] = ignored
        detail = "%s: %s=true, so %s %s ignored" % (
            url, IGNORE_CONFIGURED_ENDPOINT_URLS, " and ".join(ignored),
            "is" if len(ignored) == 1 else "are",
        )
        return finding("sts-endpoint", OK, detail, reason="ignored", **fields)
    if region is None:
        detail = "%s, the global endpoint: no region is set (%s, %s)" % (
            url, REGION, DEFAULT_REGION,
        )
        fix = (
            "set %s (the pod identity webhook sets it, with %s=regional) so that STS calls "
            "stay in the pod's region" % (REGION, STS_REGIONAL_ENDPOINTS)
        )
        return finding("sts-endpoint", WARN, detail, fix, reason="no-region", **fields)
    if url == config.sts_endpoint(None):
        detail = "%s, the global endpoint: %s=legacy (region %s from %s)" % (
            url, STS_REGIONAL_ENDPOINTS, region, region_from,
        )
        return finding("sts-endpoint", OK, detail, reason="legacy", **fields)
    detail = "%s, the regional endpoint of %s (from %s)" % (url, region, region_from)
    known = known_regions()
    if known and region not in known:
        near = near_region(region)
        if near:
            detail += "; botocore %s knows no region %s: did you mean %s?" % (
                botocore.__version__, region, near,
            )
            fix = "set %s (or --region) to %s" % (region_from, near)
            return finding("sts-endpoint", FAIL, detail, fix, reason="unknown-region", **fields)
        detail += (
            "; botocore %s knows no region %s (a region newer than this botocore, or a "
            "typo)" % (botocore.__version__, region)
        )
        fix = "check %s: the exchange below fails after its retries if the region does not exist" % region_from
        return finding("sts-endpoint", WARN, detail, fix, reason="unknown-region", **fields)
    return finding("sts-endpoint", OK, detail, reason="regional", **fields)


# The exchange, GetCallerIdentity with its credentials, the clock; the trust policy on a denial.

_TRUST_FIX = (
    "add a statement like the one below to the role's trust policy (IAM console: the role's "
    "Trust relationships)"
)
_EXCHANGE_FIXES = {
    "AccessDenied": _TRUST_FIX,
    "IDPRejectedClaim": _TRUST_FIX,
    "InvalidIdentityToken": (
        "create the IAM OIDC identity provider for the token's issuer, with audience %s, in "
        "the role's account (eksctl utils associate-iam-oidc-provider)" % STS_AUDIENCE
    ),
    "ExpiredTokenException": tokens.KUBELET_FIX,
    None: (
        "allow the pod's egress to the endpoint, check the region, or set %s (e.g. to a VPC "
        "endpoint of STS)" % ENDPOINT_URL_STS
    ),
}


def _exchange(probe):
    """One AssumeRoleWithWebIdentity; keeps what STS issued, or why it failed, in ``probe``."""
    settings = probe.settings
    exchange = probe.exchange = sts.Exchange(settings)
    try:
        issued = exchange()
    except Exception as err:  # the library's RefreshError, or botocore failing to start
        probe.failure = err
        code = getattr(err, "code", None)
        detail = str(err) if isinstance(err, IrsaError) else "%s: %s" % (type(err).__name__, err)
        return finding(
            "exchange", FAIL, _redact.scrub(detail),
            _EXCHANGE_FIXES.get(code),  # else the message says what to fix
            code=code,
            attempts=getattr(err, "attempts", None),
            endpoint=settings.sts_endpoint_url,
        )
    probe.issued, probe.answered = issued, time.time()
    detail = (
        "STS (%s) issued credentials for %s, session name %s: access key id %s, expiring %s "
        "(%s); %d call%s" % (
            settings.sts_endpoint_url, settings.role_arn, settings.session_name,
            issued.access_key, utc(issued.expiry), until(issued.expiry), exchange.calls,
            "s"[: exchange.calls - 1],
        )
    )
    return finding(
        "exchange", OK, detail,
        access_key_id=issued.access_key,
        expiration=utc(issued.expiry),
        session_name=settings.session_name,
        calls=exchange.calls,
        endpoint=settings.sts_endpoint_url,
    )


def _caller_identity(probe):
    from ..chain import _default_client  # an STS client signing with given credentials

    issued = probe.issued
    if issued is None:
        return finding("caller-identity", SKIPPED, "skipped: no credentials")
    try:
        credentials = botocore.credentials.Credentials(issued.access_key, issued.secret_key, issued.token)
        identity = _default_client(probe.settings, credentials).get_caller_identity()
    except Exception as err:
        return finding(
            "caller-identity", FAIL,
            "GetCallerIdentity with the issued credentials failed: %s: %s"
            % (type(err).__name__, _redact.scrub(str(err))),
            "a clock far off STS's makes signed calls fail: see clock-skew",
        )
    detail = "%s (account %s); the credentials expire %s (%s)" % (
        identity["Arn"], identity["Account"], utc(issued.expiry), until(issued.expiry),
    )
    return finding(
        "caller-identity", OK, detail,
        arn=identity["Arn"], account=identity["Account"], expiration=utc(issued.expiry),
    )


def _clock_skew(probe):
    if probe.issued is None:
        return finding("clock-skew", SKIPPED, "skipped: no answer from STS")
    return _skew(probe.exchange.last_date, probe.answered)


def _skew(date, local):
    """The clock-skew finding for STS's Date header ``date``, received at ``local`` (epoch)."""
    if not date:
        return finding("clock-skew", SKIPPED, "STS's answer had no Date header")
    try:
        theirs = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return finding("clock-skew", SKIPPED, "STS's Date header %r is not a date" % date)
    skew = local - sts._epoch(theirs)
    detail = "this machine's clock is %.0f s %s STS's (Date: %s)" % (
        abs(skew), "ahead of" if skew >= 0 else "behind", date,
    )
    fields = {"skew_seconds": round(skew, 1), "sts_date": date}
    if abs(skew) <= SKEW_WARN:
        return finding("clock-skew", OK, detail, **fields)
    status = WARN if abs(skew) <= SKEW_FAIL else FAIL
    fix = (
        "sync this node's clock (chrony or NTP; on EC2, the Amazon Time Sync Service): "
        "SigV4 refuses requests more than 5 minutes off"
    )
    return finding("clock-skew", status, detail, fix, **fields)


def _trust(probe):
    """The statement that would admit this token, where STS said the trust policy does not."""
    if getattr(probe.failure, "code", None) not in sts._TRUST_CODES:
        return None
    claims = probe.claims
    if not claims or not claims.get("iss") or not claims.get("sub"):
        detail = "the token has no iss or sub claim to write a trust policy for"
        return finding("trust-policy", INFO, detail)
    role_arn = probe.settings.role_arn
    parts = role_arn.split(":")
    policy = trust_policy(claims["iss"], parts[4], [claims["sub"]], parts[1])
    detail = (
        "a statement of role %s's trust policy that admits this token ('irsa-session "
        "trust-policy' prints a whole policy):" % role_arn
    )
    return finding("trust-policy", INFO, detail, statement=policy["Statement"][0])
