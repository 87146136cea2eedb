"""Every stocktake figure against the hand-worked world of conftest.py (expected values derived there)."""

import datetime as dt
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.accounts.models import User
from apps.matching.models import Match
from apps.posts import services
from apps.posts.models import Post
from apps.posts.post_data import PostData
from apps.stocktake import selectors
from apps.stocktake.selectors import (
    DIMENSIONS,
    FIGURE_NAMES,
    HEADLINE_FIGURES,
    Filters,
    export_diff,
    export_headline,
    export_lookup,
    stocktake_export,
    stocktake_headline,
    stocktake_waiting_needs,
)

from .conftest import PERIOD, need, noon
from .factories import MatchFactory

# Every test here touches the database (some only through request.getfixturevalue, which pytest-django
# cannot see when it orders tests: without the mark they would run after the transactional tests).
pytestmark = pytest.mark.django_db

MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]


def figures(filters=None, **period):
    export = stocktake_export(**(period or PERIOD), filters=filters or {})
    lookup = export_lookup(export)

    def value(figure, **dimension):
        return lookup[(figure, tuple(sorted(dimension.items())))]

    value.export = export
    return value


def monthly(value, figure):
    return [value(figure, month=m) for m in MONTHS]


@pytest.fixture
def v(world):
    return figures()


def test_export_shape_starts_with_the_headline(v):
    export = v.export
    assert export["period"] == {"from": "2026-01-01", "to": "2026-06-30"}
    first = export["figures"][: len(HEADLINE_FIGURES)]
    assert [row["figure"] for row in first] == list(HEADLINE_FIGURES)
    assert all(row["dimension"] == {} for row in first)
    for row in export["figures"]:
        assert set(row) == {"figure", "dimension", "value"}
        assert row["figure"] in FIGURE_NAMES
        assert set(row["dimension"]) <= set(DIMENSIONS)
    # One row per (figure, dimension): nothing counted twice.
    assert len(export_lookup(export)) == len(export["figures"])


def test_posts_published_in_the_period(v):
    # N1..N5 (N_old before, N_later after, the draft never published); O1 and O2 (O_old before).
    assert v("needs_published") == 5
    assert v("offers_published") == 2
    assert monthly(v, "needs_published") == [1, 1, 1, 1, 0, 1]
    assert monthly(v, "offers_published") == [1, 0, 1, 0, 0, 0]
    # A need asking for two types of support counts under both.
    assert v("needs_published", support_type="finance") == 2  # N1, N4
    assert v("needs_published", support_type="technology") == 2  # N2, N3
    assert v("needs_published", support_type="capacity_building") == 2  # N1, N5
    assert v("needs_published", focus_area="adaptation") == 2
    assert v("needs_published", focus_area="mitigation") == 2
    assert v("needs_published", focus_area="clean_energy") == 1
    assert v("needs_published", sector="agriculture_food") == 1
    assert v("needs_published", sector="water") == 0  # N_old was published before the period
    assert v("needs_published", regional_group="African States") == 3  # N1 (UGA), N2, N4 (KEN)
    assert v("needs_published", regional_group="Asia-Pacific States") == 1
    assert v("needs_published", regional_group="Latin American and Caribbean States") == 1
    assert v("needs_published", regional_group="Eastern European States") == 0
    assert (
        v("offers_published", regional_group="Western European and other States") == 1
    )  # O2; O1 is a provider's
    assert v("offers_published", support_type="technology") == 1
    assert v("offers_published", focus_area="mitigation") == 1


def test_state_at_the_end_of_the_period_and_of_each_month(v):
    # Open at 2026-07-01: N_old, N1, N4, N5. N2 was published and withdrawn within the period.
    assert v("needs_open") == 4
    assert v("needs_closed") == 2  # N3 in June, N_closed in 2025
    assert v("needs_withdrawn") == 1  # N2
    assert v("offers_open") == 2
    assert v("offers_closed") == 0
    assert v("offers_withdrawn") == 1  # O_old
    assert monthly(v, "needs_open") == [2, 2, 3, 4, 4, 4]
    assert monthly(v, "needs_withdrawn") == [0, 1, 1, 1, 1, 1]
    assert monthly(v, "needs_closed") == [1, 1, 1, 1, 1, 2]
    assert monthly(v, "offers_open") == [2, 1, 2, 2, 2, 2]
    assert monthly(v, "offers_withdrawn") == [0, 1, 1, 1, 1, 1]


