"""Ranking metrics for the matching engine: nDCG@k, P@k, MRR and coverage over graded relevance judgements.

`ranked` maps a need id to its offers, best first; `qrels` maps a need id to {offer id: grade} with grades
1 (relevant) and 2 (highly relevant). Needs without judgements are skipped; needs with judgements but no ranking
count as zero. No Django import: the benchmark scripts use it too.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

Ranked = Mapping[Hashable, Sequence[Hashable]]
Qrels = Mapping[Hashable, Mapping[Hashable, int]]


def dcg(grades: Sequence[float]) -> float:
    """Gain is the grade itself (linear), discounted by log2(rank + 1)."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(grades))


def ndcg_at_k(ranking: Sequence[Hashable], judged: Mapping[Hashable, int], k: int = 10) -> float:
    ideal = dcg(sorted((g for g in judged.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([judged.get(o, 0) for o in ranking[:k]]) / ideal


def precision_at_k(ranking: Sequence[Hashable], judged: Mapping[Hashable, int], k: int = 5) -> float:
    # Divide by k even when fewer than k offers were ranked: an empty slot is not a relevant offer.
    return sum(1 for o in ranking[:k] if judged.get(o, 0) > 0) / k


def reciprocal_rank(ranking: Sequence[Hashable], judged: Mapping[Hashable, int]) -> float:
    for i, o in enumerate(ranking):
        if judged.get(o, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def has_relevant_in_top(ranking: Sequence[Hashable], judged: Mapping[Hashable, int], k: int = 10) -> bool:
    return any(judged.get(o, 0) > 0 for o in ranking[:k])


def evaluate(
    ranked: Ranked,
    qrels: Qrels,
    *,
    k_ndcg: int = 10,
    k_precision: int = 5,
    k_coverage: int = 10,
    needs: Sequence[Hashable] | None = None,
) -> dict[str, float]:
    """Mean nDCG@k, P@k and MRR, and coverage (share of needs with a relevant offer in their top k_coverage).

    `needs` restricts the evaluation to a subset (e.g. cross-lingual needs); by default every judged need.
    """
    need_ids = [
        n for n in (needs if needs is not None else qrels) if any(g > 0 for g in qrels.get(n, {}).values())
    ]
    if not need_ids:
        return {"ndcg": 0.0, "precision": 0.0, "mrr": 0.0, "coverage": 0.0, "needs": 0}
    totals = {"ndcg": 0.0, "precision": 0.0, "mrr": 0.0, "coverage": 0.0}
    for n in need_ids:
        ranking, judged = list(ranked.get(n, ())), qrels[n]
        totals["ndcg"] += ndcg_at_k(ranking, judged, k_ndcg)
        totals["precision"] += precision_at_k(ranking, judged, k_precision)
        totals["mrr"] += reciprocal_rank(ranking, judged)
        totals["coverage"] += has_relevant_in_top(ranking, judged, k_coverage)
    result: dict[str, float] = {key: value / len(need_ids) for key, value in totals.items()}
    result["needs"] = len(need_ids)
    return result
