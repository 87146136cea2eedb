"""Account tasks: thin wrappers over the account services, retried on mail-server and database errors."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task
from django.db import DatabaseError

from .emails import sent_email_prune
from .services import password_reset_send


@shared_task(
    autoretry_for=(SMTPException, OSError, DatabaseError),
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
    acks_late=True,
)
def send_password_reset(user_id: int) -> int:
    return password_reset_send(user_id=user_id)


@shared_task(
    autoretry_for=(DatabaseError,), retry_backoff=60, retry_backoff_max=600, max_retries=3, acks_late=True
)
def prune_sent_emails() -> int:
    """Daily (beat): forget the records of emails sent more than a year ago."""
    return sent_email_prune()


@shared_task(
    autoretry_for=(DatabaseError,), retry_backoff=60, retry_backoff_max=600, max_retries=3, acks_late=True
)
def clear_sessions() -> int:
    """Daily (beat): delete the sessions that have expired (`clearsessions`: the session engine keeps a row until
    then, with the user's id and any form typed when it ended). Returns how many went."""
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.utils import timezone

    expired = Session.objects.filter(expire_date__lt=timezone.now()).count()
    call_command("clearsessions")
    return expired
