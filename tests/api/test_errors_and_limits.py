"""One error format everywhere, and throttling per token and per anonymous IP (429 with Retry-After)."""

from __future__ import annotations

import pytest

from apps.accounts.permissions import ApiRateThrottle

from ..factories import PostFactory

pytestmark = pytest.mark.django_db


def assert_error_format(response) -> None:
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["errors"] and body["errors"]
    for error in body["errors"]:
        assert {"field", "code", "message"} <= set(error)
        assert isinstance(error["code"], str) and error["message"]


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("get", "/api/v1/nowhere/", 404),
        ("get", "/api/v1/posts", 404),
        ("get", "/api/v1/posts/abc/", 404),
        ("get", "/api/v1/posts/-3/", 404),
        ("get", "/api/v1/posts/123456789/", 404),
        ("delete", "/api/v1/posts/1/", 405),
        ("post", "/api/v1/posts/", 401),
        ("get", "/api/v1/stocktake/", 401),
        ("put", "/api/v1/parties/", 405),
    ],
)
def test_errors_share_one_format(api, method, url, status):
    response = getattr(api(), method)(url)
    assert response.status_code == status
    assert_error_format(response)


def test_not_found_suggests_the_trailing_slash(api):
    message = api().get("/api/v1/posts").json()["errors"][0]["message"]
    assert "/api/v1/posts/" in message


def test_anonymous_callers_are_throttled_per_ip(api, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "3/minute", "token": "100/minute", "user": "100/minute"},
    }
    client = api()
    assert [client.get("/api/v1/taxonomies/").status_code for _ in range(3)] == [200, 200, 200]
    throttled = client.get("/api/v1/taxonomies/")
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert throttled.json()["errors"][0]["code"] == "throttled"
    # Another IP has its own budget.
    assert client.get("/api/v1/taxonomies/", REMOTE_ADDR="10.1.2.3").status_code == 200


# Redis at a closed port: what Django's cache raises while production's Redis is down.
CACHE_DOWN = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}


def test_the_api_answers_while_the_cache_is_down(api, tokens, settings, caplog, monkeypatch):
    """The throttle's counters live in the cache, Redis in production: an outage made every API request a 500.
    Now the limit is off meanwhile, and the log says so once (not once per request)."""
    from django.core.cache.backends.redis import RedisCache

    from apps.accounts import counters

    asked = []
    real_get = RedisCache.get

    def counted_get(self, *args, **kwargs):
        asked.append(1)
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(RedisCache, "get", counted_get)
    settings.CACHES = CACHE_DOWN
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "2/minute", "token": "2/minute", "user": "2/minute"},
    }
    with caplog.at_level("WARNING", logger="apps.accounts.counters"):
        assert [api().get("/api/v1/taxonomies/").status_code for _ in range(4)] == [200] * 4
        assert api(tokens["ken"]).get("/api/v1/posts/").status_code == 200
    warnings = [r for r in caplog.records if r.name == "apps.accounts.counters"]
    assert len(warnings) == 1 and "rate limit is not enforced" in warnings[0].getMessage()
    # After the first failure the cache is left alone for a while: a hung Redis cost every request its whole
    # timeout (1 s), and queued even the liveness probe behind them. Then it is asked again.
    assert len(asked) == 1
    monkeypatch.setattr(counters, "_failed_at", counters._failed_at - counters.RETRY_AFTER_SECONDS)
    assert api().get("/api/v1/taxonomies/").status_code == 200
    assert len(asked) == 2


def test_tokens_are_throttled_per_token(api, tokens, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "100/minute", "token": "2/minute", "user": "100/minute"},
    }
    ken, bra = api(tokens["ken"]), api(tokens["bra"])
    assert [ken.get("/api/v1/parties/").status_code for _ in range(2)] == [200, 200]
    assert ken.get("/api/v1/parties/").status_code == 429
    # Another token, even from the same IP, is not affected; neither is an anonymous caller.
    assert bra.get("/api/v1/parties/").status_code == 200
    assert api().get("/api/v1/parties/").status_code == 200
    # A write is throttled as well.
    assert ken.post("/api/v1/posts/", {}, format="json").status_code == 429


