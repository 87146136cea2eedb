"""Sending an email once per person and occasion, whatever retries and sweeps do."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from .models import SentEmail


def send_once(*, key: str, subject: str, body: str, recipient: str, reply_to: list[str] | None = None) -> int:
    """Send the email to `recipient` unless one was sent for `key`; returns 1 if it went, else 0. `reply_to`:
    the addresses a reply goes to (a connection email's replies reach the other side, not the platform).

    The key is recorded in the transaction that sends the email: a send that fails records nothing (a retry
    sends it), and one that succeeded is never repeated by a retry for the others. Two senders at once: the
    second waits on the key's row and then finds it. Call it outside a transaction of the caller's, whose
    rollback would forget the record of an email already gone."""
    with transaction.atomic():
        _entry, created = SentEmail.objects.get_or_create(key=key)
        if not created:
            return 0
        message = EmailMessage(
            subject, body, settings.DEFAULT_FROM_EMAIL, [recipient], reply_to=reply_to or None
        )
        return message.send()


# How long the record of an email is kept: far longer than any retry or sweep that could send it again (a few
# hours at most), short enough that the ledger does not grow for ever.
SENT_EMAIL_KEEP = timedelta(days=365)


def sent_email_prune(*, now: datetime | None = None) -> int:
    """Delete the records of emails sent more than SENT_EMAIL_KEEP ago; returns how many went."""
    before = (now or timezone.now()) - SENT_EMAIL_KEEP
    deleted, _by_model = SentEmail.objects.filter(sent_at__lt=before).delete()
    return deleted
