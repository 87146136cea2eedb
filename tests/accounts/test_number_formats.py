"""Amounts as each interface language writes them."""

from django.utils import translation

from apps.posts.templatetags.post_tags import usd


def test_chinese_groups_amounts_by_threes_with_commas():
    with translation.override("zh-hans"):
        assert "1,250,000" in usd(1250000)
        assert "1,250,000.50" in usd("1250000.50")


def test_the_other_languages_keep_django_s_formats():
    expected = {"en": "1,250,000", "fr": "1\xa0250\xa0000", "es": "1\xa0250\xa0000", "ru": "1\xa0250\xa0000"}
    for code, number in expected.items():
        with translation.override(code):
            assert number in usd(1250000), (code, usd(1250000))
