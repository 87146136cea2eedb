"""The matching engine on its own: hard rules, text similarity, serialisation, explanations, determinism.

Pure: no database, no Django. The USE encoder loads once per process (module-scoped fixtures share it).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.matching import engine
from apps.matching.engine import (
    MatchIndex,
    MatchResult,
    PostRecord,
    TextModel,
    Weights,
    match_all,
    passes_hard_rules,
)
from apps.posts import stemming

GROUPS = {
    "KEN": frozenset({"African States", "LDC"}),
    "MEX": frozenset({"Latin American and Caribbean States"}),
    "FJI": frozenset({"Asia-Pacific States", "SIDS"}),
    "DEU": frozenset({"Western European and other States"}),
    "PER": frozenset({"Latin American and Caribbean States"}),
}


def post(id: int, kind: str = "need", **fields) -> PostRecord:
    party = fields.pop("party", "KEN" if kind == "need" else "DEU")
    base = dict(
        id=id,
        kind=kind,
        party=party,
        party_groups=GROUPS.get(party, frozenset()) if party else frozenset(),
        provider=None,
        status="published",
        title="Early warning systems for floods",
        description="Hydrological monitoring stations and warning dissemination to communities.",
        language="en",
        support_types=frozenset({"technology", "capacity_building"}),
        focus_areas=frozenset({"adaptation"}),
        sectors=frozenset({"disaster_risk", "water"}),
        amount_usd=None,
        eligible=frozenset(),
    )
    base.update(fields)
    return PostRecord(**base)


TEXTS = [
    ("Flood early warning for river basins",
     "Hydrological stations, flood forecasting models and warning messages reaching villages by radio and SMS."),
    ("Solar mini-grids for rural villages",
     "Finance for solar photovoltaic mini-grids with batteries serving households and clinics without power."),
    ("Mangrove restoration for coastal protection",
     "Replanting mangroves with fishing communities to protect coasts from storm surge and store blue carbon."),
    ("Electric buses for the capital city",
     "Procurement of battery electric buses, charging depots and training of drivers and mechanics."),
    ("Climate-smart agriculture and irrigation",
     "Drought-tolerant seeds, drip irrigation and extension services for smallholder farmers."),
    ("Energy efficiency in buildings",
     "Building codes, insulation, efficient cooling and audits of public buildings to cut electricity use."),
]  # fmt: skip
SPANISH = ("Sistema de alerta temprana de inundaciones",
           "Estaciones hidrológicas, modelos de pronóstico de crecidas y mensajes de alerta a las comunidades.")  # fmt: skip


@pytest.fixture(scope="module")
def records() -> list[PostRecord]:
    out = []
    parties = ["KEN", "MEX", "FJI", "PER"]
    for i, (title, desc) in enumerate(TEXTS):
        out.append(post(i + 1, "need", party=parties[i % 4], title=title, description=desc))
        out.append(post(i + 101, "offer", party="DEU" if i % 2 else None, provider=None if i % 2 else "GCF",
                        title=title, description=desc, amount_usd=1e6 * (i + 1),
                        eligible=frozenset({"LDC"}) if i == 3 else frozenset()))  # fmt: skip
    out.append(post(50, "need", party="PER", title=SPANISH[0], description=SPANISH[1], language="es"))
    return out


@pytest.fixture(scope="module")
def vectors(records) -> np.ndarray:
    return engine.embed_posts(records)


@pytest.fixture(scope="module")
def model(records, vectors) -> TextModel:
    return engine.fit_model(records, embeddings=vectors)


@pytest.fixture(scope="module")
def index(records, vectors, model) -> MatchIndex:
    return MatchIndex.build(records, model, embeddings=vectors)


# -- hard rules -----------------------------------------------------------------------------------------------


def test_need_meets_offer() -> None:
    assert passes_hard_rules(post(1, "need"), post(2, "offer"))
    assert not passes_hard_rules(post(1, "need"), post(2, "need"))
    assert not passes_hard_rules(post(1, "offer"), post(2, "offer"))
    assert not passes_hard_rules(post(2, "offer"), post(1, "need"))


def test_support_types_must_overlap() -> None:
    need = post(1, support_types=frozenset({"finance"}))
    assert not passes_hard_rules(need, post(2, "offer", support_types=frozenset({"technology"})))
    assert passes_hard_rules(need, post(2, "offer", support_types=frozenset({"technology", "finance"})))


def test_eligibility_by_code_group_or_open() -> None:
    need = post(1, party="KEN")
    assert passes_hard_rules(need, post(2, "offer", eligible=frozenset()))
    assert passes_hard_rules(need, post(2, "offer", eligible=frozenset({"KEN"})))
    assert passes_hard_rules(need, post(2, "offer", eligible=frozenset({"LDC"})))
    assert passes_hard_rules(need, post(2, "offer", eligible=frozenset({"African States", "SIDS"})))
    assert not passes_hard_rules(need, post(2, "offer", eligible=frozenset({"SIDS", "MEX"})))


def test_parties_must_differ() -> None:
    assert not passes_hard_rules(post(1, party="KEN"), post(2, "offer", party="KEN"))
    assert passes_hard_rules(post(1, party="KEN"), post(2, "offer", party=None, provider="GCF"))


@pytest.mark.parametrize("status", ["draft", "submitted", "returned", "closed", "withdrawn"])
def test_both_must_be_published(status: str) -> None:
    assert not passes_hard_rules(post(1, status=status), post(2, "offer"))
    assert not passes_hard_rules(post(1), post(2, "offer", status=status))


# -- text model -----------------------------------------------------------------------------------------------


def test_similarity_shape_and_range(model) -> None:
    a = [f"{t}. {d}" for t, d in TEXTS[:3]]
    b = [f"{t}. {d}" for t, d in TEXTS] + [""]
    sims = model.similarity(a, b)
    assert sims.shape == (3, 7)
    assert np.all((sims >= 0) & (sims <= 1))
    assert np.all(np.argmax(sims[:, :6], axis=1) == [0, 1, 2])  # each text is closest to itself


def test_similarity_cross_lingual(model) -> None:
    sims = model.similarity([f"{SPANISH[0]}. {SPANISH[1]}"], [f"{t}. {d}" for t, d in TEXTS])
    assert int(np.argmax(sims[0])) == 0  # the Spanish flood text finds the English one


def test_precomputed_vectors_give_the_same_similarities(model) -> None:
    a, b = [TEXTS[0][1]], [TEXTS[1][1], TEXTS[0][0]]
    direct = model.similarity(a, b)
    cached = model.similarity(a, b, a_vectors=model.embed(a), b_vectors=model.embed(b))
    assert np.allclose(direct, cached)


def test_serialisation_round_trip(model) -> None:
    texts = [f"{t}. {d}" for t, d in TEXTS]
    loaded = TextModel.from_bytes(model.to_bytes())
    assert np.array_equal(loaded.similarity(texts, texts), model.similarity(texts, texts))


def test_unknown_format_is_refused(model) -> None:
    import pickle

    state = pickle.loads(model.to_bytes())
    state["format"] = 999
    with pytest.raises(ValueError):
        TextModel.from_bytes(pickle.dumps(state))


# -- matching -------------------------------------------------------------------------------------------------


def test_match_finds_the_same_topic_first(index, records) -> None:
    need = records[0]  # floods, KEN
    results = index.match(need, k=3, floor=0.0)
    assert results[0].offer_id == 101
    assert all(0 <= r.score <= 1 for r in results)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert set(results[0].components) == {"lexical", "semantic", "structured", "alignment"}
    first_stage = index.match(need, k=3, floor=0.0, weights=Weights(alignment=0.0))
    assert set(first_stage[0].components) == {"lexical", "semantic", "structured"}


def test_explanation_contents(index, records) -> None:
    result = index.match(records[0], k=1, floor=0.0, sentence_pairs=True)[0]
    exp = result.explanation
    assert exp["shared_support_types"] == ["capacity_building", "technology"]
    assert exp["shared_focus_areas"] == ["adaptation"]
    assert exp["shared_sectors"] == ["disaster_risk", "water"]
    assert "flood" in exp["top_terms"] or "warning" in exp["top_terms"]
    assert exp["cross_lingual"] is False
    need_sentence, offer_sentence = exp["best_sentence_pair"]["need"], exp["best_sentence_pair"]["offer"]
    assert need_sentence in records[0].description and offer_sentence in records[1].description


def test_cross_lingual_flag(index, records) -> None:
    spanish = next(r for r in records if r.language == "es")
    results = index.match(spanish, k=3, floor=0.0)
    assert results[0].offer_id == 101
    assert results[0].explanation["cross_lingual"] is True
    assert results[0].explanation["need_language"] == "es"
    assert results[0].explanation["offer_language"] == "en"


def test_offer_side_match(index, records) -> None:
    offer = next(r for r in records if r.id == 101)
    results = index.match(offer, k=5, floor=0.0)
    assert {r.offer_id for r in results} == {101}
    assert results[0].need_id in (1, 50)


def assert_chunks_give(chunks, expected: dict[tuple[str, int], list]) -> None:
    """match_all's chunks give each post's expected list: a need's in its NEED chunk; an offer's in its OFFER
    chunk less the pairs a NEED chunk gave already (identical results there). No pair is given twice."""
    pairs = [r for c in chunks for r in c.results]
    assert len({(r.need_id, r.offer_id) for r in pairs}) == len(pairs)
    from_needs = {(r.need_id, r.offer_id): r for c in chunks if c.kind == "need" for r in c.results}
    got: dict[tuple[str, int], list] = {}
    for c in chunks:
        for r in c.results:
            got.setdefault((c.kind, r.need_id if c.kind == "need" else r.offer_id), []).append(r)
    for (kind, post_id), results in expected.items():
        if kind == "need":
            assert got.get((kind, post_id), []) == results
        else:
            assert got.get((kind, post_id), []) == [
                r for r in results if (r.need_id, r.offer_id) not in from_needs
            ]
            assert [
                from_needs[(r.need_id, r.offer_id)] for r in results if (r.need_id, r.offer_id) in from_needs
            ] == [r for r in results if (r.need_id, r.offer_id) in from_needs]
    assert {key for key, results in got.items() if results} <= set(expected)


def test_incremental_match_equals_match_all(index, records) -> None:
    chunks = list(match_all(index, k=4, floor=0.2, chunk_size=3))
    assert_chunks_give(chunks, {(rec.kind, rec.id): index.match(rec, k=4, floor=0.2) for rec in records})


@pytest.mark.parametrize("position", [0, -1])  # an English need; the Spanish one (pseudo-translated)
def test_post_outside_the_index_matches_like_an_indexed_one(index, records, vectors, position) -> None:
    need = records[position]
    outsider = dataclasses.replace(need, id=999)
    inside = [(r.offer_id, r.score) for r in index.match(need, k=5, floor=0.0)]
    outside = [
        (r.offer_id, r.score) for r in index.match(outsider, k=5, floor=0.0, embedding=vectors[position])
    ]
    assert [o for o, _ in inside] == [o for o, _ in outside]
    assert np.allclose([s for _, s in inside], [s for _, s in outside], atol=1e-5)


def test_match_post_filters_candidates(model, records, vectors) -> None:
    embeddings = {r.id: v for r, v in zip(records, vectors, strict=True)}
    need = records[0]
    results = engine.match_post(
        need, records, model, weights=Weights(), k=20, floor=0.0, embeddings=embeddings
    )
    assert results and all(passes_hard_rules(need, next(r for r in records if r.id == m.offer_id))
                           for m in results)  # fmt: skip


def test_floor_and_k(index, records) -> None:
    assert index.match(records[0], k=2, floor=0.0)[:2] and len(index.match(records[0], k=2, floor=0.0)) == 2
    assert index.match(records[0], k=20, floor=1.01) == []


def test_unpublished_post_gets_nothing(index, records) -> None:
    assert index.match(dataclasses.replace(records[0], status="draft"), k=5, floor=0.0) == []


def test_deterministic(records, vectors) -> None:
    a = engine.fit_model(records, embeddings=vectors)
    b = engine.fit_model(records, embeddings=vectors)
    ia, ib = (
        MatchIndex.build(records, a, embeddings=vectors),
        MatchIndex.build(records, b, embeddings=vectors),
    )
    for rec in records:
        assert [(r.need_id, r.offer_id, r.score) for r in ia.match(rec, floor=0.0)] == [
            (r.need_id, r.offer_id, r.score) for r in ib.match(rec, floor=0.0)
        ]


def test_record_from_import_format() -> None:
    rec = engine.post_record_from_import(
        {
            "external_id": "x",
            "kind": "offer",
            "provider": "GCF",
            "title": "T",
            "description": "D",
            "support_types": ["finance"],
            "focus_areas": ["mitigation"],
            "eligible": ["SIDS", "KEN"],
            "amount_usd": 5,
        },
        id=7,
        party_groups=GROUPS,
    )
    assert rec.party is None and rec.provider == "GCF" and rec.status == "published" and rec.language == "en"
    assert rec.eligible == {"SIDS", "KEN"} and rec.amount_usd == 5.0 and rec.sectors == frozenset()


# -- property: nothing returned ever breaks a hard rule -------------------------------------------------------

PARTIES = [*GROUPS, None]
TAGS = st.frozensets(st.sampled_from(engine.SUPPORT_TYPES), min_size=1)
ELIGIBLE = st.frozensets(st.sampled_from([*GROUPS, "LDC", "SIDS", "African States", "Asia-Pacific States"]))


@st.composite
def synthetic_posts(draw) -> list[PostRecord]:
    n = draw(st.integers(min_value=2, max_value=14))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(["need", "offer"]))
        party = draw(st.sampled_from(PARTIES[:-1] if kind == "need" else PARTIES))
        title, desc = TEXTS[draw(st.integers(0, len(TEXTS) - 1))]
        out.append(post(i + 1, kind, party=party, provider=None if party else "GCF", title=title,
                        description=desc, support_types=draw(TAGS),
                        status=draw(st.sampled_from(["published", "published", "draft", "closed"])),
                        eligible=draw(ELIGIBLE) if kind == "offer" else frozenset()))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def text_vectors() -> dict[str, np.ndarray]:
    recs = [post(i, title=t, description=d) for i, (t, d) in enumerate(TEXTS)]
    return {r.title: v for r, v in zip(recs, engine.embed_posts(recs), strict=True)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(posts=synthetic_posts())
def test_no_returned_pair_breaks_a_hard_rule(posts, model, text_vectors) -> None:
    embeddings = {p.id: text_vectors[p.title] for p in posts}
    index = MatchIndex.build(posts, model, embeddings=embeddings)
    by_id = {p.id: p for p in posts}
    pairs = [(r.need_id, r.offer_id) for p in posts for r in index.match(p, k=20, floor=0.0)]
    pairs += [
        (r.need_id, r.offer_id) for c in match_all(index, k=20, floor=0.0, chunk_size=4) for r in c.results
    ]
    for need_id, offer_id in pairs:
        assert passes_hard_rules(by_id[need_id], by_id[offer_id])
    # And nothing eligible is missed when k is large and the floor is 0.
    expected = {(n.id, o.id) for n in posts for o in posts if passes_hard_rules(n, o)}
    assert set(pairs) == expected


# -- vectorised scoring and explanations agree with the per-pair definitions ------------------------------------


def _explain_one_pair(index: MatchIndex, need: PostRecord, offer: PostRecord) -> dict:
    """The explanation of one pair, computed directly from the two posts (the per-pair reference)."""
    nw = index.needs.feats.words[index.needs.row_of[need.id]]
    ow = index.offers.feats.words[index.offers.row_of[offer.id]]
    common, ia, ib = np.intersect1d(nw.indices, ow.indices, assume_unique=True, return_indices=True)
    product = nw.data[ia] * ow.data[ib]
    order = np.lexsort((common, -product))[:8]
    terms = index.model.terms()
    expected = {
        "shared_support_types": sorted(need.support_types & offer.support_types),
        "shared_focus_areas": sorted(need.focus_areas & offer.focus_areas),
        "shared_sectors": sorted(need.sectors & offer.sectors),
        "top_terms": [str(terms[common[i]]) for i in order if product[i] > 0],
        "cross_lingual": need.language != offer.language,
    }
    if need.language != offer.language:
        expected |= {"need_language": need.language, "offer_language": offer.language}
        # The related terms: the two posts' words in the pivot language, each post not written in it by the
        # words of its nearest pivot-language posts (translated here one post at a time), of which none is the
        # other post or a copy of it.
        rows = []
        sides = ((index.needs, need, index.offers, offer), (index.offers, offer, index.needs, need))
        for side, post_, other_side, other in sides:
            row = side.row_of[post_.id]
            if post_.language == index.model.pivot:
                rows.append(side.feats.words[row])
                continue
            model = index.model
            pool_words = model.concepts[model.pool]
            sims = side.feats.vectors[row].astype(np.float64) @ model.pool_vectors.astype(np.float64).T
            if other.language == model.pivot:
                other_words = other_side.feats.words[other_side.row_of[other.id]]
                sims[(pool_words @ other_words.T).toarray().ravel() >= engine.ESA_SELF_THRESHOLD] = -np.inf
            near = np.lexsort((np.arange(len(sims)), -sims))[: engine.TRANSLATION_NEIGHBOURS]
            rows.append(model.translations([near])[0])
        a, b = (r.toarray().ravel() for r in rows)
        product = a * b
        columns = np.flatnonzero(product > 0)
        order = np.lexsort((columns, -product[columns]))[:8]
        if len(order):
            expected |= {"related_terms": [str(terms[columns[i]]) for i in order], "terms_language": "en"}
    if need.amount_usd is not None and offer.amount_usd is not None:
        expected["amount_covered"] = round(min(offer.amount_usd / need.amount_usd, 1.0), 3)
    return expected


def test_vectorised_explanations_equal_the_per_pair_ones(index, records) -> None:
    by_id = {r.id: r for r in records}
    results = [r for c in match_all(index, k=20, floor=0.0, chunk_size=2) for r in c.results]
    assert results
    for res in results:
        assert res.explanation == _explain_one_pair(index, by_id[res.need_id], by_id[res.offer_id])


def test_pair_scores_equal_the_block_scores(index) -> None:
    # Every eligible (need, offer) pair: the float64 pairwise components against the float32 block.
    scores = index._block_scores(index.needs, engine.NEED, np.arange(len(index.needs.records)), Weights())
    n, o = np.nonzero(np.isfinite(scores))
    comp = index._pair_scores(index.needs, n, index.offers, o, Weights())
    assert np.allclose(comp["score"], scores[n, o], atol=1e-5)
    brute = np.array([
        [passes_hard_rules(need, offer) for offer in index.offers.records] for need in index.needs.records
    ])  # fmt: skip
    assert np.array_equal(np.isfinite(scores), brute)


@pytest.mark.parametrize("weights", [Weights(), Weights(cross_lingual_lexical=0.5, esa_share=0.2),
                                     Weights(lexical=0.0, semantic=0.0, structured=1.0)])  # fmt: skip
def test_match_rows_equals_match(index, weights) -> None:
    for kind, side in (("need", index.needs), ("offer", index.offers)):
        rows = list(range(len(side.records)))
        batch = index.match_rows(kind, rows, k=3, floor=0.1, weights=weights)
        for row, got in zip(rows, batch, strict=True):
            one = index.match(side.records[row], k=3, floor=0.1, weights=weights)
            assert [(r.need_id, r.offer_id, r.score, r.components, r.explanation) for r in got] == [
                (r.need_id, r.offer_id, r.score, r.components, r.explanation) for r in one
            ]


def test_ties_at_the_cut_go_to_the_lower_id(model, text_vectors) -> None:
    # Ten identical offers tie for every need: the top 3 must be the three lowest ids, whatever the block order.
    title, desc = TEXTS[0]
    need = post(1, title=title, description=desc)
    offers = [
        post(i, "offer", title=title, description=desc) for i in (90, 20, 70, 30, 80, 40, 60, 50, 100, 10)
    ]
    embeddings = {p.id: text_vectors[title] for p in [need, *offers]}
    index = MatchIndex.build([need, *offers], model, embeddings=embeddings)
    assert [r.offer_id for r in index.match(need, k=3, floor=0.0)] == [10, 20, 30]
    chunks = list(match_all(index, k=3, floor=0.0))
    assert [r.offer_id for c in chunks if c.kind == "need" for r in c.results] == [10, 20, 30]


# -- second stage: sentence-alignment rerank ---------------------------------------------------------------------


def test_sentence_coverage_counts_the_parts_of_the_need_that_are_answered() -> None:
    a, b, c = np.eye(3, dtype=np.float32)
    need = np.stack([a, b])
    assert engine.sentence_coverage(need, np.stack([a, b, c])) == 1.0
    assert engine.sentence_coverage(need, np.stack([a, c])) == 0.5  # answers one of the two parts
    assert engine.sentence_coverage(need, np.stack([-a])) == 0.0  # clipped at 0


def test_coverage_of_many_pairs_equals_coverage_pair_by_pair_exactly(model, records, vectors) -> None:
    # The rerank computes one product per query post; every pair must get exactly its own coverage, whichever
    # side groups the pairs and whatever else is in the product (int8 products, float64 sums: exact).
    rng = np.random.default_rng(3)
    sentences = {}
    for r in records:
        v = rng.standard_normal((int(rng.integers(1, 14)), engine.EMBED_DIM))
        sentences[r.id] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float16)
    index = MatchIndex.build(records, model, embeddings=vectors, sentences=sentences)
    nrows = rng.integers(0, len(index.needs.records), 200)
    orows = rng.integers(0, len(index.offers.records), 200)
    need_vec = index.needs.sentence_vectors(nrows.tolist())
    offer_vec = index.offers.sentence_vectors(orows.tolist())
    one_by_one = [
        engine.sentence_coverage(need_vec[a], offer_vec[b]) for a, b in zip(nrows, orows, strict=True)
    ]
    assert index._coverage(index.needs, nrows, index.offers, orows).tolist() == one_by_one
    # Grouped the other way (pairs in the order of their offers), each pair still gets its own coverage.
    order = np.argsort(orows, kind="stable")
    by_offer = index._coverage(index.needs, nrows[order], index.offers, orows[order])
    assert by_offer.tolist() == [one_by_one[i] for i in order]
    assert len(set(one_by_one)) > 10


def test_match_all_computes_each_pairs_coverage_once(model, records, vectors, monkeypatch) -> None:
    index = MatchIndex.build(records, model, embeddings=vectors)
    weights = Weights(rerank_depth=4)
    need_lists = index.match_rows("need", range(len(index.needs.records)), k=3, floor=0.0, weights=weights)
    offer_lists = index.match_rows("offer", range(len(index.offers.records)), k=3, floor=0.0, weights=weights)
    need_pairs = {(r.need_id, r.offer_id) for rs in need_lists for r in rs}
    offer_pairs = {(r.need_id, r.offer_id) for rs in offer_lists for r in rs}
    assert need_pairs & offer_pairs  # the offers' lists share pairs with the needs'...
    computed: list[tuple[int, int]] = []
    original = engine._packed_coverage  # where every coverage is computed, in the main thread or the pool

    def spy(n_vec, nrows, o_vec, orows):
        computed.extend(zip(nrows.tolist(), orows.tolist(), strict=True))
        return original(n_vec, nrows, o_vec, orows)

    monkeypatch.setattr(engine, "_packed_coverage", spy)
    list(match_all(index, k=3, floor=0.0, chunk_size=2, weights=weights))
    assert len(computed) == len(set(computed))  # ...whose coverage match_all does not compute again
    ids = {(index.needs.ids[a], index.offers.ids[b]) for a, b in computed}
    assert need_pairs | offer_pairs <= ids


def test_rerank_score_is_the_blend_mixed_with_coverage(index, records) -> None:
    by_id = {r.id: r for r in records}
    weights = Weights()
    first = {
        r.offer_id: r.score for r in index.match(records[0], k=20, floor=0.0, weights=Weights(alignment=0.0))
    }
    for res in index.match(records[0], k=20, floor=0.0, weights=weights):
        need_vec, offer_vec = engine.embed_post_sentences([by_id[res.need_id], by_id[res.offer_id]])
        coverage = engine.sentence_coverage(need_vec.astype(np.float32), offer_vec.astype(np.float32))
        assert res.components["alignment"] == pytest.approx(coverage, abs=1e-6)
        expected = (first[res.offer_id] + weights.alignment * coverage) / (1 + weights.alignment)
        assert res.score == pytest.approx(expected, abs=1e-9)


def test_rerank_only_reorders_the_shortlist(index, records) -> None:
    # With a shortlist of 2, the reranked top 2 are the first stage's top 2, possibly swapped (the second
    # stage's coverage and pseudo-translated lexical similarity reorder the shortlist only).
    for need in (r for r in records if r.kind == "need"):
        first = index.match(need, k=2, floor=0.0, weights=Weights(alignment=0.0, translated_lexical=0.0))
        second = index.match(need, k=2, floor=0.0, weights=Weights(alignment=5.0, rerank_depth=2))
        assert {r.offer_id for r in second} == {r.offer_id for r in first}
        assert [r.score for r in second] == sorted((r.score for r in second), reverse=True)


def test_rerank_floor_applies_to_the_final_score(index, records) -> None:
    everything = index.match(records[0], k=20, floor=0.0)
    cut = everything[len(everything) // 2].score
    kept = index.match(records[0], k=20, floor=cut)
    assert kept == [r for r in everything if r.score >= cut]


@pytest.mark.parametrize(
    "weights", [Weights(), Weights(alignment=0.0), Weights(alignment=1.0, rerank_depth=3)]
)
@pytest.mark.parametrize(("held", "threads"), [(True, 1), (True, 2), (False, 2)])
def test_match_all_equals_match_rows_with_and_without_the_rerank(
    index, weights, held, threads, monkeypatch
) -> None:
    if not held:
        # No sentence vector in memory: every chunk's coverage, the offers' too, is computed and ranked in the
        # caller's thread instead of the pool.
        monkeypatch.setattr(MatchIndex, "_held_coverage", lambda self, *args, **kwargs: None)
    chunks = list(match_all(index, k=3, floor=0.1, chunk_size=2, weights=weights, threads=threads))
    # Chunks come in tag-profile order: each post's list, in its order, is compared.
    expected = {}
    for kind, side in (("need", index.needs), ("offer", index.offers)):
        lists = index.match_rows(kind, range(len(side.records)), k=3, floor=0.1, weights=weights)
        expected.update(
            {(kind, record.id): results for record, results in zip(side.records, lists, strict=True)}
        )
        assert {i for c in chunks if c.kind == kind for i in c.post_ids} == {r.id for r in side.records}
    assert all(len(c.post_ids) <= 2 for c in chunks)
    assert any(c.kind == "offer" and c.results for c in chunks)  # some pairs come from the offers' side only
    assert_chunks_give(chunks, expected)


def test_match_all_chunks_group_posts_by_tag_profile(model, records, vectors) -> None:
    # The fixture's posts share one profile: give the needs three, interleaved by id.
    sectors = [frozenset({"water"}), frozenset({"transport"}), frozenset({"water", "health"})]
    mixed = [dataclasses.replace(r, sectors=sectors[r.id % 3]) if r.kind == "need" else r for r in records]
    index = MatchIndex.build(mixed, model, embeddings=vectors)
    chunks = [c for c in match_all(index, k=3, floor=0.1, chunk_size=2) if c.kind == "need"]
    order = [i for c in chunks for i in c.post_ids]
    tags = {r.id: (r.sectors, r.focus_areas, r.support_types) for r in index.needs.records}
    assert sorted(order) == sorted(tags) and len(set(tags.values())) == 3
    # Posts with the same tags are consecutive, in id order.
    runs = [key for key, _ in itertools.groupby(tags[i] for i in order)]
    assert len(runs) == len(set(runs))
    for a, b in itertools.pairwise(order):
        if tags[a] == tags[b]:
            assert a < b


@pytest.mark.parametrize("threads", [2, 3])
def test_match_all_gives_the_same_chunks_on_any_number_of_threads(index, threads: int) -> None:
    one = list(match_all(index, k=3, floor=0.1, chunk_size=2))
    many = list(match_all(index, k=3, floor=0.1, chunk_size=2, threads=threads))
    assert [(c.kind, c.post_ids, c.results) for c in many] == [(c.kind, c.post_ids, c.results) for c in one]
    assert len(one) > threads  # more chunks than threads: the pool had to refill


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), keep=st.integers(1, 5), split=st.integers(1, 6), cut=st.integers(0, 7))
def test_running_best_of_each_column_is_the_best_of_all_blocks_whatever_their_order(
    seed, keep, split, cut
) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_cols, floor = 30, 7, np.float32(0.3)
    # Coarse scores, so that ties are common: they go to the lower key.
    scores = rng.integers(0, 10, (n_rows, n_cols)).astype(np.float32) / 10
    best = engine._ColumnBest(keep, n_cols, floor)
    stale = best.threshold  # contenders taken with an old threshold must give the same result
    blocks = np.array_split(rng.permutation(n_rows), split)
    for i, rows in enumerate(blocks):
        # Each block in two runs of columns, [0, cut) and [cut, n_cols), as `MatchIndex._candidate_pairs` scores them.
        for start, stop in ((0, cut), (cut, n_cols)):
            block = scores[rows, start:stop]
            cols, values, keys = (
                best.contenders(block, rows, start)
                if i % 2
                else _with_threshold(best, stale, block, rows, start)
            )
            best.merge(cols, values, keys)
    for c in range(n_cols):
        expected = sorted((-scores[r, c], r) for r in range(n_rows) if scores[r, c] >= floor)[:keep]
        got = sorted((-best.scores[c, j], best.keys[c, j]) for j in range(keep) if best.keys[c, j] >= 0)
        assert got == expected


def _with_threshold(best, threshold, block, rows, start):
    current, best.threshold = best.threshold, threshold
    try:
        return best.contenders(block, rows, start)
    finally:
        best.threshold = current


def test_match_all_stopped_early_leaves_no_thread_behind(index) -> None:
    import threading

    chunks = match_all(index, k=3, floor=0.1, chunk_size=1, threads=2)
    next(chunks)
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("match-all")]


def test_cached_sentence_embeddings_give_the_same_matches(records, vectors, model, index) -> None:
    sentences = dict(zip((r.id for r in records), engine.embed_post_sentences(records), strict=True))
    cached = MatchIndex.build(records, model, embeddings=vectors, sentences=sentences)
    for need in (r for r in records if r.kind == "need"):
        assert cached.match(need, k=5, floor=0.0) == index.match(need, k=5, floor=0.0)
    assert engine.post_sentences_key(records[0]) == engine.post_sentences_key(records[1])  # same text
    assert engine.post_sentences_key(records[0]) != engine.post_sentences_key(records[2])


def test_posts_and_their_sentences_embedded_at_once_embed_each_title_once(records, monkeypatch) -> None:
    expected_vectors = engine.embed_posts(records)
    expected_sentences = engine.embed_post_sentences(records)
    engine._sentence_cache.clear()
    encoded: list[str] = []
    encode = engine.encode_texts

    def counting(texts):
        encoded.extend(texts)
        return encode(texts)

    monkeypatch.setattr(engine, "encode_texts", counting)
    vectors, sentences = engine.embed_posts_and_sentences(records)
    # The same vectors as the two embeddings apart (an encode's batch moves a value by ~1e-7).
    assert vectors.shape == expected_vectors.shape and vectors.dtype == np.float32
    assert np.allclose(vectors, expected_vectors, atol=1e-5)
    assert len(sentences) == len(records)
    for got, expected, record in zip(sentences, expected_sentences, records, strict=True):
        assert got.dtype == np.float16 and got.shape == (len(engine.post_sentences(record)), engine.EMBED_DIM)
        assert np.allclose(got.astype(np.float32), expected.astype(np.float32), atol=2e-3)
    # Each distinct text once: a title is both a sentence and half of the post's vector.
    assert len(encoded) == len(set(encoded))
    titles = {r.title for r in records}
    assert titles <= set(encoded) and sum(t in titles for t in encoded) == len(titles)
    assert engine.embed_posts_and_sentences([])[0].shape == (0, engine.EMBED_DIM)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.floats(0.01, 0.6))
def test_single_row_product_equals_the_sparse_product(seed, vocabulary, density) -> None:
    # The incremental match's fast path (one query row) must give what scipy's product gives.
    rng = np.random.default_rng(seed)
    a = sp.random(1, vocabulary, density=density, format="csr", dtype=np.float32, random_state=rng)
    b = sp.random(30, vocabulary, density=density, format="csr", dtype=np.float32, random_state=rng)
    b_t = b.T.tocsr()
    expected = (a @ b_t).toarray()
    got = engine._dense_product(a, b_t, b)
    assert got.shape == (1, 30) and got.dtype == np.float32
    assert np.allclose(got, expected, atol=1e-6)


class _RecordingStore(engine.SentenceStore):
    def __init__(self, known=None) -> None:
        self.known = dict(known or {})
        self.asked: list[int] = []
        self.stored: dict[int, np.ndarray] = {}

    def get(self, records):
        self.asked += [r.id for r in records]
        return {r.id: self.known[r.id] for r in records if r.id in self.known}

    def put(self, records, vectors):
        self.stored.update({r.id: v for r, v in zip(records, vectors, strict=True)})


def test_the_rerank_keeps_the_sentences_it_embeds_in_the_store(
    records, vectors, model, index, monkeypatch
) -> None:
    store = _RecordingStore()
    fresh = MatchIndex.build(records, model, embeddings=vectors, sentence_store=store)
    first = fresh.match(records[0], k=5, floor=0.0)
    assert first == index.match(records[0], k=5, floor=0.0)
    assert records[0].id in store.stored and all(v.dtype == np.float16 for v in store.stored.values())
    assert set(store.stored) <= set(store.asked)

    # A new index (another worker, a rebuild) finds them in the store and embeds nothing.
    def no_embedding(_records):
        raise AssertionError("sentences were embedded again")

    monkeypatch.setattr(engine, "embed_post_sentences", no_embedding)
    second_store = _RecordingStore(store.stored)
    again = MatchIndex.build(records, model, embeddings=vectors, sentence_store=second_store)
    assert again.match(records[0], k=5, floor=0.0) == first
    assert second_store.stored == {}


def test_a_bounded_sentence_cache_still_answers_every_row_asked(
    records, vectors, model, index, monkeypatch
) -> None:
    # When a lookup would take the cache past SENTENCE_ROWS_KEPT the rows asked for least recently go; the rows
    # asked for now stay or are fetched again, never lost (a 100k rebuild failed on this once the cache filled up).
    first_index = MatchIndex.build(records, model, embeddings=vectors, sentence_store=_RecordingStore())
    known = {r.id: v for r, v in zip(records, engine.embed_post_sentences(records), strict=True)}
    monkeypatch.setattr(engine, "SENTENCE_ROWS_KEPT", 3)
    fresh = MatchIndex.build(records, model, embeddings=vectors, sentence_store=_RecordingStore(known))
    side = fresh.offers
    assert set(side.sentence_vectors([0, 1], fresh.sentence_store)) == {0, 1}
    got = side.sentence_vectors([1, 2, 3], fresh.sentence_store)  # 2 cached + 2 new > 3: row 0 goes
    assert set(got) == {1, 2, 3} and list(side._sentences) == [1, 2, 3]
    assert np.array_equal(got[1].values, engine.quantise_sentences(known[side.records[1].id]).values)
    side.sentence_vectors([2], fresh.sentence_store)  # asked again: now the most recent
    side.sentence_vectors([4], fresh.sentence_store)
    assert list(side._sentences) == [3, 2, 4]
    # A lookup of more rows than the cache keeps answers all of them.
    assert set(side.sentence_vectors([0, 1, 2, 3, 4], fresh.sentence_store)) == {0, 1, 2, 3, 4}
    # Matching through the bounded cache ranks as the unbounded one.
    assert fresh.match(records[0], k=5, floor=0.0) == first_index.match(records[0], k=5, floor=0.0)


def test_match_all_reads_every_posts_sentences_once_and_keeps_them_while_it_runs(
    records, vectors, model, monkeypatch
) -> None:
    known = {r.id: v for r, v in zip(records, engine.embed_post_sentences(records), strict=True)}
    unheld = MatchIndex.build(records, model, embeddings=vectors, sentence_store=_RecordingStore(known))
    expected = [chunk.results for chunk in match_all(unheld, k=3, floor=0.0, chunk_size=2)]
    monkeypatch.setattr(engine, "SENTENCE_ROWS_KEPT", 3)  # far fewer than the posts

    def no_embedding(_records):
        raise AssertionError("sentences were embedded")

    monkeypatch.setattr(engine, "embed_post_sentences", no_embedding)
    store = _RecordingStore(known)
    index = MatchIndex.build(records, model, embeddings=vectors, sentence_store=store)
    in_pool = []
    original = MatchIndex._held_coverage

    def spy(self, nrows, orows, **kwargs):
        got = original(self, nrows, orows, **kwargs)
        in_pool.append((kwargs.get("known") is not None, got is not None))
        return got

    monkeypatch.setattr(MatchIndex, "_held_coverage", spy)
    got = [chunk.results for chunk in match_all(index, k=3, floor=0.0, chunk_size=2, threads=2)]
    assert got == expected  # the same matches, their coverage computed beside the scoring when it could be
    # The needs' first blocks may be scored while the vectors are read; every offer block comes after.
    offer_blocks = [computed for by_offer, computed in in_pool if by_offer]
    assert offer_blocks and all(offer_blocks)
    # Each post asked of the store once, all at the start; nothing let go meanwhile.
    assert sorted(store.asked) == sorted(known)
    assert len(index.needs._sentences) + len(index.offers._sentences) == len(known)
    # Afterwards the bound applies again.
    index.offers.sentence_vectors([0], store)
    assert len(index.offers._sentences) <= 3


def test_pool_side_coverage_is_the_reranks_or_nothing_when_a_vector_is_not_held(
    records, vectors, model
) -> None:
    index = MatchIndex.build(records, model, embeddings=vectors)
    nrows = np.repeat(np.arange(len(index.needs.records)), len(index.offers.records))
    orows = np.tile(np.arange(len(index.offers.records)), len(index.needs.records))
    expected = index._coverage(index.needs, nrows, index.offers, orows)  # embeds and keeps them all
    assert index._held_coverage(nrows, orows) is None  # not holding: the store may be needed
    with index.holding_sentences():
        assert index._held_coverage(nrows, orows).tolist() == expected.tolist()
        del index.offers._sentences[1]
        assert index._held_coverage(nrows, orows) is None
        assert (
            index._held_coverage(nrows[orows != 1], orows[orows != 1]).tolist()
            == expected[orows != 1].tolist()
        )


def test_one_text_is_featurised_as_in_a_batch(model, records) -> None:
    # The incremental path featurises a single post without scikit-learn's batch transform: same vectors.
    texts = [engine.post_text(r) for r in records] + ["", "Ça, c'est une phrase française: énergie solaire!"]
    batch = model.vectorizer.transform(texts).astype(np.float32).toarray()
    for i, text in enumerate(texts):
        one = model._transform_one(text)
        assert one.shape == (1, batch.shape[1])
        assert np.allclose(one.toarray()[0], batch[i], atol=1e-6)
    single = model.features([texts[0]], vectors=np.ones((1, engine.EMBED_DIM), dtype=np.float32))
    many = model.features(texts[:2], vectors=np.ones((2, engine.EMBED_DIM), dtype=np.float32))
    assert np.allclose(single.esa.toarray()[0], many.esa.toarray()[0], atol=1e-6)


def test_lexical_rows_survive_packing_exactly(model, records) -> None:
    # More rows than `unpack_lexical` takes at a time (4,096), an empty text among them.
    words, esa = model.lexical([engine.post_text(r) for r in records] * 400 + [""])
    got_words, got_esa = engine.unpack_lexical(b"".join(engine.pack_lexical(words, esa)), model)
    for got, want in ((got_words, words), (got_esa, esa)):
        assert got.shape == want.shape and got.dtype == np.float32
        assert got.indptr.tolist() == want.indptr.tolist() and got.indices.tolist() == want.indices.tolist()
        assert got.data.tobytes() == want.data.tobytes()
    assert got_words[len(records) * 400].nnz == 0 and got_words.shape[0] > 4096
    empty_words, empty_esa = engine.unpack_lexical(b"", model)
    assert empty_words.shape == (0, words.shape[1]) and empty_esa.shape == (0, esa.shape[1])


@pytest.mark.parametrize("kept", ["all", "some", "none"])
def test_an_index_of_kept_lexical_rows_is_the_index_of_the_texts(model, records, vectors, kept) -> None:
    # The platform keeps each post's word and ESA rows: an index built from them (or from some of them, the
    # others computed) holds the same features and ranks the same as one that tokenised every text.
    chosen = {"all": records, "some": records[::3], "none": []}[kept]
    words, esa = (
        model.lexical([engine.post_text(r) for r in chosen]) if chosen else engine.unpack_lexical(b"", model)
    )
    reference = MatchIndex.build(records, model, embeddings=vectors)
    kept = engine.LexicalRows([r.id for r in chosen], words, esa)
    built = MatchIndex.build(records, model, embeddings=vectors, lexical=kept)
    assert kept.words is None and kept.esa is None  # released once the index has its own rows
    for a, b in ((built.needs, reference.needs), (built.offers, reference.offers)):
        assert (a.feats.words != b.feats.words).nnz == 0 and (a.feats.esa != b.feats.esa).nnz == 0
    rows = np.arange(len(reference.needs.records))
    assert [
        [(r.offer_id, r.score) for r in res] for res in built.match_rows(engine.NEED, rows, k=5, floor=0.0)
    ] == [
        [(r.offer_id, r.score) for r in res]
        for res in reference.match_rows(engine.NEED, rows, k=5, floor=0.0)
    ]


def test_match_all_collects_garbage_less_often_while_it_runs(index) -> None:
    import gc

    before = gc.get_threshold()
    chunks = match_all(index, k=3, floor=0.1, chunk_size=2)
    next(chunks)
    assert gc.get_threshold()[0] == engine.GC_THRESHOLD
    with engine.rare_collections():  # nested, as the rebuild holds it around match_all
        pass
    assert gc.get_threshold()[0] == engine.GC_THRESHOLD
    list(chunks)
    assert gc.get_threshold() == before


def _mixed_support_records(seed: int) -> list[PostRecord]:
    rng = np.random.default_rng(seed)
    types = list(engine.SUPPORT_TYPES)
    out = []
    for i in range(60):
        title, desc = TEXTS[i % len(TEXTS)]
        kind = "need" if i % 2 == 0 else "offer"
        support = frozenset(t for t in types if rng.random() < 0.5)
        party = ["KEN", "MEX", "FJI", "DEU"][int(rng.integers(4))]
        eligible = frozenset({"LDC"}) if kind == "offer" and rng.random() < 0.3 else frozenset()
        out.append(post(i + 1, kind, party=party, title=title, description=desc, support_types=support,
                        amount_usd=float(rng.integers(1, 9)) * 1e6, eligible=eligible))  # fmt: skip
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocks_by_support_types_leave_out_only_pairs_that_break_a_rule(seed, monkeypatch) -> None:
    records = _mixed_support_records(seed)
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(records), engine.EMBED_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model = engine.fit_model(records, embeddings=vectors)
    index = MatchIndex.build(records, model, embeddings=vectors)
    for side in (index.needs, index.offers):
        ranks = [engine._SUPPORT_RANK[m] for m in side.support.tolist()]
        assert ranks == sorted(ranks)  # rows in the order of their support types
        for mask in range(1, 8):
            spans = side.support_spans(mask)
            assert len(spans) <= 2
            covered = {r for start, stop in spans for r in range(start, stop)}
            assert covered == {r for r in range(len(side.records)) if side.support[r] & mask}
    weights = Weights()
    by_span = {kind: index.match_rows(kind, range(len(side.records)), k=5, floor=0.0, weights=weights)
               for kind, side in (("need", index.needs), ("offer", index.offers))}  # fmt: skip
    all_chunks = [
        (c.kind, c.post_ids, c.results) for c in match_all(index, k=5, floor=0.0, chunk_size=4, threads=2)
    ]
    # The same, scoring every pair of the two sides.
    whole = MatchIndex.build(records, model, embeddings=vectors)
    monkeypatch.setattr(engine._Side, "support_spans", lambda self, mask: [(0, len(self.records))])
    for kind, side in (("need", whole.needs), ("offer", whole.offers)):
        assert (
            whole.match_rows(kind, range(len(side.records)), k=5, floor=0.0, weights=weights) == by_span[kind]
        )
    assert [(c.kind, c.post_ids, c.results) for c in match_all(whole, k=5, floor=0.0, chunk_size=4, threads=2)] \
        == all_chunks  # fmt: skip
    assert any(by_span["need"]) and any(by_span["offer"])


def _look_up_at_once(
    pairs: engine._PairValues, nrows, orows, threads: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    start, got = threading.Barrier(threads), []

    def look() -> None:
        start.wait()
        got.append(pairs.lookup(nrows, orows))

    running = [threading.Thread(target=look) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return got


def test_pair_values_looked_up_from_many_threads_at_once_stay_right() -> None:
    # The offers' shortlists look the needs' coverages up in match_all's pool, the first lookups right after the
    # last adds: each must see every pair with its own value.
    rng = np.random.default_rng(5)
    for _round in range(10):
        pairs = engine._PairValues(n_offers=1000)
        keys = np.unique(rng.integers(0, 1000, 300_000) * 1000 + rng.integers(0, 1000, 300_000))
        nrows, orows = keys // 1000, keys % 1000
        values = rng.random(len(keys))
        for part in np.array_split(np.arange(len(keys)), 40):
            pairs.add(nrows[part], orows[part], values[part])
        answers = _look_up_at_once(pairs, nrows, orows, threads=8)
        assert len(answers) == 8
        assert all(found.all() and got.tolist() == values.tolist() for found, got in answers)


# --- pseudo-translation: pairs in two languages compared through the pivot language ---------------------------


def test_the_pivot_is_the_language_of_most_posts_and_is_stored_with_the_model(model) -> None:
    assert model.pivot == "en"
    # Every post is an ESA concept in so small a corpus: the pool is the twelve English ones.
    assert len(model.pool) == 12 and model.pool_vectors.shape[0] == 12
    back = TextModel.from_bytes(model.to_bytes())
    assert back.pivot == "en"
    assert np.array_equal(back.pool, model.pool) and np.array_equal(back.pool_vectors, model.pool_vectors)


def test_a_post_in_another_language_is_described_by_the_words_of_its_nearest_pivot_posts(
    index, model
) -> None:
    side = index.needs
    assert (side.translated_row[side.language == "en"] == -1).all()
    row = side.translated_row[side.row_of[50]]
    assert row >= 0
    words = side.translated_words[row]
    terms = model.terms()[words.indices]
    top = set(model.terms()[words.indices[np.argsort(-words.data, kind="stable")[:6]]])
    assert top & {"flood", "floods", "warning", "hydrological", "forecasting"}, top
    assert "inundaciones" not in terms and "alerta" not in terms  # only the pivot language's words
    assert np.isclose(sp.linalg.norm(words), 1.0) and np.isclose(
        sp.linalg.norm(side.translated_esa[row]), 1.0
    )


def _crowded_records(crowded) -> list[PostRecord]:
    """The crowded corpus as posts: its English texts offers (five per subject), its Spanish ones needs."""
    _model, texts, _vectors, languages = crowded
    out = []
    for i, (text, lang) in enumerate(zip(texts, languages, strict=True)):
        kind, party = ("need", "PER") if lang == "es" else ("offer", "DEU")
        out.append(post(i + 1, kind, party=party, title=text, description="", language=lang))
    return out


def test_a_pair_in_two_languages_takes_its_lexical_component_through_the_pivot(
    crowded, index, records
) -> None:
    model, _texts, vectors, _ = crowded
    posts = _crowded_records(crowded)
    crowded_index = MatchIndex.build(
        posts, model, embeddings={p.id: v for p, v in zip(posts, vectors, strict=True)}
    )
    spanish = posts[40]  # "alerta temprana de inundaciones"
    on = {r.offer_id: r for r in crowded_index.match(spanish, k=10, floor=0.0)}
    off = {r.offer_id: r for r in crowded_index.match(spanish, k=10, floor=0.0,
                                                      weights=Weights(translated_lexical=0.0))}  # fmt: skip
    floods = {p.id for p in posts[:5]}  # the English offers on the same subject
    best = max(on.values(), key=lambda r: r.components["lexical"])
    assert best.offer_id in floods
    flood = on[best.offer_id]
    assert flood.components["lexical"] > off[best.offer_id].components["lexical"]
    assert flood.explanation["cross_lingual"] and flood.explanation["terms_language"] == "en"
    assert set(flood.explanation["related_terms"]) & {"flood", "floods", "warning", "hydrological"}
    assert "related_terms" not in off[best.offer_id].explanation
    # The score is the documented blend: the lexical weight's translated share on the translated lexical.
    w, c = engine.DEFAULT_WEIGHTS, flood.components
    w_lex = w.lexical * w.translated_lexical
    blend = (
        w_lex * c["lexical"]
        + (w.semantic + w.lexical - w_lex) * c["semantic"]
        + w.structured * c["structured"]
    )
    blend /= w.lexical + w.semantic + w.structured
    assert flood.score == pytest.approx((blend + w.alignment * c["alignment"]) / (1 + w.alignment), abs=1e-9)
    # Pairs in one language are not touched.
    english = records[0]
    assert index.match(english, k=10, floor=0.0) == index.match(
        english, k=10, floor=0.0, weights=Weights(translated_lexical=0.0)
    )


def test_a_translation_leaves_out_the_post_it_is_compared_with(crowded) -> None:
    """A Spanish need is described in English by the words of its nearest English posts, which may include
    the very offer it is compared with: the offer's words would be compared with themselves. For that pair the
    next nearest post stands in, and so for a copy of the offer (the same words)."""
    model, _texts, vectors, _ = crowded
    posts = _crowded_records(crowded)
    copy = dataclasses.replace(posts[0], id=999)  # a copy of the first flood offer, from another Party
    posts.append(dataclasses.replace(copy, party="JPN"))
    embeddings = {p.id: v for p, v in zip(posts, [*vectors, vectors[0]], strict=True)}
    index = MatchIndex.build(posts, model, embeddings=embeddings)
    spanish = posts[40]
    near = model.translation_neighbours(index.needs.feats.vectors[index.needs.row_of[spanish.id]][None])[0]
    pool_words, _ = model._pool()
    width = engine.TRANSLATION_NEIGHBOURS
    results = {r.offer_id: r for r in index.match(spanish, k=50, floor=0.0)}
    checked = 0
    for offer in posts[:5]:
        words = index.offers.feats.words[index.offers.row_of[offer.id]]
        itself = (pool_words[near] @ words.T).toarray().ravel() >= engine.ESA_SELF_THRESHOLD
        if not itself[:width].any():
            continue
        checked += 1
        esa = index.offers.feats.esa[index.offers.row_of[offer.id]]

        def lexical(members: np.ndarray, words: sp.csr_matrix = words, esa: sp.csr_matrix = esa) -> float:
            t_words, t_esa = model.translations([members])
            return model.lexical_from(np.array([(t_words @ words.T).toarray()[0, 0]]),
                                      np.array([(t_esa @ esa.T).toarray()[0, 0]]),
                                      engine.DEFAULT_WEIGHTS.esa_share, translated=1)[0]  # fmt: skip

        without = lexical(near[~itself][:width])
        assert results[offer.id].components["lexical"] == pytest.approx(without, abs=1e-6)
        assert lexical(near[:width]) > without + 0.05  # what it was: the offer's words met themselves
    assert checked  # the first flood offer and its copy are among the need's nearest
    assert results[999].components["lexical"] == pytest.approx(results[posts[0].id].components["lexical"])


def test_a_model_stored_with_other_stems_is_outdated(model, monkeypatch) -> None:
    """The stems a model was fitted with are stored with it: when they change (`stemming.VERSION`), the
    platform's hourly task refits the stored model (`pipeline.text_model_refit_if_grown` reads `outdated`)."""
    assert not model.outdated
    assert not TextModel.from_bytes(model.to_bytes()).outdated
    monkeypatch.setattr(stemming, "VERSION", stemming.VERSION + 1)
    assert TextModel.from_bytes(model.to_bytes()).outdated
    state = pickle.loads(model.to_bytes())
    del state["words_version"]  # stored before the stems were versioned
    monkeypatch.undo()
    assert TextModel.from_bytes(pickle.dumps(state)).outdated


