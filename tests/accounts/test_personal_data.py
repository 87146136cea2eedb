"""A person who leaves: the secretariat is told when a person it deactivates is still the contact of posts, and
finds those posts (erasure: test_anonymise.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import FocalPointFactory, PostFactory, party

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(focal_point):
    return PostFactory(
        party=party("KEN"), contact_name="Jane Wanjiru", contact_email="jane.wanjiru@env.go.ke"
    )


def _deactivate(client, user):
    from tests.accounts.test_admin_users import change_data

    url = reverse("admin:accounts_user_change", args=[user.pk])
    return client.post(url, change_data(user, is_active=""), follow=True)


def test_deactivating_a_person_still_named_on_posts_says_so(secretariat, login):
    person = FocalPointFactory(username="jwanjiru", email="jane.wanjiru@env.go.ke")
    PostFactory(party=party("KEN"), contact_email="Jane.Wanjiru@env.go.ke")
    PostFactory(party=party("KEN"), contact_email="jane.wanjiru@env.go.ke", status="draft")
    PostFactory(party=party("KEN"), contact_email="jane.wanjiru@env.go.ke", status="withdrawn")  # not shown
    PostFactory(party=party("KEN"), contact_email="climate@env.go.ke")
    page = _deactivate(login(secretariat), person).content.decode()
    person.refresh_from_db()
    assert not person.is_active
    assert "2 open posts give jane.wanjiru@env.go.ke as their contact" in page


def test_deactivating_a_person_named_on_no_post_says_nothing_more(secretariat, login):
    person = FocalPointFactory(username="jwanjiru", email="jane.wanjiru@env.go.ke")
    PostFactory(party=party("KEN"), contact_email="climate@env.go.ke")
    page = _deactivate(login(secretariat), person).content.decode()
    assert "as their contact" not in page and "as its contact" not in page


def test_deactivating_a_person_who_issued_tokens_says_they_keep_working(secretariat, login):
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.models import ApiToken
    from tests.api.factories import issue_token
    from tests.factories import SecretariatFactory

    person = SecretariatFactory(username="leaving")
    issue_token(issuer=person, name="Kenya MRV")
    issue_token(issuer=person, name="Dashboards")
    revoked, _raw = issue_token(issuer=person, name="Old")
    expired, _raw = issue_token(issuer=person, name="Older", expires_at=timezone.now() + timedelta(days=1))
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    issue_token(issuer=secretariat, name="Someone else's")
    page = _deactivate(login(secretariat), person).content.decode()
    assert "2 API tokens this person issued keep working" in page
    assert ApiToken.objects.usable().filter(created_by=person).count() == 2  # said, not done
    quiet = SecretariatFactory(username="quiet")
    assert "keep working" not in _deactivate(login(secretariat), quiet).content.decode()


def test_the_secretariat_finds_the_posts_that_name_a_person(post, secretariat, login):
    other = PostFactory(party=party("KEN"), contact_email="climate@env.go.ke")
    client = login(secretariat)
    changelist = reverse("admin:posts_post_changelist")
    for term in ("jane.wanjiru@env.go.ke", "Wanjiru"):
        page = client.get(changelist, {"q": term}).content.decode()
        assert reverse("admin:posts_post_change", args=[post.pk]) in page
        assert reverse("admin:posts_post_change", args=[other.pk]) not in page


def test_a_person_deactivated_and_reactivated_does_not_get_their_old_sessions_back(secretariat, login):
    """A deactivated user's session stopped working at once, but stayed: reactivated within 8 hours, they were
    logged in again on whatever computer it was left open."""
    from django.contrib.sessions.models import Session

    person = FocalPointFactory(username="jwanjiru", email="jane.wanjiru@env.go.ke")
    left_open = login(person)
    other = login(FocalPointFactory(username="kiprop"))  # someone else's session stays
    assert left_open.get(reverse("posts:dashboard")).status_code == 200
    admin = login(secretariat)
    _deactivate(admin, person)
    assert Session.objects.count() == 2  # the secretariat's and the other person's
    url = reverse("admin:accounts_user_change", args=[person.pk])
    person.refresh_from_db()
    from tests.accounts.test_admin_users import change_data

    admin.post(url, change_data(person, is_active="on"), follow=True)
    person.refresh_from_db()
    assert person.is_active
    assert left_open.get(reverse("posts:dashboard")).status_code == 302  # to the login page
    assert other.get(reverse("posts:dashboard")).status_code == 200
