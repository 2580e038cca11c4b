"""Reads the projected service-account token, and decodes its claims for messages."""

import base64
import errno
import json
import os
import stat

from .config import TOKEN_FILE
from .errors import TokenFileError

__all__ = ["read", "claims", "open_regular", "NotRegularFile", "IRSA", "POD_IDENTITY"]

_LOOKS = 3  # reads of a path that seems to be missing, before saying so


_LIMIT = 64 * 1024  # bytes; a projected token is about 1 KiB
_BOM = b"\xef\xbb\xbf"


#: What a missing token file means, by source: (what it is, its variable, the fix).
IRSA = (
    "web identity token file",
    TOKEN_FILE,
    "check that the pod's service account has the eks.amazonaws.com/role-arn "
    "annotation and that the pod was started after it was added",
)
POD_IDENTITY = (
    "EKS Pod Identity token file",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "check that a Pod Identity association exists for this pod's namespace and "
    "service account and that the pod was started after it was made",
)


def read(path, _open=None, source=IRSA):
    """Return the token in ``path``, stripped; raise TokenFileError naming the fix.

    Called at every refresh and every retry: the kubelet rewrites the file (by
    swapping its ``..data`` symlink) before the token expires.  Only a regular
    file is read, without blocking, and at most 64 KiB of it: a FIFO or a device
    named by mistake is an error at once, not a hang or a memory blow-up.
    ``source`` (:data:`IRSA` or :data:`POD_IDENTITY`) words the messages.
    """
    what, variable, missing_fix = source
    where = "%s %r (token_file or %s)" % (what, path, variable)
    try:
        data = _read_bytes(path, _open or open_regular)
    except FileNotFoundError as err:
        raise TokenFileError("%s does not exist: %s" % (where, missing_fix), path) from err
    except IsADirectoryError as err:
        raise TokenFileError(
            "%s is a directory; point it at the token file inside it" % where, path
        ) from err
    except NotRegularFile as err:
        raise TokenFileError(
            "%s is %s, not a regular file: point it at the token file the kubelet "
            "writes" % (where, err.kind),
            path,
        ) from None
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
    if len(data) > _LIMIT:
        raise TokenFileError(
            "%s is larger than %d KiB, so it is not a service-account token"
            % (where, _LIMIT // 1024),
            path,
        )
    if data.startswith(_BOM):
        data = data[len(_BOM):]  # an editor's byte-order mark is not part of the token
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
    if any(ord(char) < 32 or ord(char) == 127 for char in token):
        # A line break inside would end an HTTP header early (Pod Identity sends
        # the token as one); the token is not shown, nor any error that quotes it.
        raise TokenFileError(
            "%s holds a control character (such as a line break) inside the token, so "
            "it is not a service-account token; point it at the file the kubelet writes"
            % where,
            path,
        )
    return token


class NotRegularFile(OSError):
    """The path names a FIFO, a device or a socket: ``kind`` says which."""

    def __init__(self, kind):
        super(NotRegularFile, self).__init__(kind)
        self.kind = kind


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path, mode="rb"):
    """Open ``path`` for reading if it is a regular file; never blocks on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(
                next((kind for test, kind in _KINDS if test(info.st_mode)), "not a file")
            )
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def _read_bytes(path, _open):
    # The kubelet swaps the ..data symlink, then deletes the old directory: a
    # read that resolved the old link just before can miss the file.  The new
    # one is already in place, so look again before calling it missing.
    for _ in range(_LOOKS - 1):
        try:
            with _open(path, "rb") as handle:
                return handle.read(_LIMIT + 1)
        except FileNotFoundError:
            continue
    with _open(path, "rb") as handle:
        return handle.read(_LIMIT + 1)


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
