"""Print every stored match of a published need as JSON Lines (the format of docs/FORMATS.md)."""

import json
import os
import sys

from django.core.management.base import BaseCommand

from apps.matching.selectors import match_export_rows


class Command(BaseCommand):
    help = "Print the stored matches of published needs as JSON Lines: need, offer, score, rank."

    def handle(self, *args, **options):
        # Letters as they are on a UTF-8 output; as JSON \u escapes (the same JSON) on any other, where an external
        # id in Arabic or Chinese raised UnicodeEncodeError (PYTHONIOENCODING=ascii, an old terminal).
        encoding = (
            (getattr(self.stdout._out, "encoding", None) or "utf-8").lower().replace("-", "").replace("_", "")
        )
        ascii_only = encoding != "utf8"
        try:
            for row in match_export_rows():
                self.stdout.write(json.dumps(row, ensure_ascii=ascii_only))
            self.stdout.flush()
        except BrokenPipeError:
            # The reader stopped reading (`export_matches | head`): stop too, quietly, not with a traceback.
            if self.stdout._out is sys.stdout:
                # Python flushes stdout again at exit, and would report the closed pipe there.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
