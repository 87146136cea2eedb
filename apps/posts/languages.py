"""Which language a post's text is written in, as far as its letters tell: the check of the declared language.

Matching reads a post by its declared language (two posts in one language compare their words; in two, through
the platform's main language), so a text declared in the wrong one matches worse and spoils the explanations of
others. The form's default is easy to leave as it is. The check is conservative: it refuses a language only
when the text's letters plainly say otherwise: hardly a letter of the declared language's script (Arabic
letters declared English), or, in the Latin script, a long text whose common words are plainly those of
English, French, Spanish or Portuguese, with hardly any of the declared one's. Anything less clear passes (a
text in two languages, a short one, a French text quoting English names).
"""

from __future__ import annotations

import re
from collections import Counter

from django.utils.translation import gettext as _

# Scripts, their letters and the post languages written in them (`taxonomies.POST_LANGUAGES`), first the one a
# text in the script is taken to be in when no language is given.
SCRIPTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "latin": (
        "A-Za-z\u00c0-\u024f\u1e00-\u1eff",
        ("en", "fr", "es", "pt", "sw", "id", "vi", "tr", "de", "it"),
    ),
    "arabic": ("\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff", ("ar", "fa", "ur")),
    "cyrillic": ("\u0400-\u04ff", ("ru",)),
    "cjk": ("\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff", ("zh", "ja")),
    "hangul": ("\uac00-\ud7af\u1100-\u11ff\u3130-\u318f", ("ko",)),
    "devanagari": ("\u0900-\u097f", ("hi",)),
    "bengali": ("\u0980-\u09ff", ("bn",)),
    "thai": ("\u0e00-\u0e7f", ("th",)),
}
_LETTERS = {name: re.compile(f"[{chars}]") for name, (chars, _languages) in SCRIPTS.items()}
_KANA = re.compile("[\u3040-\u30ff]")
# A Chinese or Japanese character carries about as much as a word of a few Latin letters: counted three times,
# so that a text in Chinese and English, half and half, is not taken for an English one.
SCRIPT_WEIGHT = {"cjk": 3}
MIN_LETTERS = 20  # fewer, and the text says too little
SCRIPT_SHARE = 0.6  # the share of the letters that makes a script the text's, when guessing
# A declared language is refused for its script only when the text hardly has any letters of that script: a text
# in two languages (Arabic and English, a Chinese one naming English programmes) passes.
ABSENT_SCRIPT_SHARE = 0.1

# Common words of each of the four Latin-script languages most posts are in, none of them common in another.
_MARKERS = {
    "en": "the and of to for with that this are from will which be by an is on our their through",
    "fr": "le les des et du pour avec sur aux est une dans qui au ces nous leur sont par",
    "es": "el los las del y para con por una al como su sus más nuestro este esta entre",
    "pt": "o os da do das dos e com uma ao pelo pela nos não em seu sua também",
}
WORD_MARKERS = {lang: frozenset(words.split()) for lang, words in _MARKERS.items()}
# Refusing: the text's language shows at least 8 of its common words, 4 times the declared one's, and the
# declared one at most 2 (a French text quoting an English name keeps its own "le", "des", "et"...).
REFUSE_MARKERS, REFUSE_RATIO, DECLARED_AT_MOST = 8, 4, 2
# Guessing a language not given: a sentence says enough (3 common words, 3 times any other's).
GUESS_MARKERS, GUESS_RATIO = 3, 3
_WORD = re.compile(r"[^\W\d_]+")


def _script_shares(text: str) -> dict[str, float]:
    counts = {
        name: len(pattern.findall(text)) * SCRIPT_WEIGHT.get(name, 1) for name, pattern in _LETTERS.items()
    }
    total = sum(counts.values())
    if total < MIN_LETTERS:
        return {}
    return {name: count / total for name, count in counts.items()}


def text_script(text: str) -> str | None:
    """The script of most of the text's letters, or None when it has too few letters or no script dominates."""
    shares = _script_shares(text)
    if not shares:
        return None
    script = max(shares, key=shares.__getitem__)
    return script if shares[script] >= SCRIPT_SHARE else None


# Endings that only Spanish or only Portuguese words have (capacitación, formação): counted as common words.
_ENDINGS = {"es": ("ción", "ciones"), "pt": ("ção", "ções")}


def _marker_counts(text: str) -> dict[str, int]:
    words = Counter(w.lower() for w in _WORD.findall(text))
    counts = {lang: sum(words[w] for w in markers) for lang, markers in WORD_MARKERS.items()}
    for lang, endings in _ENDINGS.items():
        counts[lang] += sum(n for word, n in words.items() if word.endswith(endings))
    return counts


def latin_language(text: str, *, least: int = REFUSE_MARKERS, ratio: int = REFUSE_RATIO) -> str | None:
    """English, French, Spanish or Portuguese when the text's common words say so (at least `least` of them,
    `ratio` times any other language's), else None."""
    counts = _marker_counts(text)
    best = max(counts, key=counts.__getitem__)
    others = max(n for lang, n in counts.items() if lang != best)
    return best if counts[best] >= least and counts[best] >= ratio * max(others, 1) else None


def guess_language(text: str) -> str | None:
    """The language a text with no declared language is taken to be in, when its letters tell."""
    script = text_script(text)
    if script is None:
        return None
    if script == "latin":
        return latin_language(text, least=GUESS_MARKERS, ratio=GUESS_RATIO)
    if script == "cjk" and len(_KANA.findall(text)) * 20 >= len(_LETTERS["cjk"].findall(text)):
        return "ja"
    return SCRIPTS[script][1][0]


def language_mismatch(language: str, text: str) -> str | None:
    """Why `language` cannot be the language of `text` (a message for the poster), or None when it can be."""
    from apps.posts.templatetags.post_tags import language_name_in_sentence as name

    shares = _script_shares(text)
    if not shares:
        return None
    declared_script = next((script for script, (_c, langs) in SCRIPTS.items() if language in langs), None)
    if declared_script is not None and shares[declared_script] < ABSENT_SCRIPT_SHARE:
        found = guess_language(text)
    elif declared_script == "latin" and language in WORD_MARKERS:
        found = latin_language(text)
        if found is None or found == language or _marker_counts(text)[language] > DECLARED_AT_MOST:
            return None
    else:
        return None
    if found is None:
        return _(
            "The language chosen (%(declared)s) does not fit the letters of the text: choose the language it is "
            "written in."
        ) % {"declared": name(language)}
    return _("The text seems to be in %(found)s, not %(declared)s: choose the language it is written in.") % {
        "found": name(found),
        "declared": name(language),
    }


def form_language_mismatch(cleaned: dict) -> str | None:
    """`language_mismatch` of a post form's cleaned data (the site's form and the admin's), or None when the
    language, the title or the description did not validate."""
    language, text = cleaned.get("language"), f"{cleaned.get('title', '')} {cleaned.get('description', '')}"
    return language_mismatch(language, text) if language and text.strip() else None
