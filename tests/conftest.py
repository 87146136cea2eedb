"""Shared fixtures: one user per role, clients logged in as each, and the service/browser guard."""

import os

import pytest
from django.conf import settings
from django.utils import translation

from apps.accounts.actors import Actor

from .factories import (
    CommitteeFactory,
    FocalPointFactory,
    ProviderUserFactory,
    SecretariatFactory,
    UserFactory,
    party,
)

REQUIRE_SERVICES = bool(os.environ.get("NMA_REQUIRE_SERVICES"))


@pytest.fixture(autouse=True)
def _default_language():
    # Django leaves a request's language active in the thread; later tests must start in English.
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _empty_cache():
    # The cache (throttle and lockout counters, the reset emails' hourly count) outlives a test in the process.
    from django.core.cache import cache

    from apps.accounts import counters
    from apps.accounts.apis import _broker_memo, _queue_heads  # the health check's last statuses

    cache.clear()
    _broker_memo.clear()
    _queue_heads.clear()
    counters.forget_failures()  # a cache failure makes the counters rest for 30 s
    yield
    cache.clear()
    _broker_memo.clear()
    _queue_heads.clear()
    counters.forget_failures()


def skip_or_fail(reason: str) -> None:
    """Skip a test whose service or browser is missing on a laptop; CI sets NMA_REQUIRE_SERVICES so it fails."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (NMA_REQUIRE_SERVICES is set, so this cannot be skipped)")
    pytest.skip(reason)


@pytest.fixture
def focal_point(db):
    return FocalPointFactory(username="fp_ken", party=party("KEN"))


@pytest.fixture
def other_focal_point(db):
    return FocalPointFactory(username="fp_bra", party=party("BRA"))


@pytest.fixture
def provider_user(db):
    return ProviderUserFactory(username="prov_user")


@pytest.fixture
def secretariat(db):
    return SecretariatFactory(username="secretariat")


@pytest.fixture
def committee(db):
    return CommitteeFactory(username="committee")


@pytest.fixture
def observer(db):
    return UserFactory(username="observer")


@pytest.fixture
def actor():
    """Turn a user into the Actor that services take."""
    return Actor.for_user


def _client_for(client_class, user):
    client = client_class()
    client.force_login(user)
    return client


@pytest.fixture
def login(db):
    """`login(user)` gives a test client logged in as that user."""
    from django.test import Client

    return lambda user: _client_for(Client, user)
