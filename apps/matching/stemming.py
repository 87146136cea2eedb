"""Stems of Russian and Arabic words, for the word model (`engine.preprocess_words`).

Russian and Arabic words change their ending (Russian: case and number, адаптация, адаптации, адаптацию) or
take attached articles, conjunctions and prepositions (Arabic: التكيف, والتكيف, للتكيف), so two posts on one
subject share few words exactly and their word similarity says little. Each word is read as its stem:

- Russian (and any Cyrillic word): the Snowball stemmer (PyStemmer, the C build of the Snowball project's
  stemmers);
- Arabic (any word in Arabic letters): the light stemmer "light10" of Larkey, Ballesteros and Connell (2007),
  the usual one for Arabic search: the conjunction و, the article ال with what attaches to it (وال بال كال فال
  لل) and ten suffixes of number, gender and pronoun, taken off while a stem of two or more letters remains.
  Snowball's Arabic stemmer was measured beside it (`tests/benchmarks/engine_languages_eval.py`).

Words in Latin letters are left as written: the development set's English, French and Spanish posts matched
no better with stems (earlier measurements), and a word's language cannot be told from its letters there.
Chinese is read as pairs of characters (`engine.preprocess_text`), and has no inflection to take off.

No Django import; the templates read a stem back into a word of the post (`matching_tags.written_words`).
"""

from __future__ import annotations

import re
import threading

import Stemmer

# Folded text (`apps.posts.folding.search_fold`): lower case, ё read as е, alef forms as bare alef.
_CYRILLIC_WORD = re.compile(r"[\u0430-\u044f\u0451-\u045f]{3,}")
_ARABIC_WORD = re.compile(r"[\u0621-\u064a]{3,}")

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
    for article in _ARTICLES:
        if word.startswith(article) and len(word) - len(article) >= 2:
            word = word[len(article) :]
            break
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            word = word[: -len(suffix)]
    return word


def russian_stem(word: str) -> str:
    return _russian().stemWord(word)


def stem_word(word: str) -> str:
    """One folded word as the word model reads it: a Russian or Arabic word's stem, any other word itself."""
    if _CYRILLIC_WORD.fullmatch(word):
        return russian_stem(word)
    if _ARABIC_WORD.fullmatch(word):
        return arabic_light_stem(word)
    return word


def stem_text(folded: str) -> str:
    """A folded text with its Russian and Arabic words read as their stems (other words as they are)."""
    if _CYRILLIC_WORD.search(folded):
        stemmer = _russian()
        folded = _CYRILLIC_WORD.sub(lambda m: stemmer.stemWord(m.group()), folded)
    if _ARABIC_WORD.search(folded):
        folded = _ARABIC_WORD.sub(lambda m: arabic_light_stem(m.group()), folded)
    return folded
