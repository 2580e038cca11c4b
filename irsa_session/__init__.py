"""Self-refreshing AWS credentials for EKS pods, through IAM Roles for Service Accounts.

    from irsa_session import session
    s3 = session.client("s3")

works on every boto3 from 1.4.8 on: the credentials come from STS
AssumeRoleWithWebIdentity, are fetched when first needed, and refresh themselves.
"""

__all__ = [
    "session",
    "assumed_role_session",
    "refreshable_credentials",
    "install",
    "pod_identity_session",
    "assume_role",
    "aio_session",
    "arrow_filesystem",
    "serve",
    "on_refresh",
    "IrsaError",
    "ConfigError",
    "TokenFileError",
    "RefreshError",
    "__version__",
]

from ._version import __version__
from ._events import on_refresh
from .errors import ConfigError, IrsaError, RefreshError, TokenFileError
from .sessions import (
    assumed_role_session,
    default_session,
    pod_identity_session,
    refreshable_credentials,
)
from ._install import install
from ._aio import aio_session  # imports no aiobotocore until called
from ._arrow import arrow_filesystem  # imports no pyarrow until called

TYPE_CHECKING = False  # for type checkers only: typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any, List

    from ._serve import serve
    from .chain import assume_role
    from .sessions import Session

    session: Session  # made on first access, by __getattr__
del TYPE_CHECKING  # not a name of the package's


def __getattr__(name: str) -> "Any":
    # ``session`` is built on first access (PEP 562), from the environment only:
    # no token is read and no STS call is made until credentials are needed.
    if name == "session":
        return default_session()
    if name == "assume_role":  # loaded on first use: most pods never chain roles
        from .chain import assume_role

        globals()["assume_role"] = assume_role
        return assume_role
    if name == "serve":  # likewise: most processes serve nothing
        from ._serve import serve

        globals()["serve"] = serve
        return serve
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__() -> "List[str]":
    return sorted(set(globals()) | {"session", "assume_role", "serve"})
