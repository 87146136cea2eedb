"""Password guessing: django-axes locks a user name from one client address after five failures, on the site's and
the admin's login, for fifteen minutes; the secretariat can see and lift lockouts."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.admin.models import DELETION, LogEntry
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import translation

from apps.accounts.models import ApiToken
from tests.api.factories import issue_token

pytestmark = pytest.mark.django_db

RIGHT = "pw-for-tests-1"  # the factories' password
LOCKOUT_TEXT = "Too many failed attempts"


def attempt(client: Client, username: str, password: str, url: str = "/accounts/login/", **extra):
    return client.post(url, {"username": username, "password": password}, **extra)


def fail(client: Client, username: str, times: int, **extra) -> list:
    return [attempt(client, username, "wrong-guess", **extra) for _ in range(times)]


def test_policy_settings():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_RESET_ON_SUCCESS is True
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"


def test_five_failures_lock_and_even_the_right_password_is_refused(focal_point):
    client = Client()
    responses = fail(client, "fp_ken", 5)
    # The first four say the password is wrong; the fifth locks.
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    assert 'class="error-summary"' in responses[3].content.decode()
    response = attempt(client, "fp_ken", RIGHT)
    html = response.content.decode()
    assert response.status_code == 429
    assert LOCKOUT_TEXT in html and "Try again in 15 minutes, or reset your password." in html
    assert f'href="{reverse("accounts:password_reset")}"' in html
    assert response["Retry-After"] == str(15 * 60)
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("dashboard")).status_code == 302


def test_lockout_is_for_that_user_from_that_address_only(focal_point, other_focal_point):
    fail(Client(), "fp_ken", 5, REMOTE_ADDR="203.0.113.7")
    # Another user from the same address, and the same user from elsewhere, log in.
    assert attempt(Client(), "fp_bra", RIGHT, REMOTE_ADDR="203.0.113.7").status_code == 302
    assert attempt(Client(), "fp_ken", RIGHT, REMOTE_ADDR="198.51.100.20").status_code == 302
    assert attempt(Client(), "fp_ken", RIGHT, REMOTE_ADDR="203.0.113.7").status_code == 429


def test_a_successful_login_resets_the_count(focal_point):
    client = Client()
    fail(client, "fp_ken", 4)
    assert attempt(client, "fp_ken", RIGHT).status_code == 302
    client.post(reverse("logout"))
    assert [r.status_code for r in fail(client, "fp_ken", 4)] == [200] * 4
    assert attempt(client, "fp_ken", RIGHT).status_code == 302


def test_the_lockout_ends_after_fifteen_minutes(focal_point):
    client = Client()
    fail(client, "fp_ken", 5)
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16)
    )
    assert attempt(client, "fp_ken", RIGHT).status_code == 302


def test_trying_again_during_the_lockout_starts_the_wait_again(focal_point):
    client = Client()
    fail(client, "fp_ken", 5)
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=10)
    )
    assert attempt(client, "fp_ken", "another-guess").status_code == 429
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=10)
    )
    assert attempt(client, "fp_ken", RIGHT).status_code == 429


def test_the_admin_login_is_protected_too(secretariat):
    client = Client()
    responses = fail(client, "secretariat", 5, url="/admin/login/")
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    response = attempt(client, "secretariat", RIGHT, url="/admin/login/")
    assert response.status_code == 429 and LOCKOUT_TEXT in response.content.decode()
    assert client.get("/admin/").status_code == 302
    # Failures on either login page count together.
    assert attempt(Client(), "secretariat", RIGHT).status_code == 429


def test_the_password_is_not_stored_with_the_attempts(focal_point):
    fail(Client(), "fp_ken", 1)
    assert "wrong-guess" not in AccessAttempt.objects.get().post_data


def test_a_password_reset_lifts_the_lockout(focal_point):
    client = Client()
    fail(client, "fp_ken", 5)
    client.post(reverse("accounts:password_reset"), {"email": focal_point.email})
    link = next(word for word in mail.outbox[0].body.split() if "/password/reset/" in word)
    form_url = client.get(link.removeprefix(settings.SITE_URL)).url
    new = "Glacial-lake-alerts-2026"
    client.post(form_url, {"new_password1": new, "new_password2": new})
    assert attempt(client, "fp_ken", new).status_code == 302


# --- the client's address behind a proxy ---------------------------------------------------------------------


@pytest.fixture
def one_proxy(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


def test_without_a_proxy_setting_x_forwarded_for_is_ignored(focal_point):
    """Otherwise a guesser would start afresh with each made-up header."""
    for n in range(5):
        attempt(Client(), "fp_ken", "wrong-guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert attempt(Client(), "fp_ken", RIGHT, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429


def test_behind_one_proxy_the_client_is_the_address_it_adds(focal_point, one_proxy):
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    fail(Client(), "fp_ken", 5, HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy)
    assert AccessAttempt.objects.get().ip_address == "203.0.113.7"
    # Another client behind the same proxy is not locked out...
    assert (
        attempt(Client(), "fp_ken", RIGHT, HTTP_X_FORWARDED_FOR="198.51.100.20", **proxy).status_code == 302
    )
    # ...and the locked-out one cannot escape by prepending an address of its choice (the proxy appends).
    spoofed = {"HTTP_X_FORWARDED_FOR": "192.0.2.1, 203.0.113.7", **proxy}
    assert attempt(Client(), "fp_ken", RIGHT, **spoofed).status_code == 429


def test_a_hop_that_is_no_address_counts_as_the_proxy(focal_point, one_proxy):
    fail(Client(), "fp_ken", 5, HTTP_X_FORWARDED_FOR="not-an-address", REMOTE_ADDR="10.0.0.2")
    assert AccessAttempt.objects.get().ip_address == "10.0.0.2"
    assert (
        attempt(
            Client(), "fp_ken", RIGHT, HTTP_X_FORWARDED_FOR="nonsense", REMOTE_ADDR="10.0.0.2"
        ).status_code
        == 429
    )


# --- what is not affected ------------------------------------------------------------------------------------


def test_token_api_calls_are_unaffected(focal_point, secretariat):
    _token, raw = issue_token(scope=ApiToken.Scope.WRITE, issuer=secretariat, party=focal_point.party)
    fail(Client(), "fp_ken", 5)
    fail(Client(), "secretariat", 5)
    response = Client().get("/api/v1/posts/?status=draft", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    response = Client().post(
        "/api/v1/posts/",
        {
            "kind": "need",
            "title": "Flood early-warning for the Tana basin",
            "description": "River gauges, forecasting and SMS alerts for riverside villages.",
            "support_types": ["technology"],
            "focus_areas": ["adaptation"],
            "sectors": ["water"],
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 201, response.content


def test_a_logged_in_session_is_unaffected_by_a_lockout(focal_point, login):
    client = login(focal_point)
    fail(Client(), "fp_ken", 5)
    assert client.get(reverse("dashboard")).status_code == 200


# --- the secretariat's admin ---------------------------------------------------------------------------------


def test_secretariat_sees_and_lifts_lockouts_in_the_admin(focal_point, secretariat, login):
    fail(Client(), "fp_ken", 5)
    admin = login(secretariat)
    changelist = admin.get("/admin/axes/accessattempt/")
    html = changelist.content.decode()
    assert changelist.status_code == 200
    assert "fp_ken" in html and "Locked Out" in html
    row = AccessAttempt.objects.get()
    response = admin.post(
        "/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": [row.pk]}, follow=True
    )
    assert response.status_code == 200 and "Unlocked 1 entry." in response.content.decode()
    assert not AccessAttempt.objects.exists()
    entry = LogEntry.objects.get(action_flag=DELETION, user=secretariat, object_id=str(row.pk))
    # Whose lockout was lifted, not the row's "Attempted Access: <time>".
    assert entry.object_repr == "Lockout of fp_ken from 127.0.0.1"
    assert entry.get_change_message() == "Unlocked: 5 failed attempts forgotten."
    assert attempt(Client(), "fp_ken", RIGHT).status_code == 302


def test_lockouts_are_read_only_but_for_unlocking(focal_point, secretariat, login):
    fail(Client(), "fp_ken", 1)
    admin = login(secretariat)
    assert admin.get("/admin/axes/accessattempt/add/").status_code == 403
    row = AccessAttempt.objects.get()
    page = admin.get(f"/admin/axes/accessattempt/{row.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("es", ("Intentos de acceso", "Dirección IP", "Ruta", "Inicios de sesión fallidos")),
        ("fr", ("Tentatives de connexion", "Adresse IP", "Chemin", "Nombre d&#x27;échecs")),
    ],
)
def test_the_lockouts_page_is_in_the_secretariats_language(focal_point, secretariat, login, language, words):
    """django-axes ships French but no Spanish: the project's catalogue gives Spanish the page's words."""
    fail(Client(), "fp_ken", 1)
    admin = login(secretariat)
    admin.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    html = admin.get("/admin/axes/accessattempt/").content.decode()
    for word in words:
        assert word in html, word
    assert "IP Address" not in html and "Failed Logins" not in html


def test_other_staff_cannot_see_lockouts(focal_point, login):
    focal_point.is_staff = True  # a stray staff flag does not open the secretariat's pages
    focal_point.save()
    fail(Client(), "fp_bra", 1)
    assert login(focal_point).get("/admin/axes/accessattempt/").status_code == 403


def test_a_huge_username_is_refused_before_it_is_stored_or_parsed(client, db, settings):
    """A username of megabytes reached authenticate(): stored in the lockout records and sent back."""
    response = client.post("/accounts/login/", {"username": "x" * 5000, "password": "whatever"})
    assert response.status_code == 200 and "No account has a username this long." in response.content.decode()
    assert not AccessAttempt.objects.exists()
    # A body larger than REQUEST_MAX_BYTES is refused before anything parses it (31 MiB took a gigabyte).
    settings.REQUEST_MAX_BYTES = 100_000
    response = client.post("/accounts/login/", {"username": "x" * 200_000, "password": "whatever"})
    assert response.status_code == 413 and "limit of 100,000 bytes" in response.content.decode()
    assert not AccessAttempt.objects.exists()


def test_a_body_too_large_is_refused_in_the_visitors_language(client, db, settings):
    """The refusal comes before LocaleMiddleware: it was in English (or in the language of the thread's last
    request) on a Spanish visitor's page, with the limit written 100000."""
    settings.REQUEST_MAX_BYTES = 100_000
    translation.activate("fr")  # what the thread served last
    page = client.post("/accounts/password/reset/", {"email": "x" * 200_000}, HTTP_ACCEPT_LANGUAGE="es")
    html = page.content.decode()
    assert page.status_code == 413 and page["Content-Language"] == "es" and '<html lang="es"' in html
    # Chosen from the request's Accept-Language and cookie: a cache must keep the languages apart.
    assert {"accept-language", "cookie"} <= {v.strip().lower() for v in page["Vary"].split(",")}
    assert "El cuerpo de la solicitud supera el límite de 100\u00a0000 bytes." in html
    assert "Lo que se envió es demasiado grande" in html and "Plataforma de los ENM" in html
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    api = client.post("/api/v1/posts/", "x" * 200_000, content_type="application/json")
    assert api.status_code == 413
    assert (
        api.json()["errors"][0]["message"]
        == "El cuerpo de la solicitud supera el límite de 100\u00a0000 bytes."
    )
