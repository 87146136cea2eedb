"""`manage.py issue_token --name NAME --scope SCOPE [--party ISO3 | --provider SHORT_NAME] ...`: issue an API
token from a script (a deployment, a partner's set-up), as the admin's *API tokens* page issues one. The raw
token is printed once, alone on standard output, and never stored; the issue is in the admin's history."""

from __future__ import annotations

from django.contrib.admin.models import ADDITION, LogEntry
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.accounts.models import ApiToken, User
from apps.parties.models import Party, SupportProvider


class Command(BaseCommand):
    help = (
        "Issue an API token and print it (once: only its hash is kept). A write token acts for one Party "
        "(--party) or one support provider (--provider); read and stocktake tokens for nobody."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="which system uses it, e.g. 'Kenya MRV registry'")
        parser.add_argument("--scope", required=True, choices=ApiToken.Scope.values)
        who = parser.add_mutually_exclusive_group()
        who.add_argument("--party", metavar="ISO3", help="write tokens: the Party the system posts for")
        who.add_argument("--provider", metavar="SHORT_NAME", help="write tokens: the provider it posts for")
        parser.add_argument(
            "--contacts",
            action="store_true",
            help="the system receives the contact name and email of the posts it reads (personal data)",
        )
        parser.add_argument(
            "--expires",
            metavar="DATE",
            help="a date (YYYY-MM-DD, the token stops at its start) or an ISO time",
        )
        parser.add_argument(
            "--issuer",
            metavar="USERNAME",
            required=True,
            help="the secretariat user who vouches for it (recorded, as the admin records who issued a token)",
        )

    def handle(self, *args, **options) -> None:
        issuer = User.objects.filter(username=options["issuer"]).first()
        if issuer is None or not (issuer.is_active and issuer.is_secretariat):
            raise CommandError(
                f"{options['issuer']!r} is not an active secretariat user: only they issue tokens."
            )
        party = provider = None
        if options["party"]:
            party = Party.objects.filter(iso3=options["party"].strip().upper()).first()
            if party is None:
                raise CommandError(
                    f"No Party with the code {options['party']!r} (ISO 3166 alpha-3, e.g. KEN)."
                )
        if options["provider"]:
            provider = SupportProvider.objects.filter(short_name__iexact=options["provider"].strip()).first()
            if provider is None:
                raise CommandError(f"No support provider with the short name {options['provider']!r}.")
        expires_at = _time(options["expires"]) if options["expires"] else None
        if expires_at is not None and expires_at <= timezone.now():
            raise CommandError("--expires: give a time in the future, or leave it out.")
        with transaction.atomic():
            try:
                token, raw = ApiToken.objects.issue(
                    name=options["name"],
                    scope=options["scope"],
                    created_by=issuer,
                    party=party,
                    provider=provider,
                    expires_at=expires_at,
                    sees_contacts=options["contacts"],
                )
            except ValidationError as error:
                problems = [
                    f"--{field}: {message}" if field != "__all__" else message
                    for field, messages in error.message_dict.items()
                    for message in messages
                ]
                raise CommandError(" ".join(problems)) from None
            LogEntry.objects.log_actions(
                user_id=issuer.pk,
                queryset=[token],
                action_flag=ADDITION,
                change_message="Issued with manage.py issue_token.",
                single_object=True,
            )
        self.stderr.write(
            f"Issued {token} ({token.get_scope_display()}). Give it to the partner system now: it is shown "
            "only this once; revoke it in the admin's API tokens."
        )
        self.stdout.write(raw)


def _time(text: str):
    """A date (its start, in the site's time zone) or an ISO time with or without its offset."""
    try:
        value = parse_datetime(text.strip())
        if value is None and (day := parse_date(text.strip())) is not None:
            value = timezone.datetime.combine(day, timezone.datetime.min.time())
    except ValueError:
        value = None
    if value is None:
        raise CommandError(f"--expires: {text!r} is not a date (YYYY-MM-DD) nor an ISO time.")
    return timezone.make_aware(value) if timezone.is_naive(value) else value
