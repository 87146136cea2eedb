"""Each Party's Spanish name (UNTERM's short name), from parties.csv, for Spanish pages."""

import csv
from pathlib import Path

from django.db import migrations, models

CSV_PATH = Path(__file__).resolve().parent.parent / "data" / "parties.csv"


def fill_spanish_names(apps, schema_editor):
    Party = apps.get_model("parties", "Party")
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        names = {row["iso3"]: row["name_es"] for row in csv.DictReader(handle)}
    parties = list(Party.objects.filter(iso3__in=names))
    for party in parties:
        party.name_es = names[party.iso3]
    Party.objects.bulk_update(parties, ["name_es"])


class Migration(migrations.Migration):
    dependencies = [("parties", "0004_party_name_fr")]

    operations = [
        migrations.AddField(
            model_name="party",
            name="name_es",
            field=models.CharField(blank=True, max_length=120, verbose_name="name in Spanish"),
        ),
        migrations.RunPython(fill_spanish_names, migrations.RunPython.noop),
    ]
