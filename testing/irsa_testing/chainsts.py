"""A fake STS that also answers AssumeRole, and checks who signed each signed call.

:class:`ChainSTS` is :class:`irsa_testing.servers.FakeSTS` (every control of it still
applies to every call) plus:

- ``AssumeRole`` answers, like FakeSTS's ``GetCallerIdentity``, only a request
  whose SigV4 signature verifies (canonical request, string to sign, HMAC
  chain) with the secret of a key this server issued (through
  AssumeRoleWithWebIdentity or AssumeRole), that has not expired, sent with
  that key's session token; otherwise ``InvalidClientTokenId``,
  ``ExpiredToken``, ``IncompleteSignature`` or ``SignatureDoesNotMatch``, as
  STS answers;
- a trust check: ``trust`` maps a target role ARN to the principals allowed to
  assume it (role ARNs, or assumed-role session ARNs) and the ``ExternalId`` it
  requires; anything else is ``AccessDenied``, with STS's wording;
- AWS's one-hour cap on a chained session (``DurationSeconds`` above 3600 from
  an assumed role's credentials is a ``ValidationError``).

Standard library only, on Python 3.7, like servers.py.
"""

__all__ = ["ChainSTS", "sign", "signer"]

import uuid
from xml.sax.saxutils import escape

from irsa_testing import sigv4
from irsa_testing.servers import STS_NS, FakeSTS, _iso8601, packed_policy
from irsa_testing.sigv4 import sign  # noqa: F401  (for tests that send chosen keys)

_CHAIN_CAP = 3600


def signer(call):
    """The access key id that signed a recorded call (its Authorization header), or None."""
    return sigv4.signer(call["headers"])


class ChainSTS(FakeSTS):
    """FakeSTS that also answers AssumeRole, verifying signatures and trust (see the module)."""

    _MODES = FakeSTS._MODES + ("assume_role_duration",)

    def __init__(self, trust=None, assume_role_duration=None, clock=None, max_skew=300, **kwargs):
        """``trust``: {target role ARN: {"principals": [ARNs], "external_id": str or None}}.

        ``assume_role_duration``: the life of AssumeRole's credentials, whatever
        the call asks (default: as AssumeRoleWithWebIdentity's).  ``clock``
        (seconds since the epoch) decides the life of every credential issued and
        whether a signing key has expired; signing dates are checked against the
        real clock, which botocore signs with.
        """
        super(ChainSTS, self).__init__(clock=clock, max_skew=max_skew, **kwargs)
        self._initial = dict(
            trust=dict(trust or {}),
            assume_role_duration=assume_role_duration,
            clock=self.clock,
            max_skew=max_skew,
            duration=self.duration,
            honor_duration=self.honor_duration,
        )
        self._configure()

    def _configure(self):
        for name, value in self._initial.items():
            setattr(self, name, dict(value) if isinstance(value, dict) else value)

    def reset(self):
        """As FakeSTS.reset, and every setting back to the constructor's (one server, many tests)."""
        super(ChainSTS, self).reset()
        with self._lock:
            self._configure()

    def register(self, access_key, secret_key, session_token, expiration, arn, role_arn=None):
        """Accept a key another issuer handed out (an EKS Pod Identity agent's) as STS would."""
        account = arn.split(":")[4]
        with self._lock:
            self._issued.append({
                "access_key": access_key, "secret_key": secret_key, "session_token": session_token,
                "expiration": expiration, "arn": arn, "role_arn": role_arn, "account": account,
                "assumed_role_id": "AROAREGISTERED:" + arn.rsplit("/", 1)[-1], "signed_by": None,
            })

    def actions(self):
        """The Action of every call so far, in order."""
        return [call["action"] for call in self.calls]

    # -- request handling ------------------------------------------------------

    def _answer(self, params, headers, values=None):
        action = params.get("Action")
        if action == "AssumeRoleWithWebIdentity":
            extra = {"role_arn": params.get("RoleArn"), "signed_by": None}
            life = _life(params, self.duration, self.honor_duration)
            if life is not None:  # else FakeSTS answers the ValidationError
                extra["expiration"] = int(self.clock() + life)
            extra.update(values or {})
            return self._assume(params, extra)
        if action == "AssumeRole":
            caller, failure = self._verify(headers)
            if failure is not None:
                return failure
            return self._assume_role(params, caller, values or {})
        return super(ChainSTS, self)._answer(params, headers, values)

    def _assume_role(self, params, caller, values):
        for name in ("RoleArn", "RoleSessionName"):
            if not params.get(name):
                return ("fail", "ValidationError", 400, "Value null at '%s%s' failed to satisfy "
                        "constraint: Member must not be null" % (name[0].lower(), name[1:]))
        target = params["RoleArn"]
        life = _life(params, self.duration, True)
        if life is None:
            return ("fail", "ValidationError", 400, "DurationSeconds is not an integer")
        asked = int(params.get("DurationSeconds") or 0)
        if ":assumed-role/" in caller["arn"] and asked > _CHAIN_CAP:
            return ("fail", "ValidationError", 400, "The requested DurationSeconds exceeds the 1 "
                    "hour session limit for roles assumed by role chaining.")
        rule = self.trust.get(target) or {}
        allowed = set(rule.get("principals", ()))
        wanted = rule.get("external_id")
        if not (
            (caller.get("role_arn") in allowed or caller["arn"] in allowed)
            and (wanted is None or params.get("ExternalId") == wanted)
        ):
            return ("fail", "AccessDenied", 403, "User: %s is not authorized to perform: "
                    "sts:AssumeRole on resource: %s" % (caller["arn"], target))
        if self.assume_role_duration is not None:
            life = self.assume_role_duration
        elif not (self.honor_duration and params.get("DurationSeconds")):
            life = self.duration
        session_name = params["RoleSessionName"]
        parts = target.split(":", 5)
        about = {"role_arn": target, "signed_by": caller["access_key"], "external_id": params.get("ExternalId")}
        about.update(values)
        creds = self.mint(
            target, session_name, int(self.clock() + life), parts[4], "IQoJb3JpZ2luX2VjE", about,
            partition=parts[1],
        )
        packed = packed_policy(params)
        xml = (
            '<AssumeRoleResponse xmlns="%s"><AssumeRoleResult>'
            "<AssumedRoleUser><AssumedRoleId>%s</AssumedRoleId><Arn>%s</Arn></AssumedRoleUser>"
            "<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
            "<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>%s"
            "</AssumeRoleResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>"
            "</AssumeRoleResponse>"
        ) % (
            STS_NS,
            escape(creds["assumed_role_id"]),
            escape(creds["arn"]),
            escape(creds["access_key"]),
            escape(creds["secret_key"]),
            escape(creds["session_token"]),
            _iso8601(creds["expiration"]),
            packed,
            uuid.uuid4(),
        )
        return ("ok", xml)


def _life(params, default, honor):
    """The life asked for (DurationSeconds if honoured), ``default`` else; None if not an int."""
    if not (honor and params.get("DurationSeconds")):
        return default
    try:
        return int(params["DurationSeconds"])
    except ValueError:
        return None
