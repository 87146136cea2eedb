"""The data steps that write Parties' names, run on a database as it may be when they come."""

from importlib import import_module

import pytest
from django.apps import apps as django_apps

from apps.parties.models import Party

pytestmark = pytest.mark.django_db


def test_names_left_blank_by_an_early_0006_are_filled_and_the_secretariat_s_are_kept():
    """0006 ran with parties.csv's new columns still empty on a database migrated before they were filled: its
    Parties had no Arabic, Chinese or Russian name, for good. What the secretariat wrote since stays."""
    Party.objects.update(name_ar="", name_zh="", name_ru="")
    Party.objects.filter(iso3="CHN").update(name_zh="中华人民共和国")
    migration = import_module("apps.parties.migrations.0007_fill_blank_names_ar_zh_ru")
    migration.fill_blank_names(django_apps, None)
    kenya, china = Party.objects.get(iso3="KEN"), Party.objects.get(iso3="CHN")
    assert (kenya.name_ar, kenya.name_zh, kenya.name_ru) == ("كينيا", "肯尼亚", "Кения")
    assert china.name_zh == "中华人民共和国" and china.name_ru == "Китай"
    assert not Party.objects.filter(name_ar="").exists() and not Party.objects.filter(name_ru="").exists()
