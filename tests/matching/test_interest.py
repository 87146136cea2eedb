"""Answering matches: interest, dismissal, connections with emails, the daily digest, for every role."""

import re
from datetime import timedelta

import numpy as np
import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from apps.accounts.actors import Actor
from apps.matching.models import Match
from apps.matching.selectors import MatchSummary, match_awaiting_count
from apps.matching.services import MatchAnswerError, digest_collect, digest_send_all, match_set_interest
from apps.posts.models import Post

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
        # Strong before the digest's settling time (services.DIGEST_SETTLE), so a digest sent now lists it.
        strong_at=timezone.now() - timedelta(minutes=10),
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


def test_a_chinese_email_and_panel_put_no_space_after_a_full_width_colon(
    match, kenya, japan, django_capture_on_commit_callbacks, login
):
    """Chinese writes 得分：80%: the label's full-width colon is its own space (it read 得分： 80%)."""
    kenya.preferred_language = "zh-hans"
    kenya.save()
    with django_capture_on_commit_callbacks(execute=True):
        match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
        match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    chinese = next(m for m in mail.outbox if m.to == ["ken@example.org"]).body
    english = next(m for m in mail.outbox if m.to == ["jpn@example.org"]).body
    assert re.search(r"得分：\d", chinese) and "： " not in chinese, chinese
    # And where the other post gives no contact.
    from django.template.loader import render_to_string

    with translation.override("zh-hans"):
        body = render_to_string(
            "matching/email/connection.txt",
            {
                "own": match.need,
                "other": {"post": match.offer, "contacts": []},
                "match": match,
                "site_url": "",
            },
        )
    assert "联系人：" in body and "： " not in body, body
    assert re.search(r"Score: \d", english)
    client = login(kenya)
    client.cookies["django_language"] = "zh-hans"
    match.explanation = {**match.explanation, "related_terms": ["alerts"], "terms_language": "en"}
    match.save()
    panel = client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "共同的支持类型：" in panel and "相关词语：<span" in panel and "： " not in panel
    assert "匹配<span" in panel  # the heading's count: no space before its full-width bracket
    from apps.matching.admin import MatchAdmin

    with translation.override("zh-hans"):
        shown = MatchAdmin(Match, None).explanation_shown(match)
    assert "共同的支持类型：" in shown and "： " not in shown


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
    # Matches are shown to their two sides and the secretariat only: to anyone else the match is not found (a
    # 403 would tell that it exists); the secretariat, who sees it, is refused.
    assert response.status_code == (403 if user.username == "sec" else 404)
    match.refresh_from_db()
    assert (match.need_interest, match.offer_interest) == ("", "")


