"""Print every stored match of a published need as JSON Lines (the format of docs/FORMATS.md)."""

import json

from django.core.management.base import BaseCommand

from apps.matching.selectors import match_export_rows


class Command(BaseCommand):
    help = "Print the stored matches of published needs as JSON Lines: need, offer, score, rank."

    def handle(self, *args, **options):
        for row in match_export_rows():
            self.stdout.write(json.dumps(row, ensure_ascii=False))
