"""``doctor --assume-role``: one AssumeRole, signed with this pod's credentials, as a finding."""

from .. import _redact, chain, sessions
from ..errors import ConfigError, IrsaError
from .render import FAIL, OK, finding, until, utc

__all__ = ["assume_role_check"]


def assume_role_check(
    role_arn,
    *,
    source=None,
    external_id=None,
    duration_seconds=None,
    region_name=None,
    sts_endpoint_url=None
):
    """The doctor's finding for assuming ``role_arn`` (``doctor --assume-role``).

    Makes one AssumeRole exchange (with the library's retries; the source's
    credentials are fetched first if need be), outside the registry.  Reports no
    secret.  ``check`` is ``assume-role``; on AccessDenied the finding carries the
    trust-policy ``statement`` that would admit the source.
    """
    try:
        if source is None:
            source = sessions.default_session()
        settings = chain.resolve(
            role_arn, source=source, external_id=external_id,
            duration_seconds=duration_seconds, region_name=region_name,
            sts_endpoint_url=sts_endpoint_url,
        )
    except ConfigError as err:
        return finding("assume-role", FAIL, str(err), "fix the argument it names", role_arn=role_arn)
    hop = chain.AssumeRole(settings, source)
    try:
        issued = hop()
    except Exception as err:  # the library's RefreshError (the source's or this hop's)
        code = getattr(err, "code", None)
        ours = err is hop.last_failure
        detail = str(err) if isinstance(err, IrsaError) else "%s: %s" % (type(err).__name__, err)
        fields = dict(code=code, role_arn=role_arn, endpoint=settings.sts_endpoint_url, source_failed=not ours)
        if not ours:
            fix = "the source session failed to get its own credentials: see the other checks"
        elif code == "AccessDenied":
            who = hop.principal()
            fields.update(principal=who["principal"], session_arn=who["session_arn"])
            fields["statement"] = chain.trust_statement(who["principal"], external_id)
            fix = (
                "add a statement like the one below to role %s's trust policy, and allow "
                "sts:AssumeRole on it in the source role's permissions" % role_arn
            )
        else:
            fix = None  # the message says what to fix
        return finding("assume-role", FAIL, _redact.scrub(detail), fix, **fields)
    detail = (
        "STS (%s) let the source assume role %s as %s: access key id %s, expiring %s (%s); "
        "%d call%s" % (
            settings.sts_endpoint_url, role_arn, hop.assumed_arn, issued.access_key,
            utc(issued.expiry), until(issued.expiry), hop.calls, "s"[: hop.calls - 1],
        )
    )
    return finding(
        "assume-role", OK, detail,
        role_arn=role_arn,
        assumed_role_arn=hop.assumed_arn,
        access_key_id=issued.access_key,
        expiration=utc(issued.expiry),
        calls=hop.calls,
        endpoint=settings.sts_endpoint_url,
    )
