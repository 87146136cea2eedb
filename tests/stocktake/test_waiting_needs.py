"""The list of needs behind the gap figures: read oldest first and cut at `limit`, agreeing with the counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.matching.models import Interest
from apps.posts.models import Post
from apps.stocktake.selectors import stocktake_export, stocktake_waiting_needs

from .conftest import PERIOD, need, noon
from .factories import MatchFactory


def _gaps(**filters):
    return [(n.pk, n.gap) for n in stocktake_waiting_needs(**PERIOD, filters=filters, limit=1000)]


def _gap_counts(**filters):
    rows = stocktake_export(**PERIOD, filters=filters)["figures"]
    values = {r["figure"]: r["value"] for r in rows if not r["dimension"]}
    return values["needs_unmatched_60d"], values["needs_unanswered_60d"]


@pytest.fixture
def more_needs(world):
    """Needs published before the 60-day cut-off (2026-05-02), each testing one edge of the definitions."""
    # Strong only after the period end: still unmatched at the end.
    strong_later = need("UGA", noon(2026, 2, 10), ["finance"], ["adaptation"])
    MatchFactory(need=strong_later, offer=world.o1, created_at=noon(2026, 6, 1), strong_at=noon(2026, 7, 3))
    # Strong in the period, offer side interested only after the end: unanswered.
    answered_later = need("UGA", noon(2026, 2, 11), ["finance"], ["adaptation"])
    MatchFactory(
        need=answered_later,
        offer=world.o1,
        created_at=noon(2026, 3, 1),
        strong_at=noon(2026, 3, 1),
        offer_interest=Interest.INTERESTED,
        offer_interest_at=noon(2026, 7, 2),
    )
    # Strong, and the offer side interested before the end: not waiting.
    answered = need("UGA", noon(2026, 2, 12), ["finance"], ["adaptation"])
    MatchFactory(
        need=answered,
        offer=world.o2,
        created_at=noon(2026, 3, 1),
        strong_at=noon(2026, 3, 1),
        offer_interest=Interest.INTERESTED,
        offer_interest_at=noon(2026, 3, 5),
    )
    # Never matched but closed before the end: not waiting.
    need(
        "UGA",
        noon(2026, 2, 13),
        ["finance"],
        ["adaptation"],
        status=Post.Status.CLOSED,
        closed_at=noon(2026, 6, 20),
    )
    return strong_later, answered_later


def test_every_edge_of_the_definitions(world, more_needs):
    strong_later, answered_later = more_needs
    assert _gaps() == [
        (world.n_old.pk, "unanswered"),
        (strong_later.pk, "unmatched"),
        (answered_later.pk, "unanswered"),
        (world.n4.pk, "unmatched"),
    ]


def test_the_list_agrees_with_the_gap_figures(world, more_needs):
    for filters in ({}, {"regional_group": "African States"}, {"support_type": "technology"}):
        gaps = [gap for _pk, gap in _gaps(**filters)]
        assert (gaps.count("unmatched"), gaps.count("unanswered")) == _gap_counts(**filters), filters


def test_the_oldest_needs_come_first_up_to_the_limit(world, more_needs):
    strong_later, _answered_later = more_needs
    waiting = stocktake_waiting_needs(**PERIOD, filters={}, limit=2)
    assert [n.pk for n in waiting] == [world.n_old.pk, strong_later.pk]
    assert waiting[0].party.iso3 == "KEN"  # the Party came with the post


def _query_count():
    with CaptureQueriesContext(connection) as queries:
        stocktake_waiting_needs(**PERIOD, filters={"support_type": "finance"}, limit=100)
    return len(queries.captured_queries)


def test_query_count_does_not_grow_with_the_data(world, django_assert_num_queries):
    # The gaps (one query: needs oldest first, each probed for its first strong match and first offer-side
    # answer), then the posts with their Party; on PostgreSQL the transaction set-up adds three
    # (SAVEPOINT, SET LOCAL jit, RELEASE).
    expected = 2 + (3 if connection.vendor == "postgresql" else 0)
    assert _query_count() == expected
    for day in range(1, 8):
        waiting = need("KEN", noon(2026, 1, day), ["finance"], ["adaptation"])
        MatchFactory(need=waiting, offer=world.o1, created_at=noon(2026, 1, 20), strong_at=noon(2026, 1, 20))
    assert len(stocktake_waiting_needs(**PERIOD, filters={}, limit=100)) == 2 + 7
    assert _query_count() == expected


def test_a_period_not_over_yet_counts_the_days_waiting_so_far(db):
    # The Committee's default period runs to the end of the half-year: a need 44 days old today is not a gap
    # yet, though it would be by the period's end; one 70 days old is, waiting 70 days (not until the end).
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    need("KEN", now - dt.timedelta(days=44), ["finance"], ["adaptation"], title="Young need")
    old = need("KEN", now - dt.timedelta(days=70), ["finance"], ["adaptation"], title="Old need")
    period = {
        "date_from": (now - dt.timedelta(days=100)).date(),
        "date_to": (now + dt.timedelta(days=120)).date(),
    }
    waiting = stocktake_waiting_needs(**period, filters={}, limit=10)
    assert [(n.pk, n.days_waiting) for n in waiting] == [(old.pk, 70)]
    figures = {r["figure"]: r["value"] for r in stocktake_export(**period, filters={})["figures"]
               if not r["dimension"]}  # fmt: skip
    assert figures["needs_unmatched_60d"] == 1


def test_a_need_published_again_counts_its_matches_from_its_new_publication(world):
    """The list holds exactly the needs the two gap figures count: a need the secretariat took back and
    published again is matched and answered only by what came since its new publication, as in the figures.
    It was missing from the list (the reviewer's 16 + 10 = 26 needs counted, 25 listed)."""
    # Strongly matched and answered on its first publication, taken back on 1 March, published again on 10
    # March, nothing since: unmatched at the end (published more than 60 days before it).
    unmatched = need("MWI", noon(2026, 3, 10), ["finance"], ["adaptation"], returned_at=noon(2026, 3, 1))
    MatchFactory(need=unmatched, offer=world.o1, created_at=noon(2026, 2, 5), strong_at=noon(2026, 2, 5),
                 offer_interest=Interest.INTERESTED, offer_interest_at=noon(2026, 2, 6))  # fmt: skip
    # The same, strongly matched again since its new publication but not answered since: unanswered.
    unanswered = need("TZA", noon(2026, 3, 12), ["finance"], ["adaptation"], returned_at=noon(2026, 3, 1))
    MatchFactory(need=unanswered, offer=world.o1, created_at=noon(2026, 2, 5), strong_at=noon(2026, 2, 5),
                 offer_interest=Interest.INTERESTED, offer_interest_at=noon(2026, 2, 6))  # fmt: skip
    MatchFactory(need=unanswered, offer=world.o2, created_at=noon(2026, 3, 20), strong_at=noon(2026, 3, 20))
    assert _gap_counts() == (2, 2)  # with N4 (unmatched) and N_old (unanswered)
    assert _gaps() == [
        (world.n_old.pk, "unanswered"),
        (unmatched.pk, "unmatched"),
        (unanswered.pk, "unanswered"),
        (world.n4.pk, "unmatched"),
    ]
    for filters in ({}, {"ldc": True}, {"support_type": "finance"}):
        gaps = [gap for _pk, gap in _gaps(**filters)]
        assert (gaps.count("unmatched"), gaps.count("unanswered")) == _gap_counts(**filters), filters
