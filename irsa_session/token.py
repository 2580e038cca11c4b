"""Reads the projected service-account token, and decodes its claims for messages."""

import base64
import json
import os

from .config import TOKEN_FILE
from .errors import TokenFileError

__all__ = ["read", "claims"]

_LOOKS = 3  # reads of a path that seems to be missing, before saying so


def read(path, _open=open):
    """Return the token in ``path``, stripped; raise TokenFileError naming the fix.

    Called at every refresh and every retry: the kubelet rewrites the file (by
    swapping its ``..data`` symlink) before the token expires.
    """
    where = "web identity token file %r (token_file or %s)" % (path, TOKEN_FILE)
    try:
        data = _read_bytes(path, _open)
    except FileNotFoundError as err:
        raise TokenFileError(
            "%s does not exist: check that the pod's service account has the "
            "eks.amazonaws.com/role-arn annotation and that the pod was started "
            "after it was added" % where,
            path,
        ) from err
    except IsADirectoryError as err:
        raise TokenFileError(
            "%s is a directory; point it at the token file inside it" % where, path
        ) from err
    except PermissionError as err:
        raise TokenFileError(
            "%s is not readable by this user (uid %s): set the pod's "
            "securityContext.fsGroup (or runAsUser) so the container can read it"
            % (where, _uid()),
            path,
        ) from err
    except OSError as err:
        raise TokenFileError(
            "%s could not be read: %s" % (where, err.strerror or err), path
        ) from err
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        bad_byte = err.start
    else:
        bad_byte = None
    if bad_byte is not None:
        # Raised outside the handler: a UnicodeDecodeError carries the whole
        # file in its args, so it must not ride along as __context__.
        raise TokenFileError(
            "%s is not UTF-8 text (byte %d), so it is not a service-account token"
            % (where, bad_byte),
            path,
        )
    if not token:
        raise TokenFileError(
            "%s is empty: the kubelet has not written the token yet" % where, path
        )
    return token


def _read_bytes(path, _open):
    # The kubelet swaps the ..data symlink, then deletes the old directory: a
    # read that resolved the old link just before can miss the file.  The new
    # one is already in place, so look again before calling it missing.
    for _ in range(_LOOKS - 1):
        try:
            with _open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            continue
    with _open(path, "rb") as handle:
        return handle.read()


def claims(token):
    """The JWT payload as a dict, signature not checked; None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    body = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        payload = json.loads(base64.urlsafe_b64decode(body.encode("ascii")).decode("utf-8"))
    except (ValueError, UnicodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _uid():
    return os.getuid() if hasattr(os, "getuid") else "?"