def test_a_model_stored_without_a_pivot_loads_and_translates_nothing(model, records, vectors) -> None:
    state = pickle.loads(model.to_bytes())
    for key in ("pivot", "pool", "pool_vectors"):
        del state[key]
    old = TextModel.from_bytes(pickle.dumps(state))
    assert old.pivot is None
    with pytest.raises(ValueError, match="without languages"):
        old.translate(np.zeros((1, 4), dtype=np.float32))
    spanish = records[-1]
    old_index = MatchIndex.build(records, old, embeddings=vectors)
    assert (old_index.needs.translated_row == -1).all()
    new_index = MatchIndex.build(records, model, embeddings=vectors)
    assert old_index.match(spanish, k=5, floor=0.0) == new_index.match(
        spanish, k=5, floor=0.0, weights=Weights(translated_lexical=0.0)
    )


def test_fit_refuses_languages_not_aligned_with_the_corpus() -> None:
    with pytest.raises(ValueError, match="aligned"):
        TextModel.fit(["one text", "another text"], languages=["en"])


# --- the six UN languages: what the word model reads, sentences, the scales of translated pairs ----------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Équipe naïve de l'État", "equipe naive de l'etat"),  # accents off Latin letters
        ("Мониторинг хозяйства, ёлка", "мониторинг хозяйства, елка"),  # й stays й; ё reads as е
        (
            "إنذار مُبكر بالفيضانات المفاجئة",
            "انذار مبكر بالفيضانات المفاجئة",
        ),  # ئ stays; vowels and hamza-alef
        ("山洪预警", " 山洪 洪预 预警 "),  # Chinese: overlapping character pairs
    ],
)
def test_the_word_model_reads_each_script_as_its_readers_do(text, expected) -> None:
    assert engine.preprocess_text(text) == expected


