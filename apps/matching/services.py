"""Matching services: queue a post for matching, and run the engine for posts (called by the tasks)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction

logger = logging.getLogger(__name__)


def matching_enqueue(*, post_ids: Sequence[int]) -> None:
    """Hand the posts to a worker once the caller's transaction commits.

    The caller has already flagged the posts `matching_pending` in that transaction, so if the broker is
    down the hand-off is not lost: the request still succeeds and the periodic sweep matches them later.
    """
    ids = list(post_ids)

    def send() -> None:
        from .tasks import match_posts

        try:
            match_posts.delay(ids)
        except Exception:
            # Never fail a focal point's request for a broker outage; the sweep will pick these up.
            logger.warning(
                "Could not queue matching for posts %s; left for the sweep", ids[:20], exc_info=True
            )

    transaction.on_commit(send)
