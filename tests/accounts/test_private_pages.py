"""Pages that hold a user's own data or a post's contact are never kept by a browser's cache (a shared computer's
next user would find them); the API's answers: tests/api/test_private_answers.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import PostFactory, party

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(focal_point):
    return PostFactory(
        party=party("KEN"), contact_name="Jane Wanjiru", contact_email="jane.wanjiru@env.go.ke"
    )


def never_cached(response) -> bool:
    control = response.get("Cache-Control", "")
    return response.status_code == 200 and "no-store" in control and "private" in control


def test_pages_with_a_users_own_data_or_a_posts_contact_are_never_cached(focal_point, post, login):
    client = login(focal_point)
    for url in (
        reverse("accounts:profile"),  # their name, address, phone
        reverse("posts:edit", args=[post.pk]),  # the post's contact
        reverse("posts:create"),  # what they type (and a form kept when a session ended)
    ):
        assert never_cached(client.get(url)), url
