"""Party names sort as a reader of each of the UN's six languages looks them up (`reading_order`)."""

from apps.parties.models import reading_order


def test_latin_names_keep_their_order_accents_and_case_aside():
    names = ["Égypte", "Eswatini", "El Salvador", "Équateur", "Érythrée"]
    assert sorted(names, key=reading_order) == ["Égypte", "El Salvador", "Équateur", "Érythrée", "Eswatini"]
    assert reading_order("Côte d’Ivoire") == "cotedivoire" and reading_order("Türkiye") == "turkiye"


def test_russian_names_sort_by_the_russian_alphabet():
    names = ["Япония", "Египет", "Австрия", "Йемен", "Индия", "Ёжик"]
    # й is a letter of its own, after и; the breve is not dropped as an accent would be.
    assert sorted(names, key=reading_order) == ["Австрия", "Египет", "Ёжик", "Индия", "Йемен", "Япония"]
    assert reading_order("Йемен") == "йемен"


def test_arabic_names_sort_with_the_article_aside_and_every_alif_alike():
    # As UN lists in Arabic: the Russian Federation (الاتحاد الروسي) among the alif-ta, Ethiopia (إثيوبيا) next,
    # then Azerbaijan (أذربيجان), Argentina (الأرجنتين), Jordan (الأردن), Armenia (أرمينيا).
    names = ["أرمينيا", "الأردن", "الأرجنتين", "أذربيجان", "إثيوبيا", "الاتحاد الروسي"]
    assert sorted(names, key=reading_order) == [
        "الاتحاد الروسي", "إثيوبيا", "أذربيجان", "الأرجنتين", "الأردن", "أرمينيا"
    ]  # fmt: skip
    # Albania (ألبانيا) starts with an alif with hamza and a lam, not the article: it is not cut.
    assert reading_order("ألبانيا") == "البانيا"
    # Short vowels are not letters.
    assert reading_order("مِصْر") == reading_order("مصر")


def test_chinese_names_sort_by_pinyin():
    names = ["中国", "阿富汗", "巴西", "埃及", "德国"]
    # zhong1 guo2, a1 fu4 han4, ba1 xi1, ai1 ji2, de2 guo2
    assert sorted(names, key=reading_order) == ["阿富汗", "埃及", "巴西", "德国", "中国"]


def test_a_name_s_key_is_remembered():
    """A page's Party list sorts the same names at each request: the keys are computed once per process."""
    reading_order.cache_clear()
    names = ["中国", "阿富汗", "Égypte", "Йемен"]
    first = [reading_order(name) for name in names]
    assert [reading_order(name) for name in names] == first
    assert reading_order.cache_info().hits == len(names)