def test_amounts_by_instrument(v):
    assert v("amount_needed_usd") == 1_500_000.5
    assert v("amount_offered_usd") == 2_000_000
    assert v("amount_offered_usd", instrument="grant") == 2_000_000
    assert v("amount_offered_usd", instrument="concessional_loan") == 2_000_000
    assert v("amount_offered_usd", instrument="guarantee") == 0
    # A need names no finance instrument (only offers do), so the amount needed has no row by instrument: a
    # row of 0 for each read as "no need asked for grants".
    assert [r for r in v.export["figures"] if r["figure"] == "amount_needed_usd" and "instrument" in
            r["dimension"]] == []  # fmt: skip
    assert monthly(v, "amount_needed_usd") == [1_000_000, 500_000.5, 0, 0, 0, 0]


def test_supply_and_demand_balance(v):
    # Open needs: N_old tech/adapt, N1 fin+cap/adapt, N4 fin/adapt, N5 cap/mitig.
    # Open offers: O1 fin/adapt, O2 tech+cap/clean+mitig.
    assert [v("needs_open", support_type=k) for k in ("finance", "technology", "capacity_building")] == [
        2,
        1,
        2,
    ]
    assert [v("offers_open", support_type=k) for k in ("finance", "technology", "capacity_building")] == [
        1,
        1,
        1,
    ]
    assert v("offers_per_need", support_type="finance") == 0.5
    assert v("offers_per_need", support_type="technology") == 1.0
    assert v("needs_open", focus_area="adaptation") == 3
    assert v("offers_per_need", focus_area="adaptation") == 0.3333
    # Offers but no open need: the ratio is undefined, not infinite or zero.
    assert v("needs_open", focus_area="clean_energy") == 0
    assert v("offers_per_need", focus_area="clean_energy") is None
    assert v("needs_open", support_type="finance", focus_area="adaptation") == 2
    assert v("offers_open", support_type="finance", focus_area="adaptation") == 1
    assert v("offers_open", support_type="technology", focus_area="mitigation") == 1
    assert v("needs_open", support_type="technology", focus_area="mitigation") == 0


def test_participation(v):
    assert v("parties_posting") == 5  # UGA, KEN, FJI, BRA, DEU
    assert v("providers_posting") == 1  # P1 (P2 posted before the period)
    assert v("parties_posting", regional_group="African States") == 2
    assert v("parties_posting", regional_group="Western European and other States") == 1
    assert monthly(v, "parties_posting") == [1, 1, 2, 1, 0, 1]
    assert monthly(v, "providers_posting") == [1, 0, 0, 0, 0, 0]
    # KEN's joined in 2025; UGA's joined after the period; FJI's is inactive.
    assert v("parties_with_focal_point") == 1
    assert v("ldc_parties") == 44
    assert v("sids_parties") == 39
    assert v("ldc_parties_posting") == 1  # UGA
    assert v("sids_parties_posting") == 1  # FJI
    assert v("ldc_parties_posting_share") == round(1 / 44, 4)
    assert v("sids_parties_posting_share") == round(1 / 39, 4)
    # KEN posted first in 2025, so is not new.
    assert v("new_parties") == 4
    assert monthly(v, "new_parties") == [1, 0, 2, 0, 0, 1]


def test_matching(v):
    # Generated in the period: M5, M1 (January), M2 (February), M3 (March); M0 before, M4 after.
    assert v("matches") == 4
    assert monthly(v, "matches") == [2, 1, 1, 0, 0, 0]
    # First strong in the period: M1, M5 (January), M3 (April).
    assert v("strong_matches") == 3
    assert monthly(v, "strong_matches") == [2, 0, 0, 1, 0, 0]
    # M1 need side, M1 offer side, M3 need side (M3's offer side dismissed).
    assert v("interests") == 3
    assert v("interests", side="need") == 2
    assert v("interests", side="offer") == 1
    assert monthly(v, "interests") == [0, 2, 0, 1, 0, 0]
    assert v("connections") == 1
    assert monthly(v, "connections") == [0, 1, 0, 0, 0, 0]
    assert v("match_connection_rate") == 0.25
    assert v("match_connection_rate", month="2026-01") == 0.5
    assert v("match_connection_rate", month="2026-02") == 0
    assert v("match_connection_rate", month="2026-05") is None
    # Needs published in the period with a strong match by its end: N1, N3.
    assert v("needs_with_strong_match") == 2
    assert v("needs_with_strong_match_share") == 0.4


