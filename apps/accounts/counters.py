"""Counters kept in the cache (Redis in production): the API's throttle and the password-reset emails' hourly
limit. When the cache does not answer, a counter lets the request through, a limit missing for a while rather
than the whole API or the password reset failing, and the log says so at most once a minute per process.

After a failure the counters leave the cache alone for `RETRY_AFTER_SECONDS` (`cache_resting`): a Redis that
hangs costs each call the cache's whole timeout (1 s), which made every API request wait and queued even the
liveness probe behind them."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)

WARN_EVERY_SECONDS = 60.0
RETRY_AFTER_SECONDS = 30.0
_lock = threading.Lock()
_last_warned = -WARN_EVERY_SECONDS
_failed_at = -RETRY_AFTER_SECONDS


def cache_resting() -> bool:
    """Whether a counter failed in the last `RETRY_AFTER_SECONDS` in this process: then it lets requests
    through without asking the cache."""
    return time.monotonic() - _failed_at < RETRY_AFTER_SECONDS


def cache_failed(what: str, error: BaseException) -> None:
    """Record that the cache failed a counter (`what`), and log it unless this process did in the last minute."""
    global _last_warned, _failed_at
    with _lock:
        now = time.monotonic()
        _failed_at = now
        if now - _last_warned < WARN_EVERY_SECONDS:
            return
        _last_warned = now
    logger.warning(
        "The cache does not answer (%s: %s): %s is not enforced until it does (tried again every %d s)",
        type(error).__name__, error, what, RETRY_AFTER_SECONDS,
    )  # fmt: skip


def forget_failures() -> None:
    """For tests: the cache is asked again, and the next failure is logged."""
    global _last_warned, _failed_at
    _last_warned = -WARN_EVERY_SECONDS
    _failed_at = -RETRY_AFTER_SECONDS
