"""Each Party's French name (UNTERM's short name), from parties.csv, for French pages."""

import csv
from pathlib import Path

from django.db import migrations, models

CSV_PATH = Path(__file__).resolve().parent.parent / "data" / "parties.csv"


def fill_french_names(apps, schema_editor):
    Party = apps.get_model("parties", "Party")
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        names = {row["iso3"]: row["name_fr"] for row in csv.DictReader(handle)}
    parties = list(Party.objects.filter(iso3__in=names))
    for party in parties:
        party.name_fr = names[party.iso3]
    Party.objects.bulk_update(parties, ["name_fr"])


class Migration(migrations.Migration):
    dependencies = [("parties", "0003_provider_codes_validated")]

    operations = [
        migrations.AddField(
            model_name="party",
            name="name_fr",
            field=models.CharField(blank=True, max_length=120, verbose_name="name in French"),
        ),
        migrations.RunPython(fill_french_names, migrations.RunPython.noop),
    ]