def test_days_to_first_strong_match_and_connection(v):
    # N1: 10 days; N3: 30 days. N_old's first strong match was before the period, so it is not here.
    assert v("needs_first_strong_match") == 2
    assert v("days_to_first_strong_match_median") == 20
    assert v("days_to_first_strong_match_p90") == 28  # 10 + 0.9 * (30 - 10), as percentile_cont interpolates
    assert v("days_to_first_strong_match_median", month="2026-01") == 10
    assert v("days_to_first_strong_match_p90", month="2026-04") == 30
    assert v("days_to_first_strong_match_median", month="2026-02") is None
    assert v("needs_first_strong_match", month="2026-02") == 0
    # N1: published 01-10, connected 02-05.
    assert v("needs_first_connection") == 1
    assert v("days_to_first_connection_median") == 26
    assert v("days_to_first_connection_p90") == 26
    assert v("days_to_first_connection_median", month="2026-02") == 26


def test_a_needs_events_count_from_its_current_publication(world):
    """A need the secretariat took back has no publication (it is not counted as published), and one published
    again counts from its new publication: its strong match from the publication taken back keeps its time
    when the pair is found again, and must make it neither matched before it was published nor give durations
    from nothing or negative ones; in every report, whatever its period."""
    o1 = world.o1
    taken_back = need("TZA", None, ["finance"], ["adaptation"], status=Post.Status.RETURNED)
    MatchFactory(
        need=taken_back, offer=o1, score=0.9, created_at=noon(2026, 2, 3), strong_at=noon(2026, 2, 3)
    )
    # Published in January, strong match on 5 February, taken back on 1 March, published again on 15 April.
    again = need("MWI", noon(2026, 4, 15), ["finance"], ["adaptation"], returned_at=noon(2026, 3, 1))
    MatchFactory(need=again, offer=o1, score=0.9, created_at=noon(2026, 2, 5), strong_at=noon(2026, 2, 5),
                 connected_at=noon(2026, 2, 6))  # fmt: skip
    v = figures()
    # N1 (10 days) and N3 (30 days) as before; neither of the two above.
    assert v("needs_first_strong_match") == 2
    assert v("days_to_first_strong_match_median") == 20
    assert v("needs_first_strong_match", month="2026-02") == 0
    assert v("days_to_first_strong_match_median", month="2026-02") is None
    assert v("needs_first_connection") == 1
    assert v("days_to_first_connection_median") == 26
    # Published in April with no strong match since: not matched, and (open, but not 60 days yet) no gap.
    assert v("needs_with_strong_match") == 2  # N1, N3
    assert v("needs_with_strong_match", month="2026-04") == 0
    february = figures(date_from=dt.date(2026, 2, 1), date_to=dt.date(2026, 2, 28))
    assert february("needs_first_strong_match") == 0 and february("strong_matches") == 2  # the events stand
    # Still unmatched 60 days after its new publication, at the end of the year: with N4, N5 and N_later.
    assert figures(date_from=dt.date(2026, 12, 1), date_to=dt.date(2026, 12, 31))("needs_unmatched_60d") == 4

    # A strong match found after the new publication counts, from it: 5 days; in a report of April alone
    # as in the half-year's April.
    MatchFactory(
        need=again, offer=world.o2, score=0.8, created_at=noon(2026, 4, 20), strong_at=noon(2026, 4, 20)
    )
    for v in (figures(), figures(date_from=dt.date(2026, 4, 1), date_to=dt.date(2026, 4, 30))):
        assert v("needs_first_strong_match", month="2026-04") == 2  # with N3 (30 days)
        assert v("days_to_first_strong_match_median", month="2026-04") == 17.5
        assert v("needs_with_strong_match", month="2026-04") == 1
    v = figures()
    assert v("needs_first_strong_match") == 3
    assert v("days_to_first_strong_match_median") == 10  # 5, 10, 30
    assert v("needs_first_connection") == 1
    assert figures(date_from=dt.date(2026, 12, 1), date_to=dt.date(2026, 12, 31))("needs_unmatched_60d") == 3


