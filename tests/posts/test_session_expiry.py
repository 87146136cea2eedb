"""A poster whose session ends while filling a post's form or before clicking one of its actions; pages that the
browser must not take from its cache."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from apps.posts.models import Post
from tests.factories import PostFactory, party

from .test_views import form_data

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # the factories' password


def expire(client) -> None:
    """End the client's session as the idle timeout does: its row stays (until `clearsessions`), expired, and
    the browser still sends its cookie."""
    Session.objects.filter(session_key=client.session.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )


def log_in_again(client, user, next_url: str):
    return client.post(
        reverse("login") + "?next=" + quote(next_url),
        {"username": user.username, "password": PASSWORD, "next": next_url},
        follow=True,
    )


def test_a_new_post_typed_while_the_session_ended_is_back_in_the_form_after_logging_in(focal_point, client):
    client.force_login(focal_point)
    expire(client)
    typed = form_data(title="Flood early warning for the Tana", description="Sirens, " * 300)
    response = client.post(reverse("posts:create"), typed)
    assert response.status_code == 302
    assert response.url == reverse("login") + "?next=" + quote(reverse("posts:create"))
    assert not Post.objects.exists()
    assert "nothing was saved" in " ".join(str(m) for m in get_messages(response.wsgi_request))
    page = log_in_again(client, focal_point, reverse("posts:create"))
    form = page.context["form"]
    assert form.is_bound and form["title"].value() == "Flood early warning for the Tana"
    assert form["description"].value() == typed["description"]
    assert "What you typed before your session ended is back" in page.content.decode()
    # Saved from there, it is the post typed; the kept copy is used once.
    client.post(reverse("posts:create"), form.data)
    assert Post.objects.get().title == "Flood early warning for the Tana"
    assert client.get(reverse("posts:create")).context["form"].is_bound is False


def test_an_edit_typed_while_the_session_ended_comes_back_to_that_posts_form_only(focal_point, client):
    post = PostFactory(party=party("KEN"), title="Old title")
    client.force_login(focal_point)
    opened = client.get(reverse("posts:edit", args=[post.pk])).context["form"].initial["opened_at"]
    expire(client)
    data = {**form_data(title="New title"), "opened_at": opened.isoformat()}
    client.post(reverse("posts:edit", args=[post.pk]), data)
    client.force_login(focal_point)
    # Another form does not take it...
    assert client.get(reverse("posts:create")).context["form"].is_bound is False
    # ...the post's own does, and saving it saves the edit.
    form = client.get(reverse("posts:edit", args=[post.pk])).context["form"]
    assert form["title"].value() == "New title"
    client.post(reverse("posts:edit", args=[post.pk]), form.data)
    post.refresh_from_db()
    assert post.title == "New title"


def test_nothing_is_kept_for_a_browser_without_a_logged_in_session_or_beyond_a_forms_size(
    focal_point, client
):
    client.post(reverse("posts:create"), form_data())  # never logged in: no session cookie
    assert "posts:form-kept" not in client.session
    # A made-up session cookie (anyone may send one, and a CSRF token from the login page): nothing is written.
    client.cookies[settings.SESSION_COOKIE_NAME] = "madeup0123456789madeup0123456789"
    rows = Session.objects.count()
    response = client.post(reverse("posts:create"), form_data(title="Planted contact"))
    assert "posts:form-kept" not in client.session and Session.objects.count() <= rows + 1
    assert "Log in again, then fill in the form." in " ".join(
        str(m) for m in get_messages(response.wsgi_request)
    )
    client.force_login(focal_point)
    expire(client)
    client.post(reverse("posts:create"), form_data(description="x" * 250_000))
    assert "posts:form-kept" not in client.session


def test_what_one_user_typed_never_fills_another_users_form(focal_point, other_focal_point, client):
    """Kept for the browser only, Kenya's typed post filled the form of Brazil's focal point, who logged in next
    on the same computer."""
    client.force_login(focal_point)
    expire(client)
    client.post(reverse("posts:create"), form_data(title="Kenya's unsaved draft"))
    page = log_in_again(client, other_focal_point, reverse("posts:create"))
    assert page.context["form"].is_bound is False
    assert "Kenya's unsaved draft" not in page.content.decode()
    # Dropped, not kept for later: Kenya logging in afterwards does not get it either.
    client.force_login(focal_point)
    assert client.get(reverse("posts:create")).context["form"].is_bound is False


@pytest.mark.parametrize("action", ["submit", "withdraw", "close"])
def test_an_action_clicked_after_the_session_ended_leads_back_to_the_post(action, focal_point, client):
    """The login page sent the poster on to the POST-only URL, which a browser requests with GET: a bare 405."""
    post = PostFactory(party=party("KEN"), status="draft" if action == "submit" else "published")
    client.force_login(focal_point)
    expire(client)
    response = client.post(reverse(f"posts:{action}", args=[post.pk]), {"outcome": "Done."})
    detail = reverse("posts:detail", args=[post.pk])
    assert response.url == f"{settings.LOGIN_URL and reverse('login')}?next={quote(detail)}"
    login_page = client.get(response.url)  # the browser follows to the login page, which shows the warning
    assert "so nothing was done" in login_page.content.decode()
    page = log_in_again(client, focal_point, detail)
    assert page.status_code == 200 and page.request["PATH_INFO"] == detail
    # The post's page says it again (the login page's message is used up by then), once.
    assert "What you clicked before your session ended was not done" in page.content.decode()
    assert "was not done" not in client.get(detail).content.decode()
    post.refresh_from_db()
    assert post.status == ("draft" if action == "submit" else "published")


def test_pages_with_answerable_matches_are_never_taken_from_the_browsers_cache(focal_point, login, client):
    """Back after answering a match showed the page from the browser's cache, the match unanswered."""
    post = PostFactory(party=party("KEN"))
    own = login(focal_point)
    for url in (reverse("posts:detail", args=[post.pk]), reverse("dashboard")):
        assert "no-store" in own.get(url)["Cache-Control"]
    # The public page of a post (no contacts, no matches) may be cached.
    assert "no-store" not in client.get(reverse("posts:detail", args=[post.pk])).get("Cache-Control", "")


def test_answering_a_match_after_the_session_ended_says_so_before_and_after_logging_in(client):
    from apps.matching.models import Match

    from ..api.factories import MatchFactory
    from ..factories import FocalPointFactory

    match = MatchFactory()
    kenya = FocalPointFactory(username="fp_ken_match", party=party("KEN"))
    client.force_login(kenya)
    page = reverse("posts:detail", args=[match.need_id])
    expire(client)
    response = client.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"},
                           HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{page}")  # fmt: skip
    login_url = response["HX-Redirect"]
    assert "so nothing was done" in client.get(login_url).content.decode()
    after = log_in_again(client, kenya, page)
    assert "What you clicked before your session ended was not done" in after.content.decode()
    assert Match.objects.get(pk=match.pk).need_interest == ""