def test_chinese_posts_share_words_and_explain_them() -> None:
    need = post(1, "need", party="CHN", language="zh", title="城市内涝与山洪早期预警系统建设",
                description="我们需要建设山洪早期预警系统，包括雨量站、水位监测和预警信息发布平台。")  # fmt: skip
    flood = post(2, "offer", party="KOR", language="zh", title="山洪与城市内涝早期预警技术合作",
                 description="提供山洪预警系统、雨量站和水位监测设备，以及预警信息发布的培训。")  # fmt: skip
    solar = post(3, "offer", party="DEU", language="zh", title="太阳能微电网技术转让",
                 description="为农村地区提供太阳能光伏微电网和电池储能的成套技术转让。")  # fmt: skip
    records = [
        need,
        flood,
        solar,
        *(post(10 + i, "offer", title=t, description=d) for i, (t, d) in enumerate(TEXTS)),
    ]
    model = engine.fit_model(records)
    words = model.lexical([engine.post_text(r) for r in (need, flood, solar)])[0]
    assert (words[0] @ words[1].T).toarray()[0, 0] > 0.3 > (words[0] @ words[2].T).toarray()[0, 0]
    index = MatchIndex.build(records, model)
    results = index.match(need, k=3, floor=0.0)
    assert results[0].offer_id == 2
    assert {"山洪", "预警"} <= set(results[0].explanation["top_terms"])
    # "We", "need", "provide": words of every request and offer, never what two posts share.
    assert not {"我们", "需要", "提供"} & set(model.vectorizer.vocabulary_)


