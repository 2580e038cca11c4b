"""pandas: after ``install()``, ``pd.read_parquet("s3://...")`` reads with the library's credentials.

Left alone, ``pd.read_parquet("s3://...")`` with no ``filesystem=`` and no
``storage_options=`` goes to pyarrow's own ``S3FileSystem``, which no Python code
can give credentials to: it makes its own exchange, or finds none
(``ACCESS_DENIED``).  :func:`install` wraps ``pandas.read_parquet`` (at once if
pandas is imported, else right after its import: :mod:`irsa_session._imports`) so
that such a call gets ``filesystem=irsa_session.arrow_filesystem()``; every other
call goes to pandas unchanged.  ``install(None)`` (tests) makes the wrapper pass
everything through.  Imports no pandas.
"""

import functools
import logging
import sys
import threading

from . import _imports, sessions

__all__ = ["install"]

logger = logging.getLogger("irsa_session")

WATCHED = "pandas"
_S3 = ("s3://", "s3a://")
_state = {"credentials": None, "waiting": False}
_lock = threading.Lock()


def install(credentials):
    """From now on, route pandas' ``read_parquet("s3://...")`` through ``arrow_filesystem()``
    (``credentials``: those install() installed; None passes every call through)."""
    with _lock:
        _state["credentials"] = credentials
        if credentials is None or _state["waiting"]:
            return
        _state["waiting"] = True
    _imports.when_imported(WATCHED, _patch)


sessions.on_install(install)


def _patch():
    pandas = sys.modules[WATCHED]
    original = getattr(pandas, "read_parquet", None)
    if original is None or getattr(original, "irsa_session_wrapped", False):
        return
    try:
        import inspect

        takes_filesystem = "filesystem" in inspect.signature(original).parameters
    except (TypeError, ValueError):
        takes_filesystem = False
    if not takes_filesystem:  # pandas before 2.1: pass filesystem= yourself, as its docs say
        return
    wrapped = _wrap(original)
    pandas.read_parquet = wrapped
    parquet = sys.modules.get("pandas.io.parquet")
    if parquet is not None and getattr(parquet, "read_parquet", None) is original:
        parquet.read_parquet = wrapped


def _wrap(original):
    @functools.wraps(original)
    def read_parquet(path, *args, **kwargs):
        if _ours(path, args, kwargs):
            try:
                from ._arrow import arrow_filesystem

                kwargs["filesystem"] = arrow_filesystem()
            except ImportError:  # no pyarrow: pandas says what it needs
                pass
        return original(path, *args, **kwargs)

    read_parquet.irsa_session_wrapped = True
    return read_parquet


def _ours(path, args, kwargs):
    """Whether the call is one pyarrow's own S3 client would make without credentials."""
    engine = args[0] if args else kwargs.get("engine", "auto")
    return (
        _state["credentials"] is not None
        and isinstance(path, str)
        and path.lower().startswith(_S3)
        and len(args) <= 2  # engine and columns at most: storage_options comes later
        and kwargs.get("filesystem") is None
        and kwargs.get("storage_options") is None
        and engine in ("auto", "pyarrow")
    )
