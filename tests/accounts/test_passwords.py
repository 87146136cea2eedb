"""Changing one's password (logged in) and resetting a forgotten one by email."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

OLD = "pw-for-tests-1"  # the factories' password
NEW = "Glacial-lake-alerts-2026"
SITE_URL = "https://nma.example.org"


def logs_in(username: str, password: str) -> bool:
    response = Client().post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302 and response.url == reverse("dashboard")


# --- change ------------------------------------------------------------------------------------------------


def test_profile_links_to_the_password_change(focal_point, login):
    html = login(focal_point).get(reverse("accounts:profile")).content.decode()
    assert f'href="{reverse("accounts:password_change")}"' in html
    assert "Change your password" in html


def test_password_change_requires_login(client):
    response = client.get(reverse("accounts:password_change"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_password_change_page_uses_the_house_form(focal_point, login):
    response = login(focal_point).get(reverse("accounts:password_change"))
    html = response.content.decode()
    assert response.status_code == 200
    for name in ("old_password", "new_password1", "new_password2"):
        assert f'id="field-{name}"' in html and f'name="{name}"' in html
    # The rules for a new password as plain help text (Django's HTML list cannot sit in the help's <span>).
    assert 'id="id_new_password1_helptext"' in html and "<ul><li>" not in html


def test_wrong_current_password_is_refused_on_its_field(focal_point, login):
    client = login(focal_point)
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": "not-my-password", "new_password1": NEW, "new_password2": NEW},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["old_password"]
    assert 'class="error-summary"' in html and 'href="#id_old_password"' in html
    focal_point.refresh_from_db()
    assert focal_point.check_password(OLD)


def test_new_password_is_checked_by_the_validators(focal_point, login):
    response = login(focal_point).post(
        reverse("accounts:password_change"),
        {"old_password": OLD, "new_password1": "12345678", "new_password2": "12345678"},
    )
    assert response.status_code == 200
    assert "new_password2" in response.context["form"].errors
    focal_point.refresh_from_db()
    assert focal_point.check_password(OLD)


def test_password_change_keeps_this_session_and_the_new_password_works(focal_point, login):
    client = login(focal_point)
    other_session = login(focal_point)
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": OLD, "new_password1": NEW, "new_password2": NEW},
        follow=True,
    )
    assert response.redirect_chain == [(reverse("accounts:profile"), 302)]
    assert "Your password is changed." in response.content.decode()
    # Still logged in here; a session opened elsewhere with the old password ends.
    assert client.get(reverse("dashboard")).status_code == 200
    assert other_session.get(reverse("dashboard")).status_code == 302
    assert logs_in("fp_ken", NEW)
    assert not logs_in("fp_ken", OLD)


# --- reset -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["accounts:password_change", "admin:password_change"])
def test_wrong_current_passwords_are_limited(page, focal_point, secretariat, login, settings):
    """Whoever holds a session could guess the current password on this form without limit (django-axes only
    sees logins), then change it and lock its owner out."""
    settings.AXES_FAILURE_LIMIT = 3
    user = secretariat if page.startswith("admin") else focal_point
    client = login(user)
    url = reverse(page)
    change = {"new_password1": NEW, "new_password2": NEW}
    for _ in range(3):
        response = client.post(url, {"old_password": "wrong-guess", **change})
        assert response.status_code == 200
        assert "too_many_attempts" not in str(response.context["form"].errors.as_data())
    # The limit is reached: even the right password is not checked now.
    response = client.post(url, {"old_password": OLD, **change})
    assert response.status_code == 200
    assert response.context["form"].errors["old_password"] == [
        f"Too many wrong passwords: try again in {settings.LOGIN_LOCKOUT_MINUTES} minutes."
    ]
    user.refresh_from_db()
    assert user.check_password(OLD) and not user.check_password(NEW)


def test_a_right_current_password_clears_the_count(focal_point, login, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client = login(focal_point)
    url = reverse("accounts:password_change")
    client.post(url, {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW})
    # A right current password with a new one the validators refuse still clears the count.
    client.post(url, {"old_password": OLD, "new_password1": "short", "new_password2": "short"})
    client.post(url, {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW})
    response = client.post(url, {"old_password": OLD, "new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 302
    focal_point.refresh_from_db()
    assert focal_point.check_password(NEW)


def test_a_password_reset_or_the_admins_unlock_clears_the_count_of_wrong_current_passwords(
    focal_point, secretariat, login, settings
):
    from axes.models import AccessAttempt
    from django.core.cache import cache

    settings.AXES_FAILURE_LIMIT = 1
    key = f"password-change-failures:{focal_point.pk}"
    client = login(focal_point)
    url = reverse("accounts:password_change")
    client.post(url, {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW})
    assert cache.get(key) == 1
    # The secretariat unlocks the user's login lockout: the password change is open again too.
    AccessAttempt.objects.create(username=focal_point.username, ip_address="10.0.0.1", failures_since_start=5,
                                 user_agent="", path_info="/accounts/login/")  # fmt: skip
    login(secretariat).post("/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": [
        str(AccessAttempt.objects.get().pk)]})  # fmt: skip
    assert cache.get(key) is None
    client.post(url, {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW})
    assert cache.get(key) == 1
    # A password reset clears it as well.
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(focal_point.pk))
    token = default_token_generator.make_token(focal_point)
    anonymous = Client()
    form_url = anonymous.get(reverse("accounts:password_reset_confirm", args=[uid, token])).url
    assert anonymous.post(form_url, {"new_password1": NEW, "new_password2": NEW}).status_code == 302
    assert cache.get(key) is None


def test_the_admins_password_change_page_is_the_admins(secretariat, login):
    response = login(secretariat).get(reverse("admin:password_change"))
    assert response.status_code == 200
    assert response.resolver_match.func.view_class.__name__ == "AdminPasswordChangeView"
    html = response.content.decode()
    assert "NMA Platform administration" in html and 'name="old_password"' in html
    # Only the admin's users reach it.
    assert Client().get(reverse("admin:password_change")).status_code == 302


def test_login_page_links_to_the_password_reset(client):
    html = client.get(reverse("login")).content.decode()
    assert f'href="{reverse("accounts:password_reset")}"' in html
    assert "Forgotten your password?" in html


def test_admin_login_offers_the_password_reset(client):
    html = client.get("/admin/login/").content.decode()
    assert 'href="/admin/password_reset/"' in html
    response = client.get("/admin/password_reset/")
    assert response.status_code == 302 and response.url == reverse("accounts:password_reset")


def reset_link(message) -> str:
    links = re.findall(r"https?://\S+", message.body)
    assert len(links) == 1, message.body
    return links[0]


def test_password_reset_end_to_end(focal_point, client, settings):
    settings.SITE_URL = SITE_URL
    page = client.get(reverse("accounts:password_reset"))
    assert page.status_code == 200 and 'id="field-email"' in page.content.decode()

    response = client.post(reverse("accounts:password_reset"), {"email": "FP_KEN@example.org"})
    assert response.status_code == 302 and response.url == reverse("accounts:password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["fp_ken@example.org"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == "Reset your password on the NMA Platform"
    assert "fp_ken" in message.body  # the user name, which people forget too

    link = reset_link(message)
    assert link.startswith(f"{SITE_URL}/accounts/password/reset/")
    # Django swaps the token for a session key at once, so the page's address never leaks it.
    response = client.get(link.removeprefix(SITE_URL))
    assert response.status_code == 302
    form_url = response.url
    page = client.get(form_url)
    assert page.status_code == 200 and 'name="new_password1"' in page.content.decode()

    response = client.post(form_url, {"new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 302 and response.url == reverse("accounts:password_reset_complete")
    assert "Your password is set" in client.get(response.url).content.decode()
    assert logs_in("fp_ken", NEW)
    assert not logs_in("fp_ken", OLD)
    # The link works once.
    used = client.get(link.removeprefix(SITE_URL), follow=True)
    assert "This link no longer works" in used.content.decode()


def test_reset_link_uses_site_url_not_the_requests_host(focal_point, client, settings):
    """A forged Host header must not put the attacker's site in the link the user receives."""
    settings.SITE_URL = SITE_URL
    settings.ALLOWED_HOSTS = ["testserver", "attacker.example"]
    client.post(
        reverse("accounts:password_reset"), {"email": focal_point.email}, HTTP_HOST="attacker.example"
    )
    assert reset_link(mail.outbox[0]).startswith(f"{SITE_URL}/accounts/password/reset/")
    assert "attacker.example" not in mail.outbox[0].body