# Russian and Arabic posts on one subject, written in other forms of the same words (case, number, attached
# articles and prepositions), and one on another subject: (language, party, need, matching offer, other offer).
INFLECTED = [
    ("ru", "KGZ",
     ("Адаптация сельского хозяйства к засухе",
      "Нам нужна поддержка фермеров в адаптации к засухам: капельное орошение, засухоустойчивые семена."),
     ("Засухоустойчивые семена и капельное орошение для фермеров",
      "Обучение фермерских хозяйств адаптации к засухе, поставки семян и систем орошения."),
     ("Электрические автобусы для столицы",
      "Закупка электробусов, зарядных станций и обучение водителей.")),
    ("ar", "JOR",
     ("التكيف الزراعي مع الجفاف",
      "نحتاج إلى دعم المزارعين للتكيف مع موجات الجفاف: الري بالتنقيط والبذور المقاومة للجفاف."),
     ("بذور مقاومة للجفاف وري بالتنقيط للمزارعين",
      "تدريب المزارعين على التكيف مع الجفاف وتوفير البذور وأنظمة الري."),
     ("حافلات كهربائية للعاصمة",
      "شراء حافلات كهربائية ومحطات شحن وتدريب السائقين.")),
]  # fmt: skip


@pytest.mark.parametrize(("language", "party", "need", "offer", "other"), INFLECTED, ids=["ru", "ar"])
def test_russian_and_arabic_words_are_compared_by_their_stems(
    monkeypatch, language, party, need, offer, other
) -> None:
    """Two posts on one subject share few words exactly when their language inflects them (засуха, засухе,
    засухам; الجفاف, للجفاف): the word model reads each as its stem, so they share their words' stems."""
    records = [
        post(1, "need", party=party, language=language, title=need[0], description=need[1]),
        post(2, "offer", party="DEU", language=language, title=offer[0], description=offer[1]),
        post(3, "offer", party="FRA", language=language, title=other[0], description=other[1]),
        *(post(10 + i, "offer", title=t, description=d) for i, (t, d) in enumerate(TEXTS)),
    ]

    def word_similarities(model: TextModel) -> tuple[float, float]:
        words = model.lexical([engine.post_text(r) for r in records[:3]])[0]
        return (words[0] @ words[1].T).toarray()[0, 0], (words[0] @ words[2].T).toarray()[0, 0]

    model = engine.fit_model(records)
    assert not model.outdated
    stemmed, unrelated = word_similarities(model)
    assert stemmed > 0.35 and unrelated < 0.05
    results = MatchIndex.build(records, model).match(records[0], k=3, floor=0.0)
    assert results[0].offer_id == 2
    drought = {"ru": "засух", "ar": "جفاف"}[language]
    assert drought in results[0].explanation["top_terms"]
    # Read as written (the model before the stems), the same pair shared far fewer words.
    monkeypatch.setattr(engine, "preprocess_words", engine.preprocess_text)
    as_written, _ = word_similarities(engine.fit_model(records))
    assert as_written < stemmed - 0.15


