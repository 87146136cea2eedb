"""GET /api/v1/connections/: the caller's connections with whom to write to, for every kind of caller."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.matching.models import Match
from apps.posts.models import Post

from ..factories import FocalPointFactory, PostFactory, party
from .factories import MatchFactory, issue_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections/"


def connected(**fields):
    match = MatchFactory(
        need_interest="interested", offer_interest="interested", connected_at=timezone.now(), **fields
    )
    # The posters as `match_set_interest` records them when the match connects.
    Match.objects.filter(pk=match.pk).update(
        need_party_id=match.need.party_id,
        need_provider_id=match.need.provider_id,
        offer_party_id=match.offer.party_id,
        offer_provider_id=match.offer.provider_id,
    )
    match.refresh_from_db()
    return match


@pytest.fixture
def pair(db):
    """A Kenyan need (no contact of its own) connected with a Japanese offer that gives one."""
    FocalPointFactory(username="ken_fp", party=party("KEN"), email="ken@example.org", first_name="Wanjiru",
                      last_name="Otieno")  # fmt: skip
    need = PostFactory(kind="need", party=party("KEN"), title="Flood warnings for the Tana basin")
    offer = PostFactory(kind="offer", party=party("JPN"), title="River flood forecasting", contact_name="Aiko Sato",
                        contact_email="aiko@example.jp")  # fmt: skip
    return connected(need=need, offer=offer, score=0.81234)


def test_who_may_list_connections(
    api, tokens, pair, session_api, focal_point, secretariat, committee, observer
):
    assert api().get(URL).status_code == 401
    for name in ("read", "stocktake"):
        response = api(tokens[name]).get(URL)
        assert response.status_code == 403, name
        assert "Party or support provider" in response.json()["errors"][0]["message"]
    for user in (secretariat, committee, observer):
        assert session_api(user).get(URL).status_code == 403
    for name in ("expired", "revoked"):
        assert api(tokens[name]).get(URL).status_code == 401
    assert api(tokens["ken"]).get(URL).status_code == 200
    assert session_api(focal_point).get(URL).status_code == 200
    # Another Party's token, or a provider's, is given none of Kenya's.
    assert api(tokens["bra"]).get(URL).json() == []
    assert api(tokens["provider"]).get(URL).json() == []


def test_each_side_gets_its_own_post_the_other_and_whom_to_write_to(api, tokens, pair, issuer):
    (kenya,) = api(tokens["ken"]).get(URL).json()
    assert kenya["id"] == pair.pk and kenya["side"] == "need" and kenya["score"] == 0.8123
    assert kenya["own"]["id"] == pair.need_id and kenya["own"]["party"] == "KEN"
    assert kenya["other"] == {
        "id": pair.offer_id,
        "external_id": pair.offer.export_id,
        "kind": "offer",
        "status": "published",
        "title": "River flood forecasting",
        "party": "JPN",
        "provider": None,
    }
    assert kenya["partner"] == {"party": "JPN", "provider": None, "name": "Japan"}
    assert kenya["contacts"] == [{"name": "Aiko Sato", "email": "aiko@example.jp"}]
    assert kenya["connected_at"].endswith("Z")

    _t, japan_token = issue_token(
        scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("JPN"), sees_contacts=True
    )
    (japan,) = api(japan_token).get(URL).json()
    assert japan["side"] == "offer" and japan["other"]["id"] == pair.need_id
    assert japan["contacts"] == [{"name": "Wanjiru Otieno", "email": "ken@example.org"}]


def test_a_token_without_contact_details_is_given_none(api, pair, issuer):
    _t, raw = issue_token(scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("KEN"), sees_contacts=False)
    (record,) = api(raw).get(URL).json()
    assert record["contacts"] is None
    assert record["other"]["title"] == "River flood forecasting"


@pytest.mark.parametrize(
    ("status", "title"),
    [("withdrawn", "As it is now"), ("closed", "As it is now"), ("returned", None), ("submitted", None)],
)
def test_kept_when_the_other_post_leaves_its_title_while_final(api, tokens, pair, status, title):
    Post.objects.filter(pk=pair.offer_id).update(status=status, title="As it is now")
    pair.is_active = False
    pair.save()
    (record,) = api(tokens["ken"]).get(URL).json()
    assert record["other"]["status"] == status and record["other"]["title"] == title
    assert record["contacts"] == [{"name": "Aiko Sato", "email": "aiko@example.jp"}]


def test_a_moved_post_leaves_its_connections_with_the_party_that_made_them(api, tokens, pair, issuer):
    Post.objects.filter(pk=pair.need_id).update(party=party("BRA"))
    assert api(tokens["bra"]).get(URL).json() == []
    (record,) = api(tokens["ken"]).get(URL).json()
    assert record["side"] == "need" and record["own"]["party"] == "BRA"  # the post as it is now
    assert record["own_moved"] is True
    _t, japan_token = issue_token(
        scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("JPN"), sees_contacts=True
    )
    (japan,) = api(japan_token).get(URL).json()
    assert japan["partner"] == {"party": "KEN", "provider": None, "name": "Kenya"}
    assert japan["contacts"] == [{"name": "Wanjiru Otieno", "email": "ken@example.org"}]


def test_unconnected_matches_are_not_listed_and_newest_come_first(api, tokens, pair):
    MatchFactory(need=pair.need, need_interest="interested")  # one side only
    older = connected(offer=PostFactory(kind="offer", party=party("NOR"), title="Older"))
    older.connected_at = timezone.now() - timedelta(days=2)
    older.save()
    newer = connected(offer=PostFactory(kind="offer", party=party("DEU"), title="Newer"))
    response = api(tokens["ken"]).get(URL, {"limit": 2})
    assert [r["id"] for r in response.json()] == [newer.pk, pair.pk]
    assert response["X-Total-Count"] == "3"
    assert [r["id"] for r in api(tokens["ken"]).get(URL, {"offset": 2}).json()] == [older.pk]
    bad = api(tokens["ken"]).get(URL, {"limit": 0, "offset": "x"})
    assert bad.status_code == 400
    assert [e["field"] for e in bad.json()["errors"]] == ["limit", "offset"]


def test_a_providers_token_lists_its_offers_connections(api, tokens, provider):
    offer = PostFactory(kind="offer", party=None, provider=provider, title="Blue carbon grants")
    match = connected(offer=offer)
    (record,) = api(tokens["provider"]).get(URL).json()
    assert (
        record["id"] == match.pk
        and record["side"] == "offer"
        and record["own"]["provider"] == provider.short_name
    )


def test_queries_do_not_grow_with_the_connections(api, tokens, pair, django_assert_num_queries):
    client = api(tokens["ken"])
    client.get(URL)  # the token's first use is recorded once (`last_used_at`), not at each call
    connected(offer=PostFactory(kind="offer", party=party("NOR")))  # no contact given: NOR's people
    # 1 the token, 2 the page of connections (both posts and both posters joined; a first page that is not full
    # holds the count), 3 the posts' returns by the secretariat (whether a title may be shown), 4 the holders of
    # the contact addresses given, 5 the users who speak for the other posters.
    with django_assert_num_queries(5):
        assert len(client.get(URL).json()) == 2
    for iso3 in ("DEU", "FRA", "GBR"):
        connected(offer=PostFactory(kind="offer", party=party(iso3)))
    connected(offer=PostFactory(kind="offer", party=party("SWE"), contact_email="b@se.org"))
    with django_assert_num_queries(5):
        assert len(client.get(URL).json()) == 6


def test_the_schema_describes_every_field_the_list_gives(api, tokens, pair):
    schema = api().get("/api/v1/schema/?format=json").json()
    properties = schema["components"]["schemas"]["Connection"]["properties"]
    (record,) = api(tokens["ken"]).get(URL).json()
    assert set(properties) == set(record)
    assert set(schema["components"]["schemas"]["ConnectionPartner"]["properties"]) == set(record["partner"])
