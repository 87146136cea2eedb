"""Sessions end after eight hours without a request (SESSION_COOKIE_AGE), the admin's too, not two weeks after
logging in; a used session is written again at most every five minutes."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

AGE = 8 * 60 * 60
EIGHT_HOURS = timedelta(seconds=AGE)


def session_row(client: Client) -> Session:
    return Session.objects.get(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


def set_expiry(client: Client, expire_date) -> None:
    Session.objects.filter(pk=session_row(client).pk).update(expire_date=expire_date)


def logged_in_client() -> Client:
    client = Client()
    response = client.post(reverse("login"), {"username": "fp_ken", "password": "pw-for-tests-1"})
    assert response.status_code == 302
    return client


def test_the_policy():
    assert settings.SESSION_COOKIE_AGE == AGE
    assert settings.SESSION_IDLE_REFRESH_SECONDS == 5 * 60
    assert settings.SESSION_ENGINE == "apps.accounts.sessions"


def test_a_login_lasts_eight_hours_not_two_weeks(focal_point):
    client = logged_in_client()
    assert client.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == AGE
    left = session_row(client).expire_date - timezone.now()
    assert EIGHT_HOURS - timedelta(minutes=1) < left <= EIGHT_HOURS


def test_a_request_after_five_minutes_starts_the_eight_hours_again(focal_point):
    client = logged_in_client()
    set_expiry(client, timezone.now() + EIGHT_HOURS - timedelta(minutes=6))
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == AGE
    assert session_row(client).expire_date - timezone.now() > EIGHT_HOURS - timedelta(minutes=1)


def test_requests_within_five_minutes_write_nothing(focal_point, django_assert_num_queries):
    client = logged_in_client()
    expires = timezone.now() + EIGHT_HOURS - timedelta(minutes=4)
    set_expiry(client, expires)
    # 1 session, 2 user, 3 the user's Party (the page names it): no write.
    with django_assert_num_queries(3):
        response = client.get(reverse("accounts:profile"))
    assert response.status_code == 200 and settings.SESSION_COOKIE_NAME not in response.cookies
    assert session_row(client).expire_date == expires


def test_a_session_from_a_longer_age_is_brought_down_to_eight_hours(focal_point):
    """Sessions opened before the age was shortened (Django's default was two weeks) follow the new one."""
    client = logged_in_client()
    set_expiry(client, timezone.now() + timedelta(days=13))
    client.get(reverse("dashboard"))
    assert session_row(client).expire_date - timezone.now() <= EIGHT_HOURS


def test_an_idle_session_has_ended(focal_point, secretariat):
    client = logged_in_client()
    admin = Client()
    admin.post("/admin/login/", {"username": "secretariat", "password": "pw-for-tests-1"})
    assert admin.get("/admin/").status_code == 200
    # What eight hours and a minute without a request leave in the database.
    for each in (client, admin):
        set_expiry(each, timezone.now() - timedelta(minutes=1))
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    response = admin.get("/admin/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")


def test_anonymous_visits_write_no_session(client):
    client.get(reverse("posts:list"))
    assert not Session.objects.exists()
