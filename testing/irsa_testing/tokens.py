"""JWT-shaped service-account tokens, like the ones EKS projects into pods, and token files."""

__all__ = ["make_token", "write_token", "claims_of"]

import base64
import json
import os
import time

from irsa_testing import ISSUER, SUBJECT


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def make_token(exp_in=3600, **claims):
    """A JWT-shaped token (unsigned) like the one EKS projects into pods.

    Its claims are ``iss`` (ISSUER), ``sub`` (SUBJECT), ``aud``, ``exp`` (``exp_in``
    seconds from now) and ``iat``; ``claims`` add to or replace them.  The
    signature is random, so no two tokens are equal.
    """
    body = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": ["sts.amazonaws.com"],
        "exp": int(time.time() + exp_in),
        "iat": int(time.time()),
    }
    body.update(claims)
    header = {"alg": "RS256", "kid": "k1"}
    signature = base64.urlsafe_b64encode(os.urandom(64)).decode().rstrip("=")
    return "%s.%s.%s" % (_b64(header), _b64(body), signature)


def write_token(folder, token=None, name="token"):
    """Write ``token`` (a fresh ``make_token()`` if None) to folder/name, as the kubelet does:
    no trailing newline.  Returns the path."""
    path = os.path.join(str(folder), name)
    with open(path, "w") as handle:
        handle.write(make_token() if token is None else token)
    return path


def claims_of(token):
    """The claims of a JWT, or {} if the token is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode()).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}
