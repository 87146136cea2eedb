"""A small world whose every stocktake figure for the first half of 2026 was worked out by hand.

The period is 2026-01-01 .. 2026-06-30; its end is 2026-07-01 00:00 UTC and the 60-day gap cut-off at that
end is 2026-05-02 00:00 UTC. Every event happens at noon UTC, so the durations are whole days.

Needs
  N_old    KEN  published 2025-10-01  technology / adaptation / water          open
  N_closed KEN  published 2025-06-01  technology / adaptation                 closed 2025-12-01
  N1       UGA  published 2026-01-10  finance+capacity_building / adaptation  open, $1,000,000, agriculture_food
  N2       KEN  published 2026-02-01  technology / mitigation                 withdrawn 2026-02-20, $500,000.50
  N3       FJI  published 2026-03-15  technology / clean_energy               closed 2026-06-01
  N4       KEN  published 2026-04-01  finance / adaptation                    open, never matched
  N5       BRA  published 2026-06-15  capacity_building / mitigation          open (too recent to be a gap)
  N_later  BRA  published 2026-07-05  (after the period)
  N_draft  KEN  draft, never published
Offers
  O_old    provider P2  published 2025-09-01  finance / adaptation            withdrawn 2026-02-10
  O1       provider P1  published 2026-01-05  finance / adaptation            $2,000,000, grant + concessional_loan
  O2       DEU          published 2026-03-01  technology+capacity_building / clean_energy+mitigation
Matches
  M0  N_old-O_old  created 2025-11-01, strong 2025-11-01 (matched before the period)
  M5  N_old-O1     created 2026-01-25, strong 2026-01-25
  M1  N1-O1        created 2026-01-20, strong 2026-01-20; need interested 02-01, offer 02-05, connected 02-05
  M2  N2-O1        created 2026-02-02, weak (never strong)
  M3  N3-O2        created 2026-03-20, strong 2026-04-14; need interested 04-20, offer dismissed 04-25
  M4  N1-O2        created 2026-07-02, strong 2026-07-02 (after the period)
Focal points: KEN (joined 2025), UGA (joined after the period), FJI (inactive).
"""

import datetime as dt
from types import SimpleNamespace

import pytest

from apps.matching.models import Interest
from apps.posts.models import Post
from tests.factories import FocalPointFactory, PostFactory, SupportProviderFactory, party

from .factories import MatchFactory

UTC = dt.UTC


def noon(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, day, 12, tzinfo=UTC)


PERIOD = {"date_from": dt.date(2026, 1, 1), "date_to": dt.date(2026, 6, 30)}


def need(iso3, published, support, focus, **extra):
    return PostFactory(
        kind=Post.Kind.NEED,
        party=party(iso3),
        published_at=published,
        support_types=support,
        focus_areas=focus,
        **extra,
    )


@pytest.fixture
def world(db):
    p1 = SupportProviderFactory(short_name="P1")
    p2 = SupportProviderFactory(short_name="P2")
    n_old = need("KEN", noon(2025, 10, 1), ["technology"], ["adaptation"], sectors=["water"])
    need(
        "KEN",
        noon(2025, 6, 1),
        ["technology"],
        ["adaptation"],
        status=Post.Status.CLOSED,
        closed_at=noon(2025, 12, 1),
    )
    n1 = need(
        "UGA",
        noon(2026, 1, 10),
        ["finance", "capacity_building"],
        ["adaptation"],
        sectors=["agriculture_food"],
        amount_usd=1_000_000,
    )
    n2 = need(
        "KEN",
        noon(2026, 2, 1),
        ["technology"],
        ["mitigation"],
        status=Post.Status.WITHDRAWN,
        withdrawn_at=noon(2026, 2, 20),
        amount_usd="500000.50",
    )
    n3 = need(
        "FJI",
        noon(2026, 3, 15),
        ["technology"],
        ["clean_energy"],
        status=Post.Status.CLOSED,
        closed_at=noon(2026, 6, 1),
    )
    n4 = need("KEN", noon(2026, 4, 1), ["finance"], ["adaptation"])
    n5 = need("BRA", noon(2026, 6, 15), ["capacity_building"], ["mitigation"])
    need("BRA", noon(2026, 7, 5), ["finance"], ["adaptation"])
    need("KEN", None, ["finance"], ["adaptation"], status=Post.Status.DRAFT)

    o_old = PostFactory(
        kind=Post.Kind.OFFER,
        party=None,
        provider=p2,
        published_at=noon(2025, 9, 1),
        status=Post.Status.WITHDRAWN,
        withdrawn_at=noon(2026, 2, 10),
        support_types=["finance"],
        focus_areas=["adaptation"],
    )
    o1 = PostFactory(
        kind=Post.Kind.OFFER,
        party=None,
        provider=p1,
        published_at=noon(2026, 1, 5),
        support_types=["finance"],
        focus_areas=["adaptation"],
        instruments=["grant", "concessional_loan"],
        amount_usd=2_000_000,
    )
    o2 = PostFactory(
        kind=Post.Kind.OFFER,
        party=party("DEU"),
        published_at=noon(2026, 3, 1),
        support_types=["technology", "capacity_building"],
        focus_areas=["clean_energy", "mitigation"],
    )

    MatchFactory(
        need=n_old, offer=o_old, score=0.8, created_at=noon(2025, 11, 1), strong_at=noon(2025, 11, 1)
    )
    MatchFactory(need=n_old, offer=o1, score=0.65, created_at=noon(2026, 1, 25), strong_at=noon(2026, 1, 25))
    MatchFactory(
        need=n1,
        offer=o1,
        score=0.9,
        created_at=noon(2026, 1, 20),
        strong_at=noon(2026, 1, 20),
        need_interest=Interest.INTERESTED,
        need_interest_at=noon(2026, 2, 1),
        offer_interest=Interest.INTERESTED,
        offer_interest_at=noon(2026, 2, 5),
        connected_at=noon(2026, 2, 5),
    )
    MatchFactory(need=n2, offer=o1, score=0.4, created_at=noon(2026, 2, 2))
    MatchFactory(
        need=n3,
        offer=o2,
        score=0.7,
        created_at=noon(2026, 3, 20),
        strong_at=noon(2026, 4, 14),
        need_interest=Interest.INTERESTED,
        need_interest_at=noon(2026, 4, 20),
        offer_interest=Interest.DISMISSED,
        offer_interest_at=noon(2026, 4, 25),
    )
    MatchFactory(need=n1, offer=o2, score=0.75, created_at=noon(2026, 7, 2), strong_at=noon(2026, 7, 2))

    FocalPointFactory(username="fp_ken_2025", party=party("KEN"), date_joined=noon(2025, 1, 1))
    FocalPointFactory(username="fp_uga_late", party=party("UGA"), date_joined=noon(2026, 8, 1))
    FocalPointFactory(
        username="fp_fji_gone", party=party("FJI"), date_joined=noon(2025, 1, 1), is_active=False
    )
    return SimpleNamespace(n_old=n_old, n1=n1, n2=n2, n3=n3, n4=n4, n5=n5, o1=o1, o2=o2)
