"""Connects the engine to the database: posts in, fitted model and index cached per worker, matches out.

Each worker process keeps the current `TextModel` and a `MatchIndex` of every published post in memory. The
index is rebuilt when the model version changes or when too many posts changed since it was built; between
rebuilds, posts changed since the build (the "delta", found by `updated_at`) are scored on the fly, so a
worker never matches against a stale post and never needs another worker's memory.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import inspect
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import psycopg
import scipy.sparse as sp
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import BigIntegerField, Case, Exists, F, Max, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from psycopg.types.json import set_json_dumps

from apps.parties.selectors import party_groups_by_iso3
from apps.posts.models import Post

from . import engine, kernels
from .engine import MatchIndex, MatchResult, PostRecord, TextModel, Weights
from .models import Match, PostEmbedding, RebuildChunk, RebuildPair, RebuildRun, TextModelVersion
from .services import matching_retire

logger = logging.getLogger(__name__)

# Every process that embeds through Django imports this module first (workers, commands, in-process tasks).
engine.configure_encoder(pieces=settings.MATCHING_ENCODER_PIECES)

# Beyond this many changed posts since the index was built, rebuilding it is cheaper than scoring the delta.
DELTA_LIMIT = 200
# An index of at least this many posts is frozen out of the garbage collector's scans (`_freeze_index`).
FREEZE_FROM = 10_000
# A rebuild unfinished that has shown no progress for this long died (a worker or the command killed): its pairs
# are forgotten, and its being unfinished holds nothing back. Well above the longest gap between two signs of
# an alive run: a worker's chunk is time-limited to 11 minutes, and an in-process run's set-up before its first
# chunk takes seconds to a few minutes.
RUN_STALLED_AFTER = timedelta(minutes=30)
# A fanned-out rebuild that has written no chunk for this long has lost chunks in the broker (a Redis restarted
# without its data) or its workers: the sweep queues again those not written. Above a chunk's time limit (11
# minutes), so that every chunk that was running then has ended; below RUN_STALLED_AFTER, so that the run is
# still alive when they arrive.
CHUNKS_LOST_AFTER = timedelta(minutes=15)


def _runs_going() -> QuerySet[RebuildRun]:
    """Rebuilds unfinished and alive (some progress in the last `RUN_STALLED_AFTER`)."""
    return RebuildRun.objects.filter(
        finished_at__isnull=True, progress_at__gte=timezone.now() - RUN_STALLED_AFTER
    )


EMBED_BATCH = 256
SMALL_CORPUS = 2000


def _weights() -> Weights:
    return Weights(**settings.MATCHING_WEIGHTS)


def ranking_settings_digest() -> str:
    """What, in this process's settings, decides a rebuild's ranking (the top k, the floor, the weights): the
    chunks of one run must all be ranked alike. Digested as the numbers they are, not as they were written: a
    worker given `{"lexical": 1}` ranks as a command given `{"lexical": 1.0}` (and -0.0 as 0.0)."""

    def number(value: float) -> float:
        return float(value) + 0.0  # an int as the float it equals; + 0.0 makes -0.0 0.0

    ranking = {
        "k": int(settings.MATCHING_TOP_K),
        "floor": number(settings.MATCHING_FLOOR),
        "weights": {name: number(value) for name, value in asdict(_weights()).items()},
    }
    return hashlib.sha256(orjson.dumps(ranking, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- posts as engine records ---------------------------------------------------------------------------------


def post_records(
    posts: Q | None = None, *, groups: dict[str, frozenset[str]] | None = None
) -> list[PostRecord]:
    """Engine records of the posts matching `posts`, read with a fixed number of queries (no N+1); `groups`:
    every Party's eligibility groups if the caller has just read them (`party_groups_by_iso3`)."""
    qs = Post.objects.all() if posts is None else Post.objects.filter(posts)
    rows = list(
        qs.order_by("id").values_list(
            "id",
            "kind",
            "party__iso3",
            "provider__short_name",
            "status",
            "title",
            "description",
            "language",
            "amount_usd",
            "eligible",
        )
    )
    if not rows:
        return []
    ids = [row[0] for row in rows]
    facets: dict[str, dict[int, set[str]]] = {}
    for name in ("support_types", "focus_areas", "sectors"):
        through = getattr(Post, name).through
        column = next(f.column for f in through._meta.get_fields() if f.name not in ("id", "post"))
        by_post: dict[int, set[str]] = defaultdict(set)
        for post_id, key in _in_batches(through.objects, "post_id", ids, ("post_id", column)):
            by_post[post_id].add(key)
        facets[name] = by_post
    if groups is None:
        groups = party_groups_by_iso3()
    return [
        PostRecord(
            id=pk,
            kind=kind,
            party=iso3,
            party_groups=groups.get(iso3, frozenset()) if iso3 else frozenset(),
            provider=provider,
            status=status,
            title=title,
            description=description,
            language=language,
            support_types=frozenset(facets["support_types"].get(pk, ())),
            focus_areas=frozenset(facets["focus_areas"].get(pk, ())),
            sectors=frozenset(facets["sectors"].get(pk, ())),
            amount_usd=float(amount) if amount is not None else None,
            eligible=frozenset(eligible or ()),
        )
        for pk, kind, iso3, provider, status, title, description, language, amount, eligible in rows
    ]


def _in_batches(
    manager,
    column: str,
    ids: Sequence[int],
    fields: tuple[str, ...],
    size: int = 20_000,
    *,
    scan: bool | None = None,
):
    """values_list over `column IN ids` in batches: SQLite caps the number of query parameters. `scan`: read
    the whole table instead; by default when the ids fill more than two batches; `False` for tables whose rows
    are large or many per id, where reading the whole table never pays."""
    if scan or (scan is None and len(ids) > size * 2):
        # For a whole-corpus read one unfiltered scan beats many IN lists.
        wanted = set(ids)
        for row in manager.values_list(*fields).iterator(chunk_size=10_000):
            if row[0] in wanted:
                yield row
        return
    for start in range(0, len(ids), size):
        yield from manager.filter(**{f"{column}__in": ids[start : start + size]}).values_list(*fields)


# --- embeddings cache ----------------------------------------------------------------------------------------


EMBEDDINGS_SCAN_FROM = 40_000


def _scan(ids: list[int]) -> bool:
    """Whether to read these posts' rows of `PostEmbedding` by one scan of the table rather than by lists of
    ids: when they are most of it (a rebuild, a worker's first index; 2.4 s against 4.5 s for the vectors of
    100k posts), not when they are a few of many."""
    return len(ids) >= EMBEDDINGS_SCAN_FROM and 2 * len(ids) >= PostEmbedding.objects.count()


def embeddings_for(records: Sequence[PostRecord]) -> dict[int, np.ndarray]:
    """Each post's embedding, from the cache where its text is unchanged, else computed and stored with the
    vectors of its sentences, which the rerank reads when the post is matched (`DatabaseSentenceStore`)."""
    keys = {r.id: engine.post_embedding_key(r) for r in records}
    cached: dict[int, np.ndarray] = {}
    ids = list(keys)
    for post_id, text_hash, vector in _in_batches(
        PostEmbedding.objects, "post_id", ids, ("post_id", "text_hash", "vector"), 5000, scan=_scan(ids)
    ):
        if keys.get(post_id) == text_hash:
            cached[post_id] = np.frombuffer(bytes(vector), dtype=np.float32)
    missing = [r for r in records if r.id not in cached]
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        vectors, sentences = engine.embed_posts_and_sentences(batch)
        PostEmbedding.objects.bulk_create(
            [
                PostEmbedding(
                    post_id=r.id,
                    text_hash=keys[r.id],
                    vector=v.astype(np.float32).tobytes(),
                    sentences_hash=engine.post_sentences_key(r),
                    sentences=s.tobytes(),
                )
                for r, v, s in zip(batch, vectors, sentences, strict=True)
            ],
            update_conflicts=True,
            unique_fields=["post"],
            update_fields=["text_hash", "vector", "sentences_hash", "sentences", "updated_at"],
        )
        cached.update({r.id: v for r, v in zip(batch, vectors, strict=True)})
    return cached


def lexical_key(record: PostRecord, version: int) -> str:
    """Key of a post's kept lexical rows: the model version and a hash of the whole text (the embedding's key
    covers only the opening that is embedded)."""
    return f"{version}:{hashlib.sha256(engine.post_text(record).encode()).hexdigest()}"