def test_stems_touch_only_russian_and_arabic_words() -> None:
    """English, French, Spanish (the development set) and Chinese read as before the stems."""
    text = "Adaptación y résilience: early warnings, 山洪预警, Адаптации к засухам, والتكيف مع الجفاف"
    assert engine.preprocess_words(text) == engine.preprocess_text(text).replace(
        "адаптации к засухам", "адаптац к засух"
    ).replace("والتكيف مع الجفاف", "تكيف  جفاف")  # مع, "with", left out
    assert stemming.arabic_light_stem("للتكيف") == stemming.arabic_light_stem("التكيف") == "تكيف"
    assert stemming.arabic_light_stem("المجتمعات") == stemming.arabic_light_stem("مجتمع") == "مجتمع"
    # A word with letters of neither alphabet (Kazakh қ) stays whole, not cut around them and stemmed.
    assert engine.preprocess_words("Қазақстан") == "қазақстан"


def test_function_words_are_left_out_before_the_stems() -> None:
    """A stop word's stem is no stop word: stemmed first, тем ("the") took тема (the theme) with it, при ("at")
    took приём (reception), في ("in") took الوفيات (the deaths)."""
    model = engine.fit_model(
        [post(1, "need", title="Это является темой", description="которые также между; приём заявок")]
        + [post(2, "need", party="JOR", language="ar", title="الوفيات في المناطق", description="التي من على")]
        + [post(3 + i, "offer", title=t, description=d) for i, (t, d) in enumerate(TEXTS)]
    )
    vocabulary = set(model.vectorizer.vocabulary_)
    assert {"тем", "при", "وف", "مناطق"} <= vocabulary
    assert (
        not {"это", "является", "явля", "которые", "котор", "также", "между", "في", "التي", "من"} & vocabulary
    )


