"""The secretariat issues and revokes API tokens in the admin; the raw token is shown once and stored hashed."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages

from apps.accounts.models import ApiToken, Role, User, api_token_hash
from tests.factories import SupportProviderFactory, party

pytestmark = pytest.mark.django_db

ADD = "/admin/accounts/apitoken/add/"


def issue(client, **fields):
    data = {
        "name": "Kenya MRV registry",
        "scope": "write",
        "party": party("KEN").pk,
        "provider": "",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data.update(fields)
    return client.post(ADD, data, follow=True)


def test_secretariat_issues_a_token_shown_once(login, secretariat):
    client = login(secretariat)
    response = issue(client)
    assert response.status_code == 200
    assert not response.redirect_chain  # the answer to the POST itself shows it
    assert "no-store" in response["Cache-Control"]
    text = response.content.decode()
    assert 'class="breadcrumbs"' in text and "/admin/accounts/apitoken/" in text  # the way back to the tokens
    raw = re.search(r"nma_[0-9a-f]{8}_[A-Za-z0-9_-]{40,}", text).group(0)
    # Not in a message: those travel in a cookie, which proxies log and the browser sends back.
    assert not [str(m) for m in get_messages(response.wsgi_request)]
    assert all(raw not in str(cookie.value) for cookie in response.cookies.values())
    assert all(raw not in str(cookie.value) for cookie in client.cookies.values())
    token = ApiToken.objects.get()
    assert (token.name, token.scope, token.party, token.created_by) == (
        "Kenya MRV registry",
        "write",
        party("KEN"),
        secretariat,
    )
    assert token.key_hash == api_token_hash(raw) and raw.split("_")[1] == token.prefix
    # The change page never shows it again.
    page = client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    assert raw not in page and token.prefix in page
    # And it works.
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/posts/").status_code == 200


def test_a_write_token_needs_one_party_or_provider(login, secretariat):
    response = issue(login(secretariat), party="")
    assert response.status_code == 200
    assert "exactly one Party or one support provider" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoke_action_stops_the_token(login, secretariat):
    client = login(secretariat)
    token, raw = ApiToken.objects.issue(name="Bank", scope="read", created_by=secretariat)
    response = client.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/posts/").status_code == 401
    # Revoking it again changes nothing, and says so (it said "Revoked 0 tokens." in green).
    again = client.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert [(m.level_tag, str(m)) for m in again.context["messages"]] == [
        ("warning", "The selected tokens were revoked already: nothing changed.")
    ]
    # Some revoked, some so already: both said ("Revoked 1 token." alone hid the other).
    other, _raw = ApiToken.objects.issue(name="Fund", scope="read", created_by=secretariat)
    both = client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk, other.pk]},
        follow=True,
    )
    assert [(m.level_tag, str(m)) for m in both.context["messages"]] == [
        ("warning", "1 of the selected tokens was revoked already: left as it was."),
        ("success", "Revoked 1 token."),
    ]


def test_a_tokens_state_agrees_in_french(login, secretariat):
    ApiToken.objects.issue(name="Bank", scope="read", created_by=secretariat)
    client = login(secretariat)
    client.cookies["django_language"] = "fr"
    html = client.get("/admin/accounts/apitoken/").content.decode()
    assert '<td class="field-state">actif</td>' in html  # un jeton actif, not "active"
    SupportProviderFactory()
    providers = client.get("/admin/parties/supportprovider/").content.decode()
    assert re.search(
        r'column-is_active">\s*<div class="text"><a [^>]*>Actif</a>', providers
    )  # un fournisseur


def test_tokens_are_never_deleted_nor_repointed(login, secretariat):
    client = login(secretariat)
    token, _raw = ApiToken.objects.issue(name="Bank", scope="read", created_by=secretariat)
    assert client.get(f"/admin/accounts/apitoken/{token.pk}/delete/").status_code == 403
    client.post(
        f"/admin/accounts/apitoken/{token.pk}/change/",
        {"name": "Renamed", "scope": "write", "party": party("KEN").pk},
    )
    token.refresh_from_db()
    assert (token.name, token.scope, token.party) == ("Renamed", "read", None)


@pytest.mark.parametrize("role", [Role.FOCAL_POINT, Role.COMMITTEE, Role.OBSERVER])
def test_only_the_secretariat_manages_tokens_and_users(login, role):
    user = User.objects.create_user(
        username=f"staff_{role}",
        password="x",
        role=role,
        is_staff=True,
        party=party("KEN") if role == Role.FOCAL_POINT else None,
    )
    client = login(user)
    assert client.get("/admin/accounts/apitoken/").status_code == 403
    assert client.get(ADD).status_code == 403
    assert client.get("/admin/accounts/user/").status_code == 403


def test_user_admin_sets_role_party_and_provider(login, secretariat, focal_point):
    client = login(secretariat)
    page = client.get(f"/admin/accounts/user/{focal_point.pk}/change/").content.decode()
    for field in ('name="role"', 'name="party"', 'name="provider"'):
        assert field in page
    # A secretariat user who is not a superuser cannot hand out superuser status.
    assert 'name="is_superuser"' not in page
    listing = client.get("/admin/accounts/user/?role=focal_point").content.decode()
    assert "fp_ken" in listing
