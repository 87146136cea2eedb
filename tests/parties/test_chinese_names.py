"""Chinese pages name each Party by the UN's Chinese short name (UNTERM), listed in the order of their pinyin, as
Chinese readers look names up; the API and exports keep the English names."""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from apps.parties.models import NAME_READINGS, Party, pinyin_syllables, reading_order
from tests.factories import FocalPointFactory, PostFactory, party

from .party_lists import by_name, parties_in_filter

pytestmark = pytest.mark.django_db


def test_every_party_has_a_chinese_name():
    assert Party.objects.count() == 198
    assert not Party.objects.filter(name_zh="").exists()
    names = dict(Party.objects.values_list("iso3", "name_zh"))
    assert len(set(names.values())) == 198
    assert names["CHN"] == "中国" and names["DEU"] == "德国" and names["EUU"] == "欧洲联盟"
    # UNTERM's names, not the everyday ones ("俄罗斯", "美国", "英国", "韩国", "朝鲜", "坦桑尼亚", "玻利维亚").
    assert names["RUS"] == "俄罗斯联邦" and names["USA"] == "美利坚合众国"
    assert names["GBR"] == "大不列颠及北爱尔兰联合王国" and names["TZA"] == "坦桑尼亚联合共和国"
    assert names["KOR"] == "大韩民国" and names["PRK"] == "朝鲜民主主义人民共和国"
    assert names["BOL"] == "玻利维亚（多民族国）" and names["IRN"] == "伊朗（伊斯兰共和国）"
    assert names["VEN"] == "委内瑞拉（玻利瓦尔共和国）" and names["FSM"] == "密克罗尼西亚（联邦）"
    assert names["VNM"] == "越南" and names["TUR"] == "土耳其" and names["SYR"] == "阿拉伯叙利亚共和国"
    assert names["LAO"] == "老挝人民民主共和国" and names["CIV"] == "科特迪瓦" and names["CPV"] == "佛得角"


def test_a_party_is_named_in_chinese_on_chinese_pages():
    russia = party("RUS")
    with translation.override("zh-hans"):
        assert (russia.local_name, str(russia)) == ("俄罗斯联邦", "俄罗斯联邦 (RUS)")


def test_names_are_read_in_pinyin_as_the_un_reads_them():
    assert pinyin_syllables("乍得") == ["zha4", "de2"]
    assert pinyin_syllables("厄瓜多尔") == ["e4", "gua1", "duo1", "er3"]
    assert pinyin_syllables("阿塞拜疆") == ["a1", "sai4", "bai4", "jiang1"]
    # pypinyin alone reads 泊 pō (Nepal after Nicaragua), 佛 fú, 都 dōu, 塞 sāi: NAME_READINGS reads them as
    # the names are said, wherever the phrase is in a name, and leaves the rest of the name to pypinyin.
    assert pinyin_syllables("尼泊尔") == ["ni2", "bo2", "er3"]
    assert pinyin_syllables("佛得角")[0] == "fo2" and pinyin_syllables("洪都拉斯")[1] == "du1"
    assert pinyin_syllables("波斯尼亚和黑塞哥维那") == [
        "bo1", "si1", "ni2", "ya4", "he2", "hei1", "sai4", "ge1", "wei2", "na4"
    ]  # fmt: skip
    assert pinyin_syllables("玻利维亚（多民族国）") == [
        "bo1", "li4", "wei2", "ya4", "（", "duo1", "min2", "zu2", "guo2", "）"
    ]  # fmt: skip
    # A syllable for each character of a phrase, or the name's characters and syllables part.
    assert all(len(phrase) == len(reading.split()) for phrase, reading in NAME_READINGS.items())


def test_chinese_names_sort_as_a_un_list_in_chinese():
    names = ["尼日尔", "尼加拉瓜", "尼泊尔", "瑙鲁", "南非"]
    assert sorted(names, key=reading_order) == ["南非", "瑙鲁", "尼泊尔", "尼加拉瓜", "尼日尔"]


def test_the_list_names_parties_in_chinese_in_pinyin_order(client):
    PostFactory(title="早期预警", party=party("NPL"))
    client.cookies["django_language"] = "zh-hans"
    chinese = client.get(reverse("posts:list")).content.decode()
    assert "尼泊尔" in chinese  # the post card
    options = parties_in_filter(chinese)
    assert len(options) == 198 and ("DEU", "德国 (DEU)") in options
    labels = [label for _code, label in options]
    assert labels == sorted(labels, key=by_name)
    codes = [code for code, _label in options]
    # 阿尔巴尼亚 (a er) first, 中国 (zhong guo) last; 阿塞拜疆 (a sai) among the a's, before 埃及 (ai ji); 厄瓜多尔
    # (e4) after 俄罗斯联邦 (e2); 乍得 (zha) between 赞比亚 (zan) and 智利 (zhi); 尼泊尔 (ni bo) before 尼加拉瓜.
    assert codes[0] == "ALB" and codes[-1] == "CHN"
    assert codes.index("OMN") < codes.index("AZE") < codes.index("EGY")
    assert codes.index("RUS") < codes.index("ECU") < codes.index("ERI") < codes.index("FRA")
    assert codes.index("ZMB") < codes.index("TCD") < codes.index("CHL")
    assert codes.index("NRU") < codes.index("NPL") < codes.index("NIC") < codes.index("NER")


def test_the_post_form_and_the_dashboard_name_parties_in_chinese(login):
    client = login(FocalPointFactory(username="fp_bol", party=party("BOL")))
    client.cookies["django_language"] = "zh-hans"
    assert "玻利维亚（多民族国）" in client.get(reverse("dashboard")).content.decode()
    form = client.get(reverse("posts:create")).content.decode()
    assert "德国 (DEU)" in form and "Germany (DEU)" not in form


def test_the_api_keeps_the_english_names(client):
    body = client.get("/api/v1/parties/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert next(row for row in rows if row["iso3"] == "CHN")["name"] == "China"


def test_the_admin_lists_parties_in_pinyin_order_and_finds_them_by_chinese_name(login, secretariat):
    client = login(secretariat)
    client.cookies["django_language"] = "zh-hans"
    html = client.get("/admin/accounts/user/add/").content.decode()
    select = re.search(r'<select name="party"[^>]*>(.*?)</select>', html, re.S).group(1)
    labels = re.findall(r'<option value="\d+"[^>]*>([^<]*)</option>', select)
    assert len(labels) == 198 and labels == sorted(labels, key=by_name)
    assert labels.index("尼泊尔 (NPL)") < labels.index("尼加拉瓜 (NIC)") < labels.index("中国 (CHN)")
    found = client.get(reverse("admin:parties_party_changelist"), {"q": "俄罗斯联邦"})
    assert found.context["cl"].result_count == 1
