"""Counters kept in the cache (Redis in production): the API's throttle and the password-reset emails' hourly
limit. When the cache does not answer, a counter lets the request through, a limit missing for a while rather
than the whole API or the password reset failing, and the log says so at most once a minute per process."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)

WARN_EVERY_SECONDS = 60.0
_lock = threading.Lock()
_last_warned = -WARN_EVERY_SECONDS


def cache_failed(what: str, error: BaseException) -> None:
    """Log that the cache failed a counter (`what`), unless this process said so in the last minute."""
    global _last_warned
    with _lock:
        now = time.monotonic()
        if now - _last_warned < WARN_EVERY_SECONDS:
            return
        _last_warned = now
    logger.warning(
        "The cache does not answer (%s: %s): %s is not enforced until it does",
        type(error).__name__,
        error,
        what,
    )


def forget_warnings() -> None:
    """For tests: the next failure is logged."""
    global _last_warned
    _last_warned = -WARN_EVERY_SECONDS
