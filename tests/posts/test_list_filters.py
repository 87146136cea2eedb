"""The public list's filters about who may take an offer up (`open_to`) and about who posted (regional group,
LDC, SIDS), on SQLite and PostgreSQL alike."""

import pytest
from django.urls import reverse

from apps.parties.models import Party

from ..factories import PostFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db


def listed(client, **params) -> list[str]:
    html = client.get(reverse("posts:list"), params).content.decode()
    return sorted(title for title in TITLES if f">{title}<" in html)


TITLES = ["Open to all", "For Ethiopia", "For LDCs", "For African States", "For SIDS", "An Ethiopian offer", "A need",
          "Provider, open to all", "For Kenya only"]  # fmt: skip


@pytest.fixture
def offers(db):
    ethiopia = party("ETH")
    assert ethiopia.is_ldc and ethiopia.regional_group == "African States" and not ethiopia.is_sids
    japan = party("JPN")
    PostFactory(kind="offer", party=japan, title="Open to all", eligible=[])
    PostFactory(kind="offer", party=japan, title="For Ethiopia", eligible=["ETH"])
    PostFactory(kind="offer", party=japan, title="For LDCs", eligible=["LDC"])
    PostFactory(kind="offer", party=japan, title="For African States", eligible=["African States"])
    PostFactory(kind="offer", party=japan, title="For SIDS", eligible=["SIDS"])
    PostFactory(kind="offer", party=japan, title="For Kenya only", eligible=["KEN"])
    PostFactory(kind="offer", party=ethiopia, title="An Ethiopian offer", eligible=[])  # Ethiopia's own offer
    PostFactory(kind="offer", party=None, provider=SupportProviderFactory(), title="Provider, open to all")
    PostFactory(kind="need", party=japan, title="A need")
    return ethiopia


def test_offers_open_to_a_party_follow_the_engines_eligibility_rule(client, offers):
    assert listed(client, open_to="ETH") == [
        "For African States", "For Ethiopia", "For LDCs", "Open to all", "Provider, open to all"
    ]  # fmt: skip
    # Kenya: African, neither LDC nor SIDS.
    assert listed(client, open_to="KEN") == [
        "An Ethiopian offer", "For African States", "For Kenya only", "Open to all", "Provider, open to all"
    ]  # fmt: skip
    # With the other facets: what an Ethiopian focal point looking for support would narrow it to.
    assert listed(client, open_to="ETH", kind="need") == []


def test_an_unknown_party_is_a_form_error_not_a_500(client, offers):
    response = client.get(reverse("posts:list"), {"open_to": "XXX"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_the_posters_filters_say_they_are_about_who_posted(client, offers):
    html = client.get(reverse("posts:list")).content.decode()
    for label in ("Offers open to", "Posted from the regional group", "Posted by a least developed country",
                  "Posted by a small island developing State"):  # fmt: skip
        assert label in html
    # Ethiopia posted one offer; the LDC filter is about the poster, as its label says.
    assert listed(client, ldc="true") == ["An Ethiopian offer"]
    assert Party.objects.get(iso3="JPN").is_ldc is False


def test_the_search_box_says_what_it_finds(client):
    html = client.get(reverse("posts:list")).content.decode()
    assert "Finds posts holding these words as written." in html
    assert 'aria-describedby="id_q_helptext"' in html


@pytest.mark.parametrize(
    ("kind", "heading"), [("need", "New need for Kenya"), ("offer", "New offer for Kenya")]
)
def test_the_form_names_what_is_being_posted(client, kind, heading):
    from ..factories import FocalPointFactory

    client.force_login(FocalPointFactory(party=party("KEN")))
    html = client.get(reverse("posts:create"), {"kind": kind}).content.decode()
    assert f"<h1>{heading}</h1>" in html


def test_the_api_lists_the_offers_open_to_a_party_too(offers):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/posts/", {"open_to": "eth"})
    assert response.status_code == 200
    assert sorted(p["title"] for p in response.json()["results"]) == [
        "For African States", "For Ethiopia", "For LDCs", "Open to all", "Provider, open to all"
    ]  # fmt: skip
    bad = APIClient().get("/api/v1/posts/", {"open_to": "XXX"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "open_to"
