"""Spanish pages name each Party by the UN's Spanish short name (UNTERM), in Spanish alphabetical order, as
French pages do in French; the API and exports keep the English names."""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from apps.parties.models import NAME_FIELDS, Party, name_field
from tests.factories import FocalPointFactory, PostFactory, party

from .party_lists import by_name, parties_in_filter

pytestmark = pytest.mark.django_db


def test_every_party_has_a_spanish_name():
    assert Party.objects.count() == 198
    assert not Party.objects.filter(name_es="").exists()
    names = dict(Party.objects.values_list("iso3", "name_es"))
    assert len(set(names.values())) == 198
    assert names["SEN"] == "Senegal" and names["DEU"] == "Alemania" and names["EUU"] == "Unión Europea"
    # UNTERM's names, not the informal ones ("Bolivia", "Rusia", "Holanda", "Tanzania", "Vietnam").
    assert names["BOL"] == "Bolivia (Estado Plurinacional de)" and names["RUS"] == "Federación de Rusia"
    assert names["NLD"] == "Países Bajos (Reino de los)" and names["TZA"] == "República Unida de Tanzanía"
    assert names["VEN"] == "Venezuela (República Bolivariana de)" and names["VNM"] == "Viet Nam"
    assert names["GBR"] == "Reino Unido de Gran Bretaña e Irlanda del Norte" and names["TUR"] == "Türkiye"
    assert names["GNQ"] == "Guinea Ecuatorial" and names["NZL"] == "Nueva Zelandia"


def test_the_name_field_follows_the_language():
    assert NAME_FIELDS == ("name", "name_fr", "name_es", "name_ar", "name_zh", "name_ru")
    codes = ("en", "fr", "fr-ca", "es", "es-419", "ar", "zh-hans", "ru", "pt", "")
    assert [name_field(code) for code in codes] == [
        "name", "name_fr", "name_fr", "name_es", "name_es", "name_ar", "name_zh", "name_ru", "name", "name"
    ]  # fmt: skip
    with translation.override("es"):
        assert name_field() == "name_es"


def test_a_party_is_named_in_the_active_language():
    russia = party("RUS")
    assert russia.local_name == "Russian Federation"
    with translation.override("fr"):
        assert russia.local_name == "Fédération de Russie"
    with translation.override("es"):
        assert (russia.local_name, str(russia)) == ("Federación de Rusia", "Federación de Rusia (RUS)")
    russia.name_es = ""  # a Party the secretariat added without one
    with translation.override("es"):
        assert russia.local_name == "Russian Federation"


def test_the_list_names_parties_in_spanish_on_spanish_pages(client):
    PostFactory(title="Alerta temprana", party=party("NLD"))
    client.cookies["django_language"] = "es"
    spanish = client.get(reverse("posts:list")).content.decode()
    assert "Países Bajos (Reino de los)" in spanish  # the post card
    options = parties_in_filter(spanish)
    assert len(options) == 198 and ("DEU", "Alemania (DEU)") in options
    labels = [label for _code, label in options]
    assert labels == sorted(labels, key=by_name)
    # In Spanish alphabetical order: Alemania (DEU) before Argelia (DZA); Sudáfrica (ZAF) among the S's, Países
    # Bajos (NLD) among the P's, Emiratos Árabes Unidos (ARE) among the E's.
    codes = [code for code, _label in options]
    assert codes.index("DEU") < codes.index("DZA") < codes.index("ESP")
    assert codes.index("LKA") < codes.index("ZAF") < codes.index("SWE")
    assert codes.index("OMN") < codes.index("NLD") < codes.index("PAK")
    assert codes.index("SLV") < codes.index("ARE") < codes.index("ERI")


def test_the_post_form_and_the_dashboard_name_parties_in_spanish(login):
    client = login(FocalPointFactory(username="fp_bol", party=party("BOL")))
    client.cookies["django_language"] = "es"
    assert "Bolivia (Estado Plurinacional de)" in client.get(reverse("dashboard")).content.decode()
    form = client.get(reverse("posts:create")).content.decode()
    assert "Alemania (DEU)" in form and "Germany (DEU)" not in form and "Allemagne (DEU)" not in form


def test_the_api_keeps_the_english_names(client):
    body = client.get("/api/v1/parties/", HTTP_ACCEPT_LANGUAGE="es").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert next(row for row in rows if row["iso3"] == "RUS")["name"] == "Russian Federation"


def test_the_admin_lists_parties_in_spanish_order_on_spanish_pages(login, secretariat):
    client = login(secretariat)
    client.cookies["django_language"] = "es"
    html = client.get("/admin/accounts/user/add/").content.decode()
    select = re.search(r'<select name="party"[^>]*>(.*?)</select>', html, re.S).group(1)
    labels = re.findall(r'<option value="\d+"[^>]*>([^<]*)</option>', select)
    assert len(labels) == 198
    assert labels == sorted(labels, key=by_name)
    assert labels.index("Alemania (DEU)") < labels.index("Argelia (DZA)") < labels.index("Sudáfrica (ZAF)")
    assert (
        labels.index("Guinea (GIN)")
        < labels.index("Guinea-Bissau (GNB)")
        < labels.index("Guinea Ecuatorial (GNQ)")
    )


def test_the_admin_finds_a_party_and_its_posts_by_the_spanish_name(login, secretariat):
    client = login(secretariat)
    found = client.get(reverse("admin:parties_party_changelist"), {"q": "Federación de Rusia"})
    assert found.context["cl"].result_count == 1 and "Federación de Rusia" in found.content.decode()
    PostFactory(title="Alerta temprana", party=party("NLD"))
    posts = client.get(reverse("admin:posts_post_changelist"), {"q": "Países Bajos"})
    assert posts.context["cl"].result_count == 1


@pytest.mark.parametrize(
    ("language", "in_order"),
    [
        ("es", ["Guinea (GIN)", "Guinea-Bissau (GNB)", "Guinea Ecuatorial (GNQ)", "Níger (NER)", "Nigeria (NGA)",
                "Sudán (SDN)", "Sudán del Sur (SSD)"]),
        ("fr", ["Guinée (GIN)", "Guinée-Bissau (GNB)", "Guinée équatoriale (GNQ)", "Niger (NER)", "Nigeria (NGA)"]),
        ("en", ["Guinea (GIN)", "Guinea-Bissau (GNB)", "Niger (NER)", "Nigeria (NGA)"]),
    ],
)  # fmt: skip
def test_the_list_filter_orders_parties_by_name_not_by_name_and_code(client, language, in_order):
    """Sorted with their codes, "Guinea (GIN)" came after "Guinea Ecuatorial (GNQ)", "Níger (NER)" after
    "Nigeria (NGA)" and "Sudán (SDN)" after "Sudán del Sur (SSD)", as the post form (by name) did not."""
    client.cookies["django_language"] = language
    labels = [label for _code, label in parties_in_filter(client.get(reverse("posts:list")).content.decode())]
    assert [label for label in labels if label in in_order] == in_order
    assert labels == sorted(labels, key=by_name)
