"""Sending an email once per person and occasion, whatever retries and sweeps do."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from .models import SentEmail

# The sender's name as DEFAULT_FROM_EMAIL gives it by default: the platform's, said in each recipient's language.
PLATFORM_NAME = "NMA Platform"


def sender(language: str) -> str:
    """DEFAULT_FROM_EMAIL, its name in the recipient's `language` when it is the platform's own ("Plateforme des
    ANM <no-reply@…>"; it was English in every language). A name the deployment chose stays as it is."""
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    if name != PLATFORM_NAME:
        return settings.DEFAULT_FROM_EMAIL
    with translation.override(language):
        return f"{gettext(PLATFORM_NAME)} <{address}>"


def send_once(
    *, key: str, subject: str, body: str, recipient: str, language: str, reply_to: list[str] | None = None
) -> int:
    """Send the email to `recipient` (from `sender`, in their `language`) unless one was sent for `key`; returns 1
    if it went, else 0. `reply_to`:
    the addresses a reply goes to (a connection email's replies reach the other side, not the platform).

    The key is recorded in the transaction that sends the email: a send that fails records nothing (a retry
    sends it), and one that succeeded is never repeated by a retry for the others. Two senders at once: the
    second waits on the key's row and then finds it. Call it outside a transaction of the caller's, whose
    rollback would forget the record of an email already gone."""
    with transaction.atomic():
        _entry, created = SentEmail.objects.get_or_create(key=key)
        if not created:
            return 0
        message = EmailMessage(subject, body, sender(language), [recipient], reply_to=reply_to or None)
        return message.send()


# How long the record of an email is kept: far longer than any retry or sweep that could send it again (a few
# hours at most), short enough that the ledger does not grow for ever.
SENT_EMAIL_KEEP = timedelta(days=365)


def sent_email_prune(*, now: datetime | None = None) -> int:
    """Delete the records of emails sent more than SENT_EMAIL_KEEP ago; returns how many went."""
    before = (now or timezone.now()) - SENT_EMAIL_KEEP
    deleted, _by_model = SentEmail.objects.filter(sent_at__lt=before).delete()
    return deleted
