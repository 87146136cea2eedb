"""Celery tasks of posts: the emails of moderation."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from apps.matching.tasks import RETRY


@shared_task(
    **{**RETRY, "autoretry_for": (*RETRY["autoretry_for"], SMTPException, OSError), "retry_backoff": 30,
       "retry_backoff_max": 600, "max_retries": 5},
    soft_time_limit=60, time_limit=90,
)  # fmt: skip
def notify_moderation(post_id: int, event: str) -> int:
    """Tell a post's posters that the secretariat published it or returned it."""
    from .notifications import moderation_notify

    return moderation_notify(post_id=post_id, event=event)
