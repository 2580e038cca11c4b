"""A fake STS that also answers AssumeRole, and checks who signed each signed call.

:class:`ChainSTS` is :class:`irsa_testing.servers.FakeSTS` (every control of it still
applies to every call) plus:

- ``AssumeRole`` and ``GetCallerIdentity`` answer only a request whose SigV4
  signature verifies (canonical request, string to sign, HMAC chain) with the
  secret of a key this server issued (through AssumeRoleWithWebIdentity or
  AssumeRole), that has not expired, sent with that key's session token;
  otherwise ``InvalidClientTokenId``, ``ExpiredToken``, ``IncompleteSignature``
  or ``SignatureDoesNotMatch``, as STS answers;
- a trust check: ``trust`` maps a target role ARN to the principals allowed to
  assume it (role ARNs, or assumed-role session ARNs) and the ``ExternalId`` it
  requires; anything else is ``AccessDenied``, with STS's wording;
- AWS's one-hour cap on a chained session (``DurationSeconds`` above 3600 from
  an assumed role's credentials is a ``ValidationError``).

Standard library only, on Python 3.7, like servers.py.
"""

__all__ = ["ChainSTS", "sign", "signer"]

import datetime
import hashlib
import hmac
import posixpath
import re
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape

from irsa_testing.servers import STS_NS, FakeSTS, _iso8601, packed_policy

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_CHAIN_CAP = 3600


def _hmac(key, text):
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _quote(text):
    return urllib.parse.quote(text, safe="-_.~")


