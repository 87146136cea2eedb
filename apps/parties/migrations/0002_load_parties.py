"""Loads the 198 UNFCCC Parties so that every fresh database has them."""

import csv
from pathlib import Path

from django.db import migrations

CSV_PATH = Path(__file__).resolve().parent.parent / "data" / "parties.csv"


def load_parties(apps, schema_editor):
    Party = apps.get_model("parties", "Party")
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    Party.objects.bulk_create(
        [
            Party(
                iso3=row["iso3"],
                name=row["name"],
                regional_group="" if row["un_regional_group"] == "None" else row["un_regional_group"],
                is_ldc=row["is_ldc"] == "true",
                is_sids=row["is_sids"] == "true",
                paris_agreement_party=row["paris_agreement_party"] == "true",
            )
            for row in rows
        ],
        ignore_conflicts=True,
    )


def unload_parties(apps, schema_editor):
    apps.get_model("parties", "Party").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("parties", "0001_initial")]
    operations = [migrations.RunPython(load_parties, unload_parties)]
