"""The languages' word backgrounds (`TextModel.language_offsets`) where good offers share the need's language.

    python tests/benchmarks/engine_language_background_eval.py [--data DIR] [--translations DIR] [--draws N]

The development set's Spanish and French offers are mostly near misses built for its Spanish and French needs,
whose good offers are mostly in English: any penalty on two posts in one language helps there. Here a random
quarter of the English posts (needs, offers and distractors alike) is replaced by its translation into Arabic,
Chinese or Russian (`data/matching-dev-translations/`), `--draws` times per language with fixed seeds, so that
the translated needs have good offers in their own language as well as in English. Each draw is fitted once and
ranked twice through `index.match_rows` (k=20, with the rerank): with the model's offsets, and with none (as
before they were measured), and prints nDCG@10 overall and for the needs in the translated language, with the
offsets the model measured (the lexical offset of two posts in each measured language).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from apps.matching import engine  # noqa: E402
from apps.matching.evaluation import evaluate  # noqa: E402
from tests.benchmarks.engine_dev_eval import load, matched, require_dev_set  # noqa: E402
from tests.benchmarks.engine_languages_eval import LANGUAGES, TRANSLATIONS, read_jsonl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "matching-dev")
    parser.add_argument("--translations", type=Path, default=TRANSLATIONS)
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES), choices=LANGUAGES)
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args()
    require_dev_set(args.data)

    records, ext_of, qrels = load(args.data)
    share = engine.DEFAULT_WEIGHTS.esa_share
    totals: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    for language in args.languages:
        translated = {p["external_id"]: p for p in read_jsonl(args.translations / f"{language}.jsonl")}
        english = [i for i, r in enumerate(records) if r.language == "en" and ext_of[i] in translated]
        for seed in range(args.draws):
            pick = set(np.random.default_rng(seed).choice(english, len(records) // 4, replace=False).tolist())
            mixed = [
                dataclasses.replace(r, title=translated[ext_of[i]]["title"],
                                    description=translated[ext_of[i]]["description"], language=language)
                if i in pick else r
                for i, r in enumerate(records)
            ]  # fmt: skip
            vectors = engine.embed_posts(mixed)
            model = engine.fit_model(mixed, embeddings=vectors)
            plain = copy.copy(model)
            plain.language_offsets = {}
            in_language = [ext_of[i] for i in sorted(pick) if mixed[i].kind == engine.NEED]
            offsets = ", ".join(f"{code} {model.language_offset(code, share):.2f}"
                                for code in sorted(model.language_offsets or {}))  # fmt: skip
            parts = [f"{language} draw {seed}: offsets {offsets or 'none'}"]
            for name, used in (("with", model), ("without", plain)):
                index = engine.MatchIndex.build(mixed, used, embeddings=vectors)
                ranked = matched(index, np.arange(len(index.needs.records)), engine.DEFAULT_WEIGHTS, ext_of)
                overall, own = evaluate(ranked, qrels), evaluate(ranked, qrels, needs=in_language)
                totals[name].append((overall["ndcg"], own["ndcg"]))
                parts.append(
                    f"{name}: nDCG@10 {overall['ndcg']:.3f}, {language} needs ({own['needs']}) {own['ndcg']:.3f}"
                )
            print(" | ".join(parts))
    with_, without = np.array(totals["with"]), np.array(totals["without"])
    print(
        f"mean over {len(with_)} draws: nDCG@10 {without[:, 0].mean():.3f} without offsets, "
        f"{with_[:, 0].mean():.3f} with (higher in {(with_[:, 0] > without[:, 0]).sum()}, lower in "
        f"{(with_[:, 0] < without[:, 0]).sum()}); needs in the translated language {without[:, 1].mean():.3f} "
        f"-> {with_[:, 1].mean():.3f} (higher in {(with_[:, 1] > without[:, 1]).sum()}, lower in "
        f"{(with_[:, 1] < without[:, 1]).sum()})"
    )


if __name__ == "__main__":
    main()