def test_sentences_end_at_the_punctuation_of_each_script() -> None:
    assert engine.split_sentences("第一句话在这里。第二句话在这里！第三句话？") == [
        "第一句话在这里。", "第二句话在这里！", "第三句话？"
    ]  # fmt: skip
    assert engine.split_sentences("هل يمكن إرسال رسائل؟ نعم يمكن ذلك؛ وهذا جيد.") == [
        "هل يمكن إرسال رسائل؟", "نعم يمكن ذلك؛", "وهذا جيد."
    ]  # fmt: skip
    assert engine.split_sentences("One here. Two here; three! 3.5 million") == [
        "One here.", "Two here;", "three!", "3.5 million"
    ]  # fmt: skip


@pytest.fixture(scope="module")
def crowded() -> tuple[TextModel, list[str], np.ndarray, list[str]]:
    """Forty English posts on eight subjects, written as posts are (a ministry, partners, training, a budget),
    and eight in Spanish: a corpus where unrelated posts share some words, as on the platform."""
    subjects = ["flood early warning and river gauges", "solar mini-grids for rural clinics",
                "mangrove restoration on the coast", "electric buses for the capital",
                "drip irrigation for smallholder farmers", "efficient cooling in public buildings",
                "forest fire detection by satellite", "landfill methane capture and composting"]  # fmt: skip
    openings = ["The Ministry seeks partners for", "Our agency offers support with", "A national programme on",
                "Technical assistance and training for", "Grants and concessional finance for"]  # fmt: skip
    texts = [f"{o} {s}. Training of staff, a budget plan and monitoring of results for {s}."
             for s in subjects for o in openings]  # fmt: skip
    languages = ["en"] * len(texts)
    spanish = ["alerta temprana de inundaciones", "minirredes solares para clínicas rurales",
               "restauración de manglares en la costa", "autobuses eléctricos para la capital",
               "riego por goteo para pequeños agricultores", "refrigeración eficiente en edificios públicos",
               "detección de incendios forestales por satélite", "captura de metano en vertederos"]  # fmt: skip
    texts += [
        f"El Ministerio busca socios para {s}. Formación del personal y seguimiento de {s}." for s in spanish
    ]
    languages += ["es"] * len(spanish)
    vectors = engine.encode_texts(texts)
    return TextModel.fit(texts, embeddings=vectors, languages=languages), texts, vectors, languages


