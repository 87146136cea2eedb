"""The API's write paths for the callers test_write_permissions.py leaves out: a provider's user in a browser
session, one provider against another's offers (session and token), a deactivated user whose session is still
stored, CSRF on every session write, GET never writing, refused callers spending their budget, and a token whose
issuer has left."""

import pytest

from apps.accounts.models import ApiToken, User
from apps.matching.models import Interest
from apps.posts.models import Post
from tests.factories import PostFactory, offer_of, party

from .conftest import csrf_headers
from .factories import MatchFactory, issue_token

pytestmark = pytest.mark.django_db
S = Post.Status
POSTS = "/api/v1/posts/"
OFFER = {
    "kind": "offer",
    "title": "Adaptation grants",
    "description": "Grants for adaptation projects of local governments.",
    "support_types": ["finance"],
    "focus_areas": ["adaptation"],
}


def test_a_provider_user_in_a_browser_session_takes_its_offers_through_every_step(session_api, provider_user):
    client = session_api(provider_user)
    headers = csrf_headers(client)
    created = client.post(POSTS, OFFER, format="json", **headers)
    assert created.status_code == 201, created.json()
    url = f"{POSTS}{created.json()['id']}/"
    assert client.patch(url, {"title": "Renamed"}, format="json", **headers).status_code == 200
    for step in ("submit", "recall", "withdraw"):
        assert client.post(f"{url}{step}/", format="json", **headers).status_code == 200, step
    published = offer_of(provider_user.provider)
    closing = client.post(f"{POSTS}{published.pk}/close/", {"outcome": "Taken up."}, format="json", **headers)
    assert closing.status_code == 200
    imported = client.post(
        f"{POSTS}import/", {"items": [{**OFFER, "external_id": "bank-1"}]}, format="json", **headers
    )
    assert imported.status_code == 200, imported.json()
    match = MatchFactory(offer=offer_of(provider_user.provider))
    answer = client.post(
        f"/api/v1/matches/{match.pk}/interest/", {"interest": "interested"}, format="json", **headers
    )
    assert answer.status_code == 200
    post = Post.objects.get(pk=created.json()["id"])
    match.refresh_from_db()
    published.refresh_from_db()
    assert (post.title, post.status, published.status) == ("Renamed", S.WITHDRAWN, S.CLOSED)
    assert Post.objects.filter(external_id="bank-1", provider=provider_user.provider).exists()
    assert match.offer_interest == Interest.INTERESTED


@pytest.mark.parametrize("how", ["session", "token"])
def test_a_provider_cannot_touch_another_providers_offers(
    how, session_api, api, provider, other_provider_user, issuer
):
    if how == "session":
        client = session_api(other_provider_user)
        headers = csrf_headers(client)
    else:
        _token, raw = issue_token(
            scope=ApiToken.Scope.WRITE, issuer=issuer, provider=other_provider_user.provider
        )
        client, headers = api(raw), {}
    draft = offer_of(provider, status=S.DRAFT, title="Their draft")
    published = offer_of(provider, title="Their offer", external_id="their-1")
    assert client.patch(f"{POSTS}{draft.pk}/", {"title": "x"}, format="json", **headers).status_code == 404
    assert (
        client.patch(f"{POSTS}{published.pk}/", {"title": "x"}, format="json", **headers).status_code == 403
    )
    for step in ("submit", "recall", "withdraw"):
        assert client.post(f"{POSTS}{draft.pk}/{step}/", format="json", **headers).status_code == 404, step
    assert client.post(f"{POSTS}{published.pk}/withdraw/", format="json", **headers).status_code == 403
    closing = client.post(f"{POSTS}{published.pk}/close/", {"outcome": "x"}, format="json", **headers)
    assert closing.status_code == 403
    as_them = client.post(POSTS, {**OFFER, "provider": provider.short_name}, format="json", **headers)
    assert as_them.status_code == 403
    # Their external id, imported under one's own provider: not a way to take their offer over.
    item = {**OFFER, "provider": other_provider_user.provider.short_name, "external_id": "their-1"}
    assert client.post(f"{POSTS}import/", {"items": [item]}, format="json", **headers).status_code == 403
    match = MatchFactory(offer=published)
    answer = client.post(
        f"/api/v1/matches/{match.pk}/interest/", {"interest": "interested"}, format="json", **headers
    )
    assert answer.status_code == 404
    draft.refresh_from_db()
    published.refresh_from_db()
    match.refresh_from_db()
    assert (draft.title, draft.status) == ("Their draft", S.DRAFT)
    assert (published.title, published.status, published.provider) == ("Their offer", S.PUBLISHED, provider)
    assert match.offer_interest == ""


@pytest.mark.parametrize("role", ["focal_point", "secretariat"])
def test_a_deactivated_user_with_a_stored_session_is_anonymous(role, request, session_api):
    user = request.getfixturevalue(role)
    draft = PostFactory(status=S.DRAFT, published_at=None)
    client = session_api(user)
    headers = csrf_headers(client)
    User.objects.filter(pk=user.pk).update(is_active=False)  # by a script: the admin would end the sessions
    item = {**OFFER, "kind": "need", "party": "KEN", "external_id": "ken-1"}
    responses = [
        client.post(f"{POSTS}{draft.pk}/submit/", format="json", **headers),
        client.post(POSTS, {**OFFER, "kind": "need"}, format="json", **headers),
        client.post(f"{POSTS}import/", {"items": [item]}, format="json", **headers),
    ]
    assert [r.status_code for r in responses] == [401, 401, 401]
    draft.refresh_from_db()
    assert draft.status == S.DRAFT and Post.objects.count() == 1


