"""`manage.py load_demo`: demo users for every role, demo support providers and demo needs and offers.

Refused where `DEMO_DATA_ALLOWED` is off (production). Idempotent, so `make run` can call it every time: users and providers are updated in place, and the demo
posts go through the same code path as `import_posts` with --keep-existing, so a post the demo secretariat
has since published or returned keeps its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts.models import Role
from apps.parties.models import Party, SupportProvider

DEMO_POSTS = Path(__file__).resolve().parent.parent.parent / "data" / "demo_posts.jsonl"

Kind = SupportProvider.Kind
# Short names match the `provider` field of demo_posts.jsonl. Emails are placeholders: a demo must never
# write to a real organisation.
DEMO_PROVIDERS = [
    ("CTCN", "Climate Technology Centre and Network", Kind.AGENCY, "https://www.ctc-n.org"),
    ("GCF", "Green Climate Fund", Kind.FUND, "https://www.greenclimate.fund"),
    ("IRENA-CIP", "IRENA Climate Investment Platform", Kind.AGENCY, "https://www.irena.org"),
    ("NDCP", "NDC Partnership", Kind.AGENCY, "https://ndcpartnership.org"),
    ("AF", "Adaptation Fund", Kind.FUND, "https://www.adaptation-fund.org"),
    (
        "CREWS",
        "Climate Risk and Early Warning Systems initiative",
        Kind.FUND,
        "https://www.crews-initiative.org",
    ),
]


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str
    first_name: str
    last_name: str
    party: str = ""
    provider: str = ""
    staff: bool = False
    organisation: str = ""


# Fixed passwords: the demo is for a laptop or a closed test server, never production data.
DEMO_USERS = [
    DemoUser("secretariat", "secretariat-demo", Role.SECRETARIAT, "Sam", "Secretariat", staff=True,
             organisation="UNFCCC secretariat"),
    DemoUser("focal.kenya", "focalpoint-demo", Role.FOCAL_POINT, "Wanjiru", "Kamau", party="KEN",
             organisation="Ministry of Environment, Climate Change and Forestry"),
    DemoUser("focal.fiji", "focalpoint-demo", Role.FOCAL_POINT, "Losana", "Vuniwaqa", party="FJI",
             organisation="Ministry of Environment and Climate Change"),
    DemoUser("provider.ctcn", "provider-demo", Role.PROVIDER, "Tomás", "Rivera", provider="CTCN",
             organisation="Climate Technology Centre and Network"),
    DemoUser("committee", "committee-demo", Role.COMMITTEE, "Amina", "Diallo",
             organisation="Glasgow Committee on Non-market Approaches"),
]  # fmt: skip


class Command(BaseCommand):
    help = "Load demo users, support providers and posts (safe to run again)."

    def handle(self, *args, **options) -> None:
        if not settings.DEMO_DATA_ALLOWED:
            # It would make `secretariat` a superuser with a published password, and reactivate and readdress
            # real providers of the same short names.
            raise CommandError(
                "load_demo is refused under these settings (DEMO_DATA_ALLOWED is off, as in production): it "
                "creates accounts with published passwords and overwrites the providers it names. Load demo "
                "data on a laptop or a test server with nma_platform.settings.local."
            )
        with transaction.atomic():
            providers = self._providers()
            self._users(providers)
        call_command(
            "import_posts",
            str(DEMO_POSTS),
            "--as",
            "secretariat",
            "--keep-existing",
            stdout=self.stdout,
            stderr=self.stderr,
        )
        self.stdout.write("\nDemo logins (passwords are fixed; for demos only):")
        width = max(len(u.username) for u in DEMO_USERS)
        for user in DEMO_USERS:
            acts_for = user.party or user.provider
            role = Role(user.role).label + (f" ({acts_for})" if acts_for else "")
            self.stdout.write(f"  {user.username:<{width}}  {user.password:<18}  {role}")

    def _providers(self) -> dict[str, SupportProvider]:
        providers = {}
        for short_name, name, kind, website in DEMO_PROVIDERS:
            providers[short_name], _created = SupportProvider.objects.update_or_create(
                short_name=short_name,
                defaults={
                    "name": name,
                    "kind": kind,
                    "website": website,
                    "contact_email": f"demo-{short_name.lower()}@example.org",
                    "is_active": True,
                },
            )
        return providers

    def _users(self, providers: dict[str, SupportProvider]) -> None:
        User = get_user_model()
        for demo in DEMO_USERS:
            user = User.objects.filter(username=demo.username).first() or User(username=demo.username)
            user.first_name, user.last_name = demo.first_name, demo.last_name
            user.email = f"{demo.username}@example.org"
            user.role = demo.role
            user.party = Party.objects.get(iso3=demo.party) if demo.party else None
            user.provider = providers[demo.provider] if demo.provider else None
            user.organisation = demo.organisation
            # The secretariat account also manages users and API tokens, whose admin uses Django permissions.
            user.is_staff = user.is_superuser = demo.staff
            user.is_active = True
            user.set_password(demo.password)
            user.save()