def test_a_need_changed_into_an_offer_is_no_longer_a_needs_first_match(world, secretariat, monkeypatch):
    """The secretariat changes a need into an offer (post_update with kind="offer"): its matches as a need are
    retired but kept, and its strong match and connection stand as events, but it is no need any more: it is
    not among the needs first strongly matched or connected, nor in their durations (on SQLite as on
    PostgreSQL), as it is in no gap."""
    monkeypatch.setattr(services, "matching_enqueue", lambda *, post_ids: None)
    changed = need("KEN", noon(2026, 2, 1), ["technology"], ["mitigation"])
    MatchFactory(need=changed, offer=world.o2, score=0.9, created_at=noon(2026, 2, 11),
                 strong_at=noon(2026, 2, 11), connected_at=noon(2026, 2, 21))  # fmt: skip
    data = PostData(kind=Post.Kind.OFFER, title=changed.title, description=changed.description,
                    support_types=["technology"], focus_areas=["mitigation"], party=changed.party,
                    language=changed.language)  # fmt: skip
    services.post_update(actor=Actor.for_user(secretariat), post=changed, data=data)
    changed.refresh_from_db()
    assert changed.kind == Post.Kind.OFFER and Match.objects.filter(need=changed).exists()
    for filters in ({}, {"support_type": "technology"}):
        v = figures(filters)
        # Its strong match and connection stand as events (with M1's connection unfiltered).
        assert v("strong_matches", month="2026-02") == 1, filters
        assert v("connections", month="2026-02") == (2 if not filters else 1), filters
        # N1 (10 days) and N3 (30 days) unfiltered; N3 alone under the filter; never the offer.
        assert v("needs_first_strong_match", month="2026-02") == 0, filters
        assert v("days_to_first_strong_match_median", month="2026-02") is None, filters
        assert v("needs_first_strong_match") == (2 if not filters else 1), filters
        assert v("days_to_first_strong_match_median") == (20 if not filters else 30), filters
        # N1 connected in February (26 days) unfiltered, nothing under the filter.
        assert v("needs_first_connection", month="2026-02") == (1 if not filters else 0), filters
        assert v("days_to_first_connection_median") == (26 if not filters else None), filters


def test_gaps_at_the_end_of_the_period_and_of_each_month(v):
    # At 07-01: N4 (published 04-01, no strong match) is unmatched; N_old (strong, no offer answered) is
    # unanswered; N1 was answered; N5 is too recent; N3 is closed.
    assert v("needs_unmatched_60d") == 1
    assert v("needs_unanswered_60d") == 1
    assert v("needs_unmatched_60d", support_type="finance") == 1
    assert v("needs_unmatched_60d", focus_area="adaptation") == 1
    assert v("needs_unmatched_60d", regional_group="African States") == 1
    assert v("needs_unanswered_60d", support_type="technology") == 1
    assert v("needs_unanswered_60d", support_type="finance") == 0
    # At 06-01 N4 is 61 days old and N3 (closed at noon that day) is still open, strong, unanswered.
    assert monthly(v, "needs_unmatched_60d") == [0, 0, 0, 0, 1, 1]
    assert monthly(v, "needs_unanswered_60d") == [1, 1, 1, 1, 2, 1]


def test_waiting_needs_list(world):
    waiting = stocktake_waiting_needs(**PERIOD, filters={})
    assert [(n.pk, n.gap) for n in waiting] == [(world.n_old.pk, "unanswered"), (world.n4.pk, "unmatched")]
    assert waiting[1].days_waiting == 90  # 2026-04-01 12:00 to 2026-07-01 00:00


def test_party_filter_leaves_out_provider_offers(world):
    v = figures({"ldc": True})
    assert v("needs_published") == 1  # N1 (UGA)
    assert v("offers_published") == 0
    assert v("providers_posting") == 0
    assert v("parties_posting") == 1
    assert v("ldc_parties") == 44
    assert v("sids_parties") == 7  # SIDS that are also LDCs in reference/parties.csv
    assert v("matches") == 1  # M1: matching figures follow the need
    assert v("connections") == 1
    assert v("needs_unmatched_60d") == 0


def test_facet_filter_counts_each_post_once(world):
    v = figures({"support_type": "technology"})
    assert v("needs_published") == 2  # N2, N3
    assert v("offers_published") == 1  # O2
    # Filtering by a facet does not narrow the other facets of the posts it selects.
    assert v("offers_published", support_type="capacity_building") == 1
    assert v("needs_published", support_type="finance") == 0
    assert v("matches") == 3  # M5 (N_old), M2 (N2), M3 (N3)
    assert v("strong_matches") == 2
    assert v("needs_unanswered_60d") == 1  # N_old
    assert v("needs_unmatched_60d") == 0


