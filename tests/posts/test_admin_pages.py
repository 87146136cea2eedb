"""The post admin's edges: addresses that name no post, saving nothing, and a page that cannot be edited."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from apps.posts.models import Post
from tests.factories import PostFactory

from .test_admin import change_url, form_data, submitted

pytestmark = pytest.mark.django_db

S = Post.Status


@pytest.fixture
def staff(login, secretariat):
    return login(secretariat)


@pytest.mark.parametrize("object_id", ["abc", "1.5", "999999", "-1"])
def test_moderation_addresses_that_name_no_post_are_404(staff, object_id):
    publish = reverse("admin:posts_post_publish", args=[object_id])
    give_back = reverse("admin:posts_post_return", args=[object_id])
    assert staff.post(publish).status_code == 404
    assert staff.get(give_back).status_code == 404
    assert staff.post(give_back, {"reason": "No."}).status_code == 404


def test_saving_an_unchanged_offer_changes_nothing_even_its_eligibility(staff, secretariat):
    offer = PostFactory(
        kind=Post.Kind.OFFER, eligible=["KEN", "LDC", "African States"], support_types=["finance"]
    )
    data = form_data(staff, change_url(offer))
    assert data["eligible"] == "KEN, LDC, African States"
    response = staff.post(change_url(offer), data)
    assert response.status_code == 302
    entry = LogEntry.objects.get(object_id=str(offer.pk))
    assert entry.get_change_message() == "No fields changed."
    assert not offer.events.exists()
    # The same list typed differently is no change either; another list is.
    data["eligible"] = "ken,ldc ,  African States"
    staff.post(change_url(offer), data)
    assert not offer.events.exists()
    data["eligible"] = "KEN, SIDS"
    staff.post(change_url(offer), data)
    offer.refresh_from_db()
    assert offer.eligible == ["KEN", "SIDS"]
    latest = LogEntry.objects.filter(object_id=str(offer.pk)).order_by("-pk").first()
    assert "Eligible Parties and groups" in latest.get_change_message()


def test_a_post_that_cannot_be_edited_is_viewed_not_changed(staff):
    post = submitted("In moderation", 1)
    response = staff.get(change_url(post))
    assert response.context["title"] == "View post"
    assert "<title>In moderation | View post |" in response.content.decode()
    editable = PostFactory(status=S.DRAFT, published_at=None)
    assert staff.get(change_url(editable)).context["title"] == "Change post"


def test_a_read_only_amount_reads_as_on_the_site(staff):
    post = submitted("In moderation", 1, amount_usd=Decimal("1250000.00"))
    html = staff.get(change_url(post)).content.decode()
    assert '<div class="readonly">USD 1,250,000</div>' in html
    assert "1250000" not in html
    editable = PostFactory(status=S.DRAFT, published_at=None, amount_usd=Decimal("1250000.00"))
    assert 'name="amount_usd" value="1250000' in staff.get(change_url(editable)).content.decode()


def test_a_read_only_post_shows_its_language_aims_and_eligibility_by_name(staff):
    """Not as stored ("en", ["ambition"], ["KEN", "LDC"]): as the site says them, in the page's language."""
    post = submitted(
        "In moderation", 1, kind=Post.Kind.OFFER, language="en", aims=["ambition", "coordination"],
        eligible=["KEN", "LDC", "African States"],
    )  # fmt: skip
    html = staff.get(change_url(post)).content.decode()
    assert '<div class="readonly">English</div>' in html
    assert (
        '<div class="readonly">Promote mitigation and adaptation ambition, Enable opportunities for coordination '
        "across instruments and relevant institutional arrangements</div>" in html
    )
    assert '<div class="readonly">Kenya, Least developed countries (LDC), African States</div>' in html, html
    assert '["ambition"' not in html and '["KEN"' not in html
    staff.cookies["django_language"] = "fr"
    html = staff.get(change_url(post)).content.decode()
    assert '<div class="readonly">Anglais</div>' in html
    assert "Pays les moins avancés (PMA)" in html and "États d’Afrique" in html
    every = submitted("Open to all", 1, kind=Post.Kind.OFFER, eligible=[])
    assert '<div class="readonly">Toutes les Parties</div>' in staff.get(change_url(every)).content.decode()


def test_french_admin_titles_read_as_french(staff):
    staff.cookies["django_language"] = "fr"
    editable = PostFactory(status=S.DRAFT, published_at=None, title="Mangroves")
    assert "<h1>Modification de l’objet annonce</h1>" in staff.get(change_url(editable)).content.decode()
    in_moderation = submitted("En modération", 1)
    assert "<h1>Consultation de l’objet annonce</h1>" in staff.get(change_url(in_moderation)).content.decode()


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_lists_find_a_party_by_the_name_they_show(staff, secretariat, language):
    """The lists show Parties by their name in the page's language; searching that name finds them."""
    from apps.accounts.models import ApiToken
    from tests.api.factories import MatchFactory, issue_token
    from tests.factories import FocalPointFactory, party

    germany = party("DEU")
    post = PostFactory(party=germany, title="Heat pumps for schools")
    match = MatchFactory(need=PostFactory(kind=Post.Kind.NEED, title="Cooling"), offer=post)
    token, _raw = issue_token(
        scope=ApiToken.Scope.WRITE, issuer=secretariat, party=germany, name="Bonn portal"
    )
    user = FocalPointFactory(username="fp_deu", party=germany)
    name = {"en": "Germany", "fr": "Allemagne"}[language]
    staff.cookies["django_language"] = language
    for changelist, expected in (
        ("admin:posts_post_changelist", post),
        ("admin:matching_match_changelist", match),
        ("admin:accounts_apitoken_changelist", token),
        ("admin:accounts_user_changelist", user),
    ):
        response = staff.get(reverse(changelist), {"q": name})
        assert list(response.context["cl"].result_list) == [expected], changelist


def test_the_post_list_gives_days_and_the_time_on_hover(staff):
    """A date and a time took two wide columns: at 1280 px the list scrolled sideways, "Published at" out of
    sight. The days sort as the times do."""
    from django.utils import timezone

    older = submitted("Older", 9)
    submitted("Newer", 2)
    html = staff.get(reverse("admin:posts_post_changelist"), {"queue": "submitted"}).content.decode()
    day = timezone.localtime(older.submitted_at)
    assert (
        f'<time datetime="{day.isoformat()}" title="{day:%Y-%m-%d %H:%M} UTC">{day:%Y-%m-%d}</time>' in html
    )
    assert 'class="field-published_on">—</td>' in html  # not published
    assert "submitted at" not in html.lower().split('id="result_list"')[1].split("</thead>")[0]
    # Sorting by the column sorts by the time, newest first when reversed.
    columns = staff.get(reverse("admin:posts_post_changelist")).context["cl"].list_display
    index = list(columns).index("submitted_on")
    response = staff.get(reverse("admin:posts_post_changelist"), {"o": f"-{index}"})
    titles = [p.title for p in response.context["cl"].result_list if p.submitted_at]
    assert titles == ["Newer", "Older"]


def test_the_admins_search_box_is_named_in_the_pages_language(staff):
    staff.cookies["django_language"] = "fr"
    html = staff.get(reverse("admin:posts_post_changelist")).content.decode()
    assert 'alt="Rechercher"' in html and 'alt="Search"' not in html
