"""The site's write paths for the roles and conditions the role matrices of test_views.py leave out: a provider's
user on its own offers and on another provider's, a deactivated user whose session is still stored, CSRF on every
write, and GET never writing."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.matching.models import Interest
from apps.posts.models import Post
from apps.stocktake.models import Snapshot
from tests.api.factories import MatchFactory
from tests.factories import PostFactory, ProviderUserFactory, offer_of

pytestmark = pytest.mark.django_db
S = Post.Status

OFFER_FORM = {
    "kind": "offer",
    "title": "Adaptation grants",
    "description": "Grants for adaptation projects of local governments.",
    "support_types": ["finance"],
    "focus_areas": ["adaptation"],
    "language": "en",
}


@pytest.fixture
def other_provider(db):
    return ProviderUserFactory(username="other_prov_user").provider


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


# --- a provider's user ------------------------------------------------------------------------------------


def test_a_provider_user_takes_its_own_offer_through_every_step(provider_user, login):
    client, provider = login(provider_user), provider_user.provider
    draft = offer_of(provider, status=S.DRAFT, title="Old")
    assert (
        client.post(reverse("posts:edit", args=[draft.pk]), {**OFFER_FORM, "title": "New"}).status_code == 302
    )
    assert client.post(reverse("posts:submit", args=[draft.pk])).status_code == 302
    draft.refresh_from_db()
    assert (draft.title, draft.status) == ("New", S.SUBMITTED)
    assert client.post(reverse("posts:recall", args=[draft.pk])).status_code == 302
    draft.refresh_from_db()
    assert draft.status == S.DRAFT
    closed, withdrawn = offer_of(provider), offer_of(provider)
    assert client.post(reverse("posts:close", args=[closed.pk]), {"outcome": "Taken up."}).status_code == 302
    assert client.post(reverse("posts:withdraw", args=[withdrawn.pk])).status_code == 302
    closed.refresh_from_db()
    withdrawn.refresh_from_db()
    assert (closed.status, withdrawn.status) == (S.CLOSED, S.WITHDRAWN)


@pytest.mark.parametrize(
    "url", ["posts:edit", "posts:submit", "posts:recall", "posts:withdraw", "posts:close"]
)
@pytest.mark.parametrize("status", [S.DRAFT, S.SUBMITTED, S.PUBLISHED])
def test_a_provider_user_cannot_touch_another_providers_offer(
    provider_user, other_provider, login, url, status
):
    post = offer_of(other_provider, status=status, title="Their offer")
    data = {**OFFER_FORM, "title": "Mine now", "outcome": "Closed by someone else."}
    response = login(provider_user).post(reverse(url, args=[post.pk]), data)
    # Not shown to them: not found; published (everyone sees it): refused.
    assert response.status_code == (403 if status == S.PUBLISHED else 404)
    post.refresh_from_db()
    assert (post.status, post.title) == (status, "Their offer")


def test_a_provider_user_answers_its_offers_matches_and_no_others(provider_user, other_provider, login):
    own = MatchFactory(offer=offer_of(provider_user.provider))
    theirs = MatchFactory(offer=offer_of(other_provider))
    client = login(provider_user)
    interested = {"interest": "interested"}
    assert client.post(reverse("matching:interest", args=[own.pk]), interested).status_code == 302
    response = client.post(reverse("matching:interest", args=[theirs.pk]), interested, HTTP_HX_REQUEST="true")
    assert response.status_code == 404
    own.refresh_from_db()
    theirs.refresh_from_db()
    assert (own.offer_interest, theirs.offer_interest) == (Interest.INTERESTED, "")


# --- a deactivated user whose session is still stored (deactivated by a script: the admin ends sessions) -------


def test_a_deactivated_user_with_a_stored_session_writes_nothing(focal_point, login):
    draft = PostFactory(status=S.DRAFT, published_at=None, title="Old")
    match = MatchFactory()
    posts = Post.objects.count()
    client = login(focal_point)
    User.objects.filter(pk=focal_point.pk).update(is_active=False)
    responses = [
        client.post(reverse("posts:create"), {**OFFER_FORM, "kind": "need"}),
        client.post(reverse("posts:edit", args=[draft.pk]), {**OFFER_FORM, "kind": "need", "title": "New"}),
        client.post(reverse("posts:submit", args=[draft.pk])),
        client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"}),
        client.post(reverse("accounts:profile"), {"first_name": "Changed"}),
    ]
    for response in responses:
        assert response.status_code == 302 and response.url.startswith(reverse("login")), response
    draft.refresh_from_db()
    match.refresh_from_db()
    assert (draft.status, draft.title, match.need_interest) == (S.DRAFT, "Old", "")
    assert Post.objects.count() == posts  # nothing created
    assert User.objects.get(pk=focal_point.pk).first_name != "Changed"


# --- CSRF and GET -------------------------------------------------------------------------------------------


def test_every_write_of_the_site_needs_the_csrf_token(focal_point, secretariat):
    draft = PostFactory(status=S.DRAFT, published_at=None)
    title = draft.title
    published = PostFactory()
    submitted = PostFactory(status=S.SUBMITTED, published_at=None, submitted_at=timezone.now())
    match = MatchFactory()
    posts = Post.objects.count()
    focal, staff = csrf_client(focal_point), csrf_client(secretariat)
    period = {"title": "Mid-year", "date_from": "2026-01-01", "date_to": "2026-06-30"}
    calls = [
        (focal, reverse("posts:create"), {**OFFER_FORM, "kind": "need"}, {}),
        (focal, reverse("posts:edit", args=[draft.pk]), {**OFFER_FORM, "kind": "need", "title": "x"}, {}),
        (focal, reverse("posts:recall", args=[submitted.pk]), {}, {}),
        (focal, reverse("posts:close", args=[published.pk]), {"outcome": "Done."}, {}),
        (focal, reverse("posts:withdraw", args=[published.pk]), {}, {}),
        (focal, reverse("matching:interest", args=[match.pk]), {"interest": "interested"}, {}),
        (
            focal,
            reverse("matching:interest", args=[match.pk]),
            {"interest": "interested"},
            {"HTTP_HX_REQUEST": "true"},
        ),
        (focal, reverse("accounts:profile"), {"first_name": "x"}, {}),
        (staff, reverse("stocktake:snapshot_create"), period, {}),
        (
            staff,
            reverse("admin:posts_post_publish", args=[submitted.pk]),
            {"seen_at": timezone.now().isoformat()},
            {},
        ),
    ]
    for client, url, data, headers in calls:
        assert client.post(url, data, **headers).status_code == 403, url
    for post in (draft, published, submitted):
        post.refresh_from_db()
    match.refresh_from_db()
    assert (draft.title, published.status, submitted.status) == (title, S.PUBLISHED, S.SUBMITTED)
    assert match.need_interest == "" and not Snapshot.objects.exists() and Post.objects.count() == posts


def test_a_get_never_writes(focal_point, secretariat, login):
    draft = PostFactory(status=S.DRAFT, published_at=None)
    published = PostFactory()
    submitted = PostFactory(status=S.SUBMITTED, published_at=None, submitted_at=timezone.now())
    match = MatchFactory()
    focal, staff = login(focal_point), login(secretariat)
    assert focal.get(reverse("posts:submit", args=[draft.pk])).status_code == 405
    assert focal.get(reverse("posts:recall", args=[submitted.pk])).status_code == 405
    assert focal.get(reverse("posts:withdraw", args=[published.pk])).status_code == 405
    assert (
        focal.get(reverse("posts:close", args=[published.pk]), {"outcome": "x"}).status_code == 200
    )  # its form
    assert (
        focal.get(reverse("matching:interest", args=[match.pk]), {"interest": "interested"}).status_code
        == 405
    )
    assert focal.get(reverse("stocktake:snapshot_create")).status_code in (403, 405)
    assert staff.get(reverse("admin:posts_post_publish", args=[submitted.pk])).status_code == 405
    shown = {"reason": "x", "seen_at": timezone.now().isoformat()}
    assert (
        staff.get(reverse("admin:posts_post_return", args=[submitted.pk]), shown).status_code == 200
    )  # its form
    for post in (draft, published, submitted):
        post.refresh_from_db()
    match.refresh_from_db()
    assert (draft.status, published.status, submitted.status) == (S.DRAFT, S.PUBLISHED, S.SUBMITTED)
    assert match.need_interest == ""


def test_a_visit_to_a_buttons_address_gets_a_page_saying_so(focal_point, login):
    """It answered a 405 without a body, which a browser shows as its own error page."""
    published = PostFactory()
    client = login(focal_point)
    response = client.get(reverse("posts:withdraw", args=[published.pk]))
    assert response.status_code == 405 and response["Allow"] == "POST"
    html = response.content.decode()
    assert "Not a page to visit" in html and reverse("posts:list") in html
    # htmx and the API keep their own answers.
    assert client.get(reverse("posts:withdraw", args=[published.pk]), HTTP_HX_REQUEST="true").content == b""
    assert "errors" in client.get(f"/api/v1/posts/{published.pk}/withdraw/").json()
    published.refresh_from_db()
    assert published.status == S.PUBLISHED