def test_combined_filters(world):
    v = figures({"focus_area": "adaptation", "regional_group": "African States", "sids": False})
    assert v("needs_published") == 2  # N1, N4
    assert v("parties_posting") == 2
    assert v("new_parties") == 1  # UGA
    assert v("needs_unmatched_60d") == 1


def test_filters_apply_to_the_need_in_durations_and_gaps(world):
    v = figures({"support_type": "technology"})
    # Technology needs: N_old (first strong before the period), N2 (never strong), N3 (strong 04-14, 30
    # days after its publication; never connected).
    assert v("needs_first_strong_match") == 1
    assert v("needs_first_strong_match", month="2026-04") == 1
    assert v("days_to_first_strong_match_median") == 30
    assert v("days_to_first_strong_match_p90", month="2026-04") == 30
    assert v("needs_first_connection") == 0
    assert v("days_to_first_connection_median") is None
    assert v("needs_with_strong_match") == 1  # N3
    # N_old is unanswered at every month's end, N3 too at 06-01 (closed at noon that day); N4 is finance.
    assert monthly(v, "needs_unanswered_60d") == [1, 1, 1, 1, 2, 1]
    assert monthly(v, "needs_unmatched_60d") == [0, 0, 0, 0, 0, 0]
    v = figures({"ldc": True})
    # N1 (UGA): strong 10 days and connected 26 days after its publication.
    assert v("needs_first_strong_match", month="2026-01") == 1
    assert v("days_to_first_strong_match_median") == 10
    assert v("days_to_first_connection_p90", month="2026-02") == 26
    assert v("interests", side="need") == 1
    assert v("interests", month="2026-02") == 2
    assert v("match_connection_rate", month="2026-01") == 1


def test_headline_only_matches_the_full_export_under_filters(world):
    for filters in (
        {"support_type": "technology"},
        {"ldc": True},
        {"regional_group": "African States", "focus_area": "adaptation"},
    ):
        headline = stocktake_headline(**PERIOD, filters=filters)
        assert headline == export_headline(stocktake_export(**PERIOD, filters=filters)), filters


def test_an_empty_period_has_zero_counts_and_no_percentiles(world):
    year = timezone.localdate().year + 4  # years after the world's posts, and not begun whenever this runs
    v = figures(date_from=dt.date(year, 1, 1), date_to=dt.date(year, 1, 31))
    assert v.export["period"] == {"from": f"{year}-01-01", "to": f"{year}-01-31"}
    for name in HEADLINE_FIGURES:
        if name != "needs_unmatched_60d":
            assert v(name) == 0, name
    # Still open and never matched then: N4 (and N5, N_later by then); the stock carries on.
    assert v("needs_unmatched_60d") == 3
    assert v("days_to_first_strong_match_median") is None
    assert v("match_connection_rate") is None
    # A month that has not begun has no monthly figures yet: null, not a count of 0.
    assert v("needs_published", month=f"{year}-01") is None
    assert v("needs_open", month=f"{year}-01") is None
    # A month that is over and held nothing counts 0.
    before = figures(date_from=dt.date(2025, 12, 1), date_to=dt.date(2025, 12, 31))
    assert before("needs_published", month="2025-12") == 0
    assert before("matches", month="2025-12") == 0


def test_months_not_begun_have_no_figures_and_break_the_trend(world):
    """A period that ends in the future (the current half-year, the report's default): the months after this one
    are null in the export, "–" in the table and gaps in the charts, not a fall to 0 at the end of each trend;
    the month under way has its figures so far."""
    from apps.stocktake.tables import report_layout

    today = timezone.localdate()
    following = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    last = (following + dt.timedelta(days=40)).replace(day=1) - dt.timedelta(days=1)
    v = figures(date_from=dt.date(2026, 1, 1), date_to=last)
    this_month, next_month = today.strftime("%Y-%m"), following.strftime("%Y-%m")
    assert v("needs_open", month=this_month) == v("needs_open")
    assert v("needs_published", month=this_month) is not None
    assert v("needs_open", month=next_month) is None and v("matches", month=next_month) is None
    assert v("needs_published", month="2026-01") == 1  # months past keep theirs
    layout = report_layout(v.export)
    trend = {row[0]: row[1:] for row in layout["trend"].rows}
    column = layout["months"].index(next_month)
    assert all(values[column] == "–" for values in trend.values())
    assert trend["Needs open"][column - 1] != "–"