def test_a_translated_pair_is_read_on_a_scale_of_its_own_kind(crowded) -> None:
    # One side translated: the plain scale moved by the typical (median) offset that averaging several posts'
    # words adds; both sides translated: a calibration of their own.
    model, texts, vectors, _languages = crowded
    for name in ("words", "esa"):
        lo, hi = model.calibration[name]
        t_lo, t_hi = model.calibration[f"{name}_translated"]
        assert t_hi - t_lo == pytest.approx(hi - lo) and t_lo > lo
        assert model.calibration[f"{name}_translated2"] != model.calibration[name]
    # The median pair of each kind reads alike: a post in another language gains nothing for being one. On the
    # plain scale, a translated post looked closer to every post than posts in one language do.
    feats = model.features(texts, vectors=vectors)
    t_words, t_esa = model.translate(feats.vectors)
    off = ~np.eye(len(texts), dtype=bool)

    def lexical(a_words, a_esa, b_words, b_esa, translated=0):
        return model.lexical_from((a_words @ b_words.T).toarray()[off], (a_esa @ b_esa.T).toarray()[off], 0.3,
                                  translated=translated)  # fmt: skip

    same = np.median(lexical(feats.words, feats.esa, feats.words, feats.esa))
    one = np.median(lexical(t_words, t_esa, feats.words, feats.esa, translated=1))
    two = np.median(lexical(t_words, t_esa, t_words, t_esa, translated=2))
    before = np.median(lexical(t_words, t_esa, feats.words, feats.esa))
    assert abs(one - same) < 0.05 < before - same
    assert abs(two - same) < 0.15


def test_a_model_stored_without_the_translated_scales_reads_every_pair_on_the_plain_one(crowded) -> None:
    model = crowded[0]
    state = pickle.loads(model.to_bytes())
    state["calibration"] = {k: v for k, v in state["calibration"].items() if "translated" not in k}
    old = TextModel.from_bytes(pickle.dumps(state))
    words, esa = np.array([0.05, 0.3]), np.array([0.2, 0.6])
    assert np.array_equal(
        old.lexical_from(words, esa, 0.3, translated=1), model.lexical_from(words, esa, 0.3)
    )


# -- fingerprints of what a stored match is computed from (a rebuild skips what it holds already) -------------


def _pairs(chunks) -> list[tuple[int, int]]:
    """Every pair the chunks give, returned or held, as a sorted list: a pair given twice counts twice."""
    return sorted([(r.need_id, r.offer_id) for c in chunks for r in c.results]
                  + [pair for c in chunks for pair in zip(c.unchanged[0].tolist(), c.unchanged[1].tolist(),
                                                          strict=True)])  # fmt: skip


def test_match_all_fingerprints_each_result_and_skips_what_the_caller_holds(index, model):
    salt = engine.fingerprint_salt(3, engine.DEFAULT_WEIGHTS, model)
    full = list(match_all(index, k=5, floor=0.0, chunk_size=2, salt=salt))
    results = [r for c in full for r in c.results]
    assert results and all(isinstance(r.fingerprint, int) for r in results)
    assert len({r.fingerprint for r in results}) == len(results)
    again = {(r.need_id, r.offer_id): r.fingerprint for c in match_all(index, k=5, floor=0.0, chunk_size=3,
                                                                       salt=salt) for r in c.results}  # fmt: skip
    assert again == {(r.need_id, r.offer_id): r.fingerprint for r in results}  # any chunking, same prints
    # Without a salt: no fingerprint (the worker's and the fanned-out rebuild's results).
    assert all(r.fingerprint is None for c in match_all(index, k=5, floor=0.0) for r in c.results)
    # Another salt (model version, weights...: `test_the_salt_covers_model_weights_code_and_storage`), other
    # fingerprints.
    salted = {r.fingerprint for c in match_all(index, k=5, floor=0.0, salt=salt + 1) for r in c.results}
    assert not salted & set(again.values())
    # The caller holds every other pair: those are neither explained nor returned, but reported as held.
    held = {(r.need_id, r.offer_id): r.fingerprint for r in results[::2]}

    def unchanged(need_ids, offer_ids, scores, prints):
        return np.array([held.get((n, o)) == p for n, o, p in zip(need_ids.tolist(), offer_ids.tolist(),
                                                                  prints.tolist(), strict=True)])  # fmt: skip

    skipping = list(match_all(index, k=5, floor=0.0, chunk_size=2, salt=salt, unchanged=unchanged))
    returned = {(r.need_id, r.offer_id): r for c in skipping for r in c.results}
    assert set(returned) == {(r.need_id, r.offer_id) for r in results} - set(held)
    assert _pairs(skipping) == _pairs(full) and len(set(_pairs(full))) == len(_pairs(full))
    for r in results:
        if (r.need_id, r.offer_id) in returned:
            assert returned[(r.need_id, r.offer_id)] == r  # scores, explanation and fingerprint alike


@pytest.mark.parametrize(
    "change",
    [
        {"description": "Hydrological monitoring stations and warning sirens for communities."},
        {"sectors": frozenset({"disaster_risk"})},
        {"support_types": frozenset({"technology"})},
        {"amount_usd": 5e5},
        {"language": "fr"},
        {"focus_areas": frozenset({"adaptation", "urban_resilience"})},
    ],
    ids=["text", "sectors", "support types", "amount", "language", "tag outside the taxonomy"],
)
@pytest.mark.parametrize("post_id", [1, 101], ids=["need", "offer"])
def test_a_posts_digest_covers_what_its_explanations_read(records, vectors, model, change, post_id):
    """A pair's fingerprint hashes the two posts' digests: each input of an explanation (shared tags, the terms
    of the texts, the languages, the amount covered) changes it, even where the scores might not move."""
    base = MatchIndex.build(records, model, embeddings=vectors)
    changed = [dataclasses.replace(r, **change) if r.id == post_id else r for r in records]
    other = MatchIndex.build(changed, model, embeddings=vectors)
    _assert_only_digest_of(post_id, base, other)


def test_a_translated_posts_digest_follows_its_pseudo_translation(records, vectors, model):
    """A post in another language than the pivot is explained by the words of its pseudo-translation (which
    follows its embedding's nearest pivot-language posts): another translation, the same text, another digest;
    and a side translated again computes its digests again."""
    spanish = next(r for r in records if r.language == "es")
    base = MatchIndex.build(records, model, embeddings=vectors)
    other = MatchIndex.build(records, model, embeddings=vectors)
    side = other.needs
    assert side.digests() is side.digests()  # once per index
    t = side.translated_row[side.row_of[spanish.id]]
    assert t >= 0
    words = side.translated_words.tolil()
    words[t, words.rows[t][0]] = 0.5  # another weight for one of its words
    side.translated_words = words.tocsr()
    side._digests = None
    _assert_only_digest_of(spanish.id, base, other)
    side.translate(model)  # translated again, as the CV of the neighbours does: digests computed afresh
    assert side._digests is None
    assert np.array_equal(side.digests(), base.needs.digests())


def _assert_only_digest_of(post_id: int, base: MatchIndex, other: MatchIndex) -> None:
    side = "needs" if post_id in base.needs.row_of else "offers"

    def by_id(side):  # rows are ordered by support types: compare post by post
        return dict(zip(side.ids.tolist(), side.digests().tolist(), strict=True))

    before, after = by_id(getattr(base, side)), by_id(getattr(other, side))
    assert before.pop(post_id) != after.pop(post_id)
    assert before == after
    unchanged_side = "offers" if side == "needs" else "needs"
    assert by_id(getattr(base, unchanged_side)) == by_id(getattr(other, unchanged_side))


def test_the_salt_covers_model_weights_code_and_storage(model, monkeypatch):
    """A rebuild skips a pair whose fingerprint it finds stored: anything besides the posts that shapes a row
    must change the salt, or an upgrade would leave every row as the old code wrote it."""
    weights = engine.DEFAULT_WEIGHTS
    base = engine.fingerprint_salt(3, weights, model)
    assert engine.fingerprint_salt(3, weights, model) == base
    others = {
        "version": engine.fingerprint_salt(4, weights, model),
        "weights": engine.fingerprint_salt(3, dataclasses.replace(weights, lexical=0.41), model),
        "storage": engine.fingerprint_salt(3, weights, model, b"rounded to 2 places"),
    }
    other_model = pickle.loads(pickle.dumps(model))
    other_model._terms = np.array([*model.terms()[:-1], "renamed"], dtype=object)
    other_model._digest = None
    others["vocabulary"] = engine.fingerprint_salt(3, weights, other_model)
    monkeypatch.setattr(engine, "TOP_TERMS", 2)
    others["a constant explanations read"] = engine.fingerprint_salt(3, weights, model)
    monkeypatch.undo()
    monkeypatch.setattr(engine, "_code_digest", lambda: b"another engine")
    others["code"] = engine.fingerprint_salt(3, weights, model)
    assert base not in others.values() and len(set(others.values())) == len(others), others


# -- language pairs ---------------------------------------------------------------------------------------------

