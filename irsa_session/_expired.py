"""A service's ``ExpiredToken``: one refresh of the library's credentials, one retry.

A request signed with credentials the process believes valid can still be
refused as expired: the pod's clock runs behind the service's, or the
credentials were revoked early.  :func:`watch` registers two handlers on a
botocore (or aiobotocore) session, which the clients made from it copy:
``before-call`` notes which set of the library's credentials was current when
a request that signs with them began, and ``needs-retry`` answers
``ExpiredToken``, ``ExpiredTokenException`` or ``InvalidToken`` (S3's word for
a session token it no longer takes) by refreshing those credentials, once for
every request that saw the same set, and retrying the request once, signed
anew.  A request signed with other credentials (keys in the environment, a
profile) is left alone.
"""

import logging

__all__ = ["EXPIRED_CODES", "watch"]

logger = logging.getLogger("irsa_session.credentials")

#: Error codes by which services say the credentials that signed have expired.
EXPIRED_CODES = frozenset(["ExpiredToken", "ExpiredTokenException", "InvalidToken"])
_SET = "irsa_session_credentials_set"  # in a request's context: the set current when it began
_RETRIED = "irsa_session_expired_retry"


def watch(session, credentials, aio=False):
    """Make clients of ``session`` retry once, on refreshed ``credentials``, when a
    service says the credentials that signed have expired.  ``aio``: aiobotocore's
    session, whose refresh then runs in a worker thread, off the event loop."""
    handlers = _Handlers(credentials)
    session.register("before-call", handlers.before_call, unique_id="irsa-session-expired-mark")
    retry = handlers.needs_retry_async if aio else handlers.needs_retry
    session.register("needs-retry", retry, unique_id="irsa-session-expired-retry")


class _Handlers(object):
    def __init__(self, credentials):
        self.credentials = credentials

    def before_call(self, request_signer=None, context=None, **kwargs):
        signing = getattr(request_signer, "_credentials", None)
        if context is not None and (
            signing is self.credentials or getattr(signing, "_irsa", None) is self.credentials
        ):
            context[_SET] = self.credentials._refresher.generation

    def _expired(self, response, request_dict):
        """The request's context if this answer calls for the one refresh and retry."""
        try:
            code = response[1]["Error"]["Code"]
        except (TypeError, KeyError, IndexError):
            return None
        context = (request_dict or {}).get("context")
        if not context or _SET not in context or context.get(_RETRIED):
            return None
        if code not in EXPIRED_CODES and not self._headless_expiry(code, request_dict):
            return None
        context[_RETRIED] = code
        return context

    def _headless_expiry(self, code, request_dict):
        """A HEAD answer has no body to name its error: S3's 400 to a HEAD signed with
        credentials in the second half of their life is taken for ExpiredToken (at most
        one refresh per half life, whatever else a 400 might mean)."""
        if code != "400" or request_dict.get("method") != "HEAD":
            return False
        refresher = self.credentials._refresher
        return refresher.expiry - refresher.clock() < refresher.life / 2

    def _refresh(self, context):
        try:
            self.credentials._refresher.refresh_expired(context[_SET])
        except Exception as err:  # the service's error stands; say why there was no retry
            logger.warning(
                "a service answered %s; refreshing the credentials for a retry failed: %s",
                context[_RETRIED], err,
            )
            return None
        logger.info(
            "a service answered %s for credentials this process took for valid (is this "
            "machine's clock behind?); refreshed them, retrying the request once",
            context[_RETRIED],
        )
        return 0  # retry at once, signed anew

    def needs_retry(self, response=None, request_dict=None, **kwargs):
        context = self._expired(response, request_dict)
        return None if context is None else self._refresh(context)

    async def needs_retry_async(self, response=None, request_dict=None, **kwargs):
        context = self._expired(response, request_dict)
        if context is None:
            return None
        import asyncio  # only aiobotocore's sessions get here: it is loaded already

        loop = asyncio.get_event_loop()
        return await loop.run_in_executor(None, self._refresh, context)
