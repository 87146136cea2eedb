"""Anonymous visitors of the site's expensive public pages are rate-limited per address; logged-in users are
not, and a cache that fails lets everyone through."""

import pytest
from django.urls import reverse

from apps.accounts import counters

pytestmark = pytest.mark.django_db

PAGES = [reverse("posts:list"), reverse("posts:home"), reverse("stocktake:summary")]


@pytest.mark.parametrize("url", PAGES)
def test_an_anonymous_address_gets_a_429_past_its_budget(client, settings, url):
    settings.SITE_THROTTLE_ANON = "2/minute"
    assert client.get(url).status_code == 200
    assert client.get(url, {"q": "flood"}).status_code == 200
    refused = client.get(url)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 30  # one request every 30 s at 2 a minute
    html = refused.content.decode()
    assert "Too many requests" in html and "Try again in" in html
    assert f"{reverse('login')}?next=" in html  # back to this page once logged in
    # Another address has its own budget.
    assert client.get(url, REMOTE_ADDR="10.0.0.9").status_code == 200


def test_the_budget_is_shared_by_the_limited_pages_and_spares_others(client, settings):
    settings.SITE_THROTTLE_ANON = "2/minute"
    client.get(reverse("posts:list"))
    client.get(reverse("stocktake:summary"))
    assert client.get(reverse("posts:list")).status_code == 429
    assert client.get(reverse("stocktake:definitions")).status_code == 200  # cheap pages are not counted


def test_logged_in_users_are_not_limited(login, focal_point, settings):
    settings.SITE_THROTTLE_ANON = "1/minute"
    client = login(focal_point)
    assert [client.get(reverse("posts:list")).status_code for _ in range(3)] == [200, 200, 200]


def test_a_failing_cache_lets_visitors_through(client, settings, monkeypatch):
    settings.SITE_THROTTLE_ANON = "1/minute"

    def broken(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr("apps.accounts.limits.cache.get", broken)
    try:
        assert [client.get(reverse("posts:list")).status_code for _ in range(3)] == [200, 200, 200]
    finally:
        counters.forget_failures()


def test_the_429_page_is_in_the_visitors_language(client, settings):
    settings.SITE_THROTTLE_ANON = "1/minute"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    client.get(reverse("posts:list"))
    refused = client.get(reverse("posts:list"))
    assert refused.status_code == 429 and "Trop de requêtes" in refused.content.decode()
