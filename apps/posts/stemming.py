"""Stems of Russian and Arabic words, for the matching's word model (`apps.matching.engine.preprocess_words`) and
the site's search (`search_term`).

Russian and Arabic words change their ending (Russian: case and number, адаптация, адаптации, адаптацию) or
take attached articles, conjunctions and prepositions (Arabic: التكيف, والتكيف, للتكيف), so two posts on one
subject share few words exactly and their word similarity says little. Each word is read as its stem:

- Russian (a word in the Russian alphabet): the Snowball stemmer (PyStemmer, the C build of the Snowball
  project's stemmers);
- Arabic (a word in the Arabic alphabet): the light stemmer "light10" of Larkey, Ballesteros and Connell (2007),
  the usual one for Arabic search: the conjunction و, the article ال with what attaches to it (وال بال كال فال
  لل) and ten suffixes of number, gender and pronoun, taken off while a stem of two or more letters remains.
  Snowball's Arabic stemmer, measured beside it on the development set translated into Arabic
  (`tests/benchmarks/engine_languages_eval.py`), matched worse than no stems: nDCG@10 0.888, against 0.893
  without and 0.902 with light10.

Words in Latin letters are left as written: the development set's English, French and Spanish posts matched
no better with stems (earlier measurements), and a word's language cannot be told from its letters there.
Chinese is read as pairs of characters (`apps.matching.engine.preprocess_text`), and has no inflection to take off.

Beside `folding`, and like it without Django or NumPy: web processes import it for the search, and the match
panel reads a stem back into a word of the post (`apps.matching.templatetags.matching_tags.written_words`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection

import Stemmer

# What the stems are: a model fitted with other stems reads words otherwise, so a change here raises it, and
# the platform refits its stored model (`apps.matching.engine.TextModel.outdated`).
VERSION = 1

# Whole words of folded text (`apps.posts.folding.search_fold`: lower case, ё read as е, alef forms as bare
# alef) in the Russian alphabet or the Arabic one. A word holding other letters (Kazakh қ, Persian گ) is
# none of them and stays as written: stemmed by another language's rules, or cut around those letters, it
# would only lose its meaning.
_CYRILLIC_WORD = re.compile(r"(?<!\w)[\u0430-\u044f\u0451]{2,}(?!\w)")
_ARABIC_WORD = re.compile(r"(?<!\w)[\u0621-\u064a]{2,}(?!\w)")

# light10 (Larkey et al. 2007): the definite articles, longest first, and the suffixes, in its order.
_ARTICLES = ("وال", "بال", "كال", "فال", "ال", "لل")
_SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ية", "ه", "ة", "ي")
_ARABIC_NORMAL = str.maketrans({"ى": "ي", "ة": "ه"})

_local = threading.local()  # a PyStemmer object is not safe to share between threads


def _russian() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "russian", None)
    if stemmer is None:
        stemmer = _local.russian = Stemmer.Stemmer("russian")
    return stemmer


def arabic_light_stem(word: str) -> str:
    """light10: an Arabic word without its conjunction, article and suffixes (`word` folded)."""
    word = word.translate(_ARABIC_NORMAL)
    if len(word) >= 4 and word.startswith("و"):
        word = word[1:]
    word = _without_article(word, keep=2)
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            word = word[: -len(suffix)]
    return word


def _without_article(word: str, *, keep: int) -> str:
    """An Arabic word without its definite article (and what attaches to it), if `keep` letters remain."""
    for article in _ARTICLES:
        if word.startswith(article) and len(word) - len(article) >= keep:
            return word[len(article) :]
    return word


def russian_stem(word: str) -> str:
    return _russian().stemWord(word)


def stem_text(folded: str, *, drop: Collection[str] = ()) -> str:
    """A folded text with its Russian and Arabic words read as their stems (other words as they are). Words in
    `drop` (function words) are left out before they are stemmed: stemmed first, a stop word's stem would also
    take away the content words that share it (тема and тем, the theme and "the").

    The word model's terms are these stems; `matching_tags.written_words` finds them in a text by the same
    call, so a hyphenated word (социально-экономических) is stemmed part by part alike."""
    if _CYRILLIC_WORD.search(folded):
        stemmer = _russian()
        folded = _CYRILLIC_WORD.sub(
            lambda m: "" if m.group() in drop else stemmer.stemWord(m.group()), folded
        )
    if _ARABIC_WORD.search(folded):
        folded = _ARABIC_WORD.sub(lambda m: "" if m.group() in drop else arabic_light_stem(m.group()), folded)
    return folded


# The site's search finds a word within the texts (`apps.posts.selectors`), so its term must be a piece of every
# form of the word as the texts are folded: a Russian Snowball stem always is (it only takes letters off the
# end); an Arabic word loses only its article and its plural ending, as light10's stems also read ة as ه,
# which the texts keep, and a lone و taken off (وزارات, ministries) could leave a piece of other words (زار in
# المزارعين, the farmers).
_ARABIC_PLURALS = ("ات", "ون", "ين", "ان")


def search_term(word: str) -> str:
    """A folded word of a search as the texts are searched for it: a Russian word of six letters or more as its
    Snowball stem (пожары -> пожар, which finds пожаров), or its first four letters when the stem is shorter
    (раннее -> ранн, which finds раннего; a shorter piece would find unrelated words); an Arabic word without
    its article and plural ending, at least three letters kept (الفيضانات -> فيضان, which finds بالفيضانات and
    فيضان); any other word as it is."""
    if len(word) >= 6 and _CYRILLIC_WORD.fullmatch(word):
        stem = russian_stem(word)
        return stem if len(stem) >= 4 else word[:4]
    if _ARABIC_WORD.fullmatch(word):
        word = _without_article(word, keep=3)
        for suffix in _ARABIC_PLURALS:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                return word[: -len(suffix)]
    return word
