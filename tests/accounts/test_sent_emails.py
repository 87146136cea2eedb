"""The ledger of emails sent once (`send_once`): its Reply-To, and its pruning by a daily beat task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from apps.accounts.emails import SENT_EMAIL_KEEP, send_once
from apps.accounts.models import SentEmail
from apps.accounts.tasks import prune_sent_emails
from nma_platform.celery import app

pytestmark = pytest.mark.django_db


def test_records_older_than_a_year_are_pruned_and_newer_ones_kept():
    send_once(key="old", subject="s", body="b", recipient="a@example.org", language="en")
    send_once(key="recent", subject="s", body="b", recipient="a@example.org", language="en")
    now = timezone.now()
    SentEmail.objects.filter(key="old").update(sent_at=now - SENT_EMAIL_KEEP - timedelta(minutes=1))
    SentEmail.objects.filter(key="recent").update(sent_at=now - SENT_EMAIL_KEEP + timedelta(hours=1))
    assert prune_sent_emails() == 1
    assert list(SentEmail.objects.values_list("key", flat=True)) == ["recent"]
    # A kept record still stops the email from going twice.
    assert send_once(key="recent", subject="s", body="b", recipient="a@example.org", language="en") == 0
    assert len(mail.outbox) == 2


def test_the_pruning_runs_daily_from_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["accounts-prune-sent-emails"]
    assert entry["task"] in app.tasks  # the name beat sends is a task the workers know
    assert entry["schedule"].hour == {3} and entry["schedule"].minute == {30}


def test_reply_to_is_set_only_when_given():
    send_once(
        key="a",
        subject="s",
        body="b",
        recipient="a@example.org",
        language="en",
        reply_to=["B <b@example.org>"],
    )
    send_once(key="b", subject="s", body="b", recipient="a@example.org", language="en")
    first, second = mail.outbox
    assert first.message()["Reply-To"] == "B <b@example.org>"
    assert "Reply-To" not in second.message()


def test_expired_sessions_are_deleted_daily_from_beat():
    """Expired sessions stayed in the database (with the user's id, and a form typed when one ended) unless
    someone ran `clearsessions` from cron."""
    from django.contrib.sessions.models import Session
    from django.test import Client

    from apps.accounts.tasks import clear_sessions
    from tests.factories import UserFactory

    entry = settings.CELERY_BEAT_SCHEDULE["accounts-clear-sessions"]
    assert entry["task"] in app.tasks
    assert entry["schedule"].hour == {3} and entry["schedule"].minute == {45}
    for user in UserFactory.create_batch(2):
        Client().force_login(user)
    old, current = Session.objects.order_by("expire_date")
    Session.objects.filter(pk=old.pk).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert clear_sessions() == 1
    assert list(Session.objects.values_list("pk", flat=True)) == [current.pk]


def test_the_sender_is_named_in_the_recipients_language(settings):
    """It was "NMA Platform" in every language; a name the deployment chose stays as it is."""
    from django.core import mail

    from apps.accounts.emails import sender

    settings.DEFAULT_FROM_EMAIL = "NMA Platform <no-reply@example.org>"
    send_once(key="fr", subject="s", body="b", recipient="a@example.org", language="fr")
    send_once(key="zh", subject="s", body="b", recipient="a@example.org", language="zh-hans")
    assert [m.from_email for m in mail.outbox] == [
        "Plateforme des ANM <no-reply@example.org>",
        "非市场方法平台 <no-reply@example.org>",
    ]
    assert sender("en") == "NMA Platform <no-reply@example.org>"
    settings.DEFAULT_FROM_EMAIL = "UNFCCC Secretariat <nma@unfccc.int>"
    assert sender("fr") == "UNFCCC Secretariat <nma@unfccc.int>"
    settings.DEFAULT_FROM_EMAIL = "nma@unfccc.int"
    assert sender("ru") == "nma@unfccc.int"