def lexical_for(records: Sequence[PostRecord], model: TextModel, version: int) -> engine.LexicalRows:
    """The posts' `TextModel.lexical` word and ESA rows, for `MatchIndex.build`: read where they were
    kept for this model version and the post's current text, else computed and kept beside the embedding
    (tokenising and the ESA products took 10 s of an index build at 100k posts, reading them 2 s)."""
    keys = {r.id: lexical_key(r, version) for r in records}
    ids = list(keys)
    found: list[int] = []
    packed = bytearray()  # the rows end to end (`engine.unpack_lexical`): ~1 KB a post
    for post_id, key, data in _in_batches(
        PostEmbedding.objects, "post_id", ids, ("post_id", "lexical_key", "lexical"), 5000, scan=_scan(ids)
    ):
        if keys.get(post_id) == key and data is not None:
            found.append(post_id)
            packed += data
    words, esa = engine.unpack_lexical(packed, model)
    del packed
    known = set(found)
    missing = [r for r in records if r.id not in known]
    if missing:
        new_words, new_esa = model.lexical([engine.post_text(r) for r in missing])
        _keep_lexical(missing, keys, engine.pack_lexical(new_words, new_esa))
        found += [r.id for r in missing]
        words, esa = sp.vstack([words, new_words]).tocsr(), sp.vstack([esa, new_esa]).tocsr()
    return engine.LexicalRows(found, words, esa)


