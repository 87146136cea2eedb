"""Parties are named in the page's language: French pages use the UN's French short names, in French
alphabetical order; the API and exports keep the English names."""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from apps.parties.models import Party, reading_order
from tests.factories import FocalPointFactory, PostFactory, party

from .party_lists import parties_in_filter

pytestmark = pytest.mark.django_db


def test_every_party_has_a_french_name():
    assert Party.objects.count() == 198
    assert not Party.objects.filter(name_fr="").exists()
    names = dict(Party.objects.values_list("iso3", "name_fr"))
    assert names["SEN"] == "Sénégal" and names["DEU"] == "Allemagne" and names["EUU"] == "Union européenne"
    # UNTERM's names, not informal or inverted ones.
    assert names["RUS"] == "Fédération de Russie" and names["TLS"] == "Timor-Leste"
    assert names["BOL"] == "Bolivie (État plurinational de)"


def test_a_party_is_named_in_the_active_language():
    senegal = party("SEN")
    assert (senegal.local_name, str(senegal)) == ("Senegal", "Senegal (SEN)")
    with translation.override("fr"):
        assert (senegal.local_name, str(senegal)) == ("Sénégal", "Sénégal (SEN)")
    senegal.name_fr = ""  # a Party the secretariat added without one
    with translation.override("fr"):
        assert senegal.local_name == "Senegal"


def test_reading_order_ignores_spaces_and_hyphens_as_the_un_lists():
    names = ["Sainte-Lucie", "Saint-Vincent-et-les-Grenadines", "Guinée équatoriale", "Guinée-Bissau"]
    assert sorted(names, key=reading_order) == [
        "Guinée-Bissau", "Guinée équatoriale", "Sainte-Lucie", "Saint-Vincent-et-les-Grenadines"
    ]  # fmt: skip


def test_reading_order_ignores_accents_and_case():
    names = ["Équateur", "Égypte", "Érythrée", "Estonie", "émirats arabes unis", "Eswatini"]
    assert sorted(names, key=reading_order) == [
        "Égypte", "émirats arabes unis", "Équateur", "Érythrée", "Estonie", "Eswatini"
    ]  # fmt: skip


def test_the_list_names_parties_in_french_on_french_pages(client):
    PostFactory(title="Alerte précoce", party=party("SEN"))
    english = client.get(reverse("posts:list")).content.decode()
    assert "Senegal" in english
    client.cookies["django_language"] = "fr"
    french = client.get(reverse("posts:list")).content.decode()
    assert "Sénégal" in french  # the post card
    options = parties_in_filter(french)
    assert len(options) == 198 and ("SEN", "Sénégal (SEN)") in options
    # In French alphabetical order: Afrique du Sud (ZAF) before Albanie; Égypte among the E's.
    codes = [code for code, _label in options]
    assert codes.index("ZAF") < codes.index("ALB") < codes.index("DEU")
    assert codes.index("EGY") < codes.index("ARE") < codes.index("ESP") < codes.index("ETH")  # É with the E's
    # English pages keep English names and order.
    english_codes = [code for code, _label in parties_in_filter(english)]
    assert english_codes.index("ALB") < english_codes.index("DEU") < english_codes.index("ZAF")


def test_the_post_form_and_the_dashboard_name_parties_in_french(login):
    client = login(FocalPointFactory(username="fp_sen", party=party("SEN")))
    client.cookies["django_language"] = "fr"
    assert "Sénégal" in client.get(reverse("dashboard")).content.decode()
    form = client.get(reverse("posts:create")).content.decode()
    assert "Allemagne (DEU)" in form and "Germany (DEU)" not in form


def test_the_api_keeps_the_english_names(client):
    body = client.get("/api/v1/parties/", HTTP_ACCEPT_LANGUAGE="fr").json()
    rows = body["results"] if isinstance(body, dict) else body
    senegal = next(row for row in rows if row["iso3"] == "SEN")
    assert senegal["name"] == "Senegal"


def test_the_admin_lists_parties_in_french_order_on_french_pages(login, secretariat):
    client = login(secretariat)
    client.cookies["django_language"] = "fr"
    for url in ("/admin/accounts/user/add/", "/admin/accounts/apitoken/add/"):
        html = client.get(url).content.decode()
        select = re.search(r'<select name="party"[^>]*>(.*?)</select>', html, re.S).group(1)
        labels = re.findall(r'<option value="\d+"[^>]*>([^<]*)</option>', select)
        assert len(labels) == 198, url
        assert labels == sorted(labels, key=lambda label: reading_order(label.rsplit(" (", 1)[0])), url
        assert labels.index("Afrique du Sud (ZAF)") < labels.index("Allemagne (DEU)"), url
