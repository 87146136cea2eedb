"""Ranking quality of the matching engine on the development set, next to simple baselines.

    python tests/benchmarks/engine_dev_eval.py [--data DIR] [--cv]

Fits the model on all posts and distractors, ranks the offers of each need (hard rules applied) and prints
nDCG@10, P@5, MRR and coverage, overall and for cross-lingual needs: the first stage (the blend over the whole
offer side) and the engine as the platform calls it (`index.match`, k=20, with the sentence-alignment rerank).
`--cv` also reports a 5-fold cross-validated choice of the weights, blend and rerank together (chosen on 4/5 of
the needs, scored on the rest), the same over a finer grid with the folds drawn five times, and the choice of
the pseudo-translation's neighbours.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from apps.matching import engine  # noqa: E402
from apps.matching.evaluation import evaluate, ndcg_at_k  # noqa: E402

# The Parties as the platform loads them (the repository's own copy of the reference list).
PARTIES_CSV = REPO / "apps" / "parties" / "data" / "parties.csv"
DEV_SET_FILES = ("posts.jsonl", "distractors.jsonl", "qrels.tsv")


def require_dev_set(data: Path) -> None:
    """Exit with a message (not a traceback) when the labelled development set is not in `data`: it ships
    beside the repository (../shared/matching-dev), not in it."""
    missing = [name for name in DEV_SET_FILES if not (data / name).is_file()]
    if missing:
        sys.exit(
            f"The matching development set is not in {data} (missing {', '.join(missing)}): it lies beside the "
            "repository, in ../shared/matching-dev; give its folder with --data DIR."
        )


def load(data: Path) -> tuple[list[engine.PostRecord], dict[str, int], dict[str, dict[str, int]]]:
    groups = engine.party_groups_from_csv(str(PARTIES_CSV))
    raw = [
        json.loads(line)
        for name in ("posts.jsonl", "distractors.jsonl")
        for line in (data / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    ext_of = {i: p["external_id"] for i, p in enumerate(raw)}
    records = [engine.post_record_from_import(p, id=i, party_groups=groups) for i, p in enumerate(raw)]
    qrels: dict[str, dict[str, int]] = {}
    with open(data / "qrels.tsv") as f:
        next(f)
        for line in f:
            need, offer, grade = line.strip().split("\t")
            qrels.setdefault(need, {})[offer] = int(grade)
    return records, ext_of, qrels


def indexed(records: Sequence[engine.PostRecord]) -> tuple[engine.MatchIndex, np.ndarray, np.ndarray]:
    """`records` embedded, fitted and indexed as the platform does: the index, its needs' rows, and which
    (need, offer) pairs pass the hard rules."""
    vectors = engine.embed_posts(records)
    model = engine.fit_model(records, embeddings=vectors)
    index = engine.MatchIndex.build(records, model, embeddings=vectors)
    rows = np.arange(len(index.needs.records))
    ok = np.isfinite(index._block_scores(index.needs, engine.NEED, rows, engine.DEFAULT_WEIGHTS))
    return index, rows, ok


def rank(scores: np.ndarray, ok: np.ndarray, needs, offers, ext_of) -> dict[str, list[str]]:
    ranked = {}
    for i, n in enumerate(needs):
        s = np.where(ok[i], scores[i], -np.inf)
        order = np.lexsort((np.array([o.id for o in offers]), -s))
        ranked[ext_of[n.id]] = [ext_of[offers[j].id] for j in order if ok[i, j]]
    return ranked


def report(name: str, ranked, qrels, cross) -> tuple[float, float]:
    a, b = evaluate(ranked, qrels), evaluate(ranked, qrels, needs=cross)
    print(f"{name:28s} nDCG@10 {a['ndcg']:.3f}  P@5 {a['precision']:.3f}  MRR {a['mrr']:.3f}  "
          f"cov {a['coverage']:.2f}  | cross-lingual ({b['needs']}) nDCG@10 {b['ndcg']:.3f}  "
          f"P@5 {b['precision']:.3f}  MRR {b['mrr']:.3f}  cov {b['coverage']:.2f}")  # fmt: skip
    return a["ndcg"], b["ndcg"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "matching-dev")
    parser.add_argument("--cv", action="store_true", help="also cross-validate the blend weights")
    args = parser.parse_args()
    require_dev_set(args.data)

    records, ext_of, qrels = load(args.data)
    t0 = time.perf_counter()
    vectors = engine.embed_posts(records)
    t1 = time.perf_counter()
    model = engine.fit_model(records, embeddings=vectors)
    index = engine.MatchIndex.build(records, model, embeddings=vectors)
    t2 = time.perf_counter()
    print(f"{len(records)} posts: embedding {t1 - t0:.1f}s, fit + index {t2 - t1:.1f}s")

    needs, offers = index.needs.records, index.offers.records
    rows = np.arange(len(needs))
    ok = np.isfinite(index._block_scores(index.needs, engine.NEED, rows, engine.DEFAULT_WEIGHTS))
    cross = [ext_of[n.id] for n in needs if n.language != "en"]

    def blend(weights: engine.Weights) -> np.ndarray:
        return index._block_scores(index.needs, engine.NEED, rows, weights)

    # Components through the engine's own scoring, weights isolating one at a time.
    nf, of = index.needs.feats, index.offers.feats
    words = (nf.words @ of.words.T).toarray()
    semantic = nf.vectors @ of.vectors.T
    tags_only = blend(engine.Weights(lexical=0, semantic=0, structured=1))
    rng = np.random.default_rng(0)

    print()
    report("random (seed 0)", rank(rng.random(ok.shape), ok, needs, offers, ext_of), qrels, cross)
    report("TF-IDF only", rank(words, ok, needs, offers, ext_of), qrels, cross)
    report("embeddings only (USE)", rank(semantic, ok, needs, offers, ext_of), qrels, cross)
    report("tags only", rank(tags_only, ok, needs, offers, ext_of), qrels, cross)
    report("lexical (TF-IDF + ESA)", rank(blend(engine.Weights(lexical=1, semantic=0, structured=0,
                                                               cross_lingual_lexical=1)),
                                          ok, needs, offers, ext_of), qrels, cross)  # fmt: skip
    report("engine first stage (blend)", rank(blend(engine.DEFAULT_WEIGHTS), ok, needs, offers, ext_of), qrels,
           cross)  # fmt: skip
    no_rerank = engine.Weights(alignment=0.0)
    report("blend, old default Weights", rank(blend(engine.Weights(lexical=0.3, semantic=0.6, esa_share=0.5)),
                                              ok, needs, offers, ext_of), qrels, cross)  # fmt: skip

    t3 = time.perf_counter()
    ranked = matched(index, rows, engine.DEFAULT_WEIGHTS, ext_of)
    t4 = time.perf_counter()
    report("engine, index.match k=20", ranked, qrels, cross)
    report("  without the rerank", matched(index, rows, no_rerank, ext_of), qrels, cross)
    print(f"  (rerank, first call: sentence embedding of the shortlisted posts, {t4 - t3:.1f}s)")
    # match_all, the rebuild path, must rank exactly as index.match.
    by_need: dict[str, list[str]] = {}
    for chunk in engine.match_all(index, k=20, floor=0.0):
        if chunk.kind == engine.NEED:
            for r in chunk.results:
                by_need.setdefault(ext_of[r.need_id], []).append(ext_of[r.offer_id])
    assert by_need == {n: o for n, o in ranked.items() if o}, "match_all and index.match disagree"

    if args.cv:
        cross_validate(index, rows, needs, ext_of, qrels, cross)


def matched(
    index: engine.MatchIndex, rows: np.ndarray, weights: engine.Weights, ext_of
) -> dict[str, list[str]]:
    """Each need's top 20 offers through `index.match_rows`, the path the platform uses."""
    results = index.match_rows(engine.NEED, rows, k=20, floor=0.0, weights=weights)
    return {ext_of[index.needs.records[i].id]: [ext_of[r.offer_id] for r in res]
            for i, res in zip(rows.tolist(), results, strict=True)}  # fmt: skip


