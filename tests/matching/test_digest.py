"""The daily digest of new strong matches: each match sent once, no gaps, retries, who gets one, the command."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.accounts.models import User
from apps.matching.models import Match
from apps.matching.services import (
    DIGEST_SETTLE,
    DigestIncomplete,
    digest_collect,
    digest_send_all,
    digest_send_for_user,
)
from apps.matching.tasks import send_digests

from ..factories import FocalPointFactory, PostFactory, ProviderUserFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db

# A run's time in the tests: the matches are made strong at moments around it.
T0 = timezone.now().replace(microsecond=0) - timedelta(days=10)


def strong_match(need_party: str, offer_party: str | None = None, *, at, provider=None, score=0.8) -> Match:
    need = PostFactory(kind="need", party=party(need_party), title=f"Need of {need_party} strong at {at}")
    offer = PostFactory(
        kind="offer",
        party=party(offer_party) if offer_party else None,
        provider=provider,
        title=f"Offer strong at {at}",
    )
    return Match.objects.create(need=need, offer=offer, score=score, strong_at=at)


@pytest.fixture(autouse=True)
def _strong_score(settings):
    settings.MATCHING_STRONG_SCORE = 0.6


@pytest.fixture
def kenya(db):
    return FocalPointFactory(username="ken-digest", party=party("KEN"), email="ken@example.org")


@pytest.fixture
def brazil(db):
    return FocalPointFactory(username="bra-digest", party=party("BRA"), email="bra@example.org")


def sent_to(address: str) -> list[str]:
    """The bodies of the emails sent to the address."""
    return [m.body for m in mail.outbox if m.to == [address]]


def test_two_runs_in_a_row_send_the_digest_once(kenya):
    match = strong_match("KEN", "JPN", at=T0 - timedelta(hours=3))
    assert digest_send_all(now=T0) == 1
    assert match.need.title in sent_to("ken@example.org")[0]
    kenya.refresh_from_db()
    assert kenya.digest_sent_through == T0 - DIGEST_SETTLE
    # A second run (an operator's, or the task delivered again) finds nothing new, a minute or a day later.
    assert digest_send_all(now=T0) == 0
    assert digest_send_all(now=T0 + timedelta(minutes=1)) == 0
    assert digest_send_all(now=T0 + timedelta(days=1)) == 0
    assert len(mail.outbox) == 1


def test_a_late_run_covers_the_gap_since_the_last_digest(kenya):
    assert digest_send_all(now=T0) == 0  # nothing yet: the digest still covers up to T0
    # Strong 10 minutes after one day's run; the next day's runs 30 minutes late. A run covering "the last day"
    # would have started at T0 + 30 minutes and never sent it.
    gap = strong_match("KEN", "JPN", at=T0 + timedelta(minutes=10))
    assert digest_send_all(now=T0 + timedelta(days=1, minutes=30)) == 1
    assert gap.need.title in sent_to("ken@example.org")[0]


def test_a_match_too_fresh_for_one_digest_is_in_the_next(kenya):
    # Stamped just before the run by a worker whose transaction may not have committed when the run reads.
    fresh = strong_match("KEN", "JPN", at=T0 - DIGEST_SETTLE / 2)
    assert digest_send_all(now=T0) == 0
    assert digest_send_all(now=T0 + timedelta(days=1)) == 1
    assert fresh.need.title in sent_to("ken@example.org")[0]


def test_the_first_digest_covers_the_last_day(kenya):
    recent = strong_match("KEN", "JPN", at=T0 - timedelta(hours=20))
    old = strong_match("KEN", "DEU", at=T0 - timedelta(days=2))
    found = digest_collect(user=kenya, since=T0 - timedelta(days=1), until=T0)
    assert [m.pk for m in found] == [recent.pk]
    assert digest_send_all(now=T0) == 1
    assert old.need.title not in sent_to("ken@example.org")[0]


class RefusingKenyaBackend(EmailBackend):
    """A mail server that refuses Kenya's address (`refusals` times) and takes everyone else's."""

    refusals = 1

    def send_messages(self, messages):
        if any("ken@example.org" in m.to for m in messages) and RefusingKenyaBackend.refusals > 0:
            RefusingKenyaBackend.refusals -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return super().send_messages(messages)


@pytest.fixture
def refusing_kenya(settings):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingKenyaBackend"
    RefusingKenyaBackend.refusals = 1
    yield RefusingKenyaBackend


def test_a_mail_error_then_a_retry_sends_each_digest_exactly_once(kenya, brazil, refusing_kenya):
    ken_match = strong_match("KEN", "JPN", at=T0 - timedelta(hours=1))
    bra_match = strong_match("BRA", "DEU", at=T0 - timedelta(hours=1))
    with pytest.raises(DigestIncomplete) as failed:
        digest_send_all(now=T0)
    # Brazil's went (and is recorded), whatever order the users came in; Kenya's is still owed, unrecorded.
    assert failed.value.sent == 1 and failed.value.failed_user_ids == [kenya.pk]
    assert [bra_match.need.title in body for body in sent_to("bra@example.org")] == [True]
    assert sent_to("ken@example.org") == []
    kenya.refresh_from_db()
    assert kenya.digest_sent_through is None
    # The retry, for the same moment, sends Kenya's only.
    assert digest_send_all(now=T0) == 1
    assert len(sent_to("bra@example.org")) == 1
    (to_kenya,) = sent_to("ken@example.org")
    assert ken_match.need.title in to_kenya


def test_the_task_retries_a_failed_digest_for_the_same_moment(kenya, brazil, refusing_kenya):
    strong_match("KEN", "JPN", at=timezone.now() - timedelta(hours=1))
    strong_match("BRA", "DEU", at=timezone.now() - timedelta(hours=1))
    # Eager (and not propagating the first attempt's Retry), Celery runs the retry at once, in this process.
    result = send_digests.apply(throw=False)
    assert result.successful() and result.get() == 1  # the retry's email
    assert len(sent_to("ken@example.org")) == 1 and len(sent_to("bra@example.org")) == 1
    through = set(
        User.objects.filter(pk__in=[kenya.pk, brazil.pk]).values_list("digest_sent_through", flat=True)
    )
    assert len(through) == 1  # both recorded up to the same moment: the first attempt's


def test_a_failed_send_for_one_user_leaves_their_record_as_it_was(kenya, refusing_kenya):
    strong_match("KEN", "JPN", at=T0 - timedelta(hours=1))
    User.objects.filter(pk=kenya.pk).update(digest_sent_through=T0 - timedelta(days=1))
    with pytest.raises(ConnectionRefusedError):
        digest_send_for_user(user_id=kenya.pk, until=T0)
    kenya.refresh_from_db()
    assert kenya.digest_sent_through == T0 - timedelta(days=1)


def test_opted_out_and_inactive_users_get_no_digest(kenya, brazil):
    strong_match("KEN", "JPN", at=T0 - timedelta(hours=1))
    strong_match("BRA", "DEU", at=T0 - timedelta(hours=1))
    kenya.digest_opt_in = False
    kenya.save()
    brazil.is_active = False
    brazil.save()
    assert digest_send_all(now=T0) == 0 and mail.outbox == []
    assert digest_collect(user=brazil, since=T0 - timedelta(days=1), until=T0) == []
    # Back in: the matches they were not sent are sent now.
    User.objects.filter(pk__in=[kenya.pk, brazil.pk]).update(digest_opt_in=True, is_active=True)
    assert digest_send_all(now=T0 + timedelta(hours=1)) == 2


def test_the_users_of_a_deactivated_provider_get_no_digest(kenya):
    fund = SupportProviderFactory(short_name="DFUND")
    staff = ProviderUserFactory(username="dfund-user", provider=fund, email="fund@example.org")
    match = strong_match("BRA", at=T0 - timedelta(hours=1), provider=fund)
    assert [m.pk for m in digest_collect(user=staff, since=T0 - timedelta(days=1), until=T0)] == [match.pk]
    fund.is_active = False
    fund.save()
    staff.refresh_from_db()
    assert digest_collect(user=staff, since=T0 - timedelta(days=1), until=T0) == []
    assert digest_send_all(now=T0) == 0 and mail.outbox == []
    # Reactivated: the provider's users get what they were not sent.
    fund.is_active = True
    fund.save()
    assert digest_send_all(now=T0 + timedelta(hours=1)) == 1
    assert sent_to("fund@example.org")


def test_matches_the_user_answered_are_left_out(kenya):
    answered = strong_match("KEN", "JPN", at=T0 - timedelta(hours=2))
    open_ = strong_match("KEN", "DEU", at=T0 - timedelta(hours=1))
    Match.objects.filter(pk=answered.pk).update(need_interest="dismissed", need_interest_at=T0)
    assert [m.pk for m in digest_collect(user=kenya, since=T0 - timedelta(days=1), until=T0)] == [open_.pk]


def test_one_digest_costs_the_same_queries_whatever_its_matches(kenya, brazil, django_assert_num_queries):
    for other in ("JPN", "DEU", "FRA"):
        strong_match("KEN", other, at=T0 - timedelta(hours=1))
    strong_match("BRA", "JPN", at=T0 - timedelta(hours=1))
    # The recipients' ids; then per user: savepoint, the user (locked, with the provider), its strong matches
    # (with both posts), the matches awaiting its answer (with both posts and posters), the record, release.
    with django_assert_num_queries(1 + 2 * 6):
        assert digest_send_all(now=T0) == 2


# --- The command ---------------------------------------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command("send_digests", *args, stdout=out)
    return out.getvalue()


def test_the_command_sends_the_digests_once_and_says_how_many(kenya, brazil):
    strong_match("KEN", "JPN", at=timezone.now() - timedelta(hours=1))
    assert "1 digest emails sent." in run()
    assert "0 digest emails sent." in run()
    assert len(mail.outbox) == 1


def test_the_command_dry_run_lists_who_would_get_what_and_sends_nothing(kenya, brazil):
    for other in ("JPN", "DEU"):
        strong_match("KEN", other, at=timezone.now() - timedelta(hours=1))
    out = run("--dry-run")
    assert "ken-digest <ken@example.org>: 2" in out and "bra-digest" not in out
    assert "1 digests would be sent" in out
    assert mail.outbox == []
    kenya.refresh_from_db()
    assert kenya.digest_sent_through is None
    assert "1 digest emails sent." in run()


def test_the_command_fails_naming_the_users_whose_digest_could_not_go(kenya, brazil, refusing_kenya):
    strong_match("KEN", "JPN", at=timezone.now() - timedelta(hours=1))
    strong_match("BRA", "DEU", at=timezone.now() - timedelta(hours=1))
    out = StringIO()
    with pytest.raises(
        CommandError, match=rf"The digests of 1 users could not be sent \(user ids {kenya.pk};"
    ):
        call_command("send_digests", stdout=out)
    assert "1 digest emails sent." in out.getvalue()
    assert "1 digest emails sent." in run()  # Kenya's, once the server takes it
    assert len(mail.outbox) == 2


def test_a_digest_with_more_matches_than_it_lists_points_to_the_rest(kenya):
    from apps.matching.services import DIGEST_MAX_MATCHES

    for i in range(DIGEST_MAX_MATCHES + 1):
        strong_match("KEN", "JPN", at=T0 - timedelta(hours=3, minutes=i))
    assert digest_send_all(now=T0) == 1
    (body,) = sent_to("ken@example.org")
    assert body.count("#match-") == DIGEST_MAX_MATCHES
    assert "and more: see them all from your dashboard" in body and "/dashboard/" in body
    # The subject does not say 50 when there are more.
    assert mail.outbox[-1].subject == f"More than {DIGEST_MAX_MATCHES} new strong matches on the NMA Platform"
    # One match fewer: no such line.
    mail.outbox.clear()
    User.objects.filter(pk=kenya.pk).update(digest_sent_through=None)
    Match.objects.order_by("score", "-id").first().delete()
    assert digest_send_all(now=T0) == 1
    assert "and more" not in sent_to("ken@example.org")[0]


def test_a_digest_of_one_match_says_so(kenya):
    strong_match("KEN", "JPN", at=T0 - timedelta(hours=3))
    assert digest_send_all(now=T0) == 1
    (body,) = sent_to("ken@example.org")
    assert mail.outbox[-1].subject == "1 new strong match on the NMA Platform"
    assert "A new strong match for your posts:" in body and "New strong matches" not in body


# --- Matches awaiting an answer --------------------------------------------------------------------------------


def interested_other_side(need_party: str, offer_party: str, *, at, score=0.4) -> Match:
    """A match (not strong) whose offer side expressed interest at `at`; the need side has not answered."""
    need = PostFactory(kind="need", party=party(need_party), title=f"Need of {need_party}")
    offer = PostFactory(kind="offer", party=party(offer_party), title=f"Offer of {offer_party}")
    return Match.objects.create(
        need=need, offer=offer, score=score, offer_interest="interested", offer_interest_at=at
    )


def test_the_digest_tells_of_an_interest_that_waits_for_this_side_once(kenya):
    match = interested_other_side("KEN", "JPN", at=T0 - timedelta(hours=2))
    assert digest_send_all(now=T0) == 1
    (message,) = mail.outbox
    assert message.subject == "1 match awaits your answer on the NMA Platform"
    assert "The other side is interested: answer, and if you are interested too we will email" in message.body
    assert "- Offer of JPN (Japan) ↔ Need of KEN\n" in message.body
    assert f"/posts/{match.need_id}/?matches=awaiting#match-{match.pk}\n" in message.body
    assert "strong match" not in message.body  # no strong match to list
    # Told once: the next day's digest starts where this one ended.
    assert digest_send_all(now=T0 + timedelta(days=1)) == 0


def test_an_interest_already_answered_or_from_this_side_is_not_told(kenya):
    answered = interested_other_side("KEN", "JPN", at=T0 - timedelta(hours=2))
    Match.objects.filter(pk=answered.pk).update(need_interest="dismissed")
    # Kenya's own offer, in which Kenya itself expressed interest: nothing waits for Kenya.
    need = PostFactory(kind="need", party=party("JPN"))
    offer = PostFactory(kind="offer", party=party("KEN"))
    Match.objects.create(need=need, offer=offer, score=0.4, offer_interest="interested",
                         offer_interest_at=T0 - timedelta(hours=2))  # fmt: skip
    # Another side's interest before the last digest: told by that one.
    kenya.digest_sent_through = T0 - timedelta(days=1)
    kenya.save()
    interested_other_side("KEN", "DEU", at=T0 - timedelta(days=2))
    assert digest_send_all(now=T0) == 0 and mail.outbox == []


def test_a_strong_match_awaiting_an_answer_is_told_once_among_those_awaiting(kenya):
    match = strong_match("KEN", "JPN", at=T0 - timedelta(hours=3))
    Match.objects.filter(pk=match.pk).update(
        offer_interest="interested", offer_interest_at=T0 - timedelta(hours=2)
    )
    other = strong_match("KEN", "DEU", at=T0 - timedelta(hours=3))
    assert digest_send_all(now=T0) == 1
    (message,) = mail.outbox
    assert message.subject == "1 match awaits your answer on the NMA Platform"
    assert message.body.count(f"#match-{match.pk}") == 1
    assert "A new strong match for your posts:" in message.body and f"#match-{other.pk}" in message.body


def test_a_providers_users_are_told_of_a_partys_interest_in_its_offer(db):
    provider = SupportProviderFactory(short_name="FUNDY")
    ProviderUserFactory(provider=provider, email="fund@example.org")
    need = PostFactory(kind="need", party=party("KEN"), title="Mangroves")
    offer = PostFactory(kind="offer", party=None, provider=provider, title="Blue carbon")
    Match.objects.create(need=need, offer=offer, score=0.4, need_interest="interested",
                         need_interest_at=T0 - timedelta(hours=2))  # fmt: skip
    assert digest_send_all(now=T0) == 1
    (message,) = mail.outbox
    assert message.to == ["fund@example.org"] and "- Mangroves (Kenya) ↔ Blue carbon\n" in message.body


def test_the_latest_interests_come_first_and_the_rest_is_pointed_to(kenya, settings):
    """More than the email lists: the newest interests, said to be more (the others wait on the dashboard),
    on SQLite as on PostgreSQL."""
    import apps.matching.services as services

    settings.MATCHING_STRONG_SCORE = 0.99
    old = services.DIGEST_MAX_MATCHES
    services.DIGEST_MAX_MATCHES = 3
    try:
        made = [interested_other_side("KEN", iso3, at=T0 - timedelta(hours=10 - i))
                for i, iso3 in enumerate(("JPN", "DEU", "FRA", "NOR", "SWE"))]  # fmt: skip
        assert digest_send_all(now=T0) == 1
    finally:
        services.DIGEST_MAX_MATCHES = old
    (message,) = mail.outbox
    assert message.subject == "More than 3 matches await your answer on the NMA Platform"
    listed = [m.pk for m in made if f"#match-{m.pk}\n" in message.body]
    assert listed == [m.pk for m in made[2:]]  # the three latest: FRA, NOR, SWE
    assert message.body.index(f"#match-{made[4].pk}") < message.body.index(f"#match-{made[2].pk}")
    assert "…and more: see them all from your dashboard:" in message.body
