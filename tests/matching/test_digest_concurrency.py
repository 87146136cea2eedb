"""Two digest runs at once (the beat task and an operator's command) send a user's digest once (PostgreSQL: the
user's row is locked while their email is sent)."""

import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.utils import timezone

from apps.matching.models import Match
from apps.matching.services import digest_send_all

from ..factories import FocalPointFactory, PostFactory, party

# Committed transactions, so that each thread's own connection sees the user and the match.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

sending = threading.Event()
release = threading.Event()


class SlowBackend(EmailBackend):
    """A mail server that holds the first email until the test releases it."""

    def send_messages(self, messages):
        if not sending.is_set():
            sending.set()
            assert release.wait(10)
        return super().send_messages(messages)


def test_a_second_run_while_the_first_sends_does_not_send_the_digest_again(settings):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks: one writer at a time")
    settings.MATCHING_STRONG_SCORE = 0.6
    settings.EMAIL_BACKEND = f"{__name__}.SlowBackend"
    sending.clear()
    release.clear()
    FocalPointFactory(username="ken-race", party=party("KEN"), email="ken@example.org")
    now = timezone.now()
    Match.objects.create(
        need=PostFactory(kind="need", party=party("KEN")),
        offer=PostFactory(kind="offer", party=party("JPN")),
        score=0.8,
        strong_at=now - timedelta(hours=1),
    )
    results = {}

    def run(name, at):
        try:
            results[name] = digest_send_all(now=at)
        finally:
            connection.close()

    first = threading.Thread(target=run, args=("first", now))
    second = threading.Thread(target=run, args=("second", now + timedelta(minutes=1)))
    first.start()
    try:
        assert sending.wait(10)
        second.start()
        time.sleep(0.5)
        assert second.is_alive()  # waiting for the user's row, which the first run holds while it sends
    finally:
        release.set()
        first.join(10)
        if second.ident is not None:
            second.join(10)
    assert results == {"first": 1, "second": 0}
    assert [m.to for m in mail.outbox] == [["ken@example.org"]]