def cross_validate(index, rows, needs, ext_of, qrels, cross) -> None:
    grid = [
        engine.Weights(
            lexical=lx,
            semantic=sm,
            structured=st,
            cross_lingual_lexical=xl,
            esa_share=es,
            alignment=al,
            translated_lexical=tl,
        )
        for lx, sm, st, xl, es, al, tl in itertools.product(
            [0.1, 0.2, 0.3, 0.4],
            [0.5, 0.6, 0.7],
            [0.0, 0.1, 0.2],
            [0.0, 0.2],
            [0.3, 0.6, 0.9],
            [0.0, 0.3, 0.6],
            [0.0, 0.5, 1.0],
        )
    ]
    grid += [dataclasses.replace(engine.DEFAULT_WEIGHTS, alignment=al) for al in (0.0, 0.3, 0.6)]
    # the old default, before the rerank and the pseudo-translation
    grid.append(
        engine.Weights(lexical=0.3, semantic=0.6, esa_share=0.5, alignment=0.0, translated_lexical=0.0)
    )

    def per_need(weights: engine.Weights) -> list[float]:
        ranked = matched(index, rows, weights, ext_of)
        return [ndcg_at_k(ranked.get(ext_of[n.id], []), qrels.get(ext_of[n.id], {}), 10) for n in needs]

    def held_out(scores: np.ndarray, names: Sequence[object], seed: int = 0, show: bool = True) -> np.ndarray:
        """Each need's nDCG under the choice (row of `scores`) that is best on the other folds."""
        folds = np.random.default_rng(seed).permutation(np.arange(len(needs)) % 5)
        held = np.zeros(len(needs))
        for f in range(5):
            train = folds != f
            best = int(scores[:, train].mean(axis=1).argmax())
            held[~train] = scores[best, ~train]
            if show:
                print(f"  fold {f}: chose {names[best]}")
        return held

    per_need_arr = np.array([per_need(w) for w in grid])
    held = held_out(per_need_arr, grid)
    is_cross = np.array([ext_of[n.id] in cross for n in needs])
    for label, w in (("default", engine.DEFAULT_WEIGHTS), ("old default", grid[-1])):
        i = grid.index(w)
        print(f"  {label} Weights in-sample {per_need_arr[i].mean():.3f} "
              f"(cross-lingual {per_need_arr[i, is_cross].mean():.3f})")  # fmt: skip
    best_all = int(per_need_arr.mean(axis=1).argmax())
    print(f"5-fold CV nDCG@10 {held.mean():.3f} (cross-lingual {held[is_cross].mean():.3f}); "
          f"in-sample best {per_need_arr[best_all].mean():.3f} with {grid[best_all]}")  # fmt: skip

    # The same choice over a finer grid around the defaults, its folds drawn five times: with more choices, more
    # of them fit 4/5 of 30 needs by chance, and the held-out figure says what the procedure is worth.
    fine = [
        dataclasses.replace(
            engine.DEFAULT_WEIGHTS, lexical=lx, semantic=sm, structured=st, esa_share=es, alignment=al
        )
        for lx, sm, st, es, al in itertools.product(
            [0.2, 0.3, 0.4, 0.5], [0.4, 0.5, 0.6], [0.0, 0.05, 0.1, 0.15, 0.2], [0.3, 0.6], [0.2, 0.3, 0.4]
        )
    ]
    fine_arr = np.array([per_need(w) for w in fine])
    repeats = [held_out(fine_arr, fine, seed=seed, show=False) for seed in range(5)]
    overall = [h.mean() for h in repeats]
    crossed = [h[is_cross].mean() for h in repeats]
    print(f"5-fold CV over a finer grid ({len(fine)} weightings), folds drawn 5 times: nDCG@10 "
          f"{np.mean(overall):.3f} ({min(overall):.3f}-{max(overall):.3f}), cross-lingual {np.mean(crossed):.3f} "
          f"({min(crossed):.3f}-{max(crossed):.3f}); in-sample best {fine_arr.mean(axis=1).max():.3f}")  # fmt: skip

    # The pseudo-translation's neighbours (a module constant, not a weight): the same folds.
    saved, choices, per_k = engine.TRANSLATION_NEIGHBOURS, (3, 5, 8, 10, 15, 20), []
    try:
        for k in choices:
            engine.TRANSLATION_NEIGHBOURS = k
            for side in (index.needs, index.offers):
                side.translate(index.model)
            per_k.append(per_need(engine.DEFAULT_WEIGHTS))
    finally:
        engine.TRANSLATION_NEIGHBOURS = saved
        for side in (index.needs, index.offers):
            side.translate(index.model)
    per_k_arr = np.array(per_k)
    held = held_out(per_k_arr, [f"TRANSLATION_NEIGHBOURS = {k}" for k in choices])
    print("  in-sample: " + ", ".join(f"{k}: {a.mean():.3f} ({a[is_cross].mean():.3f})"
                                      for k, a in zip(choices, per_k_arr, strict=True)))  # fmt: skip
    print(
        f"5-fold CV of the neighbours: nDCG@10 {held.mean():.3f} (cross-lingual {held[is_cross].mean():.3f})"
    )


if __name__ == "__main__":
    main()
