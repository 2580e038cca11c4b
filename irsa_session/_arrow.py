"""pyarrow (Ray Data, Ray Train, pandas' pyarrow engine): an S3 filesystem on the library's credentials.

Importing this module imports no pyarrow; :func:`arrow_filesystem` does.  The
classes that touch pyarrow live in ``_arrow_impl``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Any

from . import config, sessions
from .errors import ConfigError

__all__ = ["arrow_filesystem", "CREDENTIAL_OPTIONS"]

#: S3FileSystem options that choose credentials: the library's take their place.
CREDENTIAL_OPTIONS = (
    "access_key",
    "secret_key",
    "session_token",
    "anonymous",
    "role_arn",
    "session_name",
    "external_id",
    "load_frequency",
)


def arrow_filesystem(**s3_options: Any) -> Any:
    """Return a ``pyarrow.fs.FileSystem`` for S3 whose credentials are the library's.

    Reads and writes go through a native ``pyarrow.fs.S3FileSystem`` built with
    the current IRSA credentials (the ones ``irsa_session.session`` uses: one
    STS call per refresh serves both) and built anew as soon as they refresh,
    which is before they enter the mandatory window; streams already open
    finish on the credentials they were opened with.  It pickles as its
    settings and options (no key, secret or token), and the receiving process
    makes its own credentials, so it can be handed to Ray Data
    (``filesystem=``), Ray Train (``RunConfig(storage_filesystem=...)``),
    ``pyarrow.parquet`` and ``pyarrow.dataset``.  Paths are ``bucket/key``;
    ``s3://`` in front is accepted.

    Args:
        **s3_options: options of ``pyarrow.fs.S3FileSystem`` (``region``,
            ``endpoint_override``, ``request_timeout``, ...), except those that
            choose credentials.  ``region`` defaults to the IRSA region (see
            :func:`assumed_role_session`); ``endpoint_override`` defaults to
            ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``, as in botocore.
            The IRSA settings themselves come from the environment.

    With no IRSA settings in the environment (no role ARN or token file), this
    logs why once and returns a plain ``pyarrow.fs.S3FileSystem(**s3_options)``
    on the AWS SDK's default chain.

    Raises:
        ImportError: pyarrow is not installed.
        ConfigError: a credential option was given, or an IRSA setting is invalid.
    """
    given = sorted(set(s3_options) & set(CREDENTIAL_OPTIONS))
    if given:
        raise ConfigError(
            "arrow_filesystem() takes its credentials from IRSA; drop %s (for static "
            "keys or another role use pyarrow.fs.S3FileSystem directly)" % ", ".join(given)
        )
    impl = _impl()
    settings = config.resolve()
    absent = config.missing(settings)
    if absent:
        sessions._log_fallback(absent)
        return impl.plain_filesystem(s3_options)
    return impl.filesystem(settings, s3_options)


def _impl():
    try:
        from . import _arrow_impl
    except ImportError as err:
        raise ImportError(
            "irsa_session.arrow_filesystem() needs pyarrow (%s); pip install pyarrow" % (err,)
        ) from err
    return _arrow_impl
