"""Arabic pages name each Party by the UN's Arabic short name (UNTERM), in the order of UN lists in Arabic (the
article ال aside, every alif alike), as Spanish and French pages do in theirs; the API and exports keep the
English names."""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from apps.parties.models import Party
from tests.factories import FocalPointFactory, PostFactory, party

from .party_lists import by_name, parties_in_filter

pytestmark = pytest.mark.django_db


def test_every_party_has_an_arabic_name():
    assert Party.objects.count() == 198
    assert not Party.objects.filter(name_ar="").exists()
    names = dict(Party.objects.values_list("iso3", "name_ar"))
    assert len(set(names.values())) == 198
    assert all(re.search(r"[\u0621-\u064a]", name) for name in names.values())
    assert names["SEN"] == "السنغال" and names["DEU"] == "ألمانيا" and names["EUU"] == "الاتحاد الأوروبي"
    # UNTERM's names, not the everyday ones ("روسيا", "أمريكا", "بريطانيا", "فيتنام", "سوريا", "بوليفيا").
    assert names["RUS"] == "الاتحاد الروسي" and names["USA"] == "الولايات المتحدة الأمريكية"
    assert names["GBR"] == "المملكة المتحدة لبريطانيا العظمى وأيرلندا الشمالية" and names["VNM"] == "فييت نام"
    assert names["SYR"] == "الجمهورية العربية السورية" and names["TZA"] == "جمهورية تنزانيا المتحدة"
    assert (
        names["BOL"] == "بوليفيا (دولة - المتعددة القوميات)" and names["IRN"] == "إيران (جمهورية - الإسلامية)"
    )
    assert names["TUR"] == "تركيا" and names["PSE"] == "دولة فلسطين" and names["VAT"] == "الكرسي الرسولي"


def test_a_party_is_named_in_arabic_on_arabic_pages():
    russia = party("RUS")
    with translation.override("ar"):
        assert (russia.local_name, str(russia)) == ("الاتحاد الروسي", "الاتحاد الروسي (RUS)")
    assert russia.local_name == "Russian Federation"


def test_the_list_names_parties_in_arabic_in_the_order_of_un_lists(client):
    PostFactory(title="Early warning", party=party("JOR"))
    client.cookies["django_language"] = "ar"
    arabic = client.get(reverse("posts:list")).content.decode()
    assert "الأردن" in arabic  # the post card
    options = parties_in_filter(arabic)
    assert len(options) == 198 and ("DEU", "ألمانيا (DEU)") in options
    labels = [label for _code, label in options]
    assert labels == sorted(labels, key=by_name)
    codes = [code for code, _label in options]
    # As UN lists in Arabic begin: the European Union and the Russian Federation (الاتحاد) among the alif-ta,
    # then Ethiopia, Azerbaijan, Argentina (الأرجنتين) and Jordan (الأردن) among the alifs, not under lam.
    assert codes[:6] == ["EUU", "RUS", "ETH", "AZE", "ARG", "JOR"]
    # Germany (ألمانيا) before the United Arab Emirates (الإمارات), Iran (إيران) before Ireland (آيرلندا).
    assert (
        codes.index("DEU") < codes.index("ARE") < codes.index("IRN") < codes.index("IRL") < codes.index("PNG")
    )
    # El Salvador (السلفادور) among the sins, Greece (اليونان) last, after Japan (اليابان) and Yemen (اليمن).
    assert codes.index("LKA") < codes.index("SLV") < codes.index("SVK")
    assert codes[-3:] == ["JPN", "YEM", "GRC"]


def test_the_post_form_and_the_dashboard_name_parties_in_arabic(login):
    client = login(FocalPointFactory(username="fp_jor", party=party("JOR")))
    client.cookies["django_language"] = "ar"
    assert "الأردن" in client.get(reverse("dashboard")).content.decode()
    form = client.get(reverse("posts:create")).content.decode()
    assert "ألمانيا (DEU)" in form and "Germany (DEU)" not in form and "Alemania (DEU)" not in form


def test_the_admin_finds_a_party_by_its_arabic_name(login, secretariat):
    client = login(secretariat)
    found = client.get(reverse("admin:parties_party_changelist"), {"q": "الاتحاد الروسي"})
    assert found.context["cl"].result_count == 1
