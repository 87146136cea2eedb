"""Answering matches: interest, dismissal, connections with emails, the daily digest, for every role."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.matching.models import Match
from apps.matching.services import digest_collect, digest_send_all, match_set_interest

from ..factories import (
    CommitteeFactory,
    FocalPointFactory,
    PostFactory,
    ProviderUserFactory,
    SecretariatFactory,
    SupportProviderFactory,
    UserFactory,
    party,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def match(db):
    need = PostFactory(kind="need", party=party("KEN"), title="Flood warnings for the Tana basin")
    offer = PostFactory(
        kind="offer", party=party("JPN"), title="River flood forecasting", contact_email="jp@example.org"
    )
    return Match.objects.create(
        need=need,
        offer=offer,
        score=0.8,
        explanation={"shared_support_types": ["technology"], "top_terms": ["flood"], "cross_lingual": False},
        strong_at=timezone.now(),
    )


@pytest.fixture
def kenya(db):
    return FocalPointFactory(username="ken1", party=party("KEN"), email="ken@example.org")


@pytest.fixture
def japan(db):
    return FocalPointFactory(username="jpn1", party=party("JPN"), email="jpn@example.org")


def test_both_sides_interested_makes_a_connection_and_emails_both(
    match, kenya, japan, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        match = match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    assert match.connected_at is not None
    assert sorted(m.to[0] for m in mail.outbox) == ["jpn@example.org", "ken@example.org"]
    to_kenya = next(m for m in mail.outbox if m.to == ["ken@example.org"])
    assert "jp@example.org" in to_kenya.body  # the other side's contact
    assert "River flood forecasting" in to_kenya.body


def test_dismissing_never_connects(match, kenya, japan):
    match_set_interest(actor=Actor.for_user(kenya), match=match, interest="dismissed")
    match = match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    assert match.connected_at is None
    assert (match.need_interest, match.offer_interest) == ("dismissed", "interested")


@pytest.mark.parametrize(
    "make_user",
    [
        lambda: FocalPointFactory(username="bra", party=party("BRA")),
        lambda: ProviderUserFactory(username="prov"),
        lambda: SecretariatFactory(username="sec"),
        lambda: CommitteeFactory(username="com"),
        lambda: UserFactory(username="obs"),
    ],
    ids=["other-party", "provider", "secretariat", "committee", "observer"],
)
def test_only_the_two_sides_may_answer(match, make_user, login):
    user = make_user()
    response = login(user).post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    assert response.status_code == 403
    match.refresh_from_db()
    assert (match.need_interest, match.offer_interest) == ("", "")


def test_anonymous_is_sent_to_login(match, client):
    response = client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_interest_through_the_page_and_htmx(match, kenya, login):
    client = login(kenya)
    response = client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    assert response.status_code == 302
    assert response["Location"].endswith(reverse("posts:detail", args=[match.need_id]) + "#matches")
    match.refresh_from_db()
    assert match.need_interest == "interested"
    response = client.post(
        reverse("matching:interest", args=[match.pk]), {"interest": "dismissed"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert f'id="match-{match.pk}"' in response.content.decode()
    match.refresh_from_db()
    assert match.need_interest == "dismissed"


def test_a_bad_answer_is_a_message_not_an_error(match, kenya, login):
    response = login(kenya).post(
        reverse("matching:interest", args=[match.pk]), {"interest": "maybe"}, follow=True
    )
    assert response.status_code == 200
    match.refresh_from_db()
    assert match.need_interest == ""


def test_a_provider_answers_for_its_offers(db):
    provider = SupportProviderFactory(short_name="GCF")
    user = ProviderUserFactory(username="gcf", provider=provider)
    offer = PostFactory(kind="offer", party=None, provider=provider)
    need = PostFactory(kind="need", party=party("KEN"))
    match = Match.objects.create(need=need, offer=offer, score=0.7)
    match = match_set_interest(actor=Actor.for_user(user), match=match, interest="interested")
    assert match.offer_interest == "interested"


def test_digest_lists_new_strong_matches_and_respects_opt_out(match, kenya, japan, settings):
    settings.MATCHING_STRONG_SCORE = 0.6
    weak = Match.objects.create(
        need=match.need, offer=PostFactory(kind="offer", party=party("FRA")), score=0.3, strong_at=None
    )
    old = Match.objects.create(
        need=match.need,
        offer=PostFactory(kind="offer", party=party("DEU")),
        score=0.9,
        strong_at=timezone.now() - timedelta(days=3),
    )
    found = digest_collect(user=kenya, since=timezone.now() - timedelta(days=1))
    assert [m.pk for m in found] == [match.pk]
    assert weak.pk not in [m.pk for m in found] and old.pk not in [m.pk for m in found]
    japan.digest_opt_in = False
    japan.save()
    assert digest_send_all() == 1
    assert mail.outbox[0].to == ["ken@example.org"]
    assert "Flood warnings for the Tana basin" in mail.outbox[0].body


def test_match_panel_on_the_owners_post_page(match, kenya, login):
    response = login(kenya).get(reverse("posts:detail", args=[match.need_id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "River flood forecasting" in body
    assert reverse("matching:interest", args=[match.pk]) in body


def test_the_panel_explains_with_labels_and_languages(match, kenya, login):
    match.explanation = {
        "shared_support_types": ["capacity_building"],
        "shared_focus_areas": ["clean_energy"],
        "top_terms": ["flood"],
        "cross_lingual": True,
        "need_language": "fr",
        "offer_language": "en",
        "related_terms": ["glacial", "lake"],
        "terms_language": "en",
    }
    match.save()
    body = login(kenya).get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "Capacity-building" in body and "capacity_building" not in body
    assert "Development of clean energy sources" in body
    assert "French" in body and "English" in body
    assert "Related words, through similar posts in English: glacial, lake" in body


def test_the_secretariat_sees_the_other_side_of_each_match(match, login):
    # The secretariat speaks for neither side: the panel still lists, on the need's page, the offers.
    body = login(SecretariatFactory(username="sec-panel")).get(reverse("posts:detail", args=[match.need_id]))
    html = body.content.decode()
    panel = html[html.index('id="match-') :]
    assert "River flood forecasting" in panel
    assert reverse("posts:detail", args=[match.offer_id]) in panel
    assert reverse("matching:interest", args=[match.pk]) not in html  # no buttons for the secretariat


def test_the_panel_shows_the_sentence_alignment_when_there_is_one(match, kenya, login):
    client = login(kenya)
    assert (
        "parts of the need answered"
        not in client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    )
    match.alignment = 0.62
    match.save()
    body = client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "parts of the need answered 62%" in body


def test_updated_badge_only_for_a_material_change(match, kenya, login):
    client = login(kenya)
    Match.objects.filter(pk=match.pk).update(created_at=timezone.now() - timedelta(days=30))
    body = client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "badge-updated" not in body and "badge-new" not in body
    Match.objects.filter(pk=match.pk).update(changed_at=timezone.now() - timedelta(days=1))
    body = client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "badge-updated" in body


def test_answering_a_match_that_closed_meanwhile_says_so(match, kenya, login):
    client = login(kenya)
    Match.objects.filter(pk=match.pk).update(is_active=False)
    response = client.post(
        reverse("matching:interest", args=[match.pk]), {"interest": "interested"}, follow=True
    )
    assert response.status_code == 200
    assert "This match is no longer open." in response.content.decode()
    htmx = client.post(
        reverse("matching:interest", args=[match.pk]), {"interest": "interested"}, HTTP_HX_REQUEST="true"
    )
    assert htmx.status_code == 204
    assert htmx["HX-Redirect"] == reverse("posts:detail", args=[match.need_id]) + "#matches"
    match.refresh_from_db()
    assert match.need_interest == ""


def test_an_htmx_answer_to_a_match_no_longer_listed_navigates_instead_of_swapping(
    match, kenya, login, settings
):
    # Twenty better matches push this one out of the panel: htmx must load the page, not swap it into the item.
    for i in range(20):
        Match.objects.create(
            need=match.need, offer=PostFactory(kind="offer", party=party("FRA")), score=0.9 + i / 1000
        )
    response = login(kenya).post(
        reverse("matching:interest", args=[match.pk]), {"interest": "interested"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204 and response["HX-Redirect"].endswith("#matches")
    match.refresh_from_db()
    assert match.need_interest == "interested"
