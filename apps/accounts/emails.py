"""Sending an email once per person and occasion, whatever retries and sweeps do."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from .models import SentEmail


def send_once(*, key: str, subject: str, body: str, recipient: str) -> int:
    """Send the email to `recipient` unless one was sent for `key`; returns 1 if it went, else 0.

    The key is recorded in the transaction that sends the email: a send that fails records nothing (a retry
    sends it), and one that succeeded is never repeated by a retry for the others. Two senders at once: the
    second waits on the key's row and then finds it. Call it outside a transaction of the caller's, whose
    rollback would forget the record of an email already gone."""
    with transaction.atomic():
        _entry, created = SentEmail.objects.get_or_create(key=key)
        if not created:
            return 0
        return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient])