def _keep_lexical(records: Sequence[PostRecord], keys: dict[int, str], rows: list[bytes]) -> None:
    """Store the posts' packed lexical rows under their keys. A key names the text the rows are of, so the rows
    of an older text are never read for a newer one; they are not even stored where the post's embedding is
    already of another text (a worker that read the post before an edit)."""
    hashes = [engine.post_embedding_key(r) for r in records]
    with transaction.atomic():
        if connection.vendor != "postgresql":
            for r, text_hash, row in zip(records, hashes, rows, strict=True):
                PostEmbedding.objects.filter(post_id=r.id, text_hash=text_hash).update(
                    lexical_key=keys[r.id], lexical=row
                )
            return
        # After a refit every post's rows are new: one COPY and one UPDATE, not a statement per post.
        table = PostEmbedding._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS matching_lexical (post_id bigint, text_hash varchar(64), "
                "lexical_key varchar(80), lexical bytea) ON COMMIT DELETE ROWS"
            )
            cursor.execute("TRUNCATE matching_lexical")
            with cursor.cursor.copy("COPY matching_lexical FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "varchar", "varchar", "bytea"])
                for r, text_hash, row in zip(records, hashes, rows, strict=True):
                    copy.write_row((r.id, text_hash, keys[r.id], row))
            # The rows locked in primary-key order first: two workers storing the same posts (after a refit, each
            # builds its index) then cannot deadlock, whatever order the UPDATE's join visits them in.
            cursor.execute(
                f"SELECT 1 FROM {table} WHERE post_id IN (SELECT post_id FROM matching_lexical) "
                "ORDER BY post_id FOR UPDATE"
            )
            cursor.execute(
                f"UPDATE {table} AS e SET lexical_key = t.lexical_key, lexical = t.lexical "
                "FROM matching_lexical AS t WHERE e.post_id = t.post_id AND e.text_hash = t.text_hash"
            )


class DatabaseSentenceStore(engine.SentenceStore):
    """The rerank's sentence vectors, kept beside each post's embedding (`PostEmbedding.sentences`)."""

    BATCH = 2000

    def get(self, records: Sequence[PostRecord]) -> dict[int, np.ndarray]:
        keys = {r.id: engine.post_sentences_key(r) for r in records}
        found: dict[int, np.ndarray] = {}
        for post_id, sentences_hash, data in self._rows(sorted(keys)):
            if keys[post_id] == sentences_hash:
                found[post_id] = np.frombuffer(bytes(data), dtype=np.float16).reshape(-1, engine.EMBED_DIM)
        return found

    def _rows(self, ids: list[int]) -> Iterable[tuple[int, str, bytes]]:
        """(post id, sentences hash, sentences) of the posts among `ids` that have sentence vectors; never a
        table scan: the rows carry ~7 KB of vectors each."""
        if connection.vendor != "postgresql":
            yield from _in_batches(
                PostEmbedding.objects.filter(sentences__isnull=False),
                "post_id",
                ids,
                ("post_id", "sentences_hash", "sentences"),
                self.BATCH,
                scan=False,
            )
            return
        # In binary format: as text, PostgreSQL sends the bytes in hex, and encoding and decoding them took half
        # the time of the query (2,000 posts: 57 ms against 28 ms). A rebuild of 100k posts reads millions.
        # Django's cursors bind parameters client-side, which rules binary results out: a plain psycopg cursor
        # on the same connection (same transaction) does it.
        table = PostEmbedding._meta.db_table
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            for start in range(0, len(ids), self.BATCH):
                cursor.execute(
                    f"SELECT post_id, sentences_hash, sentences FROM {table} "
                    "WHERE post_id = ANY(%s) AND sentences IS NOT NULL",
                    [ids[start : start + self.BATCH]],
                    binary=True,
                )
                yield from cursor.fetchall()

    def put(self, records: Sequence[PostRecord], vectors: Sequence[np.ndarray]) -> None:
        by_id = {r.id: (r, v) for r, v in zip(records, vectors, strict=True)}
        # Only for posts whose stored embedding is of the same text: a worker whose index still holds an edited
        # post's old text must not overwrite the vectors of the new one.
        current = {
            post_id
            for post_id, text_hash in PostEmbedding.objects.filter(post_id__in=list(by_id)).values_list(
                "post_id", "text_hash"
            )
            if text_hash == engine.post_embedding_key(by_id[post_id][0])
        }
        if len(current) < len(by_id):
            logger.info(
                "Sentence vectors of %d stale or unindexed posts not stored", len(by_id) - len(current)
            )
        # In primary-key order, so that two workers storing overlapping batches cannot deadlock.
        PostEmbedding.objects.bulk_update(
            [
                PostEmbedding(
                    post_id=pk,
                    sentences_hash=engine.post_sentences_key(by_id[pk][0]),
                    sentences=np.asarray(by_id[pk][1], dtype=np.float16).tobytes(),
                )
                for pk in sorted(current)
            ],
            ["sentences_hash", "sentences"],
            batch_size=200,
        )


sentence_store = DatabaseSentenceStore()


# --- the fitted model store ----------------------------------------------------------------------------------


@dataclass
class _WorkerState:
    model_version: int | None = None
    model: TextModel | None = None
    index: MatchIndex | None = None
    index_version: int | None = None
    index_as_of: datetime | None = None
    # Every Party's eligibility groups when the index was built: its needs' rows hold them.
    index_groups: dict[str, frozenset[str]] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _WorkerState()


class NotEnoughPosts(LookupError):
    """Fewer than two published posts: nothing to fit a model on, and nothing to match."""


def _lock_key(name: str) -> int:
    """The advisory lock's number for `name` (a signed 64-bit integer)."""
    return int.from_bytes(hashlib.sha256(f"nma-platform:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def _exclusive(name: str, *, wait: bool) -> Iterator[bool]:
    """One process at a time, across every machine: PostgreSQL's advisory lock named `name`, held by this
    connection's session (released at the end, or when the connection drops: a killed worker's too). Gives
    whether it is held: always with `wait` (once it is); elsewhere (SQLite: development, one process) always."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = _lock_key(name)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {'pg_advisory_lock' if wait else 'pg_try_advisory_lock'}(%s)", [key])
        held = True if wait else bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def text_model_refit() -> tuple[int, TextModel]:
    """Fit a new model version on every published post and store it for all workers (one process at a time)."""
    with _exclusive("text-model-refit", wait=True):
        return _text_model_fit()


def _refit_unless_fitted_since(seen: int | None) -> tuple[int, TextModel] | None:
    """Refit, unless another process stored a version newer than `seen` while this one waited for its turn:
    every worker that found the store empty (or the small corpus grown) at the same moment fitted a model of
    its own, ~40 s each at 4,000 posts. None: load the newest instead."""
    with _exclusive("text-model-refit", wait=True):
        newest = TextModelVersion.objects.aggregate(v=Max("version"))["v"]
        if newest is not None and newest != seen:
            return None
        return _text_model_fit()


def _text_model_fit() -> tuple[int, TextModel]:
    records = post_records(Q(status=Post.Status.PUBLISHED))
    if len(records) < 2:
        raise NotEnoughPosts("At least two published posts are needed to fit a text model.")
    vectors = embeddings_for(records)
    model = engine.fit_model(records, embeddings=np.stack([vectors[r.id] for r in records]))
    latest = TextModelVersion.objects.aggregate(v=Max("version"))["v"] or 0
    try:
        with transaction.atomic():
            stored = TextModelVersion.objects.create(
                version=latest + 1, corpus_size=len(records), payload=model.to_bytes()
            )
    except IntegrityError:
        # Another worker stored a version at the same moment: use the newest one.
        return text_model_current()
    logger.info("Fitted text model v%d on %d posts", stored.version, len(records))
    _state.model_version, _state.model = stored.version, model
    return stored.version, model


def text_model_current() -> tuple[int, TextModel]:
    """The newest stored model (fitting the first one if there is none), loaded once per process.

    While the platform is small, a refit costs little (embeddings are cached) and each post changes the
    vocabulary a lot, so the model is refitted inline as soon as the corpus has grown; past
    SMALL_CORPUS posts that is left to the hourly beat task.
    """
    newest = TextModelVersion.objects.order_by("-version").values_list("version", "corpus_size").first()
    latest, corpus_size = newest if newest is not None else (None, 0)
    published = Post.objects.published().count() if latest is not None and corpus_size < SMALL_CORPUS else 0
    if latest is None or (
        published >= corpus_size * (1 + settings.MATCHING_REFIT_GROWTH) and published > corpus_size
    ):
        if fitted := _refit_unless_fitted_since(latest):
            return fitted
        latest = TextModelVersion.objects.aggregate(v=Max("version"))["v"]  # another process's, meanwhile
    if _state.model_version != latest or _state.model is None:
        payload = TextModelVersion.objects.values_list("payload", flat=True).get(version=latest)
        _state.model = TextModel.from_bytes(bytes(payload))
        _state.model_version = latest
    return _state.model_version, _state.model


def text_model_refit_if_grown() -> int | None:
    """Refit when the published corpus has grown by MATCHING_REFIT_GROWTH since the last fit, or when the newest
    model is outdated (`engine.TextModel.outdated`): stored before models kept a pivot language (until then it
    compares no pair in two languages word for word), before Russian and Arabic words were read as stems, or
    before it measured the languages' word backgrounds (`engine.TextModel.language_offsets`)."""
    last = TextModelVersion.objects.order_by("-version").values_list("corpus_size", flat=True).first()
    size = Post.objects.published().count()
    if last is None or size >= last * (1 + settings.MATCHING_REFIT_GROWTH):
        return text_model_refit()[0] if size >= 2 else None
    if size >= 2 and text_model_current()[1].outdated:
        return text_model_refit()[0]
    return None


# --- the index -----------------------------------------------------------------------------------------------


def _current_index() -> tuple[MatchIndex, dict[int, PostRecord]]:
    """This process's index of published posts and the records of posts changed since it was built."""
    version, model = text_model_current()
    changed: list[PostRecord] = []
    groups = party_groups_by_iso3()
    if _state.index is not None and _state.index_version == version and _state.index_groups == groups:
        changed = post_records(Q(updated_at__gte=_state.index_as_of), groups=groups)
        if len(changed) <= DELTA_LIMIT:
            return _state.index, {r.id: r for r in changed}
    # A new model, too many changes, or a Party's groups changed (the secretariat's admin; rare): no post
    # changed, but which offers a need may meet did.
    as_of = timezone.now()
    records = post_records(Q(status=Post.Status.PUBLISHED), groups=groups)
    _state.index = MatchIndex.build(
        records,
        model,
        embeddings=embeddings_for(records),
        sentence_store=sentence_store,
        lexical=lexical_for(records, model, version),
    )
    _state.index_version, _state.index_as_of, _state.index_groups = version, as_of, groups
    if len(records) >= FREEZE_FROM:
        _freeze_index()
    logger.info("Built the match index of %d posts (model v%d)", len(records), version)
    # Anything saved while we read is caught by the next delta, which starts at `as_of`.
    return _state.index, {}


def _freeze_index() -> None:
    """Take what the process holds now, the new index above all, out of the cyclic garbage collector's scans
    (`gc.freeze`). A full collection scans every tracked object: with a 100k-post index, ~800k of them and
    ~250 ms, which a focal point's publication paid whenever one fell due (the first publication after a
    fanned-out rebuild took 800 ms, the others 150). Reference counting still frees the index when it is
    replaced; what the frozen objects left in cycles is collected here, at the next build, before freezing
    again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def index_reset() -> None:
    """Forget this process's model and index (tests, and after a refit in the same process)."""
    _state.model_version = _state.model = _state.index = _state.index_version = _state.index_as_of = None
    _state.index_groups = None


def _match_one(
    record: PostRecord, index: MatchIndex, delta: dict[int, PostRecord], *, k: int
) -> list[MatchResult]:
    """The post's top k on the other side, with posts changed since the index was built taken from the delta."""
    floor, weights = settings.MATCHING_FLOOR, _weights()
    other = engine.OFFER if record.kind == engine.NEED else engine.NEED
    stale = {pk for pk, r in delta.items() if r.kind == other}
    vector = embeddings_for([record])[record.id]
    results = [
        r
        for r in index.match(record, k=k + len(stale), floor=floor, weights=weights, embedding=vector)
        if (r.offer_id if other == engine.OFFER else r.need_id) not in stale
    ]
    fresh = [r for r in delta.values() if r.kind == other and r.status == engine.PUBLISHED]
    if fresh:
        vectors = embeddings_for([record, *fresh])
        results += engine.match_post(
            record,
            fresh,
            index.model,
            weights=weights,
            k=k,
            floor=floor,
            embeddings=vectors,
            sentence_store=sentence_store,
        )
    other_id = (lambda r: r.offer_id) if other == engine.OFFER else (lambda r: r.need_id)
    results.sort(key=lambda r: (-r.score, other_id(r)))
    return results[:k]


# --- storing matches -----------------------------------------------------------------------------------------


# A re-score that moves a match by less than this (one point of the percentage shown) is not a change that a
# focal point should be told about.
MATERIAL_CHANGE = 0.01


def _changed_at(rows: list[Match], now: datetime) -> None:
    """Set each row's `changed_at`: now for a new pair, one that comes back active or a material change of
    score; else the stored value."""
    needs, offers = {row.need_id for row in rows}, {row.offer_id for row in rows}
    # Read the stored pairs through the side with fewer posts (a chunk is grouped by one side).
    column, ids = ("need_id", sorted(needs)) if len(needs) <= len(offers) else ("offer_id", sorted(offers))
    fields = ("need_id", "offer_id", "score", "is_active", "changed_at")
    stored = {
        (need_id, offer_id): (score, is_active, changed_at)
        for need_id, offer_id, score, is_active, changed_at in _in_batches(
            Match.objects, column, ids, fields, 2000, scan=False
        )
    }
    for row in rows:
        old = stored.get((row.need_id, row.offer_id))
        material = old is None or not old[1] or abs(old[0] - row.score) >= MATERIAL_CHANGE
        row.changed_at = now if material else old[2]


# The columns an upsert writes (besides its own flags), in the order of the COPY rows.
_UPSERT_COLUMNS = (
    "need_id", "offer_id", "score", "lexical", "semantic", "structured", "alignment", "explanation",
    "model_version", "fingerprint", "changed_at",
)  # fmt: skip


def _stored_score(score: float) -> float:
    return round(min(max(score, 0.0), 1.0), 6)


def _row_values(result: MatchResult) -> tuple[Any, ...]:
    """What a result stores, as the first eight `_UPSERT_COLUMNS` (the pair to the explanation)."""
    c = result.components
    return (result.need_id, result.offer_id, _stored_score(result.score), c.get("lexical", 0.0),
            c.get("semantic", 0.0), c.get("structured", 0.0), c.get("alignment"), result.explanation)  # fmt: skip


def _fingerprints(values: Sequence[tuple[Any, ...]], version: int) -> list[int]:
    """`fingerprint` of each of the rows `values` (`_row_values`): the rows written as one JSON array by one
    call of orjson, whose items (each the bytes that row alone gives) are found and hashed in two compiled
    passes (`kernels.json_items`, `kernels.hash_spans`). A dump and a blake2b object a row took twice as long,
    all of it holding the GIL that the rebuild's threads share."""
    if not values:
        return []
    data = np.frombuffer(orjson.dumps([[*v, version] for v in values], option=orjson.OPT_SORT_KEYS), np.uint8)
    starts, ends = np.empty(len(values), dtype=np.int64), np.empty(len(values), dtype=np.int64)
    if kernels.json_items(data, starts, ends) != len(values):
        raise AssertionError("orjson wrote another number of items than it was given")
    out = np.empty(len(values), dtype=np.uint64)
    kernels.hash_spans(data, starts, ends, out)
    return out.view(np.int64).tolist()


@functools.cache
def _storage_digest() -> bytes:
    """How a result becomes a row (`_row_values`, `_stored_score`, the columns): part of the engine's
    fingerprints of what a row is computed from (`engine.fingerprint_salt`), so that a change here makes the
    next rebuild write every row again."""
    source = inspect.getsource(_row_values) + inspect.getsource(_stored_score) + repr(_UPSERT_COLUMNS)
    return hashlib.blake2b(source.encode(), digest_size=16).digest()


def fingerprint(result: MatchResult, version: int) -> int:
    """A signed 64-bit hash of what `result` stores in its row under model `version`: the pair, its scores as
    stored, its explanation. Equal values give equal bytes (orjson writes floats in their shortest exact form,
    and keys sorted), in any process."""
    return _fingerprints([_row_values(result)], version)[0]


def _find(keys: np.ndarray, sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which `keys` are in `sorted_keys` (sorted, not empty), and where: a binary search each, not a sort of
    both (np.isin)."""
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys, at


def _in_sorted(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which `keys` are in `sorted_keys` (sorted)."""
    return _find(keys, sorted_keys)[0] if len(sorted_keys) else np.zeros(len(keys), dtype=bool)


def _strong_as_stored(scores: np.ndarray) -> np.ndarray:
    """Which scores are strong as the database sees them: stored rounded (`_stored_score`), as `strong_at` is
    set from them (a raw 0.7499996 is stored as 0.75)."""
    scores = np.asarray(scores, dtype=np.float64)
    threshold = settings.MATCHING_STRONG_SCORE
    strong = scores >= threshold
    near = np.flatnonzero(~strong & (scores >= threshold - 1e-6))
    for i in near.tolist():
        strong[i] = _stored_score(float(scores[i])) >= threshold
    return strong


class StoredFingerprints:
    """The active matches as an in-process rebuild finds them when it starts, read once (`read`): their ids,
    pairs and fingerprints. The rebuild then sends the database only the rows whose fingerprint differs
    (`changed`: at 100k posts, sending every row for the database to compare cost it ~30 s of CPU, on the two
    cores the rebuild's own scoring needs), and retires from them what it did not rank (`rebuild_finish`)
    instead of reading every active match again at its end."""

    def __init__(
        self,
        ids: np.ndarray,
        keys: np.ndarray,
        fingerprints: np.ndarray,
        known: np.ndarray,
        strong_missing: np.ndarray,
        inactive_keys: np.ndarray | None = None,
    ) -> None:
        order = np.argsort(keys, kind="stable")
        self.ids, self.keys, self.fingerprints = ids[order], keys[order], fingerprints[order]
        self.known, self.strong_missing = known[order], strong_missing[order]
        # The pairs stored but retired: not "absent" (their insert would fail, and be undone, and upserted).
        self.inactive_keys = (
            np.sort(inactive_keys) if inactive_keys is not None else np.zeros(0, dtype=np.int64)
        )

    @classmethod
    def read(cls) -> StoredFingerprints:
        rows = _int8_rows(
            Match.objects.active()
            .annotate(
                stored_fingerprint=Coalesce("fingerprint", Value(0), output_field=BigIntegerField()),
                known=Case(When(fingerprint__isnull=False, then=1), default=0),
                strong_missing=Case(When(strong_at__isnull=True, then=1), default=0),
            )
            .values_list("id", "need_id", "offer_id", "stored_fingerprint", "known", "strong_missing")
        )
        retired = _int8_rows(Match.objects.filter(is_active=False).values_list("need_id", "offer_id"))
        return cls(rows[:, 0], _pair_keys(rows[:, 1:3]), rows[:, 3], rows[:, 4].astype(bool),
                   rows[:, 5].astype(bool), _pair_keys(retired))  # fmt: skip

    def unchanged(
        self, need_ids: np.ndarray, offer_ids: np.ndarray, scores: np.ndarray, prints: np.ndarray
    ) -> np.ndarray:
        """Which of these pairs (with the engine's `fingerprint`s, `match_all(version=...)`) are stored active
        with that fingerprint, so that the rebuild need neither explain nor write them: those not becoming
        strong (`strong_at` is set when a strong pair is written). The engine's fingerprints hash what a row is
        computed from; those of rows written otherwise (`fingerprint`: what a row holds) never equal one."""
        if len(self.keys) == 0 or len(need_ids) == 0:
            return np.zeros(len(need_ids), dtype=bool)
        found, at = _find(_pair_keys(np.stack([need_ids, offer_ids], axis=1)), self.keys)
        same = found & self.known[at] & (self.fingerprints[at] == prints)
        return same & ~(_strong_as_stored(scores) & self.strong_missing[at])

    def absent(self, results: list[MatchResult]) -> np.ndarray:
        """Which results' pairs were not stored when the rebuild started, active or retired (most likely not
        stored now either: a worker may have inserted one since)."""
        keys = _pair_keys([(r.need_id, r.offer_id) for r in results])
        return ~_in_sorted(keys, self.keys) & ~_in_sorted(keys, self.inactive_keys)

    def changed(self, results: list[MatchResult], prints: list[int]) -> np.ndarray:
        """Which of the results (with their `fingerprint`s) their stored rows do not hold already: a pair not
        stored (or not active), stored with another fingerprint or none (a row edited since it was written),
        or becoming strong (`strong_at` is set): what `unchanged` does not hold."""
        pairs = np.array([(r.need_id, r.offer_id) for r in results], dtype=np.int64).reshape(-1, 2)
        scores = np.array([r.score for r in results], dtype=np.float64)
        return ~self.unchanged(pairs[:, 0], pairs[:, 1], scores, np.array(prints, dtype=np.int64))


def _upsert(
    results: Iterable[MatchResult],
    *,
    version: int,
    run_id: int | None = None,
    record_pairs: bool = True,
    stored: StoredFingerprints | None = None,
) -> int:
    """Store the results; returns how many pairs they hold. Within a rebuild (`run_id`), on PostgreSQL a stored
    match whose values are all unchanged is left as it is, and the pairs are recorded as ranked by it
    (`RebuildPair`) unless the caller keeps them itself (`record_pairs=False`: the in-process rebuild).
    `stored`: the rows found in it unchanged are not even sent."""
    # One row per pair (a post's own list and the lists it enters can name the same pair): the last one wins,
    # as if each had been written in turn.
    unique = list({(r.need_id, r.offer_id): r for r in results}.values())
    if not unique:
        return 0
    values = [_row_values(r) for r in unique]
    # A rebuild's results carry the engine's fingerprint of what they are computed from; others get the hash
    # of what they hold.
    missing = [i for i, r in enumerate(unique) if r.fingerprint is None]
    if len(missing) == len(unique):
        prints = _fingerprints(values, version)
    else:
        prints = [r.fingerprint for r in unique]
        for i, print_ in zip(missing, _fingerprints([values[i] for i in missing], version), strict=True):
            prints[i] = print_
    ranked = len(unique)
    absent = None
    if stored is not None:
        changed = stored.changed(unique, prints)
        absent = stored.absent(unique)[changed].tolist()
        changed = changed.tolist()
        values = [v for v, c in zip(values, changed, strict=True) if c]
        prints = [p for p, c in zip(prints, changed, strict=True) if c]
        if not values:
            return ranked
    now = timezone.now()
    if connection.vendor == "postgresql":
        if absent is not None and any(absent):
            # Pairs that were not active when the rebuild started (all of them, into an empty table) are most
            # likely not stored at all: inserted plainly (`_insert_fresh_by_copy`), the others upserted.
            fresh = [i for i, a in enumerate(absent) if a]
            _insert_fresh_by_copy([values[i] for i in fresh], [prints[i] for i in fresh], version, now)
            rest = [i for i, a in enumerate(absent) if not a]
            values, prints = [values[i] for i in rest], [prints[i] for i in rest]
            if not values:
                return ranked
        _upsert_by_copy(values, prints, version, now, run_id, record_pairs)
        return ranked
    rows = [
        Match(
            **dict(zip(_UPSERT_COLUMNS[:8], v, strict=True)),
            model_version=version,
            fingerprint=print_,
            is_active=True,
        )
        for v, print_ in zip(values, prints, strict=True)
    ]
    _changed_at(rows, now)
    Match.objects.bulk_create(
        rows,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["need", "offer"],
        update_fields=[*_UPSERT_COLUMNS[2:], "is_active", "updated_at"],
    )
    Match.objects.filter(
        need_id__in=sorted({row.need_id for row in rows}),
        is_active=True,
        strong_at__isnull=True,
        score__gte=settings.MATCHING_STRONG_SCORE,
    ).update(strong_at=now)
    if run_id is not None and record_pairs:
        RebuildPair.objects.bulk_create(
            [RebuildPair(run_id=run_id, need_id=r.need_id, offer_id=r.offer_id) for r in unique],
            batch_size=500,
            ignore_conflicts=True,
        )
    return ranked


# The types of `_UPSERT_COLUMNS`, in order, as binary COPY sends them.
_UPSERT_TYPES = ["int8", "int8", "float8", "float8", "float8", "float8", "float8", "jsonb", "int4", "int8",
                 "timestamptz"]  # fmt: skip


# What an inserted row holds besides `_UPSERT_COLUMNS` (the upsert's insert and the plain insert of fresh rows):
# active, interests unanswered, strong from now if it is (`{t}`: the table its values are read from).
_NEW_ROW_COLUMNS = "is_active, created_at, updated_at, need_interest, offer_interest, strong_at"
_NEW_ROW_VALUES = (
    "true, %(now)s, %(now)s, '', '', CASE WHEN {t}.score >= %(strong)s THEN %(now)s::timestamptz END"
)


def _copy_rows(
    cursor: Any, values: list[tuple[Any, ...]], prints: list[int], version: int, now: datetime
) -> None:
    """The rows into the (empty) temporary table `matching_upsert`, by binary COPY."""
    columns = ", ".join(_UPSERT_COLUMNS)
    cursor.execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS matching_upsert (need_id bigint, offer_id bigint, score float8, "
        "lexical float8, semantic float8, structured float8, alignment float8, explanation jsonb, "
        "model_version integer, fingerprint bigint, changed_at timestamptz) ON COMMIT DELETE ROWS"
    )
    # Inside a caller's transaction the rows of an earlier call are still there.
    cursor.execute("TRUNCATE matching_upsert")
    set_json_dumps(orjson.dumps, context=cursor.cursor)
    with cursor.cursor.copy(f"COPY matching_upsert ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_UPSERT_TYPES)
        write = copy.write_row
        for row, print_ in zip(values, prints, strict=True):
            write((*row, version, print_, now))


def _insert_fresh_by_copy(
    values: list[tuple[Any, ...]], prints: list[int], version: int, now: datetime
) -> None:
    """Rows of pairs an in-process rebuild did not find active when it started, inserted without looking for
    a stored row first: into an empty table (the first rebuild, every row), the upsert's lookup of each pair
    and its ON CONFLICT cost the database twice what the insert does (100,000 rows: 5.7-7.3 s against
    2.9-3.5 s). A pair stored all the same (retired before, or inserted meanwhile by a worker) makes the insert
    fail: it is undone (a savepoint) and the rows upserted as any others."""
    columns = ", ".join(_UPSERT_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        _copy_rows(cursor, values, prints, version, now)
        try:
            with transaction.atomic():
                cursor.execute(
                    f"INSERT INTO matching_match ({columns}, {_NEW_ROW_COLUMNS}) "
                    f"SELECT {columns}, {_NEW_ROW_VALUES.format(t='u')} FROM matching_upsert u",
                    {"now": now, "strong": settings.MATCHING_STRONG_SCORE},
                )
            return
        except IntegrityError:
            logger.info("A rebuild's fresh rows held a stored pair: upserting them instead")
    _upsert_by_copy(values, prints, version, now, None, False)


def _upsert_by_copy(
    values: list[tuple[Any, ...]],
    prints: list[int],
    version: int,
    now: datetime,
    run_id: int | None,
    record_pairs: bool,
) -> None:
    """The same upsert as bulk_create(update_conflicts=True), through COPY into a temporary table: Django binds
    a bulk insert's values client-side, and quoting the explanations' JSON took 80% of a rebuild's time. The
    rows are written straight from the results' values (`_row_values`), without a model instance each (a
    rebuild writes millions), in binary with the explanations encoded by orjson: 2.4 us a row against 6.5 in
    text with `json.dumps`."""
    columns = ", ".join(_UPSERT_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        _copy_rows(cursor, values, prints, version, now)
        if run_id is not None and record_pairs:
            cursor.execute(
                f"INSERT INTO {RebuildPair._meta.db_table} (run_id, need_id, offer_id) "
                "SELECT %s, need_id, offer_id FROM matching_upsert ON CONFLICT DO NOTHING",
                [run_id],
            )
        # One statement, the rows classified by a single lookup of their pair (`stored`):
        # - a stored row is updated by its primary key; within a rebuild (`run_id`) only if a value differs or
        #   it becomes strong, since a new version of every row, and of its entries in a dozen indexes, for the
        #   same values is waste (`rebuild_finish` knows the run ranked them). INSERT ... ON CONFLICT DO UPDATE
        #   did this in one pass, but it locks (writes) every conflicting row, even one its WHERE then leaves
        #   (measured on 8,000 stored, unchanged rows of a 100k table: 160-195 ms against 130-160 ms);
        # - a new pair is inserted; one that another transaction inserted meanwhile is updated as before.
        # Decided from the stored row (which the SET expressions see as it was), rather than read back first:
        # - `changed_at` as `_changed_at` does: now for a new pair, one that comes back active or a material
        #   change of score; else kept;
        # - `strong_at`: the first time the pair was written with a strong score, kept through later writes.
        values = ", ".join(f"s.{c}" for c in _UPSERT_COLUMNS)
        stored_values = ", ".join(f"m.{c}" for c in _UPSERT_COLUMNS[2:-1])
        fresh_values = ", ".join(f"u.{c}" for c in _UPSERT_COLUMNS[2:-1])
        differs = (
            f"({stored_values}, m.is_active) IS DISTINCT FROM ({fresh_values}, true) "
            "OR (m.strong_at IS NULL AND u.score >= %(strong)s)"
            if run_id is not None
            else "true"
        )
        updated = ", ".join(f"{c} = s.{c}" for c in _UPSERT_COLUMNS[2:] if c != "changed_at")
        updated_on_conflict = ", ".join(
            f"{c} = EXCLUDED.{c}" for c in _UPSERT_COLUMNS[2:] if c != "changed_at"
        )
        changed_at = (
            "CASE WHEN NOT {t}.is_active OR abs({t}.score - {s}.score) >= %(material)s "
            "THEN {s}.changed_at ELSE {t}.changed_at END"
        )
        cursor.execute(
            "WITH stored AS MATERIALIZED ("
            f"  SELECT u.*, m.id AS match_id, m.id IS NOT NULL AND ({differs}) AS differs"
            "   FROM matching_upsert u LEFT JOIN matching_match m ON m.need_id = u.need_id AND m.offer_id = u.offer_id"
            "), updated AS ("
            f"  UPDATE matching_match m SET {updated}, is_active = true, updated_at = %(now)s, "
            f"  changed_at = {changed_at.format(t='m', s='s')}, "
            "   strong_at = COALESCE(m.strong_at, CASE WHEN s.score >= %(strong)s THEN %(now)s::timestamptz END) "
            "   FROM stored s WHERE m.id = s.match_id AND s.differs"
            f") INSERT INTO matching_match ({columns}, {_NEW_ROW_COLUMNS}) "
            f"SELECT {values}, {_NEW_ROW_VALUES.format(t='s')} FROM stored s WHERE s.match_id IS NULL "
            f"ON CONFLICT (need_id, offer_id) DO UPDATE SET {updated_on_conflict}, is_active = true, "
            "updated_at = EXCLUDED.updated_at, "
            f"changed_at = {changed_at.format(t='matching_match', s='EXCLUDED')}, "
            "strong_at = COALESCE(matching_match.strong_at, EXCLUDED.strong_at)",
            {"now": now, "strong": settings.MATCHING_STRONG_SCORE, "material": MATERIAL_CHANGE},
        )


def _entering_other_lists(record: PostRecord, results: list[MatchResult], k: int) -> list[MatchResult]:
    """Of the post's candidates, those whose own top k the post now enters (their list is ranked too)."""
    if not results:
        return []
    other = "offer" if record.kind == engine.NEED else "need"
    own = "need" if other == "offer" else "offer"
    by_other = {getattr(r, f"{other}_id"): r for r in results}
    scores: dict[int, list[float]] = defaultdict(list)
    for other_id, score in (
        Match.objects.active()
        # (Connections kept beyond the top k are not places in it.)
        .filter(**{f"{other}_id__in": list(by_other)}, connected_at__isnull=True)
        .exclude(**{f"{own}_id": record.id})
        .values_list(f"{other}_id", "score")
    ):
        scores[other_id].append(score)
    return [r for other_id, r in by_other.items() if sum(s > r.score for s in scores[other_id]) < k]


def matching_run_for_posts(*, post_ids: Sequence[int]) -> int:
    """Recompute the matches of each post against the other side; returns the number of rows written."""
    k = settings.MATCHING_TOP_K
    written = 0
    posts = {p.pk: p for p in Post.objects.filter(pk__in=post_ids).only("id", "status", "updated_at")}
    published = [pk for pk, p in posts.items() if p.status == Post.Status.PUBLISHED]
    gone = [pk for pk, p in posts.items() if p.status != Post.Status.PUBLISHED]
    if gone:
        # Closed, withdrawn or back in moderation: its matches disappear from every view.
        matching_retire(post_ids=gone)
    if published:
        with _state.lock:
            written = _match_and_store(published, k)
    # Clear the flag only where the post did not change again meanwhile (that change queued its own task).
    for pk, post in posts.items():
        Post.objects.filter(pk=pk, updated_at=post.updated_at).update(matching_pending=False)
    return written


def _match_and_store(post_ids: list[int], k: int) -> int:
    try:
        index, delta = _current_index()
    except NotEnoughPosts:
        return 0  # a lone post has nobody to meet yet; the next publication matches it
    version = _state.index_version or 0
    written = 0
    # The Parties' groups as the index was just checked against (one read of them a task).
    records = {r.id: r for r in post_records(Q(pk__in=post_ids), groups=_state.index_groups)}
    for pk in post_ids:
        record = records[pk]
        # A wider net than k, to find the posts whose own top k this one enters.
        candidates = _match_one(record, index, delta, k=max(5 * k, 100))
        keep = candidates[:k] + _entering_other_lists(record, candidates[k:], k)
        side = "need_id" if record.kind == engine.NEED else "offer_id"
        other = "offer_id" if side == "need_id" else "need_id"
        with transaction.atomic():
            # A connection is not undone by a change of the post (it left the top k, or another Party is
            # eligible now): both sides agreed, and have each other's contacts.
            Match.objects.active().filter(**{side: pk}, connected_at__isnull=True).exclude(
                **{f"{other}__in": [getattr(r, other) for r in keep]}
            ).update(is_active=False)
            # Rows with the post on the other side, from before its kind changed (the post service retires
            # them with the change; this holds whatever else wrote the change).
            Match.objects.active().filter(**{other: pk}).update(is_active=False)
            # Its connections come back with it (published again after a take-back), ranked or not.
            Match.objects.filter(
                **{side: pk},
                connected_at__isnull=False,
                is_active=False,
                need__status=Post.Status.PUBLISHED,
                offer__status=Post.Status.PUBLISHED,
                need__kind=Post.Kind.NEED,
                offer__kind=Post.Kind.OFFER,
            ).update(is_active=True)
            written += _upsert(keep, version=version)
    return written


def matching_sweep(*, batch: int = 200) -> int:
    """Match every post still flagged as waiting (after a broker outage or a lost task). One sweep at a time:
    while the database was slow, overlapping sweeps took every worker process, each matching the same posts."""
    with _exclusive("matching-sweep", wait=False) as held:
        if not held:
            logger.info("A sweep is already matching the waiting posts: this one leaves them to it")
            return 0
        return _sweep(batch)


def _sweep(batch: int) -> int:
    done = 0
    while True:
        ids = list(
            Post.objects.filter(matching_pending=True).order_by("id").values_list("id", flat=True)[:batch]
        )
        if not ids:
            return done
        matching_run_for_posts(post_ids=ids)
        still = Post.objects.filter(pk__in=ids, matching_pending=True).count()
        done += len(ids) - still
        if still == len(ids):
            # Changed under us every time: leave them to the next sweep rather than loop.
            return done


# --- full rebuild --------------------------------------------------------------------------------------------


def _end_dead_runs() -> None:
    """Runs that died unfinished end now, as failed, and their pairs go (with any a chunk wrote after its run
    finished). Ended, because a chunk of theirs can still arrive (a lost worker's, redelivered when the
    broker's visibility timeout, longer than RUN_STALLED_AFTER, runs out): it must then finish nothing, or the
    run's end would retire every match that its forgotten pairs held."""
    minutes = RUN_STALLED_AFTER.total_seconds() // 60
    stalled = RebuildRun.objects.filter(
        finished_at__isnull=True, progress_at__lt=timezone.now() - RUN_STALLED_AFTER
    )
    dead = list(stalled.values_list("pk", flat=True))
    # The same condition again in the update: a run that showed progress meanwhile is not ended.
    failure = (
        f"No progress for {minutes:.0f} minutes: its worker or command died, and another rebuild ended it."
    )
    if dead and stalled.filter(pk__in=dead).update(finished_at=timezone.now(), failed=True, failure=failure):
        logger.warning("Rebuild %s showed no progress for %d minutes: ended as failed",
                       ", ".join(map(str, dead)), minutes)  # fmt: skip


def rebuild_start(
    *,
    sync: bool = False,
    refit: bool = False,
    chunk_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildRun:
    """Recompute every match: in chunks on the workers, or in this process when `sync`."""
    from .tasks import rebuild_chunk

    size = settings.MATCHING_REBUILD_CHUNK if chunk_size is None else chunk_size
    if size < 1:
        # No chunk would be ranked, and the end of the run would retire every match, connections included.
        raise ValueError(f"A rebuild's chunk size must be 1 or more (got {size}).")
    if refit:
        text_model_refit()
        index_reset()
    try:
        version, _model = text_model_current()
    except NotEnoughPosts:
        version = 0
    chunks: list[tuple[str, list[int]]] = []
    for kind in (Post.Kind.NEED, Post.Kind.OFFER):
        ids = list(Post.objects.published().filter(kind=kind).order_by("id").values_list("id", flat=True))
        chunks += [(kind, ids[i : i + size]) for i in range(0, len(ids), size)]
    if version == 0:
        chunks = []  # fewer than two published posts: nothing can match, every old match retires
    _end_dead_runs()
    going = _runs_going().values("pk")
    RebuildPair.objects.exclude(run_id__in=going).delete()
    RebuildChunk.objects.exclude(run_id__in=going).delete()
    run = RebuildRun.objects.create(
        model_version=version,
        total_chunks=len(chunks),
        in_process=sync,
        settings_digest=ranking_settings_digest(),
    )
    if not chunks:
        rebuild_finish(run)
    elif sync:
        _rebuild_in_process(run, size, progress)
    else:
        # Planned before any is queued: the sweep queues again those a silent run has not written.
        RebuildChunk.objects.bulk_create(
            [
                RebuildChunk(run=run, side=kind, first_post_id=ids[0], last_post_id=ids[-1])
                for kind, ids in chunks
            ]
        )
        for kind, ids in chunks:
            rebuild_chunk.delay(run.pk, kind, ids)
    run.refresh_from_db()
    return run


def _rebuild_in_process(
    run: RebuildRun, chunk_size: int, progress: Callable[[int, int], None] | None
) -> None:
    """The whole rebuild here, in one pass: `match_all` gets both sides' top k from the same products, where
    the workers' chunks each compute one side (twice the work, but spread over every machine).

    The pairs it ranks are kept here, not in `RebuildPair` (inserting 1.6M rows and their index entries was
    a tenth of a 100k rebuild's time). If it fails, the run ends without retiring anything."""
    k, floor, weights = settings.MATCHING_TOP_K, settings.MATCHING_FLOOR, _weights()
    ranked: list[np.ndarray] = []
    stored: StoredFingerprints | None = None
    try:
        with _state.lock, engine.rare_collections():
            _state.index = None  # a rebuild reads the database afresh
            # The stored matches are read meanwhile, on a connection of its own where it can: the database
            # scans them while this thread builds the index (at 100k posts, 1.5 s of the set-up, during which
            # the second core was idle).
            stored_later = _in_own_thread(StoredFingerprints.read, "rebuild-stored")
            index, _delta = _current_index()
            version = _state.index_version or 0
            stored = stored_later()
            with _ChunkWriter(
                run, version, record_pairs=False, stored=stored, since=_state.index_as_of
            ) as writer:
                for done, chunk in enumerate(
                    engine.match_all(index, k=k, floor=floor, chunk_size=chunk_size, weights=weights,
                                     threads=settings.MATCHING_REBUILD_THREADS,
                                     salt=engine.fingerprint_salt(version, weights, index.model, _storage_digest()),
                                     unchanged=stored.unchanged),
                    start=1,
                ):  # fmt: skip
                    # The pairs stored already as the engine would compute them are neither explained nor sent
                    # (`StoredFingerprints.unchanged`), but ranked all the same.
                    writer.write(chunk.results, unchanged=len(chunk.unchanged[0]))
                    ranked.append(_pair_keys([(r.need_id, r.offer_id) for r in chunk.results]))
                    ranked.append(_pair_keys(np.stack(chunk.unchanged, axis=1)))
                    if progress:
                        progress(done, run.total_chunks)
    except BaseException as error:
        _end_as_failed(run.pk, str(error) or type(error).__name__)
        raise
    rebuild_finish(
        run, ranked=np.concatenate(ranked) if ranked else np.zeros(0, dtype=np.int64), active=stored
    )


# A post's `updated_at` is stamped when it is saved, before its transaction commits, and on the machine that
# saves it: a change saved a little before an index read the posts may commit after, unseen by that index. A
# rebuild's chunk leaves alone the pairs of posts changed since its index was built, and of posts no longer
# published changed since this long before.
CHANGE_MARGIN = timedelta(seconds=60)


# How long an in-process rebuild that failed tries to record it (its database may be what failed): unrecorded,
# the run holds every other rebuild's retiring back until it counts as dead (RUN_STALLED_AFTER).
END_AS_FAILED_TRIES = (1, 2, 4, 8, 15)


def _end_as_failed(run_id: int, failure: str = "") -> None:
    """Record that the run ended without finishing, and why, reconnecting and trying again while the database
    is away (inside a caller's transaction, once). The error that stopped the run is the caller's to raise."""
    waits = (0,) if connection.in_atomic_block else (0, *END_AS_FAILED_TRIES)
    for attempt, wait in enumerate(waits, start=1):
        time.sleep(wait)
        try:
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
            RebuildRun.objects.filter(pk=run_id, finished_at__isnull=True).update(
                finished_at=timezone.now(), failed=True, failure=failure
            )
            return
        except DatabaseError:
            if attempt < len(waits):
                logger.warning("Rebuild %d failed; recording it as failed did too, trying again", run_id)
    logger.error("Rebuild %d failed and could not be recorded as failed: it counts as dead after %d minutes",
                 run_id, RUN_STALLED_AFTER.total_seconds() // 60)  # fmt: skip


def _write_chunk(
    run_id: int,
    version: int,
    results: list[MatchResult],
    record_pairs: bool = True,
    stored: StoredFingerprints | None = None,
    unchanged: int = 0,
    *,
    since: datetime | None = None,
    chunk: tuple[str, int] | None = None,
) -> int | None:
    """One chunk of a rebuild, in one transaction (a commit per post costs more than the maths), and counted
    with the `unchanged` pairs it ranked that are stored as they are.

    `since`: when the index that ranked the pairs read the posts. A post changed since (edited, withdrawn,
    closed, taken back; for one no longer published, since CHANGE_MARGIN before) has its own matching task,
    whose rows must stand: its pairs are left out (counted as ranked), and the active matches of posts no longer
    published are retired again after the commit (a withdrawal committed meanwhile would otherwise find its
    matches brought back by a rebuild running beside it). `chunk`: (side, first post
    id) of a fanned-out chunk, counted once (`RebuildChunk`): None, writing nothing, when it was written
    already (the same chunk delivered twice), or when the run ended while the chunk was ranked."""
    try:
        written = _write_chunk_rows(run_id, version, results, record_pairs, stored, unchanged, since, chunk)
    except _RunEnded:
        logger.info("Rebuild %d ended while a chunk of it was ranked: the chunk writes nothing", run_id)
        return None
    if written is None:
        return None
    if since is not None and (gone := _posts_changed_since(since - CHANGE_MARGIN, unpublished_only=True)):
        # After the commit: a withdrawal whose own retiring ran before it did not see the rows this chunk
        # inserted; one committed from now on retires them itself (its statement, then its task, see them).
        matching_retire(post_ids=sorted(gone))
    return written


class _RunEnded(Exception):
    """The chunk's run was ended (finished, or as failed) after the chunk checked it: its transaction is undone."""


def _write_chunk_rows(
    run_id: int,
    version: int,
    results: list[MatchResult],
    record_pairs: bool,
    stored: StoredFingerprints | None,
    unchanged: int,
    since: datetime | None,
    chunk: tuple[str, int] | None,
) -> int | None:
    """`_write_chunk`'s transaction."""
    with transaction.atomic():
        if chunk is not None and not _chunk_mark_written(run_id, *chunk):
            logger.info("Rebuild %d: the chunk of %ss from post %d was written already", run_id, *chunk)
            return None
        changed = set()
        if since is not None:
            changed = _posts_changed_since(since) | _posts_changed_since(
                since - CHANGE_MARGIN, unpublished_only=True
            )
        if changed:
            left = [r for r in results if r.need_id in changed or r.offer_id in changed]
            results = [r for r in results if r.need_id not in changed and r.offer_id not in changed]
            if record_pairs and left:  # ranked all the same: the run's end must not retire what they hold
                RebuildPair.objects.bulk_create(
                    [RebuildPair(run_id=run_id, need_id=r.need_id, offer_id=r.offer_id) for r in left],
                    batch_size=500,
                    ignore_conflicts=True,
                )
        written = _upsert(results, version=version, run_id=run_id, record_pairs=record_pairs, stored=stored)
        # Counted only while the run is going, checked with its row locked (after a finisher's commit): a run
        # ended meanwhile (as dead by the next rebuild's start, which deleted its chunks and pairs; or finished
        # by another delivery of this chunk) gets nothing from it. Its matches, written after the next run
        # started, would be kept by that run's end whatever it ranked.
        if not RebuildRun.objects.filter(pk=run_id, finished_at__isnull=True).update(
            done_chunks=F("done_chunks") + 1,
            matches_written=F("matches_written") + written + unchanged,
            progress_at=timezone.now(),
        ):
            raise _RunEnded
    return written + unchanged


def _chunk_mark_written(run_id: int, side: str, first_post_id: int) -> bool:
    """Mark the chunk written, in the caller's transaction: False if it was already (a second delivery waits
    here for the first's commit). A chunk its run did not plan (a run started before chunks were planned) is
    recorded as it is written."""
    chunk = RebuildChunk.objects.filter(run_id=run_id, side=side, first_post_id=first_post_id)
    if chunk.filter(written_at__isnull=True).update(written_at=timezone.now()):
        return True
    try:
        with transaction.atomic():
            RebuildChunk.objects.create(
                run_id=run_id, side=side, first_post_id=first_post_id, written_at=timezone.now()
            )
    except IntegrityError:
        return False
    return True


def _posts_changed_since(since: datetime, *, unpublished_only: bool = False) -> set[int]:
    """The posts changed at or after `since` (and, with `unpublished_only`, not published): read by `updated_at`,
    indexed (while a rebuild runs, a few posts change)."""
    posts = Post.objects.filter(updated_at__gte=since)
    if unpublished_only:
        posts = posts.exclude(status=Post.Status.PUBLISHED)
    return set(posts.values_list("pk", flat=True))


class _ChunkWriter:
    """Writes a rebuild's chunks in order. On PostgreSQL, outside a transaction, in a thread of its own on its
    own connection: the database then stores a chunk while this thread explains the next one (a 100k rebuild
    waited ~45 s for the database otherwise). At most two chunks wait. Where the caller holds a transaction
    (whose rows another connection would not see) or on SQLite (one writer at a time), in the caller's thread.
    An error of the writer is raised in the caller at its next `write` or at the end."""

    QUEUED = 2

    def __init__(
        self,
        run: RebuildRun,
        version: int,
        *,
        record_pairs: bool = True,
        stored: StoredFingerprints | None = None,
        since: datetime | None = None,
    ) -> None:
        self.run, self.version, self.record_pairs, self.stored = run, version, record_pairs, stored
        self.since = since  # `_write_chunk`'s
        self.threaded = _other_connections_see_ours()
        self.error: BaseException | None = None
        self.queue: queue.Queue[tuple[list[MatchResult], int] | None] = queue.Queue(maxsize=self.QUEUED)
        self.thread = threading.Thread(target=self._run, name="rebuild-writer", daemon=True)

    def __enter__(self) -> _ChunkWriter:
        if self.threaded:
            self.thread.start()
        return self

    def write(self, results: list[MatchResult], unchanged: int = 0) -> None:
        if not self.threaded:
            _write_chunk(
                self.run.pk,
                self.version,
                results,
                self.record_pairs,
                self.stored,
                unchanged,
                since=self.since,
            )
            return
        self._raise()
        self.queue.put((results, unchanged))  # never blocks for good: a failed writer empties the queue

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.threaded:
            return
        if exc is not None and self.error is None:
            self.error = exc  # tells the writer to skip what is queued
        self.queue.put(None)
        self.thread.join()
        if exc is None:
            self._raise()
        elif self.error is not exc:
            # The caller's own error goes up; the writer's would be lost without this.
            logger.error("The rebuild's writer failed too", exc_info=self.error)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while (item := self.queue.get()) is not None:
                if self.error is None:
                    results, unchanged = item
                    _write_chunk(
                        self.run.pk, self.version, results, self.record_pairs, self.stored, unchanged,
                        since=self.since,
                    )  # fmt: skip
        except BaseException as error:  # handed to the caller's thread
            self.error = error
            while self.queue.get() is not None:  # let the caller finish putting
                pass
        finally:
            connection.close()  # this thread's own connection


def _other_connections_see_ours() -> bool:
    """Whether a thread's own connection sees what this one has written, and may work beside it: on
    PostgreSQL, outside a transaction (whose rows another connection would not see; SQLite has one writer)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def _in_own_thread(work: Callable[[], Any], name: str) -> Callable[[], Any]:
    """Start `work` (database reads) in a thread of its own, on its own connection, where that connection sees
    what this one does (`_other_connections_see_ours`); else do it now. Returns how to wait for its result,
    which raises its error."""
    if not _other_connections_see_ours():
        result = work()
        return lambda: result
    done: Future[Any] = Future()

    def run() -> None:
        try:
            done.set_result(work())
        except BaseException as error:  # raised in the caller's thread
            done.set_exception(error)
        finally:
            connection.close()  # this thread's own connection

    threading.Thread(target=run, name=name, daemon=True).start()
    return done.result


def rebuild_run_chunk(*, run_id: int, side: str, post_ids: Sequence[int]) -> int:
    """One chunk: the top k of each post; the worker that completes the last chunk finishes the run."""
    k, floor, weights = settings.MATCHING_TOP_K, settings.MATCHING_FLOOR, _weights()
    started_at, finished_at, digest = RebuildRun.objects.values_list(
        "started_at", "finished_at", "settings_digest"
    ).get(pk=run_id)
    if finished_at is not None:
        return 0  # redelivered after its run finished (acks_late): the run's pairs are forgotten already
    if digest and digest != ranking_settings_digest():
        failure = (
            "A worker ranks with settings (MATCHING_WEIGHTS, MATCHING_TOP_K or MATCHING_FLOOR) other than those "
            "of the process that started the rebuild: one run would mix two rankings. Give every worker and the "
            "command the same settings, then rebuild again."
        )
        logger.error("Rebuild %d ended as failed: %s", run_id, failure)
        _end_as_failed(run_id, failure)
        return 0
    if (
        post_ids
        and RebuildChunk.objects.filter(
            run_id=run_id, side=side, first_post_id=min(post_ids), written_at__isnull=False
        ).exists()
    ):
        return 0  # written already (queued again by the sweep, or delivered twice): not ranked again
    with _state.lock, engine.rare_collections():
        if _state.index_as_of is None or _state.index_as_of < started_at:
            # A rebuild reads the database afresh: the index must be no older than the run.
            _state.index = None
        index, delta = _current_index()
        if delta:
            _state.index = None
            index, delta = _current_index()
        version, as_of = _state.index_version or 0, _state.index_as_of
        index_side = index.needs if side == engine.NEED else index.offers
        rows = [index_side.row_of[pk] for pk in post_ids if pk in index_side.row_of]
        results = index.match_rows(side, rows, k=k, floor=floor, weights=weights)
        chunk = (side, min(post_ids)) if post_ids else None
        written = _write_chunk(
            run_id, version, [r for per_post in results for r in per_post], since=as_of, chunk=chunk,
        )  # fmt: skip
    # Also after a chunk delivered twice: its first delivery may have died between its commit and this.
    run = RebuildRun.objects.get(pk=run_id)
    if run.done_chunks >= run.total_chunks and run.finished_at is None:
        rebuild_finish(run)
    return written or 0


def rebuild_requeue_lost() -> int:
    """Queue again the chunks not written of fanned-out runs silent for `CHUNKS_LOST_AFTER` (once per silence):
    chunks waiting in a Redis that restarted without its data are gone, and the run would stall until it
    counted as dead. A chunk queued twice is written once (`RebuildChunk`); one already written is skipped
    before it is ranked. Returns how many chunks were queued."""
    from .tasks import rebuild_chunk

    now = timezone.now()
    silent = (
        _runs_going()
        .filter(in_process=False, progress_at__lt=now - CHUNKS_LOST_AFTER)
        .filter(Q(requeued_at__isnull=True) | Q(requeued_at__lt=F("progress_at")))
    )
    queued = 0
    for run_id, started_at in silent.values_list("pk", "started_at"):
        # Claimed in a conditional update, so that two sweeps do not both queue them.
        if not silent.filter(pk=run_id).update(requeued_at=now):
            continue
        lost = RebuildChunk.objects.filter(run_id=run_id, written_at__isnull=True, last_post_id__isnull=False)
        chunks = list(
            lost.order_by("side", "first_post_id").values_list("side", "first_post_id", "last_post_id")
        )
        try:
            for side, first, last in chunks:
                # Its first post named the chunk: it stays first even if it is no longer published. The others: its
                # posts still published, not those published since the run started (drafts and submissions
                # whose ids fall between its posts': their own tasks match them), which could make it many times
                # the size it was planned with, beyond its time limit.
                later = (
                    Post.objects.published()
                    .filter(kind=side, pk__gt=first, pk__lte=last, published_at__lt=started_at)
                    .order_by("pk")
                )
                rebuild_chunk.delay(run_id, side, [first, *later.values_list("pk", flat=True)])
        except Exception:
            # The broker is away again: the sweep's retry (or the next sweep) queues them all again.
            RebuildRun.objects.filter(pk=run_id, requeued_at=now).update(requeued_at=None)
            raise
        if chunks:
            logger.warning(
                "Rebuild %d wrote no chunk for %d minutes: %d chunks not written queued again",
                run_id, CHUNKS_LOST_AFTER.total_seconds() // 60, len(chunks),
            )  # fmt: skip
        queued += len(chunks)
    return queued


def rebuild_finish(
    run: RebuildRun, *, ranked: np.ndarray | None = None, active: StoredFingerprints | None = None
) -> None:
    """Retire every match the rebuild did not write again, and clear what was waiting before it started.

    What the run ranked: its `RebuildPair`s (the workers' chunks), or `ranked`, the `_pair_keys` of the pairs
    of an in-process rebuild; `active`: the active matches it read after it started (else they are read
    here). A match active then and written since is kept, as the statement checks; so is one whose writer
    committed after that read, as one committed after the read here always was."""
    with transaction.atomic():
        if not RebuildRun.objects.filter(pk=run.pk, finished_at__isnull=True).update(
            finished_at=timezone.now()
        ):
            return  # another worker finished it
        # What the run did not rank, unless written since it started (a post published meanwhile) or ranked
        # by another run still going (which leaves unchanged matches unwritten too). An in-process run going
        # keeps what it ranks to itself: retiring is then left to it (it ranks the same posts, or newer).
        going = _runs_going().exclude(pk=run.pk)
        in_process = list(going.filter(in_process=True).values_list("pk", flat=True))
        if in_process:
            logger.warning(
                "Rebuild %d retired no match: rebuild %s, in one process, is still going and retires what it does "
                "not rank when it ends (a run that shows no progress for %d minutes counts as dead)",
                run.pk, ", ".join(map(str, in_process)), RUN_STALLED_AFTER.total_seconds() // 60,
            )  # fmt: skip
        else:
            by_others = RebuildPair.objects.filter(
                run_id__in=going.values("pk"), need_id=OuterRef("need_id"), offer_id=OuterRef("offer_id")
            )
            # Connections stay (a connection is not undone), ranked or not.
            stale = Match.objects.active().filter(
                ~Exists(by_others), updated_at__lt=run.started_at, connected_at__isnull=True
            )
            if ranked is None:
                by_run = RebuildPair.objects.filter(
                    run_id=run.pk, need_id=OuterRef("need_id"), offer_id=OuterRef("offer_id")
                )
                stale.filter(~Exists(by_run)).update(is_active=False)
            else:
                ids, keys = (
                    _active_pairs_before(run.started_at) if active is None else (active.ids, active.keys)
                )
                unranked = ids[~np.isin(keys, ranked)].tolist()
                size = 900 if connection.vendor == "sqlite" else 10_000  # query parameters
                for start in range(0, len(unranked), size):
                    stale.filter(pk__in=unranked[start : start + size]).update(is_active=False)
        RebuildPair.objects.filter(run_id=run.pk).delete()
        RebuildChunk.objects.filter(run_id=run.pk).delete()
        Post.objects.filter(matching_pending=True, updated_at__lt=run.started_at).update(
            matching_pending=False
        )
    # A rebuild writes a great many matches: refresh the planner's statistics now rather than whenever autovacuum gets
    # to it. Measured at 100k posts: with the statistics of before, the read of the lists a new post enters
    # became a sequential scan, and a publication took 625 ms instead of about 200.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Match._meta.db_table}")


def _pair_keys(pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """One int64 per (need id, offer id): need id * 2**32 + offer id (ids are below 2**31)."""
    array = np.asarray(pairs).reshape(-1, 2)
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64)
    if array.min() < 0 or array.max() >= 2**31:
        raise ValueError("post ids beyond 2**31")
    keys = array[:, 0].astype(np.int64)
    keys <<= 32
    keys |= array[:, 1]
    return keys


def _active_pairs_before(when: datetime) -> tuple[np.ndarray, np.ndarray]:
    """(ids, `_pair_keys`) of the active matches last written before `when`: millions of rows after a 100k
    rebuild, read on PostgreSQL as one string of big-endian int64s (38 MB for 1.6M matches; a Python int
    each took 170 MB more)."""
    rows = _int8_rows(
        Match.objects.active().filter(updated_at__lt=when).values_list("id", "need_id", "offer_id")
    )
    return rows[:, 0], _pair_keys(rows[:, 1:])


def _int8_rows(values: QuerySet) -> np.ndarray:
    """The rows of a `values_list` of integers as an (n, columns) int64 array: on PostgreSQL read as one string
    of big-endian int64s (38 MB for 1.6M rows of three; a Python int each took 170 MB more)."""
    values = values.order_by()
    width = len(values.query.values_select) + len(values.query.annotation_select)
    if connection.vendor != "postgresql":
        return np.array(list(values), dtype=np.int64).reshape(-1, width)
    query, params = values.query.sql_with_params()
    columns = " || ".join(f"int8send(m.c{i}::int8)" for i in range(width))
    names = ", ".join(f"c{i}" for i in range(width))
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            f"SELECT string_agg({columns}, ''::bytea) FROM ({query}) AS m ({names})", params, binary=True
        )
        data = cursor.fetchone()[0] or b""
    return np.frombuffer(data, dtype=">i8").reshape(-1, width).astype(np.int64)


def rebuild_progress(run_id: int) -> tuple[int, int, bool]:
    run = RebuildRun.objects.get(pk=run_id)
    return run.done_chunks, run.total_chunks, run.finished_at is not None
