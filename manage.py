#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
import traceback


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nma_platform.settings.local")
    from django.core.management import execute_from_command_line
    from django.db import connections
    from django.db.utils import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError as error:
        # A database that cannot be reached (a wrong host or port in DATABASE_URL, PostgreSQL down) said so in a
        # traceback of 40 lines; other database errors keep theirs.
        frames = traceback.walk_tb(error.__traceback__)
        if not any(frame.f_code.co_name == "get_new_connection" for frame, _line in frames):
            raise  # not while connecting
        settings = connections["default"].settings_dict
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if settings["ENGINE"].endswith("sqlite3"):
            sys.exit(f"Cannot open the SQLite database {settings['NAME']} (DATABASE_URL): {first_line}")
        where = f"{settings.get('HOST') or 'localhost'}:{settings.get('PORT') or 'default port'}"
        sys.exit(f"Cannot reach the database {settings.get('NAME')} at {where} (DATABASE_URL): {first_line}")


if __name__ == "__main__":
    main()
