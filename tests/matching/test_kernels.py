"""The compiled loops of the rebuild (apps/matching/kernels.py) against the numpy code they stand in for.

Pure: no database, no Django, no encoder (random unit vectors stand in for the embeddings).
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.matching import engine, kernels
from apps.matching.engine import MatchIndex, PostRecord, Weights

# A vocabulary of 400 made-up words, drawn with Zipf's law: common words in many posts, rare ones in a few.
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "pe", "da", "fu", "go", "hi", "ja", "zu", "be", "co",
             "wa", "xe", "yo"]  # fmt: skip
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("n", "r", "s")][:400]
ZIPF = 1.0 / np.arange(1, len(WORDS) + 1)
ZIPF /= ZIPF.sum()
# More distinct eligibility tokens than the 64 that become bits: the rest go through the residual product.
PARTIES = [f"P{i:02d}" for i in range(90)]


def _random_csr(rng: np.random.Generator, shape: tuple[int, int], density: float) -> sp.csr_matrix:
    return sp.random(*shape, density=density, format="csr", dtype=np.float32, random_state=rng)


def _records(seed: int, n: int = 160) -> list[PostRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = "need" if i % 2 == 0 else "offer"
        party = PARTIES[rng.integers(len(PARTIES))] if kind == "need" or rng.random() < 0.7 else None
        amount = [None, 0.0, float(rng.integers(1, 50) * 1e5)][rng.integers(3)]
        out.append(PostRecord(
            id=i + 1, kind=kind, party=party,
            party_groups=frozenset({"LDC"}) if party and rng.random() < 0.4 else frozenset(),
            provider=None if party else "GCF",
            status="published" if rng.random() < 0.9 else "closed",
            title=" ".join(rng.choice(WORDS, 3, p=ZIPF)), description=" ".join(rng.choice(WORDS, 25, p=ZIPF)) + ".",
            language=["en", "en", "es", "fr"][rng.integers(4)],
            support_types=frozenset(rng.choice(engine.SUPPORT_TYPES, rng.integers(1, 4), replace=False).tolist()),
            focus_areas=frozenset(rng.choice(engine.FOCUS_AREAS, rng.integers(1, 3), replace=False).tolist()),
            sectors=frozenset(rng.choice(engine.SECTORS, rng.integers(1, 3), replace=False).tolist()),
            amount_usd=amount,
            eligible=frozenset(rng.choice([*PARTIES, "LDC"], rng.integers(2, 7), replace=False).tolist())
            if kind == "offer" and rng.random() < 0.6 else frozenset(),
        ))  # fmt: skip
    return out


def _index(seed: int) -> MatchIndex:
    records = _records(seed)
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(records), engine.EMBED_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return MatchIndex.build(records, engine.fit_model(records, embeddings=vectors), embeddings=vectors)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "weights", [Weights(), Weights(cross_lingual_lexical=0.5, esa_share=0.2, structured=0.3)]
)
def test_compiled_block_equals_the_numpy_block(seed: int, weights: Weights) -> None:
    index = _index(seed)
    assert index._n_residual > 0  # rare eligibility tokens: the kernel's residual block is exercised
    assert index.model.language_offsets  # three languages: their pairs' offsets are exercised
    depth, floor = engine._first_stage(20, 0.2, weights)
    below = np.float32(floor - 1.0)
    compared = 0
    for kind, q_side, other in (("need", index.needs, index.offers), ("offer", index.offers, index.needs)):
        for mask in np.unique(q_side.support).tolist():
            rows = np.flatnonzero(q_side.support == mask)
            for start, stop in [*other.support_spans(mask), (0, len(other.records))]:
                scores, thresholds = index._block_candidates(q_side, kind, rows, weights, (start, stop), depth,
                                                             floor)  # fmt: skip
                expected, ok = index._block(q_side, kind, rows, weights, (start, stop))
                # Hard rules: exactly the same pairs.
                assert np.array_equal(scores != below, ok)
                np.testing.assert_allclose(scores[ok], expected[ok], rtol=0, atol=2e-6)
                # The candidates' threshold: within 1e-4 of the (depth + 5)-th best of the row and of the floor.
                take = min(depth + 5, stop - start)
                kth = np.sort(np.where(ok, expected, below), axis=1)[:, -take]
                np.testing.assert_allclose(thresholds, np.maximum(kth, floor) - 1e-4, rtol=0, atol=2e-6)
                compared += int(ok.sum())
    assert compared > 1000


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-2, 2, width=32), min_size=1, max_size=400),
    order=st.sampled_from(["as drawn", "ascending", "descending"]),
    data=st.data(),
)
def test_kth_largest_is_the_partitions(values, order, data) -> None:
    row = np.array(values, dtype=np.float32)
    if order != "as drawn":
        row = np.sort(row) if order == "ascending" else np.sort(row)[::-1].copy()
    take = data.draw(st.integers(1, len(row)))
    assert kernels._kth_largest(row, take) == np.partition(row, len(row) - take)[len(row) - take]


def test_coverage_of_packed_pairs_equals_sentence_coverage_exactly() -> None:
    rng = np.random.default_rng(3)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, engine.EMBED_DIM))
        v[:, :8] += 3.0  # a shared direction: cosines of 0.1 to 0.6 rather than all about 0
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float16)

    posts = [engine.quantise_sentences(unit(rng.integers(1, 13))) for _ in range(60)]
    n_vec = {2 * i: posts[i] for i in range(20)}  # rows need not be dense
    o_vec = {3 * i + 1: posts[20 + i] for i in range(40)}
    nrows = np.repeat(np.array(list(n_vec)), 7)
    orows = rng.choice(np.array(list(o_vec)), len(nrows))
    got = engine._packed_coverage(n_vec, nrows, o_vec, orows)
    expected = [
        engine.sentence_coverage(n_vec[a], o_vec[b])
        for a, b in zip(nrows.tolist(), orows.tolist(), strict=True)
    ]
    assert got.tolist() == expected
    assert len(set(expected)) > 100 and min(expected) > 0 and max(expected) < 1
    # The largest products there are (every component +-127): no overflow in the narrow sums.
    ones, minus = (
        engine.quantise_sentences(np.full((3, engine.EMBED_DIM), x, np.float16)) for x in (0.5, -0.5)
    )
    pairs = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    extreme = engine._packed_coverage({0: ones, 1: minus}, pairs[0], {0: ones, 1: minus}, pairs[1])
    assert extreme.tolist() == [1.0, 0.0, 0.0, 1.0]  # a wrapped sum would turn a 1 negative: 0


def test_sentence_vectors_copied_or_unpickled_point_at_their_own_arrays() -> None:
    vectors = engine.quantise_sentences(np.eye(3, engine.EMBED_DIM, dtype=np.float16))
    for other in (copy.deepcopy(vectors), pickle.loads(pickle.dumps(vectors))):
        assert other.addresses == (other.values.ctypes.data, other.scale.ctypes.data) != vectors.addresses
        assert engine._packed_coverage({0: other}, np.array([0]), {0: vectors}, np.array([0])).tolist() == [
            1.0
        ]


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 12), m=st.integers(0, 12), by_row=st.booleans())
def test_entries_at_least_their_threshold_are_those_numpy_finds(seed, n, m, by_row) -> None:
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, 5, (n, m)) / 4).astype(np.float32)  # coarse: entries equal to the threshold
    rows = (rng.integers(0, 5, n) / 4).astype(np.float32)
    cols = (rng.integers(0, 5, m) / 4).astype(np.float32)
    empty = np.zeros(0, dtype=np.float32)
    got = kernels.at_least(scores, rows, empty) if by_row else kernels.at_least(scores, empty, cols)
    expected = np.nonzero(scores >= (rows[:, None] if by_row else cols[None, :]))
    assert [a.tolist() for a in got] == [a.tolist() for a in expected]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), density=st.floats(0.05, 0.9))
def test_pair_dots_equal_the_sums_of_the_pairs_products_exactly(seed, density) -> None:
    rng = np.random.default_rng(seed)
    a, b = _random_csr(rng, (20, 30), density), _random_csr(rng, (25, 30), density)
    arows, brows = rng.integers(0, 20, 50), rng.integers(0, 25, 50)
    products = engine._pair_products(a, arows, b, brows)
    # The reference: the elementwise products (float64, exact) of each pair, added in column order.
    expected = [sum(products[p].toarray().ravel().tolist()) for p in range(50)]
    assert engine._pair_dots(a, arows, b, brows).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), density=st.floats(0.05, 0.9), k=st.integers(1, 8), ties=st.booleans())
def test_top_products_are_the_largest_products_ties_to_the_lower_column(seed, density, k, ties) -> None:
    rng = np.random.default_rng(seed)
    a, b = _random_csr(rng, (20, 30), density), _random_csr(rng, (25, 30), density)
    if ties:  # few distinct values: many equal products
        a.data = np.round(a.data * 2).astype(np.float32) / 2 + 0.5
        b.data = np.ones_like(b.data)
    arows, brows = rng.integers(0, 20, 50), rng.integers(0, 25, 50)
    out = np.empty((50, k), dtype=np.int32)
    kernels.top_products(a.indptr, a.indices, a.data, arows, b.indptr, b.indices, b.data, brows, out)
    products = engine._pair_products(a, arows, b, brows)  # the reference: every product, then a full sort
    for p in range(50):
        row = products[p]
        values = row.data.astype(np.float32)
        order = np.lexsort((row.indices, -values))
        expected = [int(row.indices[i]) for i in order if values[i] > 0][:k]
        assert out[p].tolist() == expected + [-1] * (k - len(expected))


WARM_UP = """
from apps.matching import engine, kernels

