"""Print the stocktake figures for a period: `manage.py stocktake --from 2026-01-01 --to 2026-06-30`."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.stocktake.exports import export_csv, export_json
from apps.stocktake.selectors import EARLIEST, LATEST, NotADate, calendar_date, stocktake_export


def _date(value: str) -> dt.date:
    try:
        day = calendar_date(value)
    except NotADate as error:
        raise CommandError(f"{value!r} is not a date: {error}") from None
    if not EARLIEST <= day <= LATEST:  # as the report's form: 9999-12-31 had no next day to end the period
        raise CommandError(f"{value} is out of range: give a date from {EARLIEST} to {LATEST}.")
    return day


class Command(BaseCommand):
    help = "Print every stocktake figure for a period (JSON or CSV, the export contract of FIGURES.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", required=True, help="last day (included), YYYY-MM-DD")
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--regional-group", help='e.g. "African States"')
        # Checked by the export, which takes what the page and the API take: yes/no, true/false, 1/0.
        parser.add_argument("--ldc", help="only LDC Parties (yes, true, 1) or only the others (no, false, 0)")
        parser.add_argument("--sids", help="only SIDS (yes, true, 1) or only the others (no, false, 0)")
        parser.add_argument("--focus-area", help="adaptation, mitigation or clean_energy")
        parser.add_argument("--support-type", help="finance, technology or capacity_building")

    def handle(self, *args, **options) -> None:
        filters = {
            "regional_group": options["regional_group"],
            "ldc": options["ldc"],
            "sids": options["sids"],
            "focus_area": options["focus_area"],
            "support_type": options["support_type"],
        }
        try:
            export = stocktake_export(
                date_from=_date(options["date_from"]),
                date_to=_date(options["date_to"]),
                filters={key: value for key, value in filters.items() if value is not None},
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            export_json(export) if options["format"] == "json" else export_csv(export), ending=""
        )
