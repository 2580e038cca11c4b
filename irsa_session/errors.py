"""The exceptions irsa_session raises: one root, three kinds."""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Iterable, Optional

__all__ = ["IrsaError", "ConfigError", "TokenFileError", "RefreshError"]


class IrsaError(Exception):
    """Base of every error irsa_session raises."""


class ConfigError(IrsaError, ValueError):
    """A setting is missing or invalid.

    ``missing`` lists the environment variables that were needed but unset.
    """

    def __init__(self, message: str, missing: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class TokenFileError(IrsaError):
    """The web identity token file is missing, unreadable or empty."""

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path


class RefreshError(IrsaError):
    """STS refused the exchange, or kept failing past the retry budget.

    ``code`` is the STS error code (``"AccessDenied"``...) or ``None`` when STS
    could not be reached; ``attempts`` counts the calls made.
    """

    def __init__(self, message: str, code: Optional[str] = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.attempts = attempts