def no_encoder(*args, **kwargs):
    raise AssertionError("the warm-up must not need the sentence encoder")

engine.encode_texts = engine.embed_post_sentences = no_encoder
names = ("score_block", "coverages", "merge_best", "at_least", "pair_dots", "top_products", "quantise",
         "spread_product", "hash_spans", "json_items")
assert not any(getattr(kernels, name).signatures for name in names)
engine.warm_up()
print(sorted(name for name in names if getattr(kernels, name).signatures))
"""


def test_warm_up_readies_every_compiled_loop_without_the_encoder() -> None:
    # In a new process: this one has compiled them already.
    done = subprocess.run([sys.executable, "-c", WARM_UP], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == str(sorted(
        ["at_least", "coverages", "hash_spans", "json_items", "merge_best", "pair_dots", "quantise",
         "score_block", "spread_product", "top_products"]))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 6), zero_row=st.booleans())
def test_quantised_sentences_are_numpys_float32_steps(seed, n, zero_row) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, engine.EMBED_DIM)).astype(np.float16)
    if zero_row and n:
        x[0] = 0
    got = engine.quantise_sentences(x)
    # The reference: numpy's float32 steps on the whole array.
    f = x.astype(np.float32)
    scale = np.abs(f).max(axis=1) if n else np.zeros(0, dtype=np.float32)
    expected = np.rint(f / np.where(scale > 0, scale, np.float32(1.0))[:, None] * np.float32(127.0))
    assert np.array_equal(got.values, expected.astype(np.int8)) and got.values.dtype == np.int8
    assert got.scale.tolist() == scale.astype(np.float64).tolist()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), density=st.floats(0.05, 0.9))
def test_spread_product_is_scipys_product_exactly(seed, density) -> None:
    rng = np.random.default_rng(seed)
    a, b = _random_csr(rng, (15, 40), density), _random_csr(rng, (40, 30), density)
    out = np.zeros((15, 30), dtype=np.float32)
    kernels.spread_product(a.indptr, a.indices, a.data, b.indptr, b.indices, b.data, out)
    assert np.array_equal(out, (a @ b).toarray())


_MASK = (1 << 64) - 1
_XXH = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _short_xxh64(data: bytes) -> int:
    """xxHash64's steps for an input under 32 bytes (seed 0), in Python integers, applied to any length."""
    p1, p2, p3, p4, p5 = _XXH

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (64 - r))) & _MASK

    h, p, n = (p5 + len(data)) & _MASK, 0, len(data)
    while p + 8 <= n:
        k = rotl(int.from_bytes(data[p : p + 8], "little") * p2 & _MASK, 31) * p1 & _MASK
        h, p = (rotl(h ^ k, 27) * p1 + p4) & _MASK, p + 8
    if p + 4 <= n:
        h, p = (
            (rotl(h ^ (int.from_bytes(data[p : p + 4], "little") * p1 & _MASK), 23) * p2 + p3) & _MASK,
            p + 4,
        )
    for byte in data[p:]:
        h = rotl(h ^ (byte * p5 & _MASK), 11) * p1 & _MASK
    h ^= h >> 33
    h = h * p2 & _MASK
    h ^= h >> 29
    h = h * p3 & _MASK
    return h ^ (h >> 32)


