"""`manage.py issue_token`: a token issued from a script works as one issued in the admin, is recorded as the
admin records it, and bad arguments get one clear line, never a traceback nor a token."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from tests.factories import FocalPointFactory, SecretariatFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db


def issue(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("issue_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_a_write_token_for_a_party_is_printed_once_and_works(secretariat):
    raw, said = issue("--name", "Kenya MRV", "--scope", "write", "--party", "ken", "--issuer", "secretariat")
    token = ApiToken.objects.get()
    assert raw.startswith(f"nma_{token.prefix}_") and token.matches(raw) and raw not in token.key_hash
    assert (token.name, token.scope, token.party, token.created_by) == (
        "Kenya MRV",
        "write",
        party("KEN"),
        secretariat,
    )
    assert not token.sees_contacts and token.expires_at is None
    assert "shown only this once" in said and raw not in said
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag, entry.object_id) == (secretariat, ADDITION, str(token.pk))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    need = {"kind": "need", "title": "Flood alerts", "description": "Sirens and SMS alerts.",
            "support_types": ["technology"], "focus_areas": ["adaptation"]}  # fmt: skip
    created = client.post("/api/v1/posts/", need, format="json")
    assert created.status_code == 201 and created.json()["party"] == "KEN"


def test_read_stocktake_and_provider_tokens(secretariat):
    SupportProviderFactory(short_name="CTCN")
    issue(
        "--name",
        "Reader",
        "--scope",
        "read",
        "--issuer",
        "secretariat",
        "--contacts",
        "--expires",
        "2099-01-31",
    )
    issue("--name", "Bank", "--scope", "write", "--provider", "ctcn", "--issuer", "secretariat")
    issue("--name", "Committee", "--scope", "stocktake", "--issuer", "secretariat")
    reader, bank, committee = (ApiToken.objects.get(name=n) for n in ("Reader", "Bank", "Committee"))
    assert reader.sees_contacts and timezone.localtime(reader.expires_at).date().isoformat() == "2099-01-31"
    assert bank.provider.short_name == "CTCN" and bank.party is None
    assert committee.scope == "stocktake" and committee.party is None and committee.provider is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "write", "--issuer", "secretariat"], "exactly one Party or one support provider"),
        (["--scope", "read", "--party", "KEN", "--issuer", "secretariat"], "Only a write token acts for"),
        (["--scope", "write", "--party", "XYZ", "--issuer", "secretariat"], "No Party with the code 'XYZ'"),
        (["--scope", "write", "--provider", "NOPE", "--issuer", "secretariat"], "No support provider"),
        (["--scope", "read", "--issuer", "nobody"], "'nobody' is not an active secretariat user"),
        (["--scope", "read", "--issuer", "fp"], "'fp' is not an active secretariat user"),
        (["--scope", "read", "--issuer", "gone"], "'gone' is not an active secretariat user"),
        (["--scope", "read", "--issuer", "secretariat", "--expires", "2001-01-01"], "in the future"),
        (["--scope", "read", "--issuer", "secretariat", "--expires", "soon"], "'soon' is not a date"),
        (["--scope", "read", "--issuer", "secretariat", "--expires", "2099-02-30"], "is not a date"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason_and_issue_nothing(secretariat, args, message):
    FocalPointFactory(username="fp")
    SecretariatFactory(username="gone", is_active=False)
    with pytest.raises(CommandError, match=message):
        issue("--name", "Partner", *args)
    assert not ApiToken.objects.exists() and not LogEntry.objects.exists()


def test_a_name_too_long_is_refused(secretariat):
    with pytest.raises(CommandError, match=r"--name: .*100"):
        issue("--name", "x" * 101, "--scope", "read", "--issuer", "secretariat")
    assert not ApiToken.objects.exists()


def test_an_expiry_time_with_its_offset(secretariat):
    when = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    issue("--name", "Short", "--scope", "read", "--issuer", "secretariat", "--expires", when.isoformat())
    assert ApiToken.objects.get().expires_at == when
