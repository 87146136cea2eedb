"""Speed and memory of the matching engine on synthetic corpora (engine side only, no database).

    python tests/benchmarks/engine_speed.py [--sizes 10000,50000,100000] [--quick] [--processes 2]

For each size (half needs, half offers, fixed seed): embedding time, fit time, index build, match_rows of a
500-post chunk per side (one Celery rebuild chunk), full match_all, incremental match p50/p95 with the model warm
(an indexed post, and a post outside the index with its embedding given), peak memory; and a baseline in the same
run: scikit-learn NearestNeighbors(metric="cosine", algorithm="brute") over the same TF-IDF vectors for the same
queries. `--quick` gives all but a 1000-post sample random unit vectors instead of USE embeddings (and random sentence
vectors for the rerank, their embedding time projected from a 200-post sample). Sentence vectors are given to
the index as the platform's cache would: the rebuild times are "embeddings cached".
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from apps.matching import engine  # noqa: E402

SUBJECTS = {
    "water": "rainwater harvesting, groundwater recharge, drip irrigation, leakage reduction, desalination, "
    "water utility efficiency, wastewater reuse, watershed management",
    "disaster_risk": "flood early warning, cyclone forecasting, drought monitoring, impact-based forecasts, "
    "evacuation planning, hazard mapping, anticipatory action, last-mile alerts",
    "forests_land": "community forest monitoring, REDD+ readiness, agroforestry, landscape restoration, "
    "fire management, land tenure, deforestation-free supply chains, national forest inventory",
    "renewable_energy": "solar mini-grids, rooftop photovoltaics, wind resource assessment, battery storage, "
    "geothermal exploration, green hydrogen, grid integration, hybrid diesel replacement",
    "energy_efficiency": "energy audits, efficient motors, building codes, appliance standards, district heating, "
    "efficient cooling, industrial waste heat recovery, street lighting retrofits",
    "transport": "electric buses, bus rapid transit, e-motorcycles, charging infrastructure, cycling lanes, "
    "freight logistics, vehicle efficiency standards, urban mobility plans",
    "agriculture_food": "climate-smart agriculture, drought-tolerant seeds, soil health, livestock methane, "
    "crop insurance, post-harvest losses, extension services, salt-tolerant rice",
    "oceans_coasts": "mangrove restoration, coral reef protection, coastal erosion, blue carbon inventories, "
    "fisheries management, seagrass mapping, shoreline protection, marine protected areas",
    "health": "heat-health action plans, vector-borne disease surveillance, climate-resilient clinics, "
    "air quality monitoring, health vulnerability assessment, early warning for epidemics",
    "waste": "landfill methane capture, composting, recycling markets, waste collection, biogas digesters, "
    "circular economy, plastic waste reduction, wastewater sludge treatment",
    "policy_governance": "transparency framework reporting, greenhouse gas inventories, NDC implementation plans, "
    "climate budgeting, MRV systems, carbon pricing studies, adaptation planning, readiness",
    "just_transition": "reskilling coal workers, social protection, mine land reuse, vocational training, "
    "community solar parks, territorial transition plans, social dialogue with unions",
}
ACTORS = ["The Ministry of Environment", "The national energy agency", "Municipal governments",
          "The water utility", "Farmer cooperatives", "The meteorological service", "Coastal communities",
          "The Ministry of Finance", "Indigenous Peoples' organisations", "Small and medium enterprises"]  # fmt: skip
VERBS = ["seeks support to", "requests technical assistance to", "needs finance to", "wants to",
         "is looking for partners to", "plans to"]  # fmt: skip
GOALS = ["design and pilot", "scale up", "build capacity for", "prepare a pipeline of projects on",
         "assess options for", "set up a national programme on", "train staff in", "monitor and evaluate"]  # fmt: skip
OFFER_OPENERS = ["offers technical cooperation on", "provides grants for", "offers concessional loans for",
                 "shares expertise and training on", "supports partner countries with"]  # fmt: skip
PROVIDERS = ["GCF", "AFDB", "ADB", "IDB", "UNDP", "GIZ", "JICA", "CTCN", "IRENA", "WB"]
PLACES = ["in rural districts", "in the capital region", "on outer islands", "in river basins",
          "in informal settlements", "in coastal provinces", "in arid regions", "across the country"]  # fmt: skip
OUTPUTS = ["Outputs include trained staff, a monitoring system and an investment plan.",
           "Results will be reported under the enhanced transparency framework.",
           "Women and youth groups take part in the design and the evaluation.",
           "The work builds on a feasibility study finished last year.",
           "A knowledge platform will share lessons with neighbouring countries.",
           "Equipment is procured locally where possible and maintained by local technicians."]  # fmt: skip
LANGS = ["en"] * 8 + ["es", "fr"]


def synthetic_posts(n: int, seed: int, party_groups: dict[str, frozenset[str]]) -> list[engine.PostRecord]:
    """n posts, half needs and half offers, ~600-character descriptions built from the domain lists above."""
    rng = np.random.default_rng(seed)
    parties = sorted(party_groups)
    sectors = list(SUBJECTS)
    groups = sorted({g for gs in party_groups.values() for g in gs})
    out = []
    for i in range(n):
        kind = engine.NEED if i % 2 == 0 else engine.OFFER
        main = sectors[rng.integers(len(sectors))]
        other = sectors[rng.integers(len(sectors))]
        topics = [t.strip() for t in SUBJECTS[main].split(",")]
        picked = rng.choice(topics, size=3, replace=False)
        extra = rng.choice([t.strip() for t in SUBJECTS[other].split(",")])
        place = PLACES[rng.integers(len(PLACES))]
        if kind == engine.NEED:
            title = f"{picked[0].capitalize()} and {picked[1]} {place}"
            lead = f"{ACTORS[rng.integers(len(ACTORS))]} {VERBS[rng.integers(len(VERBS))]} " \
                   f"{GOALS[rng.integers(len(GOALS))]} {picked[0]} {place}."  # fmt: skip
        else:
            title = f"{picked[0].capitalize()}: {GOALS[rng.integers(len(GOALS))]} {picked[1]}"
            lead = f"{PROVIDERS[rng.integers(len(PROVIDERS))]} {OFFER_OPENERS[rng.integers(len(OFFER_OPENERS))]} " \
                   f"{picked[0]} and {picked[1]}."  # fmt: skip
        body = [lead,
                f"The programme covers {picked[1]}, {picked[2]} and links with {extra}.",
                f"Activities include {GOALS[rng.integers(len(GOALS))]} {picked[2]} {place}, with local partners.",
                *rng.choice(OUTPUTS, size=3, replace=False)]  # fmt: skip
        party = parties[rng.integers(len(parties))] if kind == engine.NEED or rng.random() < 0.6 else None
        data = {
            "kind": kind,
            "party": party,
            "provider": None if party else PROVIDERS[rng.integers(len(PROVIDERS))],
            "title": title[:200],
            "description": " ".join(body),
            "language": LANGS[rng.integers(len(LANGS))],
            "support_types": list(rng.choice(engine.SUPPORT_TYPES, size=rng.integers(1, 3), replace=False)),
            "focus_areas": list(rng.choice(engine.FOCUS_AREAS, size=rng.integers(1, 3), replace=False)),
            "sectors": [main, other] if main != other else [main],
            "amount_usd": float(rng.integers(1, 200) * 1e5) if rng.random() < 0.6 else None,
            "eligible": list(rng.choice(groups, size=rng.integers(1, 3), replace=False))
            if kind == engine.OFFER and rng.random() < 0.4
            else [],
        }
        out.append(engine.post_record_from_import(data, id=i + 1, party_groups=party_groups))
    return out


def _embed_chunk(records: list[engine.PostRecord]) -> np.ndarray:
    engine.configure_encoder(threads=1)
    return engine.embed_posts(records)


def embed_parallel(records: list[engine.PostRecord], processes: int) -> np.ndarray:
    if processes <= 1:
        return engine.embed_posts(records)
    size = 500
    chunks = [records[i : i + size] for i in range(0, len(records), size)]
    with ProcessPoolExecutor(processes) as pool:
        return np.vstack(list(pool.map(_embed_chunk, chunks)))


class _MemoryStore(engine.SentenceStore):
    """The platform's sentence cache (the database there): the index asks it for the sentence vectors of the
    posts it shortlists and keeps at most SENTENCE_ROWS_KEPT of them per side, as a worker does."""

    def __init__(self, vectors: dict[int, np.ndarray]) -> None:
        self.vectors = vectors

    def get(self, records):
        return {r.id: self.vectors[abs(r.id)] for r in records if abs(r.id) in self.vectors}


class _SyntheticStore(engine.SentenceStore):
    """--quick: random unit sentence vectors, the same for a post at every call, made when asked for (so that
    the benchmark's own copy of a cache does not count in its peak memory)."""

    def get(self, records):
        out = {}
        for r in records:
            v = np.random.default_rng(abs(r.id)).standard_normal(
                (len(engine.post_sentences(r)), engine.EMBED_DIM)
            )
            out[r.id] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float16)
        return out