def test_one_day_period(world):
    v = figures(date_from=dt.date(2026, 1, 20), date_to=dt.date(2026, 1, 20))
    assert v("matches") == 1  # M1
    assert v("needs_first_strong_match") == 1
    assert v("days_to_first_strong_match_median") == 10


def test_headline_only_matches_the_full_export(world):
    headline = stocktake_headline(**PERIOD)
    assert headline == export_headline(stocktake_export(**PERIOD, filters={}))
    assert headline["needs_published"] == 5


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="after it ends"):
        stocktake_export(date_from=dt.date(2026, 2, 1), date_to=dt.date(2026, 1, 1), filters={})
    with pytest.raises(ValueError, match="Unknown filter"):
        Filters.from_dict({"country": "KEN"})
    with pytest.raises(ValueError, match="Unknown focus_area"):
        Filters.from_dict({"focus_area": "space"})
    with pytest.raises(ValueError, match="true or false"):
        Filters.from_dict({"ldc": "maybe"})
    assert Filters.from_dict({"ldc": "false", "sids": None, "support_type": ""}).as_dict() == {"ldc": False}


def _query_count(**kwargs):
    with CaptureQueriesContext(connection) as queries:
        stocktake_export(**PERIOD, filters=kwargs)
    return len(queries.captured_queries)


def test_query_count_does_not_grow_with_the_data(world):
    # Seven statements: the posts; the balance by type of support and focus area; sectors; instruments;
    # the Parties; the match events; the needs. On PostgreSQL the transaction set-up adds three (SAVEPOINT,
    # SET LOCAL jit, RELEASE). On SQLite the percentile fallback adds a count and the ranks of each month
    # that has durations, so compare two data sizes with the same months filled.
    before = _query_count()
    assert before == 10 if connection.vendor == "postgresql" else before <= 30
    for day in (3, 4, 5):
        extra = need("UGA", noon(2026, 1, day), ["finance"], ["adaptation"])
        MatchFactory(need=extra, offer=world.o1, created_at=noon(2026, 1, 28), strong_at=noon(2026, 1, 28))
        MatchFactory(need=extra, offer=world.o2, created_at=noon(2026, 4, 1), strong_at=noon(2026, 4, 1))
    assert figures()("matches") == 10  # 4 + 6 new
    assert _query_count() == before


@pytest.mark.django_db
def test_query_count_on_postgresql_is_the_same_for_an_empty_database(request):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite skips the percentile reads of empty months")
    empty = _query_count()
    request.getfixturevalue("world")
    assert _query_count() == empty
    assert _query_count(support_type="finance", ldc=True) == empty


def test_export_diff(world):
    before = stocktake_export(**PERIOD, filters={})
    world.n5.published_at = None
    world.n5.save()
    after = stocktake_export(**PERIOD, filters={})
    changes = {(c["figure"], tuple(c["dimension"].items())): c for c in export_diff(before, after)}
    assert changes[("needs_published", ())]["before"] == 5
    assert changes[("needs_published", ())]["after"] == 4
    assert changes[("needs_published", ())]["change"] == -1
    assert ("offers_published", ()) not in changes
    other = stocktake_export(date_from=dt.date(2026, 7, 1), date_to=dt.date(2026, 7, 31), filters={})
    statuses = {c["status"] for c in export_diff(before, other)}
    assert statuses == {"changed", "added", "removed"}


def test_deactivating_a_focal_point_changes_past_reports(world):
    """FIGURES.md, "Past reports can change": the platform keeps no history of a user's active status, so a
    focal point deactivated today leaves the Parties with a focal point of every past period."""
    assert figures()("parties_with_focal_point") == 1  # KEN's, joined in 2025
    User.objects.filter(username="fp_ken_2025").update(is_active=False)
    assert figures()("parties_with_focal_point") == 0
    definitions = (Path(selectors.__file__).with_name("FIGURES.md")).read_text(encoding="utf-8")
    assert "deactivating a focal point" in " ".join(definitions.split())
