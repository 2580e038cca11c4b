"""``install()``: the library's credentials for unchanged boto3, botocore and aiobotocore code."""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Any

from . import _aio, _pandas, sessions  # importing _aio and _pandas joins them to install_credentials()

__all__ = ["install"]


def install(**kwargs: Any) -> sessions.Session:
    """Make IRSA (or EKS Pod Identity) credentials what unchanged boto3 and botocore code gets.

    Every ``boto3.Session()`` and ``botocore.session.get_session()`` created from
    now on, and boto3's default session (``boto3.client()``, ``boto3.resource()``),
    resolve the library's credentials where botocore puts web identity:
    environment keys and a chosen profile (``profile_name=`` or ``AWS_PROFILE``)
    still win, container and instance metadata come after.  All of them share
    one set of refreshing credentials (a new session makes no STS call), and
    ``boto3.client()`` still returns a new client per call.  Where aiobotocore is
    installed (s3fs, fsspec, pandas, Dask), its sessions get the same credentials
    by the same rules, from the moment it is imported; so does pandas'
    ``read_parquet("s3://...")`` (through :func:`arrow_filesystem`).  Takes the arguments
    of :func:`assumed_role_session`; calling it again is harmless.  With IRSA not
    configured and ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` set, the credentials come
    from EKS Pod Identity (:func:`pod_identity_session`).  Returns the library's
    session (``session.client()`` is the cached one).

    ``assume_role=ARN`` (with ``external_id=``) installs instead the credentials of
    :func:`irsa_session.assume_role` of that role, signed with the session the
    other arguments describe, and returns that chained session.
    """
    assume_role = kwargs.pop("assume_role", None)
    external_id = kwargs.pop("external_id", None)
    installed = sessions.resolve_source(**kwargs)
    if assume_role is not None:
        from . import chain  # loaded on first use: most pods never chain roles

        installed = chain.assume_role(
            assume_role,
            source=installed,
            external_id=external_id,
            region_name=kwargs.get("region_name"),
            sts_endpoint_url=kwargs.get("sts_endpoint_url"),
        )
    elif external_id is not None:
        raise TypeError("install(external_id=...) goes with assume_role=")
    sessions.install_credentials(installed)
    return installed
