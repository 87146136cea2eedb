"""Each match's place in the need's and in the offer's list, as the API reports it (computed when read)."""

import pytest

from apps.matching.models import Match
from apps.matching.selectors import match_with_ranks
from apps.matching.serializers import match_api_record

from ..factories import PostFactory, party

pytestmark = pytest.mark.django_db


def test_ranks_follow_score_then_id_among_active_matches_only(db):
    need = PostFactory(kind="need", party=party("KEN"))
    other_need = PostFactory(kind="need", party=party("NPL"))
    offers = [PostFactory(kind="offer", party=party(iso3)) for iso3 in ("JPN", "FRA", "DEU")]
    best = Match.objects.create(need=need, offer=offers[0], score=0.9)
    tie_first = Match.objects.create(need=need, offer=offers[1], score=0.7)
    tie_second = Match.objects.create(need=need, offer=offers[2], score=0.7)
    Match.objects.create(
        need=need, offer=PostFactory(kind="offer", party=party("GBR")), score=0.95, is_active=False
    )
    # In offer 1's list of needs, the other need ranks first.
    Match.objects.create(need=other_need, offer=offers[1], score=0.8)

    ranked = {m.pk: m for m in match_with_ranks(Match.objects.filter(need=need, is_active=True))}
    assert [(ranked[m.pk].need_rank, ranked[m.pk].offer_rank) for m in (best, tie_first, tie_second)] == [
        (1, 1),
        (2, 2),
        (3, 1),
    ]
    record = match_api_record(ranked[tie_first.pk])
    assert (record["rank_for_need"], record["rank_for_offer"]) == (2, 2)


def test_an_inactive_match_has_no_rank(db):
    match = Match.objects.create(
        need=PostFactory(kind="need", party=party("KEN")),
        offer=PostFactory(kind="offer", party=party("JPN")),
        score=0.5,
        is_active=False,
    )
    record = match_api_record(match_with_ranks(Match.objects.filter(pk=match.pk)).get())
    assert record["rank_for_need"] is None and record["rank_for_offer"] is None