def without_csrf(html: bytes) -> str:
    # The CSRF token is masked afresh on every page.
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html.decode())


def test_unknown_address_gets_the_same_answer_and_no_email(focal_point, client):
    known = client.post(reverse("accounts:password_reset"), {"email": focal_point.email}, follow=True)
    mail.outbox.clear()
    unknown = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.org"}, follow=True)
    assert mail.outbox == []
    assert unknown.redirect_chain == known.redirect_chain == [(reverse("accounts:password_reset_done"), 302)]
    assert without_csrf(unknown.content) == without_csrf(known.content)


def test_inactive_user_gets_no_email(focal_point, client):
    focal_point.is_active = False
    focal_point.save()
    response = client.post(reverse("accounts:password_reset"), {"email": focal_point.email})
    assert response.status_code == 302 and response.url == reverse("accounts:password_reset_done")
    assert mail.outbox == []


def test_invalid_reset_link_says_so(focal_point, client):
    url = reverse("accounts:password_reset_confirm", kwargs={"uidb64": "MQ", "token": "bad-token"})
    response = client.get(url)
    assert response.status_code == 200
    assert "This link no longer works" in response.content.decode()
    assert f'href="{reverse("accounts:password_reset")}"' in response.content.decode()


def test_the_reset_email_is_sent_by_a_task_not_in_the_request(focal_point, client, monkeypatch):
    """So the answer takes as long for a known address as for an unknown one (no mail server in the request)."""
    from apps.accounts import tasks

    queued = []
    monkeypatch.setattr(tasks.send_password_reset, "delay", lambda user_id: queued.append(user_id))
    response = client.post(reverse("accounts:password_reset"), {"email": focal_point.email})
    assert response.status_code == 302
    assert queued == [focal_point.pk] and mail.outbox == []
    # The task makes the link itself (no token travels through the broker).
    assert tasks.send_password_reset(focal_point.pk) == 1
    assert reset_link(mail.outbox[0]).startswith("http")