GLACIER_NEED = (
    "Alerta temprana ante aluviones de lagunas glaciares",
    "Se requiere tecnología y capacitación para instalar sistemas de alerta temprana frente a aluviones por "
    "desborde de lagunas de origen glaciar: cámaras, sensores de nivel y sirenas en los poblados aguas abajo, y "
    "simulacros de evacuación con las comunidades.",
)
CITY_FLOODS_ES = (
    "Sistemas de alerta temprana ante inundaciones urbanas",
    "Asistencia técnica para diseñar sistemas de alerta temprana de inundaciones en ciudades: redes de "
    "pluviómetros, modelos hidrológicos y avisos por mensajes de texto y sirenas, con cursos para técnicos "
    "municipales y simulacros con la población.",
)
GLACIER_OFFER_EN = (
    "Monitoring and alarm systems for glacial lake outburst floods",
    "Expertise on glacial lakes in high mountains: inventories of glacial lakes, assessment of moraine dams and "
    "debris flows, early warning stations with cameras and water-level sensors linked to sirens in downstream "
    "villages, training and evacuation drills.",
)
SPANISH_OTHERS = [
    ("Minirredes solares para comunidades aisladas",
     "Financiamiento de minirredes solares con baterías para las comunidades rurales sin acceso a la red "
     "eléctrica y capacitación de técnicos locales."),
    ("Protección de los bosques con los pueblos indígenas",
     "Apoyo a los pueblos indígenas para la titulación de sus territorios y la vigilancia de los bosques frente a "
     "la deforestación."),
    ("Riego tecnificado para pequeños agricultores",
     "Sistemas de riego por goteo, semillas resistentes a la sequía y asistencia técnica para las comunidades "
     "campesinas."),
    ("Buses eléctricos para el transporte público",
     "Compra de buses eléctricos, estaciones de carga y formación de conductores y mecánicos para la ciudad."),
]  # fmt: skip


@pytest.fixture(scope="module")
def glacier_corpus() -> list[PostRecord]:
    """A Spanish need, two offers (a Spanish one on part of it, an English one on all of it), Spanish posts on
    other subjects, English posts, and two French ones (too few to be measured)."""
    return [
        post(1, "need", party="PER", language="es", title=GLACIER_NEED[0], description=GLACIER_NEED[1]),
        post(2, "offer", party="ESP", language="es", title=CITY_FLOODS_ES[0], description=CITY_FLOODS_ES[1]),
        post(3, "offer", party="CHE", language="en", title=GLACIER_OFFER_EN[0], description=GLACIER_OFFER_EN[1]),
        *(post(10 + i, "offer", party="MEX", language="es", title=t, description=d)
          for i, (t, d) in enumerate(SPANISH_OTHERS)),
        *(post(20 + i, "offer", title=t, description=d) for i, (t, d) in enumerate(TEXTS)),
        *(post(40 + i, "need", title=t, description=d) for i, (t, d) in enumerate(TEXTS)),
        post(60, "offer", party="FRA", language="fr", title="Forêts et peuples autochtones",
             description="Protection des forêts tropicales avec les communautés locales."),
        post(61, "offer", party="FRA", language="fr", title="Mini-réseaux solaires",
             description="Financement de mini-réseaux solaires pour les villages isolés."),
    ]  # fmt: skip


def test_two_posts_in_a_smaller_language_are_read_against_its_words_background(glacier_corpus) -> None:
    """Two Spanish posts in a mostly English corpus share words whose idf is high because they are Spanish (and
    ESA finds the same few Spanish concepts for both): a Spanish need on glacial lakes ranked a Spanish offer on
    city floods above the English offer on glacial lakes. The lexical component L of two posts in one language
    is read against that language's background, the offset by which its median lies above the pivot's
    (`TextModel.language_offsets`): (L - offset) / (1 - offset)."""
    model = engine.fit_model(glacier_corpus)
    need = glacier_corpus[0]

    def matched(model: TextModel, post: PostRecord = need) -> dict[int, MatchResult]:
        return {r.offer_id: r for r in MatchIndex.build(glacier_corpus, model).match(post, k=20, floor=0.0)}

    offsets = model.language_offsets
    assert set(offsets) == {"es"}  # English is the background; two French posts are too few to measure
    assert offsets["es"]["esa"] > 0.2 and offsets["es"]["words"] >= 0.0
    with_offsets = matched(model)
    before = copy.copy(model)
    before.language_offsets = {}
    without = matched(before)

    def ranked(results: dict[int, MatchResult]) -> list[int]:
        return sorted(results, key=lambda offer: (-results[offer].score, offer))

    assert ranked(with_offsets).index(3) < ranked(with_offsets).index(2)
    assert ranked(without).index(2) < ranked(without).index(3)
    # The Spanish pair's lexical component is read against its language's background, nothing else changes; the
    # pair across two languages (its words compared through English) and the English pairs keep their scores.
    offset = model.language_offset("es", engine.DEFAULT_WEIGHTS.esa_share)
    spanish, plain = with_offsets[2].components, without[2].components
    assert offset > 0.05
    assert spanish["lexical"] == pytest.approx(max(plain["lexical"] - offset, 0.0) / (1.0 - offset))
    assert spanish["semantic"] == plain["semantic"]
    assert with_offsets[3].components == without[3].components
    english = glacier_corpus[-8]
    in_english = {r.id for r in glacier_corpus if r.language == "en"}
    assert len(in_english & set(matched(model, english))) >= 5
    assert {o: r.score for o, r in matched(model, english).items() if o in in_english} == {
        o: r.score for o, r in matched(before, english).items() if o in in_english
    }


def test_the_first_stage_and_the_rescoring_agree_on_the_languages_offsets(glacier_corpus) -> None:
    """The three ways a pair is scored (the compiled block that selects candidates, the numpy block, the float64
    rescoring) take the same offsets from the same pairs, from either side."""
    model = engine.fit_model(glacier_corpus)
    assert model.language_offsets
    index = MatchIndex.build(glacier_corpus, model)
    weights = Weights()
    depth, floor = engine._first_stage(20, 0.0, weights)
    for kind, side, other in (("need", index.needs, index.offers), ("offer", index.offers, index.needs)):
        rows = np.arange(len(side.records))
        scores = index._block_scores(side, kind, rows, weights)
        q, o = np.nonzero(np.isfinite(scores))
        n_side, n_rows, o_side, o_rows = (side, q, other, o) if kind == "need" else (other, o, side, q)
        spanish = index.languages["es"]
        assert ((n_side.language_code[n_rows] == spanish) & (o_side.language_code[o_rows] == spanish)).any()
        comp = index._pair_scores(n_side, n_rows, o_side, o_rows, weights)
        np.testing.assert_allclose(comp["score"], scores[q, o], rtol=0, atol=1e-5)
        compiled, _ = index._block_candidates(
            side, kind, rows, weights, (0, len(other.records)), depth, floor
        )
        np.testing.assert_allclose(compiled[q, o], scores[q, o], rtol=0, atol=2e-6)


def test_language_offsets_are_stored_and_read_as_none_when_missing(glacier_corpus) -> None:
    model = engine.fit_model(glacier_corpus)
    words, esa = model.language_offsets["es"]["words"], model.language_offsets["es"]["esa"]
    assert model.language_offset("es", 0.3) == pytest.approx(0.7 * words + 0.3 * esa)
    assert model.language_offset("en", 0.3) == model.language_offset("fr", 0.3) == 0.0
    np.testing.assert_allclose(model.language_offset_table(["fr", "es", "en"], 0.3),
                               [0.0, model.language_offset("es", 0.3), 0.0], rtol=1e-6)  # fmt: skip
    assert TextModel.from_bytes(model.to_bytes()).language_offsets == model.language_offsets
    # A model stored before the offsets were measured: it reads every pair as before and is refitted.
    state = pickle.loads(model.to_bytes())
    del state["language_offsets"]
    old = TextModel.from_bytes(pickle.dumps(state))
    assert old.language_offsets is None and old.outdated and not model.outdated
    assert old.language_offset_table(["es", "en"], 0.3).size == 0
    plain = copy.copy(model)
    plain.language_offsets = {}
    need = glacier_corpus[0]
    assert MatchIndex.build(glacier_corpus, old).match(need, k=5, floor=0.0) == MatchIndex.build(
        glacier_corpus, plain
    ).match(need, k=5, floor=0.0)


def test_a_post_in_a_language_the_index_has_not_seen_is_matched_without_an_offset(glacier_corpus) -> None:
    """A post matched on its own adds its language to a copy of the index's codes: its pairs are read as the
    pivot's, and the indexed posts' pairs keep theirs."""
    model = engine.fit_model(glacier_corpus)
    index = MatchIndex.build(glacier_corpus, model)
    russian = post(90, "need", party="KAZ", language="ru", title="Раннее предупреждение о прорывах ледниковых озёр",
                   description="Нужны датчики уровня воды, камеры и сирены в сёлах ниже по течению.")  # fmt: skip
    results = index.match(russian, k=5, floor=0.0)
    assert results
    assert "ru" not in index.languages  # the index's own table did not grow
    indexed = MatchIndex.build([*glacier_corpus, russian], model)
    assert [r.offer_id for r in indexed.match(russian, k=5, floor=0.0)] == [r.offer_id for r in results]


def test_a_post_matched_on_its_own_takes_its_languages_offset_as_when_indexed(glacier_corpus) -> None:
    """A Spanish need edited since the index was built is matched on its own: its pairs with Spanish offers
    lose the same offset as when it is indexed."""
    model = engine.fit_model(glacier_corpus)
    plain = copy.copy(model)
    plain.language_offsets = {}
    edited = dataclasses.replace(glacier_corpus[0], description=glacier_corpus[0].description + " Urgente.")

    def alone(model: TextModel) -> dict[int, MatchResult]:
        return {r.offer_id: r for r in MatchIndex.build(glacier_corpus, model).match(edited, k=20, floor=0.0)}

    indexed = MatchIndex.build([edited, *glacier_corpus[1:]], model).match(edited, k=20, floor=0.0)
    # The same up to the embedding of one text against a batch (float32 sums in another order).
    assert [(r.offer_id, r.score) for r in alone(model).values()] == [
        (r.offer_id, pytest.approx(r.score, abs=1e-6)) for r in indexed
    ]
    offset = model.language_offset("es", engine.DEFAULT_WEIGHTS.esa_share)
    assert alone(model)[2].components["lexical"] == pytest.approx(
        max(alone(plain)[2].components["lexical"] - offset, 0.0) / (1.0 - offset)
    )
    assert alone(model)[3].components == alone(plain)[3].components
