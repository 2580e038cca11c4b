"""The doctor's checks of the token file and of the token's claims."""

import difflib
import os
import re
import time

try:
    import grp
    import pwd
except ImportError:  # not on Windows, where owners have no numbers anyway
    grp = pwd = None  # type: ignore[assignment]

from .. import config, token
from ..config import DEFAULT_TOKEN_PATH, TOKEN_FILE
from ..errors import ConfigError, TokenFileError
from .commands import STS_AUDIENCE
from .render import FAIL, OK, SKIPPED, WARN, finding, span, until, utc

__all__ = ["token_file", "token_claims", "nearby", "KUBELET_FIX"]

#: What to do about a token the kubelet did not rotate.
KUBELET_FIX = (
    "check the kubelet on this node and the pod's projected token volume; a restarted "
    "pod gets a fresh token"
)

_SUBJECT = re.compile(r"^system:serviceaccount:([^:]+):([^:]+)$")


def token_file(probe):
    """Whether the token file can be read; keeps the token in ``probe.web_token``."""
    path, where = probe.path, probe.path_from
    if path is None:
        detail = "no token file: %s (or --token-file) is unset" % TOKEN_FILE
        return finding("token-file", SKIPPED, detail)
    try:
        config.check("token_file", path)
    except ConfigError as err:
        fix = "use the absolute path, normally %s" % DEFAULT_TOKEN_PATH
        return finding("token-file", FAIL, str(err), fix, path=path)
    facts, fields = [], {"path": path}
    if os.path.islink(path):
        fields["target"] = os.path.realpath(path)
        facts.append("a symlink to %s" % fields["target"])
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is not None:
        fields.update(mode="%04o" % (info.st_mode & 0o7777), uid=info.st_uid, gid=info.st_gid)
        facts.append(
            "mode %s, owner uid %d%s, gid %d%s"
            % (fields["mode"], info.st_uid, _name(pwd and pwd.getpwuid, info.st_uid),
               info.st_gid, _name(grp and grp.getgrgid, info.st_gid))
        )
    me = fields["process"] = _process_ids()
    facts.append(
        "this process runs as uid %s, gid %s, groups %s" % (me["uid"], me["gid"], me["groups"])
    )
    try:
        web_token = token.read(path)
    except TokenFileError as err:
        detail = "\n".join([str(err)] + facts)
        return finding("token-file", FAIL, detail, _token_fix(err, me), **fields)
    probe.web_token = web_token
    fields["bytes"] = len(web_token)
    facts[:0] = ["%s (from %s)" % (path, where), "readable, %d bytes" % len(web_token)]
    return finding("token-file", OK, "\n".join(facts), **fields)


def _token_fix(err, me):
    cause = err.__cause__
    if isinstance(cause, FileNotFoundError):
        near = nearby(err.path)
        if near:
            return (
                "no such file, but %s is there: set %s (or --token-file) to it if that is the "
                "projected token" % (" or ".join(near), TOKEN_FILE)
            )
        return (
            "check that the pod's service account has the eks.amazonaws.com/role-arn "
            "annotation and the pod its aws-iam-token projected volume; restart the pod"
        )
    if isinstance(cause, PermissionError):
        return (
            "set the pod's securityContext.fsGroup (e.g. to %s) or runAsUser so that uid %s can "
            "read the token: the kubelet makes it readable by the fsGroup" % (me["gid"], me["uid"])
        )
    if isinstance(cause, IsADirectoryError):
        return "point %s at the token file inside the directory" % TOKEN_FILE
    return "point %s at the projected token (%s)" % (TOKEN_FILE, DEFAULT_TOKEN_PATH)


def nearby(path):
    """Files beside ``path`` (or the webhook's path) that a mistyped path may have meant."""
    found = []
    folder, name = os.path.split(path or "")
    try:
        found = [
            os.path.join(folder, match)
            for match in difflib.get_close_matches(name, sorted(os.listdir(folder)), n=2, cutoff=0.6)
        ]
    except OSError:
        pass
    if not found and path != DEFAULT_TOKEN_PATH and os.path.isfile(DEFAULT_TOKEN_PATH):
        found = [DEFAULT_TOKEN_PATH]
    return found


def _process_ids():
    if not hasattr(os, "getuid"):
        return {"uid": "?", "gid": "?", "groups": []}
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups())}


def _name(lookup, number):
    """' (root)' for uid or gid 0, through pwd.getpwuid or grp.getgrgid; '' if unnamed."""
    try:
        return " (%s)" % lookup(number)[0]
    except (TypeError, KeyError):  # no lookup on this platform; no such user or group
        return ""


def token_claims(probe):
    """What the token's claims say (decoded, signature not checked); keeps them in ``probe.claims``."""
    if probe.web_token is None:
        return finding("token-claims", SKIPPED, "skipped: no token was read")
    claims = token.claims(probe.web_token)
    if claims is None:
        return finding(
            "token-claims", FAIL,
            "the token is not a JWT (three base64url parts joined by dots): not a projected "
            "service-account token, and STS would refuse it",
            "point %s at the projected token (%s)" % (TOKEN_FILE, DEFAULT_TOKEN_PATH),
        )
    probe.claims = claims
    problems, lines = [], []  # problems: (status, fix)
    issuer, subject, exp = claims.get("iss"), claims.get("sub"), claims.get("exp")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience] if audience else []
    fields = {"iss": issuer, "sub": subject, "aud": audiences, "exp": exp}

    lines.append("iss: %s" % (issuer or "missing"))
    if not isinstance(issuer, str) or not issuer:
        problems.append((FAIL, "use the projected token, whose iss is the cluster's OIDC issuer"))
    match = _SUBJECT.match(subject) if isinstance(subject, str) else None
    if match:
        fields.update(namespace=match.group(1), service_account=match.group(2))
        lines.append("sub: %s (namespace %s, service account %s)" % ((subject,) + match.groups()))
    else:
        lines.append("sub: %s (not system:serviceaccount:<namespace>:<name>)" % (subject,))
        problems.append((WARN, "use the service-account token the kubelet projects"))
    lines.append("aud: %s" % (", ".join(str(item) for item in audiences) or "missing"))
    if STS_AUDIENCE not in audiences:
        problems.append((FAIL, (
            "IRSA tokens have the audience %s: check the projected volume's audience (the pod "
            "identity webhook sets %s unless the service account has an "
            "eks.amazonaws.com/audience annotation), or add this audience to the role's IAM "
            "OIDC provider" % (STS_AUDIENCE, STS_AUDIENCE)
        )))
    now = time.time()
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        lines.append("exp: missing")
        problems.append((WARN, "use the projected token, which always has exp"))
    elif exp <= now:
        fields["expires_in"] = int(exp - now)
        lines.append(
            "exp: %s (expired %s ago: the kubelet should have rotated it)"
            % (utc(exp), span(now - exp))
        )
        problems.append((FAIL, "the kubelet rewrites the token before it expires: " + KUBELET_FIX))
    else:
        fields["expires_in"] = int(exp - now)
        lines.append("exp: %s (%s)" % (utc(exp), until(exp, now)))
    lines.append("(decoded, signature not checked)")
    statuses = [status for status, _ in problems]
    status = FAIL if FAIL in statuses else WARN if statuses else OK
    fix = "\n".join(fix for _, fix in problems) or None
    return finding("token-claims", status, "\n".join(lines), fix, **fields)
