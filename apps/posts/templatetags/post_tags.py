"""Small formatting helpers for post pages: money, page links that keep the filters, status badges."""

from decimal import Decimal

from django import template
from django.utils.formats import number_format
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, get_language_bidi, pgettext
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def usd(amount: Decimal | int | float | None) -> str:
    """`1250000` -> `USD 1,250,000` (cents only when there are some; in French and Spanish `1 250 000 USD`, as the
    stocktake report writes amounts there); empty for no amount."""
    if amount in (None, ""):
        return ""
    amount = Decimal(amount)
    places = 0 if amount == amount.to_integral_value() else 2
    # Thousands separators always, whatever USE_THOUSAND_SEPARATOR says; the format follows the locale.
    number = number_format(amount, decimal_pos=places, use_l10n=True, force_grouping=True)
    return pgettext("an amount in US dollars", "USD %(amount)s") % {"amount": number}


@register.filter
def ltr(value) -> str:
    """`value` (an ISO date, a code) isolated as left-to-right text on a right-to-left page, to put inside a
    sentence. In an Arabic sentence Unicode's bidirectional algorithm reads digits after Arabic letters as Arabic
    numbers, which a hyphen does not join: "من 2026-07-01" showed as "من 01-07-2026". Left-to-right pages keep
    the plain value."""
    if not get_language_bidi():
        return value
    return format_html('<bdi dir="ltr">{}</bdi>', value)


# Brackets that carry their own space (Chinese and Japanese full-width ones): a remark after a word takes none.
_WIDE_BRACKETS = "（【〔［「『"


def in_brackets(parts, *, spaced: bool = False, after_word: bool = False, autoescape: bool = True) -> str:
    """`parts` as a remark in brackets, with the page's language's brackets and separator: "(need, Kenya)" in
    English, "（需求，肯尼亚）" in Chinese, "(احتياج، كينيا)" in Arabic. Written into a template as "(", ", " and
    ")", they put Latin signs into Chinese and Arabic sentences. `spaced`: the parts are one phrase, joined by
    spaces ("(score 80%)"). `after_word`: the remark follows a word, so it starts with the space that
    separates them, unless the language's brackets carry their own ("标签（必填）", "Label (required)"). Empty
    parts are left out."""
    parts = [part for part in parts if part not in ("", None)]
    separator = " " if spaced else pgettext("between the parts of a remark in brackets", ", ")
    pattern = pgettext("around a remark in brackets", "(%(text)s)")
    if after_word and not pattern.startswith(tuple(_WIDE_BRACKETS)):
        pattern = f" {pattern}"
    if not autoescape:
        return pattern % {"text": separator.join(str(part) for part in parts)}
    text = conditional_escape(separator).join(conditional_escape(part) for part in parts)
    return mark_safe(conditional_escape(pattern) % {"text": text})


@register.simple_tag(name="in_brackets", takes_context=True)
def in_brackets_tag(context, *parts, spaced: bool = False, after_word: bool = False) -> str:
    """`{% in_brackets a b %}`: `in_brackets`, escaped as the template escapes (not in a plain-text email)."""
    return in_brackets(parts, spaced=spaced, after_word=after_word, autoescape=context.autoescape)


@register.simple_tag(takes_context=True)
def page_url(context, number: int, param: str = "page") -> str:
    """The current URL's query string with only the page number replaced, so pages keep search and filters."""
    query = context["request"].GET.copy()
    query[param] = number
    return f"?{query.urlencode()}"


@register.filter
def title_in_its_language(post) -> str:
    """The post's title marked with its own language, to quote it within the page's (`Edit “<title>”`): a
    screen reader then reads a French title with a French voice on an English page."""
    return format_html('<span lang="{}" dir="auto">{}</span>', post.language, post.title)


@register.filter
def status_class(status: str) -> str:
    return f"badge badge-{status}"


@register.filter
def language_name(code: str) -> str:
    """The name of a post's language (`sw` -> Swahili), or the code itself if it is not in the list."""
    from apps.posts.taxonomies import POST_LANGUAGES

    return str(dict(POST_LANGUAGES).get(code, code))


# The interface languages that write a language's name in lower case within a sentence.
LANGUAGE_NAMES_IN_LOWER_CASE = frozenset({"fr", "es", "ru"})


@register.filter
def language_name_in_sentence(code: str) -> str:
    """`language_name` within a sentence: French, Spanish and Russian write a language's name in lower case there
    ("en anglais", "en inglés", "на английском")."""
    name = language_name(code)
    lower_case = (get_language() or "").split("-")[0] in LANGUAGE_NAMES_IN_LOWER_CASE
    return name[:1].lower() + name[1:] if lower_case else name


@register.filter
def changed_fields(changes: dict | None) -> str:
    """The names of what an edit changed (`{"title": [old, new], "declares_x": ...}` -> "title, declarations"),
    as the post's fields are called, translated; the values themselves stay in the history's stored JSON."""
    from django.core.exceptions import FieldDoesNotExist

    from apps.posts.models import Post

    labels: dict[str, None] = {}
    for name in changes or {}:
        if name.startswith("declares_"):
            label = _("declarations")
        else:
            try:
                label = Post._meta.get_field(name).verbose_name
            except FieldDoesNotExist:
                label = name.replace("_", " ")
        labels[str(label)] = None
    return ", ".join(labels)


@register.filter(is_safe=True)
def before_value(label: str) -> str:
    """A label that ends with its colon ("Score:"), and the space before its value (`space_after`)."""
    return str(label) + space_after(label)


@register.filter(is_safe=True)
def space_after(label: str) -> str:
    """The space between a label and its value: none after a full-width sign, as Chinese writes it (得分：71%,
    not 得分： 71%)."""
    return "" if str(label).endswith(("：", "；", "，", "、", "。")) else " "
