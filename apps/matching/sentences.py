"""A post's sentences, the units of the sentence alignment, and the closest pair of two posts' sentences.

Only the standard library and NumPy, so that the web process can explain a match from the stored sentence
vectors (`PostEmbedding.sentences`) without loading the engine. The engine uses the same functions, so the
sentences a page shows are the ones the vectors were computed from.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any, Protocol

import numpy as np

# The word model's tokens (`engine.TextModel.fit`), words of 2+ letters (numbers carry no topic): here, without the
# engine, so that a page can find an explanation's words in the text as written (`matching_tags.as_written`).
WORD_PATTERN = r"(?u)\b[^\W\d_][\w-]*[^\W_]\b"

# Width of a stored sentence vector: the encoder's output (`engine.EMBED_DIM`), kept as float16.
SENTENCE_DIM = 512

# A sentence ends at . ! ? ; before a space, or at the full stops, question and exclamation marks and semicolons
# of Chinese and Japanese (。！？；, no space after them), Arabic (؟ ؛ ۔) and Hindi (।), space or not.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；؟؛۔।])\s*")


class HasText(Protocol):
    title: str
    description: str


def split_sentences(text: str, limit: int = 12) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if len(s.strip()) > 3][:limit]


def post_sentences(post: HasText) -> list[str]:
    """The units of the sentence alignment: the title, then the description's sentences."""
    return [post.title, *split_sentences(post.description)]


def post_sentences_key(post: HasText) -> str:
    """Cache key of a post's sentence vectors: it changes exactly when its sentences change."""
    return _sentences_key(post.title, post.description)


@functools.lru_cache(maxsize=1 << 17)
def _sentences_key(title: str, description: str) -> str:
    # Remembered: a rebuild asks the sentence store for each shortlisted post's key again and again (splitting
    # and hashing the text each time was 2% of a 100k rebuild).
    sentences = [title, *split_sentences(description)]
    return hashlib.sha256("\x00".join(["use-m3:sentences", *sentences]).encode()).hexdigest()


def closest_passages(
    need: HasText, need_vectors: np.ndarray, offer: HasText, offer_vectors: np.ndarray
) -> dict[str, Any] | None:
    """The need's and the offer's sentences that agree most ({"need", "offer", "similarity"}), from their
    sentence vectors (one row per `post_sentences`, title first, L2-normalised). The titles are left out when
    both descriptions have sentences (a page shows the titles already); None when the vectors do not fit the
    texts."""
    a, b = post_sentences(need), post_sentences(offer)
    if need_vectors.shape[0] != len(a) or offer_vectors.shape[0] != len(b):
        return None
    first_a, first_b = (1, 1) if len(a) > 1 and len(b) > 1 else (0, 0)
    sims = need_vectors[first_a:].astype(np.float32) @ offer_vectors[first_b:].astype(np.float32).T
    i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
    return {"need": a[first_a + i], "offer": b[first_b + j], "similarity": round(float(sims[i, j]), 3)}


def stored_sentence_vectors(data: bytes | memoryview, key: str, post: HasText) -> np.ndarray | None:
    """A post's stored sentence vectors (`PostEmbedding.sentences`, float16), or None when they were computed
    from another text than the post's (`key` is their `post_sentences_key`)."""
    if not data or key != post_sentences_key(post):
        return None
    return np.frombuffer(bytes(data), dtype=np.float16).reshape(-1, SENTENCE_DIM)
