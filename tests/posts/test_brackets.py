"""Remarks in brackets are written with the page's language's brackets and separators (`in_brackets`): a
template's own "(", ", " and ")" put Latin signs into Chinese and Arabic sentences."""

from types import SimpleNamespace

import pytest
from django.template import Context, Template
from django.utils import translation

from apps.matching.templatetags.matching_tags import score_components
from apps.posts.templatetags.post_tags import in_brackets


def a_match(**overrides):
    values = {"lexical": 0.41, "semantic": 0.49, "structured": 0.8, "alignment": None, "explanation": {}}
    return SimpleNamespace(**{**values, **overrides})


def test_the_score_s_parts_in_english_read_as_before():
    assert score_components(a_match()) == "(similar wording 41%, similar meaning 49%, shared categories 80%)"
    assert score_components(a_match(alignment=0.5, explanation={"cross_lingual": True})) == (
        "(similar wording via similar posts 41%, similar meaning 49%, shared categories 80%, "
        "parts of the need answered 50%)"
    )


@pytest.mark.parametrize(
    ("language", "opening", "separator", "closing"),
    [("zh-hans", "（", "，", "）"), ("ar", "(", "، ", ")"), ("fr", "(", ", ", ")")],
)
def test_the_score_s_parts_take_the_language_s_brackets_and_separator(language, opening, separator, closing):
    with translation.override(language):
        text = score_components(a_match())
    assert text.startswith(opening) and text.endswith(closing) and text.count(separator) == 2
    if language == "zh-hans":
        assert "," not in text and "(" not in text


def test_brackets_escape_in_pages_and_not_in_plain_text_emails():
    assert in_brackets(["Offer", "R&D <Fund>"]) == "(Offer, R&amp;D &lt;Fund&gt;)"
    assert in_brackets(["Offer", "R&D <Fund>"], autoescape=False) == "(Offer, R&D <Fund>)"
    assert in_brackets(["score", "80%"], spaced=True) == "(score 80%)"
    assert in_brackets(["Offer", "", None, "CTCN"]) == "(Offer, CTCN)"
    page = Template("{% load post_tags %}{% in_brackets a b %}")
    email = Template("{% load post_tags %}{% autoescape off %}{% in_brackets a b %}{% endautoescape %}")
    context = {"a": "Need", "b": "Trinidad & Tobago"}
    assert page.render(Context(context)) == "(Need, Trinidad &amp; Tobago)"
    assert email.render(Context(context)) == "(Need, Trinidad & Tobago)"


def test_a_required_field_s_mark_is_in_the_language_s_brackets():
    field_template = Template(
        '{% include "includes/_field.html" %}',
    )
    from apps.accounts.forms import ProfileForm

    with translation.override("zh-hans"):
        form = ProfileForm()
        form.fields["first_name"].required = True
        html = field_template.render(Context({"field": form["first_name"]}))
    assert "（必填）" in html and "(必填)" not in html


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "Label (required)"), ("fr", "Label (obligatoire)"), ("zh-hans", "Label（必填）")],
)
def test_a_remark_after_a_word_is_spaced_unless_its_brackets_carry_their_own_space(language, expected):
    with translation.override(language):
        word = translation.gettext("required")
        assert f"Label{in_brackets([word], after_word=True)}" == expected
        assert not in_brackets([word]).startswith(" ")
        after = score_components(a_match(), after_word=True)
    assert after.startswith("（" if language == "zh-hans" else " (")


@pytest.mark.django_db
def test_the_match_s_score_and_its_parts_read_as_one_line_in_chinese(login, settings):
    """The score, then its parts in full-width brackets with no space before them; in English, a space."""
    from django.urls import reverse

    from apps.matching.models import Match
    from tests.factories import FocalPointFactory, PostFactory, party

    focal_point = FocalPointFactory(party=party("KEN"))
    need = PostFactory(kind="need", party=party("KEN"))
    offer = PostFactory(kind="offer", party=party("FJI"))
    Match.objects.create(need=need, offer=offer, score=0.6, lexical=0.4, semantic=0.5, structured=0.8)
    client = login(focal_point)
    for language, joint in (
        ("zh-hans", '</strong><span class="components">（'),
        ("en", '</strong><span class="components"> ('),
    ):
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        html = client.get(reverse("posts:detail", args=[need.pk])).content.decode()
        assert joint in html, language
