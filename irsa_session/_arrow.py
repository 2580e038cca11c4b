"""pyarrow (Ray Data, Ray Train, pandas' pyarrow engine): an S3 filesystem on the library's credentials.

Importing this module imports no pyarrow; :func:`arrow_filesystem` does.  The
classes that touch pyarrow live in ``_arrow_impl``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Any

from . import sessions
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
    the library's current credentials (IRSA, else EKS Pod Identity; after
    ``install()``, what it installed, a chained role included: the very
    credentials boto3 gets, so one STS call per refresh serves both) and built
    anew as soon as they refresh,
    which is before they enter the mandatory window; streams already open
    finish on the credentials they were opened with.  It pickles as its
    settings and options (no key, secret or token), and the receiving process
    makes its own credentials, so it can be handed to Ray Data
    (``filesystem=``), Ray Train (``RunConfig(storage_filesystem=...)``),
    ``pyarrow.parquet`` and ``pyarrow.dataset``.  Paths are ``bucket/key``;
    ``s3://`` in front is accepted.

    A stream (``open_input_file``, ``open_output_stream``...) signs every request
    with the credentials it was opened with, so it opens only with credentials
    that have ``stream_min_life`` seconds left (default half their life: 30
    minutes of one-hour credentials), refreshing them first if need be.  A
    stream that lasts longer than that may outlive its credentials: give a
    larger ``stream_min_life`` (up to their life) or a longer
    ``duration_seconds``.

    Args:
        **s3_options: options of ``pyarrow.fs.S3FileSystem`` (``region``,
            ``endpoint_override``, ``request_timeout``, ...), except those that
            choose credentials.  ``region`` defaults to the IRSA region (see
            :func:`assumed_role_session`); ``endpoint_override`` defaults to
            ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``, as in botocore.
            The IRSA settings themselves come from the environment.

    With neither IRSA nor EKS Pod Identity configured, this logs why once and
    returns a plain ``pyarrow.fs.S3FileSystem(**s3_options)`` on the AWS SDK's
    default chain.

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
    life = s3_options.get("stream_min_life")
    if life is not None and (
        isinstance(life, bool) or not isinstance(life, (int, float)) or not 0 <= life <= 43200
    ):
        raise ConfigError(
            "arrow_filesystem(stream_min_life=%r): give the seconds a stream's credentials "
            "must have left when it opens, from 0 to 43200 (default: half their life)" % (life,)
        )
    impl = _impl()
    source = sessions.current_session()
    if source._irsa_credentials is None:  # neither IRSA nor Pod Identity: logged once why
        return impl.plain_filesystem(s3_options, source.region_name)
    return impl.filesystem(source, s3_options)


def _impl():
    try:
        from . import _arrow_impl
    except ImportError as err:
        raise ImportError(
            "irsa_session.arrow_filesystem() needs pyarrow (%s); pip install pyarrow" % (err,)
        ) from err
    return _arrow_impl
