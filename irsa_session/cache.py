"""The opt-in node-wide credential cache: one process per node calls STS.

Processes that share a cache directory take a file lock before exchanging, and
look in the cache again once they hold it; whoever gets the lock first calls
STS and writes its result atomically, the others read it.  Entries are JSON files
of mode 0600 in a directory of mode 0700 owned by this user, keyed by a hash of
the token itself and the session settings: possession of the same token is the
proof, so a process that cannot read the pod's token file (or forged a JWT with
the same claims) never gets its credentials.  An expired, foreign-owned,
loosely permitted, malformed or unreadable entry is ignored and replaced, never
trusted.  The directory belongs to one pod (an emptyDir), never to a hostPath
shared by pods.
"""

import errno
import hashlib
import json
import logging
import math
import os
import stat
import tempfile
import threading
import time

try:
    import fcntl
except ImportError:  # not on Windows; the cache is for Linux nodes
    fcntl = None  # type: ignore[assignment]

from . import _events, _fork, _redact, token
from ._refresh import advisory_span
from .source import Issued, odd_value

__all__ = ["NodeCache", "available"]

_FORMAT = 1
_LOCK_WAIT = 60.0  # seconds to wait for another process's exchange before making our own
_POLL = 0.05
_LONGEST_LIFE = 43200 + 60  # seconds: STS's longest session, and a margin for clocks
_STALE_TEMPORARY = 60.0  # seconds after which a .tmp- file is a killed writer's leftover
_LARGEST_ENTRY = 16 * 1024  # bytes; an entry is about 1.5 KiB
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

logger = logging.getLogger(__name__)


def available():
    """Whether this platform has the file locks the cache needs."""
    return fcntl is not None