def canonical_request(method, path, headers, signed, body):
    """SigV4's canonical request: method, URI, query, headers, signed header names, body hash."""
    raw_path, _, query = path.partition("?")
    uri = urllib.parse.unquote(raw_path) or "/"
    if uri != "/":
        uri = posixpath.normpath(uri) + ("/" if uri.endswith("/") else "")
    pairs = sorted(
        (_quote(key), _quote(value))
        for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True)
    )
    lower = dict((name.lower(), value) for name, value in headers.items())
    lines = ["%s:%s" % (name, " ".join(lower.get(name, "").split())) for name in signed]
    return "\n".join(
        [
            method.upper(),
            urllib.parse.quote(uri, safe="/~"),
            "&".join("%s=%s" % pair for pair in pairs),
            "\n".join(lines) + "\n",
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def signature(secret_key, amz_date, scope, canonical):
    """The hex signature of ``canonical`` for ``scope`` (date/region/service/aws4_request)."""
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in scope.split("/"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(url, params, access_key, secret_key, session_token, region="us-east-1", when=None):
    """(body bytes, headers) of a query-protocol POST to ``url`` signed with these keys.

    For tests that send a request with chosen (say, expired) credentials.
    """
    parts = urllib.parse.urlsplit(url)
    body = urllib.parse.urlencode(params).encode()
    moment = when or datetime.datetime.utcnow()
    amz_date = moment.strftime(_AMZ_DATE)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Host": parts.netloc,
        "X-Amz-Date": amz_date,
        "X-Amz-Security-Token": session_token,
    }
    signed = sorted(name.lower() for name in headers)
    scope = "%s/%s/sts/aws4_request" % (amz_date[:8], region)
    canonical = canonical_request("POST", parts.path or "/", headers, signed, body)
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        access_key,
        scope,
        ";".join(signed),
        signature(secret_key, amz_date, scope, canonical),
    )
    return body, headers


def signer(call):
    """The access key id that signed a recorded call (its Authorization header), or None."""
    for name, value in call["headers"].items():
        if name.lower() == "authorization":
            match = _AUTH.match(value.strip())
            if match:
                return match.group("credential").split("/")[0]
    return None


class ChainSTS(FakeSTS):
    """FakeSTS that also answers AssumeRole, verifying signatures and trust (see the module)."""

    _MODES = FakeSTS._MODES + ("assume_role_duration",)

    def __init__(self, trust=None, assume_role_duration=None, clock=time.time, max_skew=300, **kwargs):
        """``trust``: {target role ARN: {"principals": [ARNs], "external_id": str or None}}.

        ``assume_role_duration``: the life of AssumeRole's credentials, whatever
        the call asks (default: as AssumeRoleWithWebIdentity's).  ``clock``
        (seconds since the epoch) decides the life of every credential issued and
        whether a signing key has expired; signing dates are checked against the
        real clock, which botocore signs with.
        """
        super(ChainSTS, self).__init__(**kwargs)
        self._initial = dict(
            trust=dict(trust or {}),
            assume_role_duration=assume_role_duration,
            clock=clock,
            max_skew=max_skew,
            duration=self.duration,
            honor_duration=self.honor_duration,
        )
        self._request = threading.local()
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

    def key(self, access_key):
        """The issued record of ``access_key`` (a dict), or None."""
        for creds in self.issued:
            if creds["access_key"] == access_key:
                return creds
        return None

    def actions(self):
        """The Action of every call so far, in order."""
        return [call["action"] for call in self.calls]

    # -- request handling ------------------------------------------------------

    def _handle(self, handler, body):
        # The signature covers the method, path and raw body, which _answer is not given.
        self._request.raw = (handler.command, handler.path, body.encode("utf-8"))
        super(ChainSTS, self)._handle(handler, body)

    def _answer(self, params, headers, values=None):
        action = params.get("Action")
        if action == "AssumeRoleWithWebIdentity":
            extra = {"role_arn": params.get("RoleArn"), "signed_by": None}
            life = _life(params, self.duration, self.honor_duration)
            if life is not None:  # else FakeSTS answers the ValidationError
                extra["expiration"] = int(self.clock() + life)
            extra.update(values or {})
            return self._assume(params, extra)
        if action in ("AssumeRole", "GetCallerIdentity"):
            caller, failure = self._verify(headers)
            if failure is not None:
                return failure
            if action == "GetCallerIdentity":
                return self._caller_identity(headers)
            return self._assume_role(params, caller, values or {})
        return super(ChainSTS, self)._answer(params, headers, values)

    def _verify(self, headers):
        """(the issued record of the signing key, None), or (None, a failure answer)."""
        lower = dict((name.lower(), value) for name, value in headers.items())
        match = _AUTH.match(lower.get("authorization", "").strip())
        if match is None:
            return None, ("fail", "MissingAuthenticationToken", 403, "Request is missing Authentication Token")
        credential = match.group("credential").split("/")
        signed = match.group("signed").split(";")
        if len(credential) != 5 or credential[3] != "sts" or credential[4] != "aws4_request":
            return None, ("fail", "IncompleteSignature", 400, "Credential scope is not date/region/sts/aws4_request")
        if signed != sorted(signed) or not {"host", "x-amz-date"} <= set(signed):
            return None, ("fail", "IncompleteSignature", 400, "SignedHeaders must include host and x-amz-date")
        creds = self.key(credential[0])
        if creds is None or lower.get("x-amz-security-token") != creds["session_token"]:
            return None, ("fail", "InvalidClientTokenId", 403, "The security token included in the request is invalid.")
        if "x-amz-security-token" not in signed:
            return None, ("fail", "IncompleteSignature", 400, "x-amz-security-token is not signed")
        if self.clock() >= creds["expiration"]:
            return None, ("fail", "ExpiredToken", 400, "The security token included in the request is expired")
        amz_date = lower.get("x-amz-date", "")
        try:
            sent = datetime.datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return None, ("fail", "IncompleteSignature", 400, "X-Amz-Date %r is not a date" % amz_date)
        if abs(sent.timestamp() - time.time()) > self.max_skew or credential[1] != amz_date[:8]:
            return None, ("fail", "SignatureDoesNotMatch", 403, "Signature expired: %s is out of range" % amz_date)
        method, path, body = self._request.raw
        canonical = canonical_request(method, path, headers, signed, body)
        expected = signature(creds["secret_key"], amz_date, "/".join(credential[1:]), canonical)
        if not hmac.compare_digest(expected, match.group("signature")):
            return None, (
                "fail", "SignatureDoesNotMatch", 403,
                "The request signature we calculated does not match the signature you provided.",
            )
        return creds, None

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
