"""Celery tasks: thin wrappers that take ids, call a matching service, and retry on infrastructure errors."""

from __future__ import annotations

from datetime import datetime
from smtplib import SMTPException

from celery import shared_task
from django.db import DatabaseError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

# Database or broker trouble is worth retrying; a bug is not.
RETRY = {
    "autoretry_for": (DatabaseError, BrokerError, ConnectionError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 6,
    "acks_late": True,
}
# An email's task: mail-server trouble too, more patiently.
EMAIL_RETRY = {**RETRY, "autoretry_for": (*RETRY["autoretry_for"], SMTPException, OSError), "retry_backoff": 30,
               "retry_backoff_max": 600, "max_retries": 5}  # fmt: skip


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def match_posts(post_ids: list[int]) -> int:
    """Recompute the matches of these posts against the other side (incremental)."""
    from .pipeline import matching_run_for_posts

    return matching_run_for_posts(post_ids=post_ids)


@shared_task(**RETRY, soft_time_limit=600, time_limit=660)
def rebuild_chunk(run_id: int, side: str, post_ids: list[int]) -> int:
    """One slice of a full rebuild: the top k of each of these posts."""
    from .pipeline import rebuild_run_chunk

    return rebuild_run_chunk(run_id=run_id, side=side, post_ids=post_ids)


@shared_task(**RETRY)
def sweep_pending() -> int:
    """Match whatever is still flagged as waiting (a broker outage, a crashed worker), send the emails of
    connections still waiting for them (a mail server outage) and the news of connections ended, and queue again the chunks a silent rebuild
    lost (a broker restarted without its data)."""
    from .pipeline import matching_sweep, rebuild_requeue_lost
    from .services import connection_ended_sweep, connection_notice_sweep, connection_posters_fill

    matched = matching_sweep()
    connection_notice_sweep()
    connection_posters_fill()
    connection_ended_sweep()
    rebuild_requeue_lost()
    return matched


@shared_task(**EMAIL_RETRY, soft_time_limit=60, time_limit=90)
def notify_connection(match_id: int) -> int:
    """Email both sides of a new connection each other's contacts (once; the sweep covers what retries miss)."""
    from .services import connection_notice_send

    return connection_notice_send(match_id=match_id)


@shared_task(**EMAIL_RETRY, soft_time_limit=60, time_limit=90)
def notify_connection_ended(match_id: int) -> int:
    """Tell the side of a connection that stays that the other withdrew or closed its post (once; the sweep
    covers what retries miss)."""
    from .services import connection_ended_send

    return connection_ended_send(match_id=match_id)


@shared_task(**RETRY, soft_time_limit=1800, time_limit=1900)
def refit_if_grown() -> int | None:
    """Refit the text model when the corpus has grown enough since the last fit; workers pick it up."""
    from .pipeline import text_model_refit_if_grown

    return text_model_refit_if_grown()


@shared_task(bind=True, acks_late=True, max_retries=5, soft_time_limit=1800, time_limit=1900)
def send_digests(self, now: str | None = None) -> int:
    """Email every opted-in poster the strong matches new since their last digest. A retry (some emails could
    not go, or the database or broker failed) runs for the same moment, so a digest already sent is not sent
    again; one that fails through every retry is sent, with what came since, by the next day's run."""
    from .services import DigestIncomplete, digest_send_all

    at = datetime.fromisoformat(now) if now else timezone.now()
    try:
        return digest_send_all(now=at)
    except (DigestIncomplete, DatabaseError, BrokerError, ConnectionError) as exc:
        countdown = min(30 * 2**self.request.retries, 600)
        raise self.retry(exc=exc, kwargs={"now": at.isoformat()}, countdown=countdown) from exc
