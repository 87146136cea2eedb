"""Each Party's Arabic, Chinese and Russian names (UNTERM's short names), from parties.csv, for pages in those
languages."""

import csv
from pathlib import Path

from django.db import migrations, models

CSV_PATH = Path(__file__).resolve().parent.parent / "data" / "parties.csv"
FIELDS = ("name_ar", "name_zh", "name_ru")


def fill_names(apps, schema_editor):
    Party = apps.get_model("parties", "Party")
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        rows = {row["iso3"]: row for row in csv.DictReader(handle)}
    parties = list(Party.objects.filter(iso3__in=rows))
    for party in parties:
        for field in FIELDS:
            setattr(party, field, rows[party.iso3].get(field) or "")
    Party.objects.bulk_update(parties, FIELDS)


class Migration(migrations.Migration):
    dependencies = [("parties", "0005_party_name_es")]

    operations = [
        migrations.AddField(
            model_name="party",
            name="name_ar",
            field=models.CharField(blank=True, max_length=120, verbose_name="name in Arabic"),
        ),
        migrations.AddField(
            model_name="party",
            name="name_zh",
            field=models.CharField(blank=True, max_length=120, verbose_name="name in Chinese"),
        ),
        migrations.AddField(
            model_name="party",
            name="name_ru",
            field=models.CharField(blank=True, max_length=120, verbose_name="name in Russian"),
        ),
        migrations.RunPython(fill_names, migrations.RunPython.noop),
    ]
