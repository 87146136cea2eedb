"""Which language a post's text is written in, as far as its letters tell: the check of the declared language.

Matching reads a post by its declared language (two posts in one language compare their words; in two, through
the platform's main language), so a text declared in the wrong one matches worse and spoils the explanations of
others. The form's default is easy to leave as it is. The check is conservative: it refuses a language only
when the text's letters plainly say otherwise: mostly another script (Arabic letters declared English), or, in
the Latin script, a long text whose common words are plainly those of English, French, Spanish or Portuguese
while it is declared another of the four. Anything less clear passes (a text in two languages, a short one).
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
MIN_LETTERS = 20  # fewer, and the text says too little
SCRIPT_SHARE = 0.6  # the share of the letters that makes a script the text's

# Common words of each of the four Latin-script languages most posts are in, none of them common in another.
_MARKERS = {
    "en": "the and of to for with that this are from will which be by an is on our their through",
    "fr": "le les des et du pour avec sur aux est une dans qui au ces nous leur sont par",
    "es": "el los las del y para con por una al como su sus más nuestro este esta entre",
    "pt": "o os da do das dos e com uma ao pelo pela nos não em seu sua também",
}
WORD_MARKERS = {lang: frozenset(words.split()) for lang, words in _MARKERS.items()}
MIN_MARKERS = 8  # common words counted before the Latin check says anything
MARKER_RATIO = 4  # the text's language must show this many times the declared one's common words
_WORD = re.compile(r"[^\W\d_]+")


def text_script(text: str) -> str | None:
    """The script of most of the text's letters, or None when it has too few letters or no script dominates."""
    counts = {name: len(pattern.findall(text)) for name, pattern in _LETTERS.items()}
    total = sum(counts.values())
    if total < MIN_LETTERS:
        return None
    script = max(counts, key=counts.__getitem__)
    return script if counts[script] >= SCRIPT_SHARE * total else None


def latin_language(text: str) -> str | None:
    """English, French, Spanish or Portuguese when the text's common words say so plainly, else None."""
    words = Counter(w.lower() for w in _WORD.findall(text))
    counts = {lang: sum(words[w] for w in markers) for lang, markers in WORD_MARKERS.items()}
    best = max(counts, key=counts.__getitem__)
    others = max(n for lang, n in counts.items() if lang != best)
    if counts[best] >= MIN_MARKERS and counts[best] >= MARKER_RATIO * max(others, 1):
        return best
    return None


def guess_language(text: str) -> str | None:
    """The language a text with no declared language is taken to be in, when its letters tell."""
    script = text_script(text)
    if script is None:
        return None
    if script == "latin":
        return latin_language(text)
    if script == "cjk" and len(_KANA.findall(text)) * 20 >= len(_LETTERS["cjk"].findall(text)):
        return "ja"
    return SCRIPTS[script][1][0]


def language_mismatch(language: str, text: str) -> str | None:
    """Why `language` cannot be the language of `text` (a message for the poster), or None when it can be."""
    from apps.posts.templatetags.post_tags import language_name_in_sentence as name

    script = text_script(text)
    if script is None:
        return None
    if language in SCRIPTS[script][1]:
        found = latin_language(text) if script == "latin" and language in WORD_MARKERS else None
        if found is None or found == language:
            return None
    else:
        found = guess_language(text)
    if found is None:
        return _(
            "The language chosen (%(declared)s) does not fit the letters of the text: choose the language it is "
            "written in."
        ) % {"declared": name(language)}
    return _("The text seems to be in %(found)s, not %(declared)s: choose the language it is written in.") % {
        "found": name(found),
        "declared": name(language),
    }