class NodeCache(object):
    """Stands in front of a source (:mod:`irsa_session.source`), following its protocol.

    ``cache(attempts=None)`` returns Issued credentials: fresh entries (not yet
    in their advisory window) are used as they are; otherwise one process
    exchanges under the lock and shares the result.
    """

    def __init__(self, exchange, directory, clock=time.time, read_token=token.read):
        self.exchange = exchange
        self.configured = os.path.abspath(os.path.expanduser(directory))
        self.directory = self.configured  # or the private directory made inside it
        self._clock = clock
        self._read_token = read_token
        self._warned = False
        self.hits = 0

    @property
    def settings(self):
        return self.exchange.settings

    def reset(self):
        """After a fork: the exchange's STS client belongs to the parent."""
        self.exchange.reset()

    def __call__(self, attempts=None):
        if not self._directory_ok():
            return self.exchange(attempts)
        started = time.monotonic()
        path = self._entry_path()
        found = self._load(path)
        if found is not None:
            return self._hit(found, started)
        with _Lock(path + ".lock"):
            found = self._load(path)  # another process may have refreshed meanwhile
            if found is not None:
                return self._hit(found, started)
            issued = self.exchange(attempts)._replace(issued_at=self._clock())
            self._store(path, issued)
            return issued

    def _hit(self, found, started):
        _events.emit("node cache", self.settings, "ok", time.monotonic() - started, 0, found.expiry)
        return found

    def _entry_path(self):
        proof = getattr(self.exchange, "proof", None)
        if proof is not None:
            web_token = proof()  # the token the source sends, however it gets it
        else:
            web_token = self._read_token(self.exchange.settings.token_file)
        settings = self.exchange.settings._asdict()
        settings.pop("token_file", None)
        settings.pop("cache_dir", None)
        material = json.dumps(
            [settings, hashlib.sha256(web_token.encode("utf-8")).hexdigest()],
            sort_keys=True,
            default=list,
        )
        return os.path.join(self.directory, hashlib.sha256(material.encode()).hexdigest() + ".json")

    def _directory_ok(self):
        """Find (or make) a directory that is this user's alone; False if there is none.

        The configured directory is used as it is when it is ours and mode 0700.
        A kubelet emptyDir is 0777 (2777 with an fsGroup) and may be root's: then
        a directory of our own is made inside it, ``.irsa-session-<uid>``, mode
        0700, and used only if it is a real directory that only we can write.
        """
        try:
            os.makedirs(self.configured, mode=0o700, exist_ok=True)
            if _private(os.lstat(self.configured)):
                self.directory = self.configured
                return True
            inner = os.path.join(self.configured, ".irsa-session-%d" % os.getuid())
            try:
                os.mkdir(inner, 0o700)
            except FileExistsError:
                pass
            info = os.lstat(inner)
        except OSError as err:
            return self._unusable("%s" % err)
        if not _private(info):
            return self._unusable(
                "%r is not a directory of mode 0700 owned by uid %d: another user may have "
                "made it" % (inner, os.getuid())
            )
        self.directory = inner
        return True

    def _unusable(self, why):
        if not self._warned:  # once, not at every fetch
            self._warned = True
            logger.warning(
                "node cache %r is unusable (%s); this process calls STS directly", self.configured, why
            )
        return False

    def _load(self, path):
        """The entry at ``path`` if it is ours, intact and not yet due; else None."""
        try:
            # Non-blocking: a FIFO planted here must not hang the read.
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > _LARGEST_ENTRY:
                logger.warning(
                    "node cache entry %r is not a regular file of at most %d bytes; ignored "
                    "and replaced", path, _LARGEST_ENTRY,
                )
                return None
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None
            with os.fdopen(fd, "rb") as handle:
                fd = None
                raw = handle.read(_LARGEST_ENTRY + 1)
            if len(raw) > _LARGEST_ENTRY:
                return None  # it grew after the check
            data = json.loads(raw.decode("utf-8"))
            if data.get("format") != _FORMAT:
                return None
            issued = Issued(
                access_key=data["access_key"],
                secret_key=data["secret_key"],
                token=data["token"],
                expiry=float(data["expiry"]),
                account_id=data.get("account_id"),
                issued_at=float(data["issued_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        finally:
            if fd is not None:
                os.close(fd)
        if not _plausible(issued):
            return None
        _redact.remember(issued.secret_key, issued.token)
        if self._clock() >= issued.expiry - advisory_span(issued.expiry - issued.issued_at):
            return None  # due for a refresh: not worth sharing
        self.hits += 1
        return issued

    def _store(self, path, issued):
        data = dict(issued._asdict(), format=_FORMAT)
        try:
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as handle:  # mkstemp makes it 0600
                    handle.write(json.dumps(data).encode("utf-8"))
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as err:
            logger.warning("could not write node cache entry in %r: %s", self.directory, err)
        self._sweep()

    def _sweep(self):
        """Remove what killed writers and old tokens left: stale .tmp- files, dead entries."""
        now = time.time()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if name.startswith(".tmp-"):
                age = _STALE_TEMPORARY
            elif name.endswith((".json", ".json.lock")):
                age = _LONGEST_LIFE  # past any credentials' life; locks are touched when taken
            else:
                continue
            path = os.path.join(self.directory, name)
            try:
                if now - os.lstat(path).st_mtime > age:
                    os.unlink(path)
            except OSError:
                pass  # another process swept it first


def _private(info):
    """Whether ``info`` (an lstat) is a real directory that only this user can use."""
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def _plausible(issued):
    """Whether a cache entry's values are ones STS could have issued."""
    if not (math.isfinite(issued.expiry) and math.isfinite(issued.issued_at)):
        return False
    if not 0 < issued.expiry - issued.issued_at <= _LONGEST_LIFE:
        return False
    return odd_value(issued.access_key, issued.secret_key, issued.token) is None


# Descriptors of the locks this process holds.  A forked child closes its copies:
# an flock belongs to the open file, so a child's copy would hold the parent's
# lock for as long as the child lives.
_held = set()
_held_lock = threading.Lock()


def _close_inherited():
    global _held_lock
    _held_lock = threading.Lock()
    for fd in list(_held):
        try:
            os.close(fd)  # closes the child's copy; the parent's lock is untouched
        except OSError:
            pass
    _held.clear()


_fork.after_fork(_close_inherited)


class _Lock(object):
    """An exclusive flock on ``path``, waited for up to _LOCK_WAIT seconds."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            with _held_lock:
                self.fd = os.open(self.path, flags, 0o600)
                _held.add(self.fd)
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
        except OSError as err:
            logger.warning("could not open node cache lock %r: %s", self.path, err)
            self.__exit__()
            return self
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    logger.warning("node cache lock %r not taken (%s); exchanging anyway", self.path, err)
                    return self
            time.sleep(_POLL)
        try:
            os.utime(self.fd)  # a lock in use is never swept as old
        except (OSError, NotImplementedError, TypeError):
            pass
        return self

    def __exit__(self, *exc_info):
        with _held_lock:
            if self.fd is not None and self.fd in _held:
                _held.discard(self.fd)
                os.close(self.fd)  # closing releases the flock
            self.fd = None
