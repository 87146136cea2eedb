"""Anonymous visitors of the site's expensive public pages are rate-limited per address; logged-in users are
not, and a cache that fails lets everyone through. A logged-in user's changes are limited per user, and requests
for a password-reset email per address."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from apps.accounts import counters
from apps.matching.models import Interest
from apps.posts.models import Post
from tests.api.factories import MatchFactory
from tests.factories import FocalPointFactory, PostFactory, party

pytestmark = pytest.mark.django_db

PAGES = [reverse("posts:list"), reverse("posts:home"), reverse("stocktake:summary")]


@pytest.mark.parametrize("url", PAGES)
def test_an_anonymous_address_gets_a_429_past_its_budget(client, settings, url):
    settings.SITE_THROTTLE_ANON = "2/minute"
    assert client.get(url).status_code == 200
    assert client.get(url, {"q": "flood"}).status_code == 200
    refused = client.get(url)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 30  # one request every 30 s at 2 a minute
    html = refused.content.decode()
    assert "Too many requests" in html and "Try again in" in html
    assert f"{reverse('login')}?next=" in html  # back to this page once logged in
    # Another address has its own budget.
    assert client.get(url, REMOTE_ADDR="10.0.0.9").status_code == 200


def test_the_budget_is_shared_by_the_limited_pages_and_spares_others(client, settings):
    settings.SITE_THROTTLE_ANON = "2/minute"
    client.get(reverse("posts:list"))
    client.get(reverse("stocktake:summary"))
    assert client.get(reverse("posts:list")).status_code == 429
    assert client.get(reverse("stocktake:definitions")).status_code == 200  # cheap pages are not counted


def test_logged_in_users_are_not_limited(login, focal_point, settings):
    settings.SITE_THROTTLE_ANON = "1/minute"
    client = login(focal_point)
    assert [client.get(reverse("posts:list")).status_code for _ in range(3)] == [200, 200, 200]


def test_a_failing_cache_lets_visitors_through(client, settings, monkeypatch):
    settings.SITE_THROTTLE_ANON = "1/minute"

    def broken(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr("apps.accounts.limits.cache.get", broken)
    try:
        assert [client.get(reverse("posts:list")).status_code for _ in range(3)] == [200, 200, 200]
    finally:
        counters.forget_failures()


def test_the_429_page_is_in_the_visitors_language(client, settings):
    settings.SITE_THROTTLE_ANON = "1/minute"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    client.get(reverse("posts:list"))
    refused = client.get(reverse("posts:list"))
    assert refused.status_code == 429 and "Trop de requêtes" in refused.content.decode()


def test_a_users_changes_past_the_budget_get_a_429_and_save_nothing(login, focal_point, settings):
    settings.SITE_THROTTLE_WRITES = "3/minute"
    client = login(focal_point)
    form = {
        "kind": "need",
        "title": "Early-warning system",
        "description": "Stations and alerts for river floods.",
        "support_types": ["technology"],
        "focus_areas": ["adaptation"],
        "language": "en",
    }
    draft = PostFactory(status=Post.Status.DRAFT, published_at=None)
    match = MatchFactory()
    posts = Post.objects.count()
    # The budget is the user's, whichever of their forms or steps spends it.
    assert client.post(reverse("posts:create"), form).status_code == 302
    profile = {"first_name": "Wanjiru", "preferred_language": "en"}
    assert client.post(reverse("accounts:profile"), profile).status_code == 302
    assert client.post(reverse("posts:submit", args=[draft.pk])).status_code == 302
    refused = [
        client.post(reverse("posts:withdraw", args=[draft.pk])),
        client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"}),
    ]
    for response in refused:
        assert response.status_code == 429 and int(response["Retry-After"]) > 0
        assert "Nothing was saved by this one" in response.content.decode()
    # The post's form comes back as it was sent, saying why (nothing typed is lost).
    again = client.post(reverse("posts:create"), {**form, "title": "Typed before the limit"})
    assert again.status_code == 429 and int(again["Retry-After"]) > 0
    html = again.content.decode()
    assert "You have sent many changes in a short time: nothing was saved." in html
    assert 'value="Typed before the limit"' in html
    match.refresh_from_db()
    draft.refresh_from_db()
    assert Post.objects.count() == posts + 1 and draft.status == Post.Status.SUBMITTED
    assert match.need_interest == Interest.NONE
    focal_point.refresh_from_db()
    assert focal_point.first_name == "Wanjiru"
    # Reading is not limited; nor is another user.
    assert client.get(reverse("posts:detail", args=[draft.pk])).status_code == 200
    other = login(FocalPointFactory(username="fp_ken_2", party=party("KEN")))
    assert (
        other.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"}).status_code
        == 302
    )


def test_requests_for_a_reset_email_are_limited_per_address(client, settings, focal_point):
    settings.SITE_THROTTLE_RESET = "2/hour"
    url = reverse("accounts:password_reset")
    assert client.get(url).status_code == 200
    answers = [
        client.post(url, {"email": address})
        for address in ("a@example.org", focal_point.email, "c@example.org")
    ]
    assert [a.status_code for a in answers] == [302, 302, 429]
    assert "many password resets" in answers[2].content.decode()
    assert client.get(url).status_code == 200  # the form itself is not counted
    # Another address has its own budget.
    assert client.post(url, {"email": focal_point.email}, REMOTE_ADDR="10.0.0.9").status_code == 302
    assert len(mail.outbox) == 2 and {m.to[0] for m in mail.outbox} == {focal_point.email}


def test_an_edit_past_the_budget_keeps_the_form_and_its_opening_time(login, focal_point, settings):
    """A page of its own sent the editor back to the form fetched afresh: saving it then undid, without a word,
    a change someone made meanwhile. The form comes back as sent, still carrying the time it was opened."""
    settings.SITE_THROTTLE_WRITES = "1/minute"
    post = PostFactory(status=Post.Status.DRAFT, published_at=None, title="Old title")
    client = login(focal_point)
    page = client.get(reverse("posts:edit", args=[post.pk])).content.decode()
    opened = re.search(r'name="opened_at" value="([^"]+)"', page).group(1)
    form = {
        "kind": "need", "title": "Old title", "description": post.description, "support_types": ["technology"],
        "focus_areas": ["adaptation"], "language": "en", "opened_at": opened,
    }  # fmt: skip
    assert (
        client.post(reverse("accounts:profile"), {"preferred_language": "en"}).status_code == 302
    )  # the one change
    refused = client.post(reverse("posts:edit", args=[post.pk]), {**form, "title": "My new title"})
    assert refused.status_code == 429
    html = refused.content.decode()
    assert 'value="My new title"' in html and f'name="opened_at" value="{opened}"' in html
    post.refresh_from_db()
    assert post.title == "Old title"