def test_anonymous_is_sent_to_login(match, client):
    response = client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_interest_through_the_page_and_htmx(match, kenya, login):
    client = login(kenya)
    response = client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    assert response.status_code == 302
    # Back to the item answered, where its new state shows.
    assert response["Location"].endswith(reverse("posts:detail", args=[match.need_id]) + f"#match-{match.pk}")
    match.refresh_from_db()
    assert match.need_interest == "interested"
    response = client.post(
        reverse("matching:interest", args=[match.pk]), {"interest": "dismissed"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert f'id="match-{match.pk}"' in response.content.decode()
    match.refresh_from_db()
    assert match.need_interest == "dismissed"


def test_an_htmx_answer_updates_the_panels_counts_in_place(match, kenya, login):
    other = Match.objects.create(
        need=match.need, offer=PostFactory(kind="offer", party=party("FRA")), score=0.7
    )
    Match.objects.filter(pk__in=[match.pk, other.pk]).update(offer_interest="interested")
    client = login(kenya)
    page = reverse("posts:detail", args=[match.need_id])
    assert "2 matches await your answer" in client.get(page).content.decode()
    response = client.post(reverse("matching:interest", args=[match.pk]), {"interest": "dismissed"},
                           HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{page}?matches=awaiting")  # fmt: skip
    html = response.content.decode()
    # The item, then the heading and the line, out of band, as they are now (and for the filter the page shows).
    assert html.index(f'id="match-{match.pk}"') < html.index(
        '<h2 id="matches-heading" data-hx-swap-oob="true">'
    )
    assert 'Matches awaiting your answer<span class="muted"> (1 of 2)</span>' in html
    assert '<div id="match-filters" data-hx-swap-oob="true">' in html and "1 match awaits your answer" in html
    response = client.post(reverse("matching:interest", args=[other.pk]), {"interest": "interested"},
                           HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{page}")  # fmt: skip
    html = response.content.decode()
    assert "await your answer" not in html and 'Matches<span class="muted"> (2)</span>' in html


def test_answering_the_last_awaiting_match_keeps_the_filter_the_page_shows(match, kenya, secretariat, login):
    Match.objects.filter(pk=match.pk).update(offer_interest="interested")
    page = reverse("posts:detail", args=[match.need_id])
    response = login(kenya).post(reverse("matching:interest", args=[match.pk]), {"interest": "dismissed"},
                                 HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{page}?matches=awaiting")  # fmt: skip
    html = response.content.decode()
    # The list still shows the filter's items: the heading says so, and the way back to all of them stays.
    assert 'Matches awaiting your answer<span class="muted"> (0 of 1)</span>' in html
    assert "Show all matches" in html and "await your answer:" not in html
    # Opened afresh, the empty filter lists every match; the secretariat (which answers for neither side) is
    # never shown "your answer".
    Match.objects.filter(pk=match.pk).update(need_interest="", offer_interest="interested")
    staff_page = login(secretariat).get(page, {"matches": "awaiting"}).content.decode()
    assert "awaiting your answer" not in staff_page and 'Matches<span class="muted"> (1)</span>' in staff_page


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
    # The words are marked with their language, and laid out in its direction.
    assert (
        'Related words, through similar posts in English: <span lang="en" dir="auto">glacial, lake</span>'
        in body
    )
    assert f'Words in common: <span lang="{match.need.language}" dir="auto">flood</span>' in body
    # The wording share of two texts in two languages compares one with posts like the other, not their words.
    assert "(similar wording via similar posts " in body and not re.search(r"\(similar wording \d", body)
    # French writes a language's name in lower case within a sentence.
    client = login(kenya)
    client.cookies["django_language"] = "fr"
    french = client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "(français et anglais)" in french and "semblables en anglais\u00a0:" in french
    # So does Spanish, with no space before the colon.
    client.cookies["django_language"] = "es"
    spanish = client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "(uno en francés y otro en inglés)" in spanish and "similares en inglés: <span" in spanish


def test_the_panel_lists_shared_terms_in_taxonomy_order_and_words_as_the_need_writes_them(
    match, kenya, secretariat, login
):
    """The terms were comma-separated, in the order of their keys ("Adaptación, resiliencia y sostenibilidad,
    Medidas de mitigación..." read as three areas), and the words folded ("indigenas", "formacion", "ndc")."""
    match.need.title = "Alerta temprana con los pueblos indígenas del Guaviare"
    match.need.description = "Formación de guardias indígenas y planes de manejo para la NDC."
    match.need.language = "es"
    match.need.save()
    match.explanation = {
        "shared_support_types": ["technology", "finance"],
        "shared_focus_areas": ["mitigation", "adaptation"],
        "top_terms": ["indigenas", "formacion", "ndc", "planes", "sequias"],
        "cross_lingual": False,
    }
    match.save()
    client = login(kenya)
    english = client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "Shared types of support: Finance; Technology development and transfer" in english
    client.cookies["django_language"] = "es"
    html = client.get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert "Tipos de apoyo en común: Financiación; Desarrollo y transferencia de tecnología" in html
    assert (
        "Ámbitos prioritarios en común: Adaptación, resiliencia y sostenibilidad; Medidas de mitigación"
        in html
    )
    # A word the text does not hold stays as the explanation stores it.
    assert (
        'Palabras en común: <span lang="es" dir="auto">indígenas, formación, NDC, planes, sequias</span>'
        in html
    )
    admin = login(secretariat)
    admin.cookies["django_language"] = "es"
    page = admin.get(reverse("admin:matching_match_change", args=[match.pk])).content.decode()
    assert "Palabras en común: indígenas, formación, NDC, planes, sequias" in page
    assert "River flood forecasting (80\u00a0%)" in page  # the title: "(80%)" before


def test_the_panel_shows_russian_stems_as_the_need_writes_the_words(match, kenya, login):
    """The word model stores a Russian word's stem ("засух"): the panel shows the need's own word."""
    match.need.title = "Адаптация сельского хозяйства к засухе"
    match.need.description = "Капельное орошение для фермеров и засухоустойчивые семена."
    match.need.language = "ru"
    match.need.save()
    match.explanation = {"top_terms": ["засух", "орошен", "фермер"], "cross_lingual": False}
    match.save()
    html = login(kenya).get(reverse("posts:detail", args=[match.need_id])).content.decode()
    assert 'Words in common: <span lang="ru" dir="auto">засухе, орошение, фермеров</span>' in html


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


def test_answering_a_match_just_found_leaves_it_neither_new_nor_updated(kenya, login):
    """A pair is stamped as changed when it is found: answering it made it "Updated", though nothing changed."""
    need = PostFactory(party=party("KEN"), kind="need")
    offer = PostFactory(party=party("JPN"), kind="offer")
    now = timezone.now()
    found = Match.objects.create(need=need, offer=offer, score=0.7, changed_at=now)
    # Inserted just after the run's time, as the worker does.
    Match.objects.filter(pk=found.pk).update(created_at=now + timedelta(milliseconds=2))
    client = login(kenya)
    page = reverse("posts:detail", args=[need.pk])
    assert "badge-new" in client.get(page).content.decode()
    client.post(reverse("matching:interest", args=[found.pk]), {"interest": "interested"})
    body = client.get(page).content.decode()
    assert "badge-new" not in body and "badge-updated" not in body
    Match.objects.filter(pk=found.pk).update(changed_at=now + timedelta(minutes=5))  # re-ranked since
    assert "badge-updated" in client.get(page).content.decode()


def test_answering_a_match_that_closed_meanwhile_says_so(match, kenya, login):
    client = login(kenya)
    Match.objects.filter(pk=match.pk).update(is_active=False)
    response = client.post(
        reverse("matching:interest", args=[match.pk]), {"interest": "interested"}, follow=True
    )
    assert response.status_code == 200
    assert (
        "This match is no longer open: one of its posts was withdrawn, closed or returned for changes, or a new ranking left it out."
        in response.content.decode()
    )
    # With htmx the clicked item says it in place (a redirect to the same page would only change its hash), and
    # loses its buttons and its link to a post that may be gone.
    htmx = client.post(
        reverse("matching:interest", args=[match.pk]), {"interest": "interested"}, HTTP_HX_REQUEST="true"
    )
    assert htmx.status_code == 200
    item = htmx.content.decode()
    assert item.lstrip().startswith(f'<li class="match" id="match-{match.pk}" tabindex="-1">')
    assert (
        'role="alert">This match is no longer open: one of its posts was withdrawn, closed or returned for changes, or a new ranking left it out.'
        in item
    )
    assert "<form" not in item and reverse("posts:detail", args=[match.offer_id]) not in item
    assert match.offer.title not in item and match.offer.description[:40] not in item
    match.refresh_from_db()
    assert match.need_interest == ""


def test_answering_a_match_whose_other_post_was_taken_back_shows_nothing_of_its_new_text(match, kenya, login):
    """Taken back by the secretariat, the offer is unpublished and its Party may rewrite it: the answer to a click
    on the match showed its current title and explanation, while its page answered "not found"."""
    Post.objects.filter(pk=match.offer_id).update(status="returned", title="A private revision")
    for active in (True, False):  # retired with it, or left active (data from before the rule)
        Match.objects.filter(pk=match.pk).update(is_active=active)
        item = (
            login(kenya)
            .post(
                reverse("matching:interest", args=[match.pk]),
                {"interest": "interested"},
                HTTP_HX_REQUEST="true",
            )
            .content.decode()
        )
        assert 'role="alert">' in item and "A match that is no longer listed" in item
        assert "A private revision" not in item and "Japan" not in item and "<form" not in item
    match.refresh_from_db()
    assert match.need_interest == ""


@pytest.mark.parametrize("how", ["withdrawn", "closed"])
def test_a_match_with_a_post_that_left_the_list_cannot_become_a_connection(
    how, match, kenya, japan, login, django_capture_on_commit_callbacks
):
    # The other side withdraws (or closes) its post; before any worker runs, its matches are already closed.
    from apps.posts.services import post_close, post_withdraw

    Match.objects.filter(pk=match.pk).update(need_interest="interested")
    with django_capture_on_commit_callbacks(execute=True):
        if how == "withdrawn":
            post_withdraw(actor=Actor.for_user(japan), post=match.offer)
        else:
            post_close(actor=Actor.for_user(japan), post=match.offer, outcome="Met elsewhere.")
    match.refresh_from_db()
    assert match.is_active is False
    assert (
        "River flood forecasting"
        not in login(kenya).get(reverse("posts:detail", args=[match.need_id])).content.decode()
    )
    # Even a match left active (data from before this rule) cannot be answered once a post has left the list.
    Match.objects.filter(pk=match.pk).update(is_active=True)
    with pytest.raises(MatchAnswerError):
        match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    match.refresh_from_db()
    assert match.connected_at is None and match.offer_interest == ""
    assert mail.outbox == []


def test_an_htmx_answer_swaps_the_item_even_when_it_is_no_longer_on_the_first_page(match, kenya, login):
    # Twenty better matches push this one to the panel's second page: the answer still comes back as its item,
    # in its new state, with the connection message when it is one.
    for i in range(20):
        Match.objects.create(
            need=match.need, offer=PostFactory(kind="offer", party=party("FRA")), score=0.9 + i / 1000
        )
    response = login(kenya).post(
        reverse("matching:interest", args=[match.pk]), {"interest": "interested"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    item = response.content.decode()
    assert f'id="match-{match.pk}"' in item and "You expressed interest." in item
    assert "we have emailed you" not in item
    match.refresh_from_db()
    assert match.need_interest == "interested"


# --- What the dashboard says of matches ----------------------------------------------------------------------


def test_the_dashboard_summarises_each_published_posts_matches(match, kenya, japan, login):
    need = match.need
    old = Match.objects.create(need=need, offer=PostFactory(kind="offer", party=party("FRA")), score=0.7)
    Match.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    waiting = Match.objects.create(
        need=need, offer=PostFactory(kind="offer", party=party("DEU")), score=0.6, offer_interest="interested"
    )
    Match.objects.create(
        need=need, offer=PostFactory(kind="offer", party=party("USA")), score=0.5, is_active=False,
        offer_interest="interested",
    )  # fmt: skip
    connected = Match.objects.create(
        need=need, offer=PostFactory(kind="offer", party=party("CAN")), score=0.4,
        need_interest="interested", offer_interest="interested", connected_at=timezone.now(),
    )  # fmt: skip
    quiet = PostFactory(kind="need", party=party("KEN"), title="A need nobody answered yet")

    response = login(kenya).get(reverse("dashboard"))
    html = response.content.decode()
    (published,) = [s for s in response.context["sections"] if s["status"] == "published"]
    summaries = {p.pk: p.match_summary for p in published["page"].object_list}
    # Active matches only: four (the inactive one is not counted); found this week and not yet answered by Kenya,
    # two (the connection is answered: no longer news); the other side interested and Kenya silent in one; one
    # connection.
    assert summaries[need.pk] == MatchSummary(total=4, new=2, awaiting=1, connected=1)
    assert summaries[quiet.pk] == MatchSummary()
    assert "1 match awaits your answer" in html
    assert reverse("posts:detail", args=[need.pk]) + "#matches" in html
    assert (
        "4 matches" in html and "1 awaits your answer" in html and "2 new" in html and "1 connected" in html
    )
    assert "None yet" in html

    # The offer side counts from its own point of view: Japan has not answered, Kenya has not either.
    html = login(japan).get(reverse("dashboard")).content.decode()
    assert "awaits your answer" not in html and "1 match" in html
    Match.objects.filter(pk=match.pk).update(need_interest="interested")
    html = login(japan).get(reverse("dashboard")).content.decode()
    assert "1 match awaits your answer" in html
    # Once answered, dismissing included, it no longer waits.
    match_set_interest(
        actor=Actor.for_user(japan), match=Match.objects.get(pk=match.pk), interest="dismissed"
    )
    assert "awaits your answer" not in login(japan).get(reverse("dashboard")).content.decode()
    assert waiting.pk and connected.pk


def test_the_dashboard_counts_only_the_actors_own_posts(match, login):
    brazil = FocalPointFactory(username="bra1", party=party("BRA"))
    Match.objects.filter(pk=match.pk).update(offer_interest="interested")
    response = login(brazil).get(reverse("dashboard"))
    html = response.content.decode()
    assert "awaits your answer" not in html and "Flood warnings" not in html
    assert response.context["awaiting_count"] == 0


def test_the_dashboard_ignores_matches_of_posts_no_longer_published(match, kenya, login):
    Match.objects.filter(pk=match.pk).update(offer_interest="interested")
    assert login(kenya).get(reverse("dashboard")).context["awaiting_count"] == 1
    Post.objects.filter(pk=match.need_id).update(status="closed")
    response = login(kenya).get(reverse("dashboard"))
    assert response.context["awaiting_count"] == 0
    assert "awaits your answer" not in response.content.decode()


def test_the_awaiting_count_counts_both_sides_of_the_actors_posts(match, kenya, japan):
    # Kenya's need waits on Kenya; a second match, on Kenya's offer, waits on Kenya too; Japan's side waits on
    # nobody (it answered), and a third match, inactive, is not counted.
    Match.objects.filter(pk=match.pk).update(offer_interest="interested")
    offer = PostFactory(kind="offer", party=party("KEN"), title="Drought-tolerant seeds")
    need = PostFactory(kind="need", party=party("JPN"), title="Seeds for the islands")
    Match.objects.create(need=need, offer=offer, score=0.7, need_interest="interested")
    other = PostFactory(kind="offer", party=party("JPN"), title="Old offer")
    Match.objects.create(
        need=match.need, offer=other, score=0.6, offer_interest="interested", is_active=False
    )
    assert match_awaiting_count(actor=Actor.for_user(kenya)) == 2
    assert match_awaiting_count(actor=Actor.for_user(japan)) == 0


def test_the_awaiting_count_can_start_from_the_actors_posts_on_postgresql(kenya):
    # The dashboard's count must be able to read the matches of the actor's own posts through the match indexes
    # that start with the post (need_id, offer_id), rather than every answered match of the table: with the two
    # sides OR-ed in one WHERE it could not, and at 100k posts and 1M matches it read them all (160 ms of a
    # 210 ms dashboard, tests/benchmarks/ui_pages.py). Which plan PostgreSQL picks depends on the sizes (on a
    # test's few rows, a scan of the answered matches is cheapest), so the other ways are switched off here:
    # what is pinned is that this way exists.
    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    # A platform in use, in small: every post has 20 matches, one in twenty answered on each side; Kenya has
    # two needs and two offers among a hundred of each.
    now = timezone.now()
    posts = Post.objects.bulk_create(
        Post(kind=kind, status="published", party=party("KEN" if i < 4 else "JPN"), title=f"Post {i}",
             description="Text.", published_at=now)
        for i, kind in enumerate(["need", "offer"] * 100)
    )  # fmt: skip
    needs, offers = posts[0::2], posts[1::2]
    Match.objects.bulk_create(
        Match(need=need, offer=offers[(i + j * 5) % 100], score=0.5,
              need_interest="interested" if (i + j) % 20 == 0 else "",
              offer_interest="interested" if (i + j) % 20 == 1 else "")
        for i, need in enumerate(needs) for j in range(20)
    )  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        match_awaiting_count(actor=Actor.for_user(kenya))
    (query,) = queries.captured_queries
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE matching_match")
        for method in ("seqscan", "bitmapscan", "hashjoin", "mergejoin"):
            cursor.execute(f"SET LOCAL enable_{method} = off")
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Cond: (need_id = " in plan and "Index Cond: ((offer_id = " in plan, plan


def test_the_panel_says_when_the_other_side_is_interested(match, kenya, japan, login):
    url = reverse("posts:detail", args=[match.need_id])
    assert "Awaiting your answer" not in login(kenya).get(url).content.decode()
    Match.objects.filter(pk=match.pk).update(offer_interest="interested")
    body = login(kenya).get(url).content.decode()
    assert "Awaiting your answer" in body
    assert "They are interested: express interest too" in body
    # The side that expressed interest is not told it awaits itself; nor is the secretariat, which answers for
    # neither side.
    offer_page = login(japan).get(reverse("posts:detail", args=[match.offer_id])).content.decode()
    assert "Awaiting your answer" not in offer_page and "You expressed interest." in offer_page
    secretariat = login(SecretariatFactory(username="sec-await")).get(url).content.decode()
    assert "Awaiting your answer" not in secretariat


# --- Answers in every state ----------------------------------------------------------------------------------


def test_the_connection_message_only_for_the_answer_that_made_it(
    match, kenya, japan, login, django_capture_on_commit_callbacks
):
    login(kenya).post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    client = login(japan)
    url = reverse("matching:interest", args=[match.pk])
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post(url, {"interest": "interested"}, follow=True).content.decode()
    assert "we have emailed you each other&#x27;s contacts" in made
    assert len(mail.outbox) == 2
    # Answering the same again sends nothing and says nothing of emails.
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(url, {"interest": "interested"}, follow=True).content.decode()
    assert "we have emailed you" not in again
    assert len(mail.outbox) == 2


def test_a_connection_cannot_be_dismissed(match, kenya, japan, login):
    match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
    match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    with pytest.raises(MatchAnswerError):
        match_set_interest(actor=Actor.for_user(kenya), match=match, interest="dismissed")
    body = (
        login(kenya)
        .post(reverse("matching:interest", args=[match.pk]), {"interest": "dismissed"}, follow=True)
        .content.decode()
    )
    assert "This match is already a connection" in body
    match.refresh_from_db()
    assert (match.need_interest, match.offer_interest) == ("interested", "interested")
    assert match.connected_at is not None


def test_an_htmx_answer_after_the_session_ended_goes_to_the_login_page(match, client):
    page = reverse("posts:detail", args=[match.need_id])
    response = client.post(
        reverse("matching:interest", args=[match.pk]),
        {"interest": "dismissed"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver{page}",
    )
    # A full-page navigation, not the login page swapped into the item.
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("login") + "?next=" + page.replace("/", "%2F")
    match.refresh_from_db()
    assert match.need_interest == ""


# --- More matches than a page --------------------------------------------------------------------------------


def test_the_panel_pages_through_every_match_and_filters_those_awaiting_an_answer(match, kenya, login):
    # The engine keeps a post's top 20 and the posts that have it in theirs: here 25 in all.
    for i in range(24):
        Match.objects.create(
            need=match.need, offer=PostFactory(kind="offer", party=party("FRA"), title=f"Offer {i:02d}"),
            score=0.9 - i / 100,
        )  # fmt: skip
    Match.objects.filter(pk=match.pk).update(offer_interest="interested")  # score 0.8: rank 12
    client = login(kenya)
    url = reverse("posts:detail", args=[match.need_id])
    first = client.get(url)
    html = first.content.decode()
    assert 'Matches<span class="muted"> (25)</span>' in html
    assert len(first.context["matches"]) == 20 and "Page 1 of 2" in html
    assert "matches_page=2#matches" in html
    second = client.get(url, {"matches_page": 2})
    assert len(second.context["matches"]) == 5
    assert second.context["page"].start_index() == 21
    assert 'start="21"' in second.content.decode()
    listed = [m.pk for m in first.context["matches"]] + [m.pk for m in second.context["matches"]]
    assert len(set(listed)) == 25
    # The match the other side answered is one click away from the dashboard and from the panel.
    assert "1 match awaits your answer" in html and "matches=awaiting#matches" in html
    only = client.get(url, {"matches": "awaiting"})
    assert [m.pk for m in only.context["matches"]] == [match.pk]
    assert "Show all matches" in only.content.decode()
    # The heading says what is listed, of how many.
    assert 'Matches awaiting your answer<span class="muted"> (1 of 25)</span>' in only.content.decode()
    # Connections have their list too, which the connection email links to.
    other = Match.objects.exclude(pk=match.pk).order_by("score").first()  # rank 25: on page 2
    Match.objects.filter(pk=other.pk).update(connected_at=timezone.now(), need_interest="interested",
                                             offer_interest="interested")  # fmt: skip
    html = client.get(url).content.decode()
    assert "matches=connected#matches" in html and "Show the connection" in html
    connections = client.get(url, {"matches": "connected"})
    assert [m.pk for m in connections.context["matches"]] == [other.pk]
    assert f'id="match-{other.pk}"' in connections.content.decode()
    assert 'Connections<span class="muted"> (1 of 25)</span>' in connections.content.decode()
    # An odd page number or filter never breaks the page.
    for params in ({"matches_page": "x"}, {"matches_page": 99}, {"matches": "nonsense"}):
        assert client.get(url, params).status_code == 200


# --- Closest passages ----------------------------------------------------------------------------------------


def _store_sentences(post, vectors):
    from apps.matching.models import PostEmbedding
    from apps.matching.sentences import post_sentences_key

    PostEmbedding.objects.update_or_create(
        post=post,
        defaults={
            "text_hash": "x",
            "vector": b"",
            "sentences_hash": post_sentences_key(post),
            "sentences": np.asarray(vectors, dtype=np.float16).tobytes(),
        },
    )


def _unit(*hot):
    v = np.zeros(512, dtype=np.float32)
    for i in hot:
        v[i] = 1.0
    return v / np.linalg.norm(v)


def test_the_panel_shows_the_closest_passages_from_the_stored_sentence_vectors(match, kenya, login):
    need, offer = match.need, match.offer
    need.description = "Gauges on the river. Alerts reach the villages by radio."
    need.save()
    offer.description = "We train forecasters. Our radio alerts reach remote villages."
    offer.save()
    # Title, then each sentence: the need's second sentence and the offer's second sentence agree most.
    _store_sentences(need, [_unit(0), _unit(1), _unit(2)])
    _store_sentences(offer, [_unit(0), _unit(3), _unit(2, 4)])
    url = reverse("posts:detail", args=[need.pk])
    body = login(kenya).get(url).content.decode()
    # Each passage isolated in the direction of its own text, and marked with its language.
    assert (
        'Closest passages: “<bdi lang="en">Alerts reach the villages by radio.</bdi>” ↔ '
        '“<bdi lang="en">Our radio alerts reach remote villages.</bdi>”' in body
    )
    # Edited since the vectors were stored: no passage rather than the wrong one.
    offer.description = "Something else entirely. Nothing about radios."
    offer.save()
    assert "Closest passages" not in login(kenya).get(url).content.decode()


def test_closest_passages_leave_the_titles_out_unless_a_post_has_no_sentences():
    from types import SimpleNamespace

    from apps.matching.sentences import closest_passages

    need = SimpleNamespace(title="Flood warnings", description="Gauges on the river. Radio alerts.")
    offer = SimpleNamespace(title="Flood warnings too", description="Training forecasters. Alerts by radio.")
    pair = closest_passages(need, np.stack([_unit(0), _unit(1), _unit(2)]), offer,
                            np.stack([_unit(0), _unit(5), _unit(2)]))  # fmt: skip
    assert pair == {"need": "Radio alerts.", "offer": "Alerts by radio.", "similarity": 1.0}
    bare = SimpleNamespace(title="Flood warnings too", description="")
    assert (
        closest_passages(need, np.stack([_unit(0), _unit(1), _unit(2)]), bare, np.stack([_unit(0)]))["offer"]
        == "Flood warnings too"
    )
    # Vectors of another text (a different number of sentences): nothing rather than a wrong pair.
    assert closest_passages(need, np.stack([_unit(0)]), offer, np.stack([_unit(0)])) is None


# --- Emails --------------------------------------------------------------------------------------------------


def _connected_with_kenya_reading(language, match, kenya, japan, login, capture):
    """Kenya, reading `language`, answers first; Japan answers last with its pages in English: the two
    connection emails (to Kenya, to Japan)."""
    kenya.preferred_language = language
    kenya.save()
    match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
    client = login(japan)
    with translation.override("en"), capture(execute=True):
        client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    to_kenya = next(m for m in mail.outbox if m.to == ["ken@example.org"])
    return to_kenya, next(m for m in mail.outbox if m.to == ["jpn@example.org"])


def test_connection_emails_are_in_each_recipients_language(
    match, kenya, japan, login, django_capture_on_commit_callbacks
):
    # Japan answers last, with its pages in English: Kenya's email is still in French.
    to_kenya, to_japan = _connected_with_kenya_reading(
        "fr", match, kenya, japan, login, django_capture_on_commit_callbacks
    )
    assert to_kenya.subject.startswith("Nouvelle mise en relation")
    # French writes a percentage with a no-break space before the sign.
    assert "Voir la correspondance" in to_kenya.body and "80\u00a0%" in to_kenya.body
    assert "See the match" not in to_kenya.body
    assert to_japan.subject.startswith("New connection")
    assert "Score: 80%" in to_japan.body
    # The link lists the connections, wherever this one ranks among the post's matches.
    link = reverse("posts:detail", args=[match.offer_id]) + f"?matches=connected#match-{match.pk}"
    assert link in to_japan.body


def test_a_connection_email_is_in_spanish_for_a_focal_point_who_reads_spanish(
    match, kenya, japan, login, django_capture_on_commit_callbacks
):
    to_kenya, _to_japan = _connected_with_kenya_reading(
        "es", match, kenya, japan, login, django_capture_on_commit_callbacks
    )
    assert to_kenya.subject == f"Nueva puesta en contacto: {match.offer.title}"
    assert "Buenas noticias: ambas partes han manifestado interés" in to_kenya.body
    assert "Ver la coincidencia:" in to_kenya.body and "Puntuación: 80\u00a0%" in to_kenya.body
    assert "See the match" not in to_kenya.body and "Voir" not in to_kenya.body
    assert next(m for m in mail.outbox if m.to == ["jpn@example.org"]).subject.startswith("New connection")


def test_the_digest_is_in_spanish_for_a_focal_point_who_reads_spanish(match, kenya, japan, settings):
    settings.MATCHING_STRONG_SCORE = 0.6
    japan.digest_opt_in = False
    japan.save()
    kenya.preferred_language = "es"
    kenya.save()
    assert digest_send_all() == 1
    assert mail.outbox[0].subject == "1 nueva coincidencia sólida en la Plataforma de los ENM"


def test_the_digest_is_in_the_users_language_counts_right_and_skips_answered_matches(
    match, kenya, japan, settings
):
    settings.MATCHING_STRONG_SCORE = 0.6
    japan.digest_opt_in = False
    japan.save()
    assert digest_send_all() == 1
    assert mail.outbox[0].subject == "1 new strong match on the NMA Platform"
    assert reverse("posts:detail", args=[match.need_id]) + f"#match-{match.pk}" in mail.outbox[0].body
    kenya.preferred_language = "fr"
    kenya.digest_sent_through = None  # forget the first digest: the same match again, in French
    kenya.save()
    mail.outbox.clear()
    assert digest_send_all() == 1
    assert mail.outbox[0].subject == "1 nouvelle correspondance forte sur la plateforme des ANM"
    # Once Kenya answered (interest or dismissal), the match is not news to it any more.
    match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
    assert digest_collect(user=kenya, since=timezone.now() - timedelta(days=1)) == []


# --- The secretariat's admin of matches ---------------------------------------------------------------------


def test_the_match_admin_lists_posters_rounded_scores_and_filters_connections(match, login, secretariat):
    other = Match.objects.create(
        need=PostFactory(kind="need", party=party("BRA"), title="Amazon fire monitoring"),
        offer=match.offer,
        score=0.41075785050239044,
        need_interest="interested",
        offer_interest="interested",
        connected_at=timezone.now(),
    )
    client = login(secretariat)
    url = reverse("admin:matching_match_changelist")
    html = client.get(url).content.decode()
    assert "Kenya" in html and "Japan" in html and "Brazil" in html
    assert "41%" in html and "0.41" not in html  # a percentage, as focal points see it
    connected = client.get(url, {"connected": "yes"}).context["cl"].result_list
    assert [m.pk for m in connected] == [other.pk]
    assert [m.pk for m in client.get(url, {"connected": "no"}).context["cl"].result_list] == [match.pk]
    by_party = client.get(url, {"q": "Brazil"}).context["cl"].result_list
    assert [m.pk for m in by_party] == [other.pk]
    assert [m.pk for m in client.get(url, {"q": "KEN"}).context["cl"].result_list] == [match.pk]
    assert client.get(reverse("admin:matching_match_change", args=[other.pk])).status_code == 200
    # Sorting by the offer's poster puts a provider's offer by its name among the Parties'.
    fund = SupportProviderFactory(short_name="ZFUND", name="Zambezi Basin Fund")
    Match.objects.create(
        need=match.need, offer=PostFactory(kind="offer", party=None, provider=fund), score=0.5
    )
    posters = [m.offer.poster_name for m in client.get(url, {"o": "3"}).context["cl"].result_list]
    assert posters == sorted(posters) and posters[-1] == "Zambezi Basin Fund"
    # Nobody else: a focal point, a Committee member, and staff of another role (a stray is_staff flag).
    for user in (
        FocalPointFactory(username="ken-admin", party=party("KEN")),
        CommitteeFactory(username="com-admin"),
        CommitteeFactory(username="com-staff", is_staff=True),
    ):
        assert login(user).get(url).status_code in (302, 403)


def test_a_matchs_admin_page_reads_as_words_and_links(match, secretariat, login, settings):
    match.lexical, match.semantic, match.structured, match.alignment = 0.31, 0.72, 0.5, 0.66
    match.explanation = {"shared_support_types": ["technology"], "top_terms": ["flood", "gauges"],
                         "cross_lingual": True, "need_language": "en", "offer_language": "ja",
                         "related_terms": ["river"], "terms_language": "en"}  # fmt: skip
    match.save()
    client = login(secretariat)
    html = client.get(reverse("admin:matching_match_change", args=[match.pk])).content.decode()
    assert "Flood warnings for the Tana basin ↔ River flood forecasting (80%)" in html  # was "12 ↔ 47 (0.80)"
    assert reverse("admin:posts_post_change", args=[match.need_id]) in html
    assert reverse("admin:posts_post_change", args=[match.offer_id]) in html
    for text in (
        "similar wording: 31%",
        "similar meaning: 72%",
        "parts of the need answered: 66%",
        "Shared types of support: Technology development and transfer",
        "Words in common: flood, gauges",
        "Related words, through similar posts in English: river",
        "Languages: English ↔ Japanese",
    ):
        assert text in html, text
    assert "shared_support_types" not in html and "0.31" not in html  # no raw keys, no raw floats
    client.cookies["django_language"] = "fr"
    french = client.get(reverse("admin:matching_match_change", args=[match.pk])).content.decode()
    assert "formulation proche\u00a0: 31\u00a0%" in french  # was "formulation proche: 31 %"
    # Language names within a sentence in lower case, as French and Spanish write them ("en Anglais" before).
    assert "anglais ↔ japonais" in french and "Anglais" not in french
    client.cookies["django_language"] = "es"
    spanish = client.get(reverse("admin:matching_match_change", args=[match.pk])).content.decode()
    assert "inglés ↔ japonés" in spanish and "Inglés" not in spanish
    # Strong matches (those the digest announces) have a filter of their own.
    weak = Match.objects.create(
        need=match.need, offer=PostFactory(kind="offer", party=party("BRA")), score=0.3
    )
    url = reverse("admin:matching_match_changelist")
    assert [m.pk for m in client.get(url, {"strong": "yes"}).context["cl"].result_list] == [match.pk]
    assert [m.pk for m in client.get(url, {"strong": "no"}).context["cl"].result_list] == [weak.pk]


def test_rebuild_runs_say_whether_they_finished_failed_stalled_or_are_going(secretariat, login):
    from apps.matching.models import RebuildRun

    now = timezone.now()
    runs = {
        "finished": RebuildRun.objects.create(
            model_version=1, total_chunks=2, done_chunks=2, finished_at=now
        ),
        "failed": RebuildRun.objects.create(
            model_version=1, total_chunks=2, done_chunks=2, finished_at=now, failed=True
        ),
        "going": RebuildRun.objects.create(model_version=1, total_chunks=2, done_chunks=1, progress_at=now),
        "stalled": RebuildRun.objects.create(
            model_version=1, total_chunks=2, done_chunks=1, progress_at=now - timedelta(hours=2)
        ),
    }
    client = login(secretariat)
    for status, run in runs.items():
        page = client.get(reverse("admin:matching_rebuildrun_change", args=[run.pk])).content.decode()
        assert re.search(rf'<div class="readonly">{status}[ <(]', page), status
    assert [r.pk for r in client.get(reverse("admin:matching_rebuildrun_changelist"), {"failed__exact": "1"})
            .context["cl"].result_list] == [runs["failed"].pk]  # fmt: skip


def test_an_interest_can_be_taken_back_until_it_is_a_connection(match, kenya, japan, login):
    client = login(kenya)
    url = reverse("posts:detail", args=[match.need_id])
    client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    assert "Dismiss after all" in client.get(url).content.decode()
    client.post(reverse("matching:interest", args=[match.pk]), {"interest": "dismissed"})
    match.refresh_from_db()
    assert match.need_interest == "dismissed" and match.connected_at is None
    # Once both sides are interested there is nothing to take back: no button, and the service refuses.
    match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
    match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    assert "Dismiss after all" not in client.get(url).content.decode()


def test_the_same_answer_again_keeps_the_time_it_was_first_given(match, kenya):
    """A second click or a client's retry re-stamped the answer: the stocktake then counted the interest in a
    later period, and a need could become a gap after the fact."""
    first = match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
    given_at = first.need_interest_at
    Match.objects.filter(pk=match.pk).update(need_interest_at=given_at - timedelta(days=40))
    again = match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
    assert again.need_interest_at == given_at - timedelta(days=40)
    match.refresh_from_db()
    assert match.need_interest_at == given_at - timedelta(days=40)
    # A changed answer is a new answer, with its own time.
    changed = match_set_interest(actor=Actor.for_user(kenya), match=match, interest="dismissed")
    assert changed.need_interest == "dismissed" and changed.need_interest_at > given_at - timedelta(minutes=1)


# --- Connection emails that cannot go at once ----------------------------------------------------------------


class RefusingBackend:
    """An email backend whose mail server is down."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError(111, "Connection refused")


def test_a_connection_made_while_the_mail_server_is_down_is_emailed_by_the_sweep(
    match, kenya, japan, login, settings, django_capture_on_commit_callbacks
):
    from apps.matching.services import connection_notice_sweep

    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
    with django_capture_on_commit_callbacks(execute=True):
        response = login(japan).post(
            reverse("matching:interest", args=[match.pk]), {"interest": "interested"}, follow=True
        )
    # The focal point's request succeeds and the connection is made; its emails are owed.
    assert response.status_code == 200
    match.refresh_from_db()
    assert match.connected_at is not None and match.connection_notified_at is None
    # The sweep leaves a fresh connection to its task, then sends (once) when the server is back.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert connection_notice_sweep() == 0
    Match.objects.filter(pk=match.pk).update(connected_at=timezone.now() - timedelta(minutes=5))
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    assert connection_notice_sweep() == 0  # still down: logged, left for the next sweep
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert connection_notice_sweep() == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["jpn@example.org", "ken@example.org"]
    assert connection_notice_sweep() == 0 and len(mail.outbox) == 2
    match.refresh_from_db()
    assert match.connection_notified_at is not None


def test_a_title_with_line_breaks_cannot_break_the_connection_email(match, kenya, japan):
    from apps.matching.services import connection_notice_send

    Post.objects.filter(pk=match.offer_id).update(title="River flood\nforecasting\r\nfor basins")
    Match.objects.filter(pk=match.pk).update(
        need_interest="interested", offer_interest="interested", connected_at=timezone.now()
    )
    assert connection_notice_send(match_id=match.pk) == 2
    to_kenya = next(m for m in mail.outbox if m.to == ["ken@example.org"])
    assert to_kenya.subject == "New connection: River flood forecasting for basins"


def test_the_connection_email_says_when_the_other_side_gave_no_contact(match, kenya, japan):
    from apps.matching.services import connection_notice_send

    Post.objects.filter(pk=match.offer_id).update(contact_email="", contact_name="")
    japan.email = ""
    japan.save()
    Match.objects.filter(pk=match.pk).update(
        need_interest="interested", offer_interest="interested", connected_at=timezone.now()
    )
    connection_notice_send(match_id=match.pk)
    (to_kenya,) = mail.outbox  # Japan has no address to send to
    assert "none given on the post: the secretariat can put you in touch." in to_kenya.body
    assert to_kenya.reply_to == [] and "Reply-To" not in to_kenya.message()
    assert "<>" not in to_kenya.body


def test_connections_made_before_the_notice_field_are_not_emailed_again(match):
    # Migration 0013 marks every connection it finds as notified; the sweep then has nothing to send.
    from importlib import import_module

    from django.apps import apps as django_apps

    from apps.matching.services import connection_notice_sweep

    Match.objects.filter(pk=match.pk).update(connected_at=timezone.now() - timedelta(days=3))
    migration = import_module("apps.matching.migrations.0013_match_connection_notified_at")
    migration.connections_so_far_were_emailed(django_apps, None)
    assert connection_notice_sweep() == 0 and mail.outbox == []


# --- Where an answer leads ---------------------------------------------------------------------------------


def test_an_answer_without_javascript_returns_to_the_same_page_of_matches(match, kenya, login):
    page = reverse("posts:detail", args=[match.need_id])
    response = login(kenya).post(
        reverse("matching:interest", args=[match.pk]),
        {"interest": "dismissed"},
        HTTP_REFERER=f"http://testserver{page}?matches_page=2&matches=awaiting",
    )
    assert response["Location"] == f"{page}?matches_page=2&matches=awaiting#match-{match.pk}"
    # From anywhere else (or another site), to the post's list.
    response = login(kenya).post(
        reverse("matching:interest", args=[match.pk]),
        {"interest": "dismissed"},
        HTTP_REFERER="https://elsewhere.example/posts/1/?matches_page=2",
    )
    assert response["Location"] == f"{page}#match-{match.pk}"


def test_an_answer_after_the_session_ended_logs_in_back_to_the_page(match, client):
    page = reverse("posts:detail", args=[match.need_id])
    response = client.post(
        reverse("matching:interest", args=[match.pk]),
        {"interest": "interested"},
        HTTP_REFERER=f"http://testserver{page}",
    )
    # Not `next=/matches/<id>/interest/`, which only takes a POST (a 405 after logging in).
    assert response.status_code == 302
    assert response["Location"] == reverse("login") + "?next=" + page.replace("/", "%2F")


@pytest.fixture
def provider_match(db):
    fund = SupportProviderFactory(short_name="AF")
    need = PostFactory(kind="need", party=party("KEN"), title="Flood warnings for the Tana basin")
    offer = PostFactory(kind="offer", party=None, provider=fund, title="Adaptation grants")
    match = Match.objects.create(need=need, offer=offer, score=0.8, explanation={"top_terms": ["flood"]},
                                 strong_at=timezone.now() - timedelta(minutes=10))  # fmt: skip
    return match


def test_a_party_cannot_express_interest_in_a_deactivated_providers_offer(
    provider_match, kenya, login, django_capture_on_commit_callbacks
):
    """Its users and tokens can no longer answer: the interest would wait for ever, and with an answer the
    provider gave before, a connection would email the Party's contacts to an organisation the secretariat
    stopped. The Party is told why, may still dismiss, and its digest leaves the match out."""
    provider_user = ProviderUserFactory(username="af1", provider=provider_match.offer.provider)
    match_set_interest(actor=Actor.for_user(provider_user), match=provider_match, interest="interested")
    fund = provider_match.offer.provider
    fund.is_active = False
    fund.save()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(MatchAnswerError, match="AF was deactivated"),
    ):
        match_set_interest(actor=Actor.for_user(kenya), match=provider_match, interest="interested")
    provider_match.refresh_from_db()
    assert provider_match.connected_at is None and mail.outbox == []
    client = login(kenya)
    page = client.get(reverse("posts:detail", args=[provider_match.need_id])).content.decode()
    item = page.split(f'id="match-{provider_match.pk}"')[1].split("</form>")[0]
    assert "AF was deactivated by the secretariat: it can no longer answer matches." in item
    assert 'value="interested"' not in item and 'value="dismissed"' in item
    match_set_interest(actor=Actor.for_user(kenya), match=provider_match, interest="dismissed")
    provider_match.refresh_from_db()
    assert provider_match.need_interest == "dismissed"
    provider_match.need_interest = ""
    provider_match.save()
    assert digest_collect(user=kenya, since=timezone.now() - timedelta(days=1)) == []
    fund.is_active = True
    fund.save()
    assert [m.pk for m in digest_collect(user=kenya, since=timezone.now() - timedelta(days=1))] == [
        provider_match.pk
    ]


def test_the_sweep_sends_no_connection_email_for_a_match_taken_off_the_list(match, kenya, japan, settings):
    """A connection whose emails were owed (the mail server was down) and whose post was then taken back: no
    "good news" about a match nobody is shown; owed again when it comes back."""
    from apps.matching.services import connection_notice_sweep

    match.need_interest = match.offer_interest = "interested"
    match.connected_at = timezone.now() - timedelta(minutes=10)
    match.is_active = False
    match.save()
    Post.objects.filter(pk=match.need_id).update(status=Post.Status.RETURNED)
    assert connection_notice_sweep() == 0 and mail.outbox == []
    Post.objects.filter(pk=match.need_id).update(status=Post.Status.PUBLISHED)
    Match.objects.filter(pk=match.pk).update(is_active=True)
    assert connection_notice_sweep() == 1 and len(mail.outbox) == 2


def test_the_connection_email_gives_one_address_per_person(
    match, kenya, japan, django_capture_on_commit_callbacks
):
    """Two focal points and no contact on the post gave "A, B <a@x, b@y>", which no mail client reads; a
    project mailbox without a name was put under the focal points' names."""
    FocalPointFactory(username="ken2", party=party("KEN"), email="k2@example.org", first_name="Otieno",
                      last_name="Odhiambo")  # fmt: skip
    kenya.first_name, kenya.last_name = "Wanjiru", "Kamau"
    kenya.save()
    with django_capture_on_commit_callbacks(execute=True):
        match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
        match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    to_japan = next(m for m in mail.outbox if m.to == ["jpn@example.org"])
    assert (
        "Contact:\n  Wanjiru Kamau <ken@example.org>\n  Otieno Odhiambo <k2@example.org>\n" in to_japan.body
    )
    # A reply reaches the other side, not the platform's own address.
    assert to_japan.reply_to == ["Wanjiru Kamau <ken@example.org>", "Otieno Odhiambo <k2@example.org>"]
    assert (
        to_japan.message()["Reply-To"] == "Wanjiru Kamau <ken@example.org>, Otieno Odhiambo <k2@example.org>"
    )
    mail.outbox.clear()
    Post.objects.filter(pk=match.need_id).update(contact_name="", contact_email="tana-project@example.go.ke")
    from apps.accounts.models import SentEmail
    from apps.matching.notifications import connection_notify

    assert connection_notify(Match.objects.select_related("need", "offer").get(pk=match.pk)) == 0  # sent once
    SentEmail.objects.all().delete()  # as if it were another connection
    connection_notify(Match.objects.select_related("need", "offer").get(pk=match.pk))
    to_japan = next(m for m in mail.outbox if m.to == ["jpn@example.org"])
    assert "Contact:\n  tana-project@example.go.ke\n" in to_japan.body and "Wanjiru" not in to_japan.body


def test_the_answers_a_client_must_send_are_named_as_sent_in_french(match, kenya):
    """« intéressé » told an API client to send a word the API refuses."""
    from apps.matching.services import InvalidInterest

    with translation.override("fr"), pytest.raises(InvalidInterest) as refused:
        match_set_interest(actor=Actor.for_user(kenya), match=match, interest="x")
    assert str(refused.value) == "Choisissez «\u00a0interested\u00a0» ou «\u00a0dismissed\u00a0»."


class RefusingOnceBackend:
    """A mail server that refuses one address the first time only (a 451), and takes the rest."""

    refused: set[str] = set()

    def __init__(self, *args, **kwargs):
        from django.core.mail.backends.locmem import EmailBackend

        self.inner = EmailBackend(*args, **kwargs)

    def send_messages(self, messages):
        from smtplib import SMTPException

        for message in messages:
            for address in message.to:
                if address == "k2@example.org" and address not in self.refused:
                    self.refused.add(address)
                    raise SMTPException("451 try again later")
        return self.inner.send_messages(messages)


def test_one_recipients_failure_sends_nobody_anything_twice(match, kenya, japan, settings):
    """The retry of a connection's (or a decision's) emails after one recipient's failure sent the others theirs
    again: each email is recorded as it goes."""
    from apps.matching.services import connection_notice_send
    from apps.posts.notifications import moderation_notify
    from apps.posts.services import post_return

    FocalPointFactory(username="ken2", party=party("KEN"), email="k2@example.org")
    match.need_interest = match.offer_interest = "interested"
    match.connected_at = timezone.now()
    match.save()
    RefusingOnceBackend.refused = set()
    settings.EMAIL_BACKEND = f"{__name__}.RefusingOnceBackend"
    with pytest.raises(Exception, match="451"):
        connection_notice_send(match_id=match.pk)
    assert Match.objects.get(pk=match.pk).connection_notified_at is None
    connection_notice_send(match_id=match.pk)
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == ["jpn@example.org", "k2@example.org", "ken@example.org"]  # each once
    assert Match.objects.get(pk=match.pk).connection_notified_at is not None
    assert connection_notice_send(match_id=match.pk) == 0 and len(mail.outbox) == 3
    # A decision of the secretariat: the same.
    mail.outbox.clear()
    RefusingOnceBackend.refused = set()
    post_return(
        actor=Actor.for_user(SecretariatFactory(username="sec1")), post=match.need, reason="Outdated."
    )
    mail.outbox.clear()
    RefusingOnceBackend.refused = set()
    with pytest.raises(Exception, match="451"):
        moderation_notify(post_id=match.need_id, event="returned")
    moderation_notify(post_id=match.need_id, event="returned")
    moderation_notify(post_id=match.need_id, event="returned")
    assert sorted(m.to[0] for m in mail.outbox) == ["k2@example.org", "ken@example.org"]


def test_the_connection_link_says_when_the_connection_ended(match, kenya, japan, login):
    """Kenya closed its need: Japan's link from the connection email opened its whole list of matches, with no
    word that the connection had ended."""
    from apps.posts.services import post_close

    Match.objects.filter(pk=match.pk).update(
        need_interest="interested", offer_interest="interested", connected_at=timezone.now()
    )
    client = login(japan)
    url = reverse("posts:detail", args=[match.offer_id])
    assert "has ended" not in client.get(url, {"matches": "connected"}).content.decode()
    post_close(actor=Actor.for_user(kenya), post=Post.objects.get(pk=match.need_id), outcome="Met elsewhere.")
    html = client.get(url, {"matches": "connected"}).content.decode()
    assert "This post's connection has ended: the other post is no longer published" in html
    assert "has ended" not in client.get(url).content.decode()  # only where the connections were asked for


def test_a_contact_name_with_a_comma_stays_one_reply_to_address(
    match, kenya, japan, django_capture_on_commit_callbacks
):
    """Unquoted, "Ministry of Environment, Climate Directorate <a@x>" read as two addresses, the first invalid."""
    from email.utils import getaddresses

    Post.objects.filter(pk=match.need_id).update(
        contact_name="Ministère de l'Environnement, Direction du climat", contact_email="climat@example.go.ke"
    )
    with django_capture_on_commit_callbacks(execute=True):
        match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
        match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    to_japan = next(m for m in mail.outbox if m.to == ["jpn@example.org"])
    header = to_japan.message()["Reply-To"]
    assert [address for _name, address in getaddresses([header])] == ["climat@example.go.ke"]


def test_the_connection_email_gives_the_focal_points_when_the_contact_has_left(
    match, kenya, japan, django_capture_on_commit_callbacks
):
    """Japan's offer gives the address of a focal point who left (deactivated): the email gave that address
    to write to, and set it as Reply-To, while Japan's current focal point heard nothing of the reply."""
    FocalPointFactory(username="jpn_left", party=party("JPN"), email="JP@example.org", is_active=False)
    Post.objects.filter(pk=match.offer_id).update(contact_name="Kenji Left")
    with django_capture_on_commit_callbacks(execute=True):
        match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
        match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    to_kenya = next(m for m in mail.outbox if m.to == ["ken@example.org"])
    assert "jp@example.org" not in to_kenya.body.lower() and "Kenji Left" not in to_kenya.body
    assert "jpn@example.org" in to_kenya.body
    assert [address.split("<")[-1].rstrip(">") for address in to_kenya.reply_to] == ["jpn@example.org"]
    # The address stands when someone active holds it (the person came back, or a shared mailbox).
    mail.outbox.clear()
    FocalPointFactory(username="jpn_back", party=party("JPN"), email="jp@example.org")
    need = PostFactory(kind="need", party=party("KEN"), title="Flash flood alerts for Nairobi")
    again = Match.objects.create(
        need=need, offer=match.offer, score=0.8, explanation={"top_terms": ["flood"]}
    )
    with django_capture_on_commit_callbacks(execute=True):
        match_set_interest(actor=Actor.for_user(kenya), match=again, interest="interested")
        match_set_interest(actor=Actor.for_user(japan), match=again, interest="interested")
    to_kenya = next(m for m in mail.outbox if m.to == ["ken@example.org"])
    assert to_kenya.reply_to == ["Kenji Left <jp@example.org>"]


def test_no_ended_note_for_a_connection_retired_while_the_other_post_is_still_published(match, japan, login):
    # Retired by a move or a change of kind (the other post still published): the note would say it is not.
    Match.objects.filter(pk=match.pk).update(
        need_interest="interested", offer_interest="interested", connected_at=timezone.now(), is_active=False
    )
    html = login(japan).get(reverse("posts:detail", args=[match.offer_id]), {"matches": "connected"})
    assert "has ended" not in html.content.decode()


def test_a_match_is_news_until_its_side_answers_it_and_a_heading_for_screen_readers(match, kenya, login):
    client = login(kenya)
    url = reverse("posts:detail", args=[match.need_id])
    html = client.get(url).content.decode()
    item = html[html.index(f'id="match-{match.pk}"') :]
    assert (
        '<h3 class="match-title">' in item[:600]
    )  # each match a heading: a screen reader jumps between them
    assert 'class="badge badge-new"' in item[:1200]
    client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"})
    html = client.get(url).content.decode()
    item = html[html.index(f'id="match-{match.pk}"') :]
    assert 'class="badge badge-new"' not in item[:1200]