def test_without_a_broker_the_reset_email_is_sent_in_the_request(focal_point, client, monkeypatch):
    from kombu.exceptions import OperationalError

    from apps.accounts import tasks

    def broker_down(user_id):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.send_password_reset, "delay", broker_down)
    client.post(reverse("accounts:password_reset"), {"email": focal_point.email})
    assert [m.to for m in mail.outbox] == [[focal_point.email]]


def test_at_most_three_reset_emails_an_hour_to_one_address(focal_point, client):
    for _ in range(5):
        response = client.post(reverse("accounts:password_reset"), {"email": focal_point.email})
        assert response.url == reverse("accounts:password_reset_done")  # the same answer every time
    assert len(mail.outbox) == 3
    # The address in another case is the same address.
    client.post(reverse("accounts:password_reset"), {"email": focal_point.email.upper()})
    assert len(mail.outbox) == 3


def test_the_reset_email_goes_while_the_cache_is_down(focal_point, client, settings):
    """The hourly count lives in the cache (Redis in production): an outage made the reset page a 500."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    response = client.post(reverse("accounts:password_reset"), {"email": focal_point.email})
    assert response.status_code == 302 and response.url == reverse("accounts:password_reset_done")
    assert [m.to for m in mail.outbox] == [[focal_point.email]]


def test_a_reset_task_for_a_user_deactivated_meanwhile_sends_nothing(focal_point):
    from apps.accounts.tasks import send_password_reset

    focal_point.is_active = False
    focal_point.save()
    assert send_password_reset(focal_point.pk) == 0 and mail.outbox == []
