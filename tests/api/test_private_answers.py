"""The API's answers that hold contact details (any caller that is not anonymous) are never kept by a cache,
as the post's page is not; the public's answers, without them, may be."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.accounts.models import ApiToken
from tests.factories import PostFactory, party

from .factories import issue_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(db):
    return PostFactory(
        party=party("KEN"), contact_name="Jane Wanjiru", contact_email="jane.wanjiru@env.go.ke"
    )


def never_cached(response) -> bool:
    control = response.get("Cache-Control", "")
    return response.status_code == 200 and "no-store" in control and "private" in control


@pytest.mark.parametrize("scope", ["read", "stocktake", "write"])
def test_api_answers_to_a_token_are_never_cached(scope, post, secretariat, api):
    poster = {"party": party("KEN")} if scope == ApiToken.Scope.WRITE else {}
    _token, raw = issue_token(scope=scope, issuer=secretariat, sees_contacts=True, **poster)
    for url in ("/api/v1/posts/", f"/api/v1/posts/{post.pk}/"):
        response = api(raw).get(url)
        assert "jane.wanjiru@env.go.ke" in response.content.decode()
        assert never_cached(response), url


@pytest.mark.parametrize("role", ["focal_point", "other_focal_point", "provider_user", "committee", "observer",
                                  "secretariat"])  # fmt: skip
def test_api_answers_to_a_logged_in_browser_are_never_cached(role, post, session_api, request):
    client = session_api(request.getfixturevalue(role))
    response = client.get(f"/api/v1/posts/{post.pk}/")
    assert "jane.wanjiru@env.go.ke" in response.content.decode()
    assert never_cached(response)


def test_the_publics_answers_may_be_cached(post, api, client):
    """Without contact details, as anyone reads them: left to caches."""
    for response in (
        api().get(f"/api/v1/posts/{post.pk}/"),
        client.get(reverse("posts:detail", args=[post.pk])),
    ):
        assert response.status_code == 200 and "jane.wanjiru" not in response.content.decode()
        assert "no-store" not in response.get("Cache-Control", "")