def _hashes(blobs: list[bytes]) -> list[int]:
    ends = np.cumsum([len(b) for b in blobs], dtype=np.int64)
    out = np.empty(len(blobs), dtype=np.uint64)
    kernels.hash_spans(
        np.frombuffer(b"".join(blobs), dtype=np.uint8), ends - [len(b) for b in blobs], ends, out
    )
    return [int(x) for x in out]


def test_hash_spans_is_xxhash64_below_32_bytes() -> None:
    # xxHash64's published values (seed 0).
    assert _hashes([b"", b"a", b"abc"]) == [0xEF46DB3751D8E999, 0xD24EC4F1A98C6E5B, 0x44BC2CF5AD770999]
    assert [_short_xxh64(b) for b in (b"", b"a", b"abc")] == _hashes([b"", b"a", b"abc"])


@settings(max_examples=80, deadline=None)
@given(blobs=st.lists(st.binary(max_size=400), min_size=1, max_size=12))
def test_hash_spans_hashes_each_input_alone_whatever_the_batch(blobs) -> None:
    together = _hashes(blobs)
    assert together == [_hashes([b])[0] for b in blobs] == [_short_xxh64(b) for b in blobs]


def test_hash_spans_tells_apart_many_near_inputs() -> None:
    # Rows that differ in one byte, or only in where they end.
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    near = [base[:i] + bytes([base[i] ^ 1]) + base[i + 1 :] for i in range(len(base))]
    cuts = [base[:i] for i in range(len(base))]  # every prefix, from the empty one
    hashes = _hashes([base, *near, *cuts])
    assert len(set(hashes)) == len(hashes)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(_JSON, max_size=8))
def test_json_items_finds_each_item_as_orjson_writes_it_alone(items) -> None:
    import orjson

    data = np.frombuffer(orjson.dumps(items), dtype=np.uint8)
    starts, ends = np.empty(len(items) + 1, dtype=np.int64), np.empty(len(items) + 1, dtype=np.int64)
    n = kernels.json_items(data, starts, ends)
    assert n == len(items)
    assert [data[a:b].tobytes() for a, b in zip(starts[:n], ends[:n], strict=True)] == [
        orjson.dumps(x) for x in items
    ]
    if items:  # room for fewer: they are counted all the same, and nothing is written past the arrays
        short_starts = np.full(len(items) + 1, -7, dtype=np.int64)
        short_ends = short_starts.copy()
        assert kernels.json_items(data, short_starts[:-2], short_ends[:-2]) == len(items)
        assert short_starts[:-2].tolist() == starts[: len(items) - 1].tolist()
        assert short_starts[-2:].tolist() == short_ends[-2:].tolist() == [-7, -7]
