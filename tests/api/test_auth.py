"""Tokens: hashed storage, Bearer/Token headers, expiry, revocation, last-used throttling, and sessions (CSRF)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.actors import ANONYMOUS, Actor
from apps.accounts.models import ApiToken, Role, api_token_hash

from ..factories import PostFactory, party
from .conftest import csrf_headers
from .factories import issue_token

pytestmark = pytest.mark.django_db

NEED = {
    "kind": "need",
    "title": "Flood early-warning",
    "description": "Gauges and alerts.",
    "support_types": ["technology"],
    "focus_areas": ["adaptation"],
}


def test_token_is_stored_hashed_with_a_lookup_prefix(issuer):
    token, raw = issue_token(issuer=issuer)
    assert raw.startswith(f"nma_{token.prefix}_")
    assert len(raw) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.key_hash == api_token_hash(raw)
    assert raw not in (stored.key_hash, stored.prefix)
    # Two tokens never share a key.
    assert issue_token(issuer=issuer)[1] != raw


def test_write_token_needs_exactly_one_poster(issuer, provider):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        issue_token(scope=ApiToken.Scope.WRITE, issuer=issuer)
    with pytest.raises(ValidationError):
        issue_token(scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("KEN"), provider=provider)
    with pytest.raises(ValidationError):
        issue_token(scope=ApiToken.Scope.READ, issuer=issuer, party=party("KEN"))


def test_actor_for_each_kind_of_token(issuer, provider):
    write_party, _r = issue_token(scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("KEN"), name="MRV")
    actor = Actor.for_token(write_party)
    assert (actor.role, actor.party_id, actor.can_post) == (Role.FOCAL_POINT, party("KEN").pk, True)
    assert actor.user == issuer and actor.token_id == write_party.pk and "MRV" in actor.label

    write_provider, _r = issue_token(scope=ApiToken.Scope.WRITE, issuer=issuer, provider=provider)
    actor = Actor.for_token(write_provider)
    assert (actor.role, actor.provider_id, actor.can_post) == (Role.PROVIDER, provider.pk, True)

    read, _r = issue_token(scope=ApiToken.Scope.READ, issuer=issuer)
    actor = Actor.for_token(read)
    assert not actor.can_write and not actor.can_post and not actor.is_secretariat
    assert not actor.can_read_stocktake

    stocktake, _r = issue_token(scope=ApiToken.Scope.STOCKTAKE, issuer=issuer)
    actor = Actor.for_token(stocktake)
    assert actor.can_read_stocktake and not actor.can_post and not actor.can_write

    stocktake.revoked_at = timezone.now()
    assert Actor.for_token(stocktake) == ANONYMOUS


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_both_header_keywords_authenticate(api, tokens, keyword):
    response = api(tokens["ken"], keyword=keyword).post("/api/v1/posts/", NEED, format="json")
    assert response.status_code == 201
    assert response.json()["party"] == "KEN"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer nma_deadbeef_not-the-secret", "Invalid token."),
        ("Bearer garbage", "Invalid token."),
        ("Bearer", "Give the token"),
        ("Bearer a b", "Give the token"),
    ],
)
def test_bad_tokens_are_401_with_a_challenge(api, tokens, header, message):
    client = api()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/posts/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert message in response.json()["errors"][0]["message"]


def test_right_prefix_wrong_secret_is_refused(api, tokens):
    prefix = tokens["ken"].split("_")[1]
    response = api(f"nma_{prefix}_{'x' * 43}").get("/api/v1/posts/")
    assert response.status_code == 401


def test_expired_and_revoked_tokens_are_refused_even_for_reading(api, tokens):
    expired = api(tokens["expired"]).get("/api/v1/posts/")
    assert expired.status_code == 401
    assert expired.json()["errors"][0]["message"] == "This token has expired."
    revoked = api(tokens["revoked"]).get("/api/v1/posts/")
    assert revoked.status_code == 401
    assert revoked.json()["errors"][0]["message"] == "This token has been revoked."


def test_last_used_is_written_at_most_once_a_minute(api, tokens, django_assert_num_queries):
    token = ApiToken.objects.get(name="Reader")
    assert token.last_used_at is None
    client = api(tokens["read"])
    assert client.get("/api/v1/taxonomies/").status_code == 200
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    # Within the minute: only the token lookup, no UPDATE.
    with django_assert_num_queries(1):
        assert client.get("/api/v1/taxonomies/").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    # A minute later it is written again.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    with django_assert_num_queries(2):  # token lookup, conditional UPDATE of last_used_at
        assert client.get("/api/v1/taxonomies/").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


def test_session_user_writes_with_csrf_token(session_api, focal_point):
    client = session_api(focal_point)
    refused = client.post("/api/v1/posts/", NEED, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["errors"][0]["message"]
    accepted = client.post("/api/v1/posts/", NEED, format="json", **csrf_headers(client))
    assert accepted.status_code == 201
    assert accepted.json()["party"] == "KEN"


def test_session_user_reads_own_drafts(session_api, focal_point, other_focal_point):
    draft = PostFactory(status="draft", published_at=None)
    assert session_api(focal_point).get(f"/api/v1/posts/{draft.pk}/").status_code == 200
    assert session_api(other_focal_point).get(f"/api/v1/posts/{draft.pk}/").status_code == 404


def test_token_request_user_has_no_rights_of_the_issuer(api, tokens):
    """A read token issued by a secretariat user must not see drafts, which the issuer could."""
    draft = PostFactory(status="draft", published_at=None)
    assert api(tokens["read"]).get(f"/api/v1/posts/{draft.pk}/").status_code == 404
