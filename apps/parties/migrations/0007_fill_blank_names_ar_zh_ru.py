"""The Arabic, Chinese and Russian names of parties.csv, written where a Party still has none.

Migration 0006 added the fields and filled them from parties.csv; but the columns of parties.csv were empty when
0006 was first written (they were filled by later changes), so a database migrated in between kept every Party
without those names, and 0006 never runs again there. Only blank names are filled: a name the secretariat has
written since, in the admin, is kept. On a database that 0006 filled, nothing changes."""

import csv
from pathlib import Path

from django.db import migrations

CSV_PATH = Path(__file__).resolve().parent.parent / "data" / "parties.csv"
FIELDS = ("name_ar", "name_zh", "name_ru")


def fill_blank_names(apps, schema_editor):
    Party = apps.get_model("parties", "Party")
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        rows = {row["iso3"]: row for row in csv.DictReader(handle)}
    changed = []
    for party in Party.objects.filter(iso3__in=rows):
        blank = [field for field in FIELDS if not getattr(party, field).strip() and rows[party.iso3].get(field)]
        for field in blank:
            setattr(party, field, rows[party.iso3][field])
        if blank:
            changed.append(party)
    Party.objects.bulk_update(changed, FIELDS)


class Migration(migrations.Migration):
    dependencies = [("parties", "0006_party_names_ar_zh_ru")]

    operations = [migrations.RunPython(fill_blank_names, migrations.RunPython.noop)]