def _sentences_chunk(records: list[engine.PostRecord]) -> list[np.ndarray]:
    engine.configure_encoder(threads=1)
    return engine.embed_post_sentences(records)


def embed_sentences_parallel(records: list[engine.PostRecord], processes: int) -> list[np.ndarray]:
    if processes <= 1:
        return engine.embed_post_sentences(records)
    chunks = [records[i : i + 500] for i in range(0, len(records), 500)]
    with ProcessPoolExecutor(processes) as pool:
        return [v for part in pool.map(_sentences_chunk, chunks) for v in part]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int, args: argparse.Namespace, party_groups: dict[str, frozenset[str]]) -> None:
    print(f"\n=== {n:,} posts ({n // 2:,} needs, {n - n // 2:,} offers) ===", flush=True)
    records = synthetic_posts(n, seed=42, party_groups=party_groups)
    mean_len = np.mean([len(r.description) for r in records])
    print(f"mean description length {mean_len:.0f} chars")

    t = time.perf_counter()
    if args.quick:
        # Embedding speed is measured on a sample; the rest get random unit vectors (same shapes, same costs).
        sample = records[: min(1000, n)]
        vec_sample = embed_parallel(sample, args.processes)
        rate = len(sample) / (time.perf_counter() - t)
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((n, engine.EMBED_DIM)).astype(np.float32)
        vectors[: len(sample)] = vec_sample
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        embed_s = n / rate
        print(f"embedding: {rate:.0f} posts/s on a {len(sample)}-post sample -> {embed_s:.0f}s projected")
    else:
        vectors = embed_parallel(records, args.processes)
        embed_s = time.perf_counter() - t
        print(f"embedding: {embed_s:.1f}s ({n / embed_s:.0f} posts/s, {args.processes} process(es))")

    # The rerank's sentence vectors (embedded once per post and cached by the platform).
    if args.quick:
        # The posts were embedded in other processes: this one's encoder is still to load and has seen no word
        # piece. A rebuild embeds 100k posts' sentences on a warm one, as the projection must (cold, the 200-post
        # sample took 3.4 ms a post against 0.9 warm).
        engine.embed_post_sentences(records[-50:])
    t = time.perf_counter()
    if args.quick:
        sample = records[: min(200, n)]
        engine._sentence_cache.clear()  # an earlier size's run embedded the same first posts
        engine.embed_post_sentences(sample)
        sentence_s = (time.perf_counter() - t) / len(sample) * n
        store: engine.SentenceStore = _SyntheticStore()
        print(f"sentence vectors: {len(sample) / (sentence_s / n * len(sample)):.0f} posts/s on a "
              f"{len(sample)}-post sample -> {sentence_s:.0f}s projected")  # fmt: skip
    else:
        store = _MemoryStore(dict(zip((r.id for r in records), embed_sentences_parallel(records, args.processes),
                                      strict=True)))  # fmt: skip
        sentence_s = time.perf_counter() - t
        print(f"sentence vectors: {sentence_s:.1f}s ({n / sentence_s:.0f} posts/s)")
    embed_s += sentence_s

    t = time.perf_counter()
    model = engine.fit_model(records, embeddings=vectors)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    index = engine.MatchIndex.build(records, model, embeddings=vectors, sentence_store=store)
    build_s = time.perf_counter() - t
    print(
        f"fit {fit_s:.1f}s, index build {build_s:.1f}s, model {len(model.to_bytes()) / 1e6:.1f} MB serialised"
    )

    # One Celery rebuild chunk: index.match_rows of 500 posts of one side against the whole other side.
    for kind, side in ((engine.NEED, index.needs), (engine.OFFER, index.offers)):
        rows = np.arange(min(500, len(side.records)))
        times = []
        for _ in range(3):
            t = time.perf_counter()
            found = index.match_rows(kind, rows, k=20, floor=engine.DEFAULT_FLOOR)
            times.append(time.perf_counter() - t)
        print(f"match_rows of {len(rows)} {kind}s: median {np.median(times):.2f}s of 3 "
              f"({sum(map(len, found)):,} matches)")  # fmt: skip

    if args.match_all:
        t = time.perf_counter()
        stored = 0
        for chunk in engine.match_all(index, k=20, floor=engine.DEFAULT_FLOOR, chunk_size=500,
                                      threads=args.threads):  # fmt: skip
            stored += len(chunk.results)
        all_s = time.perf_counter() - t
        print(f"match_all ({args.threads} thread(s)): {all_s:.1f}s, {stored:,} matches above floor "
              f"{engine.DEFAULT_FLOOR}; peak RSS so far {peak_rss_mb():,.0f} MB")  # fmt: skip
        print(f"full rebuild (embed + fit + build + match_all): {embed_s + fit_s + build_s + all_s:.0f}s")

    rng = np.random.default_rng(1)
    queries = [
        index.needs.records[i] for i in rng.choice(len(index.needs.records), args.queries, replace=False)
    ]
    index.match(queries[0])  # warm
    times = []
    for q in queries:
        t = time.perf_counter()
        index.match(q, k=20)
        times.append((time.perf_counter() - t) * 1000)
    p50, p95 = np.percentile(times, [50, 95])
    print(
        f"incremental match (need vs {len(index.offers.records):,} offers): p50 {p50:.1f} ms, p95 {p95:.1f} ms"
    )
    # A post not in the index (a new or edited one), its embedding given as the pipeline does.
    outside = []
    for q in queries:
        new_post = dataclasses.replace(q, id=-q.id)  # the store answers for it as for q
        t = time.perf_counter()
        index.match(new_post, k=20, embedding=vectors[q.id - 1])
        outside.append((time.perf_counter() - t) * 1000)
    o50, o95 = np.percentile(outside, [50, 95])
    print(
        f"incremental match of a post outside the index (embedding given): p50 {o50:.1f} ms, p95 {o95:.1f} ms"
    )

    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(metric="cosine", algorithm="brute").fit(index.offers.feats.words)
    rows = [index.needs.row_of[q.id] for q in queries]
    base = []
    for r in rows:
        t = time.perf_counter()
        nn.kneighbors(index.needs.feats.words[r], n_neighbors=20)
        base.append((time.perf_counter() - t) * 1000)
    b50, b95 = np.percentile(base, [50, 95])
    print(f"baseline NearestNeighbors(cosine, brute) on TF-IDF: p50 {b50:.1f} ms, p95 {b95:.1f} ms "
          f"-> engine/baseline p50 {p50 / b50:.2f}x, p95 {p95 / b95:.2f}x")  # fmt: skip
    print(f"peak RSS so far {peak_rss_mb():,.0f} MB")
    del index, model, vectors, records
    gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--quick", action="store_true", help="embed a sample only (projected time)")
    parser.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--threads", type=int, default=2, help="match_all threads (as rebuild_matches --sync)"
    )
    parser.add_argument("--no-match-all", dest="match_all", action="store_false",
                        help="skip the full match_all (minutes at 100k posts)")  # fmt: skip
    args = parser.parse_args()
    party_groups = engine.party_groups_from_csv(str(REPO / "apps" / "parties" / "data" / "parties.csv"))
    for n in [int(s) for s in args.sizes.split(",")]:
        run(n, args, party_groups)


if __name__ == "__main__":
    main()
