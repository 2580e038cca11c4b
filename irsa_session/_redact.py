"""Keeps secrets out of log records, including botocore's DEBUG ones."""

import logging
import re
import threading
import time
from collections import OrderedDict

from urllib.parse import quote

from . import _fork

__all__ = ["remember", "scrub", "install"]

MASK = "****"
_SHORTEST = 8  # shorter values are not secrets worth masking everywhere

# Values seen (tokens, secret keys, session tokens) -> when last seen.  A value
# stays masked for longer than any credentials live, however many sets of
# credentials a process holds; only a runaway count evicts the oldest early.
_known = OrderedDict()
_KEEP = 13 * 3600  # seconds: STS's longest session (12 h) and a margin
_MOST = 4096
_lock = threading.Lock()

_SECRET_FIELDS = (
    r"SecretAccessKey|SessionToken|WebIdentityToken|"
    r"secret_key|secret_access_key|aws_secret_access_key|aws_session_token|"
    r"session_token|token"
)
_PATTERNS = (
    # XML bodies: <SecretAccessKey>...</SecretAccessKey>
    (r"(<(?:SecretAccessKey|SessionToken|WebIdentityToken)>)[^<]*", r"\1" + MASK, 0),
    # dict reprs and JSON: 'SessionToken': 'abc' / "token": "abc"
    (r"""((?:['"])(?:%s)(?:['"])\s*:\s*b?['"])[^'"]*""" % _SECRET_FIELDS, r"\1" + MASK, re.I),
    # headers and canonical requests: x-amz-security-token:abc / 'X-Amz-Security-Token': b'abc'
    (r"""(x-amz-security-token['"]?\s*[:=]\s*b?['"]?)[^\s'",&]+""", r"\1" + MASK, re.I),
    # form bodies: WebIdentityToken=abc&...
    (r"((?:WebIdentityToken|X-Amz-Security-Token)=)[^&\s'\"]+", r"\1" + MASK, re.I),
    # anything shaped like a JWT
    (r"eyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]*", MASK, re.ASCII),
)
_compiled = []  # compiled on first use, to keep import cheap
_WATCHED = (
    "botocore", "boto3", "s3transfer", "urllib3", "irsa_session",
    "aiobotocore", "s3fs", "fsspec", "aiohttp",
)
_installed = []
_formatter = logging.Formatter()


def _new_lock():
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


_fork.after_fork(_new_lock)


def remember(*values, **kwargs):
    """Mask these values wherever they turn up in a log record from now on.

    ``now`` (keyword, monotonic seconds) is for tests.
    """
    now = kwargs.get("now")
    now = time.monotonic() if now is None else now
    with _lock:
        for value in values:
            if isinstance(value, str) and len(value) >= _SHORTEST:
                for each in {value, quote(value, safe="")}:
                    _known.pop(each, None)
                    _known[each] = now  # most recently seen last
        while _known and (
            len(_known) > _MOST or now - next(iter(_known.values())) > _KEEP
        ):
            _known.popitem(last=False)


def scrub(text):
    """``text`` with every known secret and secret-shaped field masked."""
    if not _compiled:
        _compiled.extend((re.compile(p, flags), r) for p, r, flags in _PATTERNS)
    for pattern, replacement in _compiled:
        text = pattern.sub(replacement, text)
    with _lock:
        known = tuple(_known)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def install():
    """Wrap the logging record factory once, so records are scrubbed as made."""
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            record = previous(*args, **kwargs)
            if record.name.startswith(_WATCHED):
                _scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed.append(factory)


def _scrub_record(record):
    try:
        message = record.getMessage()
    except Exception:  # a broken record is logging's to report, not ours
        return
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        trace = _formatter.formatException(record.exc_info)
        record.exc_text = scrub(trace)
