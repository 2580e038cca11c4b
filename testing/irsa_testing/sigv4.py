"""SigV4 as the stand-ins check it: canonical requests, signatures, and one verdict.

The fake STS (servers.py, chainsts.py) and the S3 proxy (s3proxy.py) answer a
signed request only when :func:`check` accepts it: the ``Authorization`` header
names a key that was issued, has not expired, is sent with that key's session
token, and the signature verifies with that key's secret.  :func:`sign` makes
such a request (with any keys: a test's forged or expired ones included).

Standard library only, and Python 3.7 syntax, like servers.py.
"""

__all__ = [
    "AUTH", "AMZ_DATE", "canonical_request", "signature", "sign", "signer", "check", "Refusal",
]

import collections
import datetime
import hashlib
import hmac
import posixpath
import re
import time
import urllib.parse

AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
AMZ_DATE = "%Y%m%dT%H%M%SZ"

#: Why a request was refused: S3's or STS's error code, an HTTP status and a message.
Refusal = collections.namedtuple("Refusal", "code status message")


def _quote(text):
    return urllib.parse.quote(text, safe="-_.~")


def _canonical_query(query):
    pairs = []
    for part in query.split("&") if query else ():
        key, _, value = part.partition("=")
        pairs.append((_quote(urllib.parse.unquote(key)), _quote(urllib.parse.unquote(value))))
    return "&".join("%s=%s" % pair for pair in sorted(pairs))


def canonical_request(method, target, headers, signed, payload_hash, normalise=True):
    """SigV4's canonical request for ``target`` (path and query as sent).

    ``headers`` maps names (any case) to a value or a list of values.  S3 does
    not normalise the path (``normalise=False``: no ``.`` or ``//`` removed); both
    compare path and query URI-encoded once, however the client escaped them.
    """
    path, _, query = target.partition("?")
    uri = urllib.parse.unquote(path) or "/"
    if normalise and uri != "/":
        uri = posixpath.normpath(uri) + ("/" if uri.endswith("/") else "")
    lower = {}
    for name, value in headers.items():
        values = value if isinstance(value, list) else [value]
        lower.setdefault(name.lower(), []).extend(values)
    lines = [
        "%s:%s" % (name, ",".join(" ".join(v.split()) for v in lower.get(name, [])))
        for name in signed
    ]
    return "\n".join(
        [
            method.upper(),
            urllib.parse.quote(uri, safe="-_.~/"),
            _canonical_query(query),
            "\n".join(lines) + "\n",
            ";".join(signed),
            payload_hash,
        ]
    )


def signature(secret_key, amz_date, scope, canonical):
    """The hex signature of ``canonical`` for ``scope`` (date/region/service/aws4_request)."""
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in scope.split("/"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(url, params, access_key, secret_key, session_token, region="us-east-1", when=None,
         service="sts", method="POST"):
    """(body bytes, headers) of a query-protocol request to ``url`` signed with these keys.

    For tests that send a request with chosen (say, expired or forged) credentials;
    ``session_token=None`` sends none.
    """
    parts = urllib.parse.urlsplit(url)
    body = urllib.parse.urlencode(params).encode() if method == "POST" else b""
    moment = when or datetime.datetime.utcnow()
    amz_date = moment.strftime(AMZ_DATE)
    headers = {"Host": parts.netloc, "X-Amz-Date": amz_date}
    if method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    if service == "s3":
        headers["X-Amz-Content-Sha256"] = hashlib.sha256(body).hexdigest()
    if session_token is not None:
        headers["X-Amz-Security-Token"] = session_token
    signed = sorted(name.lower() for name in headers)
    scope = "%s/%s/%s/aws4_request" % (amz_date[:8], region, service)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    canonical = canonical_request(
        method, target, headers, signed, hashlib.sha256(body).hexdigest(), normalise=service != "s3"
    )
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        access_key, scope, ";".join(signed), signature(secret_key, amz_date, scope, canonical),
    )
    return body, headers


def signer(headers):
    """The access key id named by a request's ``Authorization`` header, or None."""
    for name, value in headers.items():
        if name.lower() == "authorization":
            value = " ".join(value) if isinstance(value, list) else value
            match = AUTH.match(value.strip())
            if match:
                return match.group("credential").split("/")[0]
    return None


def check(method, target, headers, body, lookup, service, clock=time.time, max_skew=300):
    """(the issued record of the signing key, None), or (None or the record, :class:`Refusal`).

    ``lookup(access_key)`` returns the issued record (a dict with ``secret_key``,
    ``session_token`` and ``expiration`` in epoch seconds) or None.  ``clock``
    decides whether the key has expired; the signing date is checked against the
    real clock (clients sign with it), within ``max_skew`` seconds.  S3
    (``service="s3"``) takes the payload hash from ``x-amz-content-sha256`` and
    does not normalise the path.
    """
    lower = {}
    for name, value in headers.items():
        values = value if isinstance(value, list) else [value]
        lower.setdefault(name.lower(), []).extend(values)

    def one(name):
        return ",".join(lower.get(name, [])) or None

    match = AUTH.match((one("authorization") or "").strip())
    if match is None:
        if service == "s3":
            return None, Refusal("AccessDenied", 403, "Access Denied (the request was not signed)")
        return None, Refusal("MissingAuthenticationToken", 403, "Request is missing Authentication Token")
    credential = match.group("credential").split("/")
    signed = match.group("signed").split(";")
    if len(credential) != 5 or credential[3] != service or credential[4] != "aws4_request":
        return None, Refusal(
            "IncompleteSignature", 400, "Credential scope is not date/region/%s/aws4_request" % service
        )
    if signed != sorted(signed) or not {"host", "x-amz-date"} <= set(signed):
        return None, Refusal("IncompleteSignature", 400, "SignedHeaders must include host and x-amz-date")
    creds = lookup(credential[0])
    if creds is None:
        code = "InvalidAccessKeyId" if service == "s3" else "InvalidClientTokenId"
        return None, Refusal(code, 403, "The AWS Access Key Id you provided does not exist in our records.")
    if one("x-amz-security-token") != creds["session_token"]:
        code = "InvalidToken" if service == "s3" else "InvalidClientTokenId"
        return creds, Refusal(code, 403, "The security token included in the request is invalid.")
    if "x-amz-security-token" not in signed:
        return creds, Refusal("IncompleteSignature", 400, "x-amz-security-token is not signed")
    if clock() >= creds["expiration"]:
        return creds, Refusal("ExpiredToken", 400, "The security token included in the request is expired")
    amz_date = one("x-amz-date") or ""
    try:
        sent = datetime.datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return creds, Refusal("IncompleteSignature", 400, "X-Amz-Date %r is not a date" % amz_date)
    if abs(sent.timestamp() - time.time()) > max_skew or credential[1] != amz_date[:8]:
        return creds, Refusal("SignatureDoesNotMatch", 403, "Signature expired: %s is out of range" % amz_date)
    payload = hashlib.sha256(body).hexdigest()
    if service == "s3":
        payload = one("x-amz-content-sha256") or payload
    canonical = canonical_request(method, target, lower, signed, payload, normalise=service != "s3")
    expected = signature(creds["secret_key"], amz_date, "/".join(credential[1:]), canonical)
    if not hmac.compare_digest(expected, match.group("signature")):
        return creds, Refusal(
            "SignatureDoesNotMatch", 403,
            "The request signature we calculated does not match the signature you provided.",
        )
    return creds, None
