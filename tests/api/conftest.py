"""API fixtures: a token per scope, clients that send them, and a fresh throttle budget for every test."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken

from ..factories import ProviderUserFactory, SecretariatFactory, party
from .factories import issue_token as issue_token_as


@pytest.fixture
def issuer(db):
    return SecretariatFactory(username="token_issuer")


@pytest.fixture
def provider(provider_user):
    """The support provider of the `provider_user` fixture (so its token and its user act for the same one)."""
    return provider_user.provider


@pytest.fixture
def tokens(db, issuer, provider):
    """Raw tokens by role: read, stocktake, write for KEN, write for BRA, write for the provider, expired, revoked;
    each issued with contact details, as every token was before that became an option (test_token_contacts.py
    has tokens without)."""
    raw = {}
    issue_token = partial(issue_token_as, sees_contacts=True)
    _t, raw["read"] = issue_token(scope=ApiToken.Scope.READ, issuer=issuer, name="Reader")
    _t, raw["stocktake"] = issue_token(
        scope=ApiToken.Scope.STOCKTAKE, issuer=issuer, name="Committee scripts"
    )
    _t, raw["ken"] = issue_token(
        scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("KEN"), name="Kenya MRV"
    )
    _t, raw["bra"] = issue_token(scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("BRA"), name="Brazil")
    _t, raw["provider"] = issue_token(
        scope=ApiToken.Scope.WRITE, issuer=issuer, provider=provider, name="Bank"
    )
    _t, raw["expired"] = issue_token(
        scope=ApiToken.Scope.WRITE,
        issuer=issuer,
        party=party("KEN"),
        name="Old Kenya",
        expires_at=timezone.now() + timedelta(days=1),
    )
    ApiToken.objects.filter(name="Old Kenya").update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked, raw["revoked"] = issue_token(
        scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("KEN"), name="Revoked Kenya"
    )
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    return raw


@pytest.fixture
def api():
    """`api(raw_token)` gives an APIClient that sends `Authorization: Bearer <token>`; `api()` an anonymous one."""

    def make(raw: str | None = None, keyword: str = "Bearer") -> APIClient:
        client = APIClient()
        if raw:
            client.credentials(HTTP_AUTHORIZATION=f"{keyword} {raw}")
        return client

    return make


@pytest.fixture
def session_api(db):
    """`session_api(user)` gives an APIClient logged in as the user, with CSRF checks on (as a browser)."""

    def make(user) -> APIClient:
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(user)
        return client

    return make


def csrf_headers(client: APIClient) -> dict:
    """Headers a browser page's JavaScript would send: the CSRF token from a fresh cookie."""
    from django.middleware.csrf import _get_new_csrf_string

    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    return {"HTTP_X_CSRFTOKEN": secret}


@pytest.fixture
def other_provider_user(db):
    return ProviderUserFactory(username="other_prov_user")
