"""Russian pages name each Party by the UN's Russian short name (UNTERM), in Russian alphabetical order (й after
и, as the alphabet has them), as Spanish and French pages do in theirs; the API and exports keep the English
names."""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from apps.parties.models import Party
from tests.factories import FocalPointFactory, PostFactory, party

from .party_lists import by_name, parties_in_filter

pytestmark = pytest.mark.django_db


def test_every_party_has_a_russian_name():
    assert Party.objects.count() == 198
    assert not Party.objects.filter(name_ru="").exists()
    names = dict(Party.objects.values_list("iso3", "name_ru"))
    assert len(set(names.values())) == 198
    assert all(re.fullmatch(r"[А-Яа-яЁё’ ()—-]+", name) for name in names.values())
    assert names["SEN"] == "Сенегал" and names["DEU"] == "Германия" and names["EUU"] == "Европейский союз"
    # UNTERM's names, not the informal ones ("Россия", "США", "Великобритания", "Голландия", "Молдавия").
    assert names["RUS"] == "Российская Федерация" and names["USA"] == "Соединенные Штаты Америки"
    assert names["GBR"] == "Соединенное Королевство Великобритании и Северной Ирландии"
    assert names["BOL"] == "Боливия (Многонациональное Государство)" and names["KOR"] == "Республика Корея"
    assert names["VEN"] == "Венесуэла (Боливарианская Республика)" and names["VNM"] == "Вьетнам"
    assert names["TUR"] == "Турция" and names["NLD"] == "Нидерланды (Королевство)"
    assert names["TZA"] == "Объединенная Республика Танзания" and names["MDA"] == "Республика Молдова"
    assert names["PNG"] == "Папуа — Новая Гвинея" and names["KGZ"] == "Кыргызстан"
    # The UN writes е for ё in these names.
    assert names["ARE"] == "Объединенные Арабские Эмираты" and not any("ё" in name for name in names.values())


def test_a_party_is_named_in_russian_on_russian_pages():
    russia = party("RUS")
    with translation.override("ru"):
        assert (russia.local_name, str(russia)) == ("Российская Федерация", "Российская Федерация (RUS)")
    assert russia.local_name == "Russian Federation"


def test_the_list_names_parties_in_russian_on_russian_pages(client):
    PostFactory(title="Раннее оповещение", party=party("NLD"))
    client.cookies["django_language"] = "ru"
    russian = client.get(reverse("posts:list")).content.decode()
    assert "Нидерланды (Королевство)" in russian  # the post card
    options = parties_in_filter(russian)
    assert len(options) == 198 and ("DEU", "Германия (DEU)") in options
    labels = [label for _code, label in options]
    assert labels == sorted(labels, key=by_name)
    # In Russian alphabetical order: Австралия (AUS) first, Эсватини, Южная Африка (ZAF) and Япония (JPN) near the
    # end; Италия (ITA) before Йемен (YEM), and Йемен before Кабо-Верде (CPV); the United Republic of Tanzania and
    # the United Arab Emirates among the О's, after Норвегия (NOR) and before Оман (OMN).
    codes = [code for code, _label in options]
    assert codes[0] == "AUS" and codes[-1] == "JPN"
    assert codes.index("ETH") < codes.index("ZAF") < codes.index("JAM") < codes.index("JPN")
    assert codes.index("ESP") < codes.index("ITA") < codes.index("YEM") < codes.index("CPV")
    assert codes.index("NOR") < codes.index("TZA") < codes.index("ARE") < codes.index("OMN")
    assert codes.index("PLW") < codes.index("PAN") < codes.index("PNG") < codes.index("PRY")
    assert codes.index("GIN") < codes.index("GNB") < codes.index("GRD")


def test_the_post_form_and_the_dashboard_name_parties_in_russian(login):
    client = login(FocalPointFactory(username="fp_bol", party=party("BOL")))
    client.cookies["django_language"] = "ru"
    assert "Боливия (Многонациональное Государство)" in client.get(reverse("dashboard")).content.decode()
    form = client.get(reverse("posts:create")).content.decode()
    assert "Германия (DEU)" in form and "Germany (DEU)" not in form
    assert "DEU – Германия" in form  # the eligibility list's options, code first


def test_the_admin_lists_parties_in_russian_order_on_russian_pages(login, secretariat):
    client = login(secretariat)
    client.cookies["django_language"] = "ru"
    html = client.get("/admin/accounts/user/add/").content.decode()
    select = re.search(r'<select name="party"[^>]*>(.*?)</select>', html, re.S).group(1)
    labels = re.findall(r'<option value="\d+"[^>]*>([^<]*)</option>', select)
    assert len(labels) == 198
    assert labels == sorted(labels, key=by_name)
    assert labels.index("Гвинея (GIN)") < labels.index("Гвинея-Бисау (GNB)") < labels.index("Гренада (GRD)")


def test_the_admin_finds_a_party_by_the_russian_name(login, secretariat):
    client = login(secretariat)
    found = client.get(reverse("admin:parties_party_changelist"), {"q": "Российская Федерация"})
    assert found.context["cl"].result_count == 1


def test_the_list_filter_orders_parties_by_name_not_by_name_and_code(client):
    """ "Гвинея (GIN)" before "Гвинея-Бисау (GNB)", "Нигер (NER)" before "Нигерия (NGA)", "Судан (SDN)" apart from
    "Южный Судан (SSD)" (among the Ю's)."""
    client.cookies["django_language"] = "ru"
    labels = [label for _code, label in parties_in_filter(client.get(reverse("posts:list")).content.decode())]
    in_order = ["Гвинея (GIN)", "Гвинея-Бисау (GNB)", "Нигер (NER)", "Нигерия (NGA)", "Судан (SDN)",
                "Южный Судан (SSD)"]  # fmt: skip
    assert [label for label in labels if label in in_order] == in_order
