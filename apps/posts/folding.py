"""How the search compares letters: a post's stored search text and a query are folded alike.

No Django here, and no import of the matching engine (web processes do not load NumPy and scikit-learn for a
search): the engine's word model reads text through this fold (`matching.engine.preprocess_text`, which also
splits Chinese and Japanese into pairs of characters): lower case in every script; accents off Latin letters only (précoce and
precoce, sequías and sequias are one word to users who type without accents), while the marks that make
another script's letter stay (Russian й is not и, Arabic ئ is not ي); compatibility forms as their plain
letters (the ligature ﬁ, full-width Ａ); Arabic short vowels (harakat) and the tatweel off, alef with hamza or
madda as alef (إنذار and انذار are one word); ё as е; ’ as '. Chinese and Japanese are kept as written: the search
finds their words within the texts, not as the engine's pairs of characters.

The fold is done in Python, not by the database (PostgreSQL's `unaccent` extension needs a superuser to be
created on most hosted databases, and SQLite has nothing of the kind): `Post.search_text` holds it, written by
the application wherever a title or description is (`Post.save`, `PostQuerySet`), and indexed by PostgreSQL.
"""

import re
import unicodedata

_LATIN_MARKS = re.compile(r"(?<=[a-z])[\u0300-\u036f]+")
_ARABIC_MARKS = re.compile(r"[\u064b-\u0652\u0640]+")
# The typographic apostrophes as the typewriter's: a French, Mac or phone keyboard types l’eau, another l'eau
# (migration posts 0016 folded the posts' stored text so).
_FOLDS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ё": "е", "’": "'", "‘": "'", "ʼ": "'"})


def search_fold(text: str) -> str:
    """A text (a post's or a query) as the search compares it."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = unicodedata.normalize("NFC", _LATIN_MARKS.sub("", text))
    return _ARABIC_MARKS.sub("", text).translate(_FOLDS)


# Between title and description: a line break, so that a quoted phrase found within the texts never spans the
# end of the title and the start of the description (it did not when each was searched apart), while the
# full-text search reads it as the space it read there before.
SEARCH_TEXT_SEPARATOR = "\n"


def post_search_text(title: str, description: str) -> str:
    """What `Post.search_text` holds for this title and description."""
    return search_fold(title or "") + SEARCH_TEXT_SEPARATOR + search_fold(description or "")
