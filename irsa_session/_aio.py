"""aiobotocore, hence s3fs, fsspec, pandas and Dask: the library's credentials there too.

Importing this module imports no aiobotocore.  :func:`install` patches
aiobotocore's credential chain at once if ``aiobotocore.session`` is already
imported, else when (and if) it is imported later (:mod:`irsa_session._imports`);
a process that never uses aiobotocore never loads it.  The classes that touch
aiobotocore live in ``_aio_impl``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Any, Optional, Sequence

import logging
import sys
import threading

from . import _fork, _imports, sessions

__all__ = ["install", "aio_session"]

logger = logging.getLogger("irsa_session")

#: The module whose import triggers the patch (it imports aiobotocore.credentials).
WATCHED = "aiobotocore.session"

_state = {"credentials": None, "patched": False, "waiting": False}


class _Lock(object):
    """The lock around ``_state``, made anew in a child after a fork."""

    def __init__(self):
        self.lock = threading.Lock()
        _fork.track(self)

    def _after_fork(self):
        self.lock = threading.Lock()


_guard = _Lock()


def install(credentials):
    """Make aiobotocore sessions built from now on resolve ``credentials`` in their chain.

    ``credentials`` are the library's (sync) Credentials, shared with boto3:
    aiobotocore gets an async view of the same object, so one STS call per
    refresh serves both.  The provider goes where ``_compat.place_provider``
    puts it for botocore (environment keys and a chosen profile still win).
    ``None`` restores aiobotocore's own chain.  Imports nothing now.
    """
    with _guard.lock:
        _state["credentials"] = credentials
        if credentials is None or _state["patched"] or _state["waiting"]:
            return
        _state["waiting"] = True
    _imports.when_imported(WATCHED, _patch_on_import)


sessions.on_install(install)


def installed_credentials():
    """The credentials that install() put in aiobotocore's chain, or None."""
    return _state["credentials"]


def _patch_on_import():
    """Wrap aiobotocore's resolver factories (once); this imports nothing."""
    with _guard.lock:
        if _state["patched"]:
            return
        for name in ("aiobotocore.credentials", WATCHED):
            module = sys.modules.get(name)
            original = getattr(module, "create_credential_resolver", None)
            if original is None:
                logger.warning(
                    "irsa_session found no create_credential_resolver in %s: s3fs and "
                    "friends use aiobotocore's own chain. Pass "
                    "session=irsa_session.aio_session() to s3fs.S3FileSystem instead",
                    name,
                )
                return
            if not getattr(original, "irsa_session_wrapped", False):
                module.create_credential_resolver = _wrap(original)
        _state["patched"] = True


def _wrap(original):
    def create_credential_resolver(session, *args, **kwargs):
        resolver = original(session, *args, **kwargs)
        credentials = _state["credentials"]
        if credentials is not None:
            try:
                from . import _aio_impl  # aiobotocore is fully imported by now

                _aio_impl.join_chain(resolver, credentials, session)
            except Exception as err:  # a new aiobotocore: its own chain still works
                logger.warning(
                    "irsa_session could not put its credentials in aiobotocore's chain "
                    "(%s: %s); this session uses aiobotocore's own. Pass "
                    "session=irsa_session.aio_session() to s3fs.S3FileSystem instead",
                    type(err).__name__,
                    err,
                )
        return resolver

    create_credential_resolver.__wrapped__ = original
    create_credential_resolver.__doc__ = original.__doc__
    create_credential_resolver.irsa_session_wrapped = True
    return create_credential_resolver


def aio_session(
    role_arn: Optional[str] = None,
    token_file: Optional[str] = None,
    *,
    session_name: Optional[str] = None,
    region_name: Optional[str] = None,
    duration_seconds: Optional[int] = None,
    sts_endpoint_url: Optional[str] = None,
    policy: Optional[str] = None,
    policy_arns: Optional[Sequence[str]] = None,
    fallback: bool = True,
    cache_dir: Optional[str] = None
) -> Any:
    """Return an aiobotocore session whose credentials are the library's.

    For s3fs, fsspec, pandas and Dask: ``s3fs.S3FileSystem(session=aio_session())``
    or ``pd.read_csv(url, storage_options={"session": aio_session()})``.  The
    credentials are those that :func:`assumed_role_session` would use with the
    same arguments (the same object: one STS call per refresh serves boto3 and
    aiobotocore in the process); their refresh runs in a worker thread, so the
    event loop never waits on STS.  The same effective settings give the same
    session.  It pickles as its settings (no key, secret or token), so an
    ``S3FileSystem`` built on it pickles too, and the receiving process makes
    its own credentials.

    The credentials come from where :func:`irsa_session.install` and
    ``irsa_session.session`` get theirs: IRSA, else EKS Pod Identity; with no
    arguments, after ``install()``, from what it installed (a chained role
    included).  Arguments are those of :func:`assumed_role_session`; with
    neither source configured and ``fallback=True`` the session uses
    aiobotocore's default chain.

    Raises:
        ImportError: aiobotocore is not installed.
        ConfigError: an invalid setting, or a missing one with ``fallback=False``.
    """
    arguments = sessions.given(locals())
    if fallback:
        source = sessions.current_session(**arguments)
    else:
        source = sessions.resolve_source(fallback=False, **arguments)
    return _impl().for_session(source)


def _impl():
    try:
        from . import _aio_impl
    except ImportError as err:
        raise ImportError(
            "irsa_session.aio_session() needs aiobotocore (%s); pip install "
            "aiobotocore, or s3fs, which brings it" % (err,)
        ) from err
    return _aio_impl