def test_every_session_write_needs_the_csrf_token(session_api, focal_point):
    draft = PostFactory(status=S.DRAFT, published_at=None)
    published = PostFactory()
    match = MatchFactory()
    posts = Post.objects.count()
    client = session_api(focal_point)
    refused = [
        client.patch(f"{POSTS}{published.pk}/", {"title": "x"}, format="json"),
        client.put(f"{POSTS}{published.pk}/", {"title": "x"}, format="json"),
        client.post(f"{POSTS}{draft.pk}/submit/", format="json"),
        client.post(f"{POSTS}{published.pk}/withdraw/", format="json"),
        client.post(f"{POSTS}{published.pk}/close/", {"outcome": "x"}, format="json"),
        client.post(
            f"{POSTS}import/", {"items": [{**OFFER, "kind": "need", "external_id": "k"}]}, format="json"
        ),
        client.post(f"/api/v1/matches/{match.pk}/interest/", {"interest": "interested"}, format="json"),
    ]
    for response in refused:
        assert response.status_code == 403 and "CSRF" in response.json()["errors"][0]["message"], (
            response.content
        )
    # Nor does a form another site posts as text/plain get in.
    assert (
        client.generic("POST", f"{POSTS}{draft.pk}/submit/", "x", content_type="text/plain").status_code
        == 403
    )
    draft.refresh_from_db()
    published.refresh_from_db()
    match.refresh_from_db()
    assert (draft.status, published.status, match.need_interest) == (S.DRAFT, S.PUBLISHED, "")
    assert Post.objects.count() == posts


def test_a_get_or_delete_never_writes(api, tokens):
    draft = PostFactory(status=S.DRAFT, published_at=None)
    match = MatchFactory()
    ken = api(tokens["ken"])
    for step in ("submit", "recall", "withdraw", "close"):
        assert ken.get(f"{POSTS}{draft.pk}/{step}/").status_code == 405, step
    assert ken.get(f"/api/v1/matches/{match.pk}/interest/", {"interest": "interested"}).status_code == 405
    assert ken.get(f"{POSTS}import/").status_code == 405
    assert ken.delete(f"{POSTS}{draft.pk}/").status_code == 405
    draft.refresh_from_db()
    match.refresh_from_db()
    assert (draft.status, match.need_interest) == (S.DRAFT, "")
    assert Post.objects.filter(pk=draft.pk).exists()


def test_refused_callers_spend_their_budget_too(api, tokens, settings, session_api, focal_point):
    """A caller refused (a bad token, a read token writing, an anonymous write) used to be counted nowhere, and
    could retry without end. A valid token spends its own budget; a token that fails spends one of its own too,
    not its address's (a partner looping with a revoked token behind a ministry's NAT would otherwise starve the
    others there); an anonymous caller spends its address's; a session refused its CSRF check, its user's."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "3/minute", "token": "3/minute", "user": "3/minute"},
    }
    draft = PostFactory(status=S.DRAFT, published_at=None)
    reader = api(tokens["read"])
    assert [reader.post(f"{POSTS}{draft.pk}/submit/").status_code for _ in range(4)] == [403, 403, 403, 429]
    assert api(tokens["ken"]).get("/api/v1/parties/").status_code == 200  # another token is not affected
    revoked = api(tokens["revoked"])
    assert [revoked.get("/api/v1/parties/").status_code for _ in range(3)] == [401, 401, 401]
    throttled = revoked.get("/api/v1/parties/")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    # The others at that address are not: anonymous readers, another bad token.
    assert api().get("/api/v1/parties/").status_code == 200
    assert api("nma_" + "x" * 43).post(POSTS, {}, format="json").status_code == 401
    anonymous = api()
    assert [anonymous.post(POSTS, {}, format="json").status_code for _ in range(2)] == [401, 401]
    assert anonymous.post(POSTS, {}, format="json").status_code == 429  # with the read before: 3 of 3
    # A browser session without its CSRF token spends its user's budget.
    browser = session_api(focal_point)
    assert [browser.post(POSTS, {}, format="json").status_code for _ in range(3)] == [403, 403, 403]
    assert browser.post(POSTS, {}, format="json").status_code == 429
    draft.refresh_from_db()
    assert draft.status == S.DRAFT


def test_a_token_keeps_working_after_its_issuer_leaves(api, issuer):
    """Tokens belong to partner systems: a secretariat member who leaves does not cut one off (the secretariat
    revokes it if need be). The history names the token, and the issuer as the one who vouched for it."""
    _token, raw = issue_token(scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("KEN"), name="Kenya MRV")
    User.objects.filter(pk=issuer.pk).update(is_active=False)
    created = api(raw).post(POSTS, {**OFFER, "kind": "need"}, format="json")
    assert created.status_code == 201
    event = Post.objects.get(pk=created.json()["id"]).events.get()
    assert event.actor_id == issuer.pk and "Kenya MRV" in event.actor_label
