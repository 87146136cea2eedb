"""API tokens in the admin: errors on the field to fix, no expiry in the past, and revocations in the history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import ApiToken
from tests.factories import SupportProviderFactory, party

pytestmark = pytest.mark.django_db

ADD = reverse("admin:accounts_apitoken_add")
LIST = reverse("admin:accounts_apitoken_changelist")


@pytest.fixture
def staff(login, secretariat):
    return login(secretariat)


def token_data(**fields) -> dict:
    data = {"name": "Kenya MRV registry", "scope": "write", "party": party("KEN").pk}
    data.update(fields)
    return {key: value for key, value in data.items() if value not in ("", None)}


def when(moment) -> dict:
    local = timezone.localtime(moment)
    return {"expires_at_0": local.strftime("%Y-%m-%d"), "expires_at_1": local.strftime("%H:%M:%S")}


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    return response.context["adminform"].form.errors


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"party": ""}, "party", "exactly one Party or one support provider"),
        ({"provider": "GCF"}, "provider", "exactly one Party or one support provider"),
        ({"scope": "read"}, "party", "Only a write token acts for a Party or a support provider"),
        ({"scope": "stocktake", "party": "", "provider": "GCF"}, "provider", "Only a write token acts"),
    ],
)
def test_scope_errors_are_on_the_field_without_the_constraint(staff, fields, field, words):
    provider = SupportProviderFactory(short_name="GCF")
    if fields.get("provider") == "GCF":
        fields = {**fields, "provider": provider.pk}
    response = staff.post(ADD, token_data(**fields))
    errors = form_errors(response)
    assert any(words in error for error in errors.get(field, [])), errors
    assert "__all__" not in errors
    assert "is violated" not in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_token_cannot_be_issued_already_expired(staff):
    response = staff.post(ADD, {**token_data(), **when(timezone.now() - timedelta(days=1))})
    assert "in the future" in " ".join(form_errors(response)["expires_at"])
    assert not ApiToken.objects.exists()
    response = staff.post(ADD, {**token_data(), **when(timezone.now() + timedelta(days=30))})
    assert response.status_code == 200 and "Token issued" in response.content.decode()
    assert ApiToken.objects.get().expires_at > timezone.now()


def test_an_expiry_cannot_be_moved_into_the_past(staff, secretariat):
    token, _raw = ApiToken.objects.issue(
        name="Bank", scope="read", created_by=secretariat, expires_at=timezone.now() + timedelta(days=3)
    )
    url = reverse("admin:accounts_apitoken_change", args=[token.pk])
    response = staff.post(url, {"name": "Bank", **when(timezone.now() - timedelta(hours=1))})
    assert "revoke it" in " ".join(form_errors(response)["expires_at"])
    # Saving other changes of a token whose expiry has passed meanwhile is fine: the expiry did not change.
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(days=1))
    token.refresh_from_db()
    response = staff.post(url, {"name": "Bank (old)", **when(token.expires_at)})
    assert response.status_code == 302


def test_revoking_writes_the_history_of_each_token(staff, secretariat):
    first, _raw = ApiToken.objects.issue(name="Bank", scope="read", created_by=secretariat)
    second, _raw = ApiToken.objects.issue(name="Agency", scope="read", created_by=secretariat)
    already, _raw = ApiToken.objects.issue(name="Old", scope="read", created_by=secretariat)
    ApiToken.objects.filter(pk=already.pk).update(revoked_at=timezone.now() - timedelta(days=1))

    response = staff.post(LIST, {"action": "revoke", "_selected_action": [first.pk, second.pk, already.pk]})
    assert response.status_code == 302

    entries = LogEntry.objects.filter(content_type__model="apitoken").order_by("object_id")
    assert sorted(int(e.object_id) for e in entries) == [first.pk, second.pk]  # not the one revoked before
    for entry in entries:
        assert (entry.user, entry.action_flag) == (secretariat, CHANGE)
        assert "Revoked the token" in entry.get_change_message()
    history = staff.get(reverse("admin:accounts_apitoken_history", args=[first.pk])).content.decode()
    assert "Revoked the token" in history and secretariat.username in history
    assert "added via this admin site" not in history  # Django's text for an empty history
