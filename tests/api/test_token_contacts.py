"""A partner system receives the posts' contact details (a person's name and address) only if its token was issued
with them, or for the posts it may manage: personal data only where it is needed."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.accounts.models import ApiToken
from tests.factories import PostFactory, party

from .factories import issue_token

pytestmark = pytest.mark.django_db

JANE = "jane.wanjiru@env.go.ke"


@pytest.fixture
def kenya_post(db):
    return PostFactory(party=party("KEN"), contact_name="Jane Wanjiru", contact_email=JANE)


def _bodies(api, raw, post) -> list[dict]:
    """The post as the list and the detail give it to this token."""
    listed = [p for p in api(raw).get("/api/v1/posts/").json()["results"] if p["id"] == post.pk]
    return [*listed, api(raw).get(f"/api/v1/posts/{post.pk}/").json()]


@pytest.mark.parametrize("scope", ["read", "stocktake", "write"])
def test_a_token_issued_without_contact_details_reads_none_of_other_posters(
    scope, kenya_post, secretariat, api
):
    poster = {"party": party("BRA")} if scope == ApiToken.Scope.WRITE else {}
    _token, raw = issue_token(scope=scope, issuer=secretariat, **poster)
    bodies = _bodies(api, raw, kenya_post)
    assert len(bodies) == 2
    for body in bodies:
        assert "contact_name" not in body and "contact_email" not in body
        assert JANE not in str(body)
    _token, raw = issue_token(scope=scope, issuer=secretariat, sees_contacts=True, **poster)
    for body in _bodies(api, raw, kenya_post):
        assert (body["contact_name"], body["contact_email"]) == ("Jane Wanjiru", JANE)


def test_a_write_token_always_reads_the_contacts_of_its_own_posts(kenya_post, secretariat, api):
    """Its PUT sends the whole post back: without the contact it was never shown, it would blank it."""
    _token, raw = issue_token(scope=ApiToken.Scope.WRITE, issuer=secretariat, party=party("KEN"))
    for body in _bodies(api, raw, kenya_post):
        assert body["contact_email"] == JANE
    record = api(raw).get(f"/api/v1/posts/{kenya_post.pk}/").json()
    writable = {k: v for k, v in record.items() if k not in ("id", "status", "created_at", "updated_at",
                                                             "submitted_at", "published_at", "closed_at",
                                                             "withdrawn_at", "outcome", "returned_at",
                                                             "return_reason")}  # fmt: skip
    response = api(raw).put(
        f"/api/v1/posts/{kenya_post.pk}/", {**writable, "title": "Flood warnings"}, format="json"
    )
    assert response.status_code == 200, response.content
    kenya_post.refresh_from_db()
    assert (kenya_post.title, kenya_post.contact_email) == ("Flood warnings", JANE)


def test_tokens_issued_before_the_option_keep_receiving_contacts():
    from importlib import import_module

    from django.apps import apps

    token, _raw = issue_token(scope=ApiToken.Scope.READ, name="Old partner")
    assert not token.sees_contacts
    import_module(
        "apps.accounts.migrations.0009_apitoken_sees_contacts"
    ).tokens_issued_so_far_keep_seeing_contacts(apps, None)
    token.refresh_from_db()
    assert token.sees_contacts


def test_the_secretariat_chooses_it_when_issuing_and_it_never_changes_after(secretariat, login):
    client = login(secretariat)
    response = client.post(
        reverse("admin:accounts_apitoken_add"),
        {
            "name": "UN data portal",
            "scope": "read",
            "sees_contacts": "on",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200, response.content  # the page that shows the raw token once
    token = ApiToken.objects.get(name="UN data portal")
    assert token.sees_contacts
    page = client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content.decode()
    assert 'name="sees_contacts"' not in page  # read-only once issued
    client.post(
        reverse("admin:accounts_apitoken_add"),
        {"name": "Open data mirror", "scope": "read", "expires_at_0": "", "expires_at_1": ""},
    )
    assert not ApiToken.objects.get(name="Open data mirror").sees_contacts