def test_a_spent_budget_comes_back_one_request_at_a_time(api, tokens, settings, monkeypatch):
    """n per period: the whole budget at once, then one request every period / n (and Retry-After says when)."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "100/minute", "token": "3/minute", "user": "100/minute"},
    }
    now = [1_000_000.0]
    monkeypatch.setattr(ApiRateThrottle, "timer", staticmethod(lambda: now[0]))
    ken = api(tokens["ken"])
    assert [ken.get("/api/v1/parties/").status_code for _ in range(3)] == [200, 200, 200]
    throttled = ken.get("/api/v1/parties/")
    assert throttled.status_code == 429 and throttled["Retry-After"] == "20"
    now[0] += 15
    assert ken.get("/api/v1/parties/")["Retry-After"] == "5"
    now[0] += 5
    assert ken.get("/api/v1/parties/").status_code == 200
    assert ken.get("/api/v1/parties/").status_code == 429
    # A refused request costs nothing; a minute of rest refills the whole budget.
    now[0] += 60
    assert [ken.get("/api/v1/parties/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_session_users_are_throttled_per_user(session_api, focal_point, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "100/minute", "token": "100/minute", "user": "1/minute"},
    }
    client = session_api(focal_point)
    assert client.get("/api/v1/posts/").status_code == 200
    assert client.get("/api/v1/posts/").status_code == 429


def test_health_is_never_throttled(api, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1/minute", "token": "1/minute", "user": "1/minute"},
    }
    assert {api().get("/api/v1/health/").status_code for _ in range(3)} == {200}


def test_a_server_error_is_not_hidden_as_a_client_error(api, monkeypatch):
    """Unexpected exceptions stay 500s (and reach the logs), never dressed up as 4xx."""
    PostFactory()

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("apps.posts.apis.post_json_rows", boom)
    client = api()
    client.raise_request_exception = False
    response = client.get("/api/v1/posts/")
    assert response.status_code == 500
    # In the API's error format, like every other error (it was the site's HTML page).
    assert_error_format(response)
    assert response.json()["errors"][0]["code"] == "server_error"


def test_a_server_error_of_a_page_is_the_sites_page(client, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("apps.posts.filters.post_search", boom)
    client.raise_request_exception = False
    response = client.get("/posts/", {"q": "mangrove"})
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_answers_vary_with_the_token_for_shared_caches(api, tokens):
    """A draft or a contact shown to its Party's token must not be served from a cache to another caller."""
    for response in (
        api().get("/api/v1/posts/"),
        api(tokens["ken"]).get("/api/v1/posts/"),
        api().get("/api/v1/nope/"),
    ):
        assert "Authorization" in response.get("Vary", ""), response


def test_a_contact_email_is_checked_as_the_web_form_checks_it(api, tokens):
    body = {"kind": "need", "title": "Solar pumps", "description": "Finance for solar irrigation.",
            "support_types": ["finance"], "focus_areas": ["clean_energy"]}  # fmt: skip
    for bad in ("@", "a@", "someone at example.org"):
        response = api(tokens["ken"]).post("/api/v1/posts/", {**body, "contact_email": bad}, format="json")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "contact_email"
    response = api(tokens["ken"]).post(
        "/api/v1/posts/", {**body, "contact_email": "fp@example.org"}, format="json"
    )
    assert response.status_code == 201


def _api_urls(post_id: int, match_id: int) -> list[str]:
    """Every address of /api/v1/, its <pk> the number of a post (or of a match, for a match's address) that
    exists: a missing one only reaches the 404."""
    import re

    from nma_platform import api_urls

    urls = []
    for pattern in api_urls.urlpatterns:
        route = getattr(pattern.pattern, "_route", None)
        if route is not None:
            number = match_id if route.startswith("matches/") else post_id
            urls.append("/api/v1/" + re.sub(r"<int:\w+>", str(number), route))
    return urls


@pytest.mark.parametrize("method", ["options", "head", "get"])
def test_no_address_answers_a_method_with_a_server_error(api, tokens, method):
    """OPTIONS of the Swagger page (a browser's preflight, a scanner) was a 500, logged as an error each time."""
    from .factories import MatchFactory

    match = MatchFactory()
    post = match.need
    urls = _api_urls(post.pk, match.pk)
    assert "/api/v1/docs/" in urls and f"/api/v1/posts/{post.pk}/recall/" in urls
    assert f"/api/v1/matches/{match.pk}/interest/" in urls
    for client in (api(), api(tokens["ken"])):
        for url in urls:
            response = getattr(client, method)(url)
            assert response.status_code < 500, (method, url, response.status_code)
    assert api().options("/api/v1/docs/").status_code == 405
    assert api().get("/api/v1/docs/").status_code == 200
