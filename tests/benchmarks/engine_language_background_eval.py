"""The languages' word backgrounds (`TextModel.language_offsets`) where good offers share the need's language.

    python tests/benchmarks/engine_language_background_eval.py [--data DIR] [--translations DIR] [--draws N]

The development set's Spanish and French offers are mostly near misses built for its Spanish and French needs,
whose good offers are mostly in English: any penalty on two posts in one language helps those needs there. Here a
random quarter of the English posts (needs, offers and distractors alike; drawn anew for each language and
draw, fixed seeds) is replaced by its translation into Arabic, Chinese or Russian
(`data/matching-dev-translations/`), so that the translated needs have good offers in their own language as well
as in English. Each draw prints:

- the background itself, on the translated posts' pairs: the median word TF-IDF and ESA similarity (on the
  model's scales) and USE cosine of the same pairs written in English (the development set as given) and
  translated, as a minority of the corpus (the language's effect, the subjects being the same);
- nDCG@10 through `index.match_rows` (k=20, with the rerank) with the model's offsets and with none (as before
  they were measured), for the needs in the translated language (the fair test: good offers in both languages),
  for the English needs, and for the Spanish and French needs (which gain as on the development set).
"""

from __future__ import annotations

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
from tests.benchmarks.engine_languages_eval import LANGUAGES, read_jsonl, translated_set_parser  # noqa: E402

GROUPS = ("translated", "English", "Spanish and French")


def medians(
    model: engine.TextModel, records: list[engine.PostRecord], vectors: np.ndarray
) -> dict[str, float]:
    """Median similarity of the pairs of `records` (two different posts): words and ESA on the model's scales,
    USE as a cosine."""
    feats = model.features([engine.post_text(r) for r in records], vectors=vectors)
    pairs = ~np.eye(len(records), dtype=bool)
    out = {name: float(np.median(model.normalise(name, (m @ m.T).toarray())[pairs]))
           for name, m in (("words", feats.words), ("esa", feats.esa))}  # fmt: skip
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out["USE"] = float(np.median((unit @ unit.T)[pairs]))
    return out


def main() -> None:
    parser = translated_set_parser(__doc__)
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args()
    require_dev_set(args.data)

    records, ext_of, qrels = load(args.data)
    share = engine.DEFAULT_WEIGHTS.esa_share
    original_vectors = engine.embed_posts(records)
    original = engine.fit_model(records, embeddings=original_vectors)
    results: dict[str, dict[str, list[float]]] = {g: {"with": [], "without": []} for g in GROUPS}
    for language in args.languages:
        translated = {p["external_id"]: p for p in read_jsonl(args.translations / f"{language}.jsonl")}
        english = [i for i, r in enumerate(records) if r.language == "en" and ext_of[i] in translated]
        for draw in range(args.draws):
            rng = np.random.default_rng([draw, LANGUAGES.index(language)])
            pick = sorted(rng.choice(english, len(records) // 4, replace=False).tolist())
            mixed = [
                dataclasses.replace(r, title=translated[ext_of[i]]["title"],
                                    description=translated[ext_of[i]]["description"], language=language)
                if i in set(pick) else r
                for i, r in enumerate(records)
            ]  # fmt: skip
            vectors = engine.embed_posts(mixed)
            model = engine.fit_model(mixed, embeddings=vectors)
            plain = copy.copy(model)
            plain.language_offsets = {}
            written = medians(original, [records[i] for i in pick], original_vectors[pick])
            minority = medians(model, [mixed[i] for i in pick], vectors[pick])
            offsets = ", ".join(f"{code} {model.language_offset(code, share):.2f}"
                                for code in sorted(model.language_offsets or {}))  # fmt: skip
            print(f"{language} draw {draw}: {len(pick)} posts translated; their pairs' medians in English / in "
                  f"{language}: " + ", ".join(f"{name} {written[name]:.2f} / {minority[name]:.2f}"
                                              for name in ("words", "esa", "USE"))
                  + f"; lexical offsets {offsets or 'none'}")  # fmt: skip
            groups = {
                "translated": [ext_of[i] for i in pick if mixed[i].kind == engine.NEED],
                "English": [ext_of[n.id] for n in mixed if n.kind == engine.NEED and n.language == "en"],
                "Spanish and French": [ext_of[n.id] for n in mixed if n.kind == engine.NEED
                                       and n.language in ("es", "fr")],
            }  # fmt: skip
            line = []
            for name, used in (("with", model), ("without", plain)):
                index = engine.MatchIndex.build(mixed, used, embeddings=vectors)
                ranked = matched(index, np.arange(len(index.needs.records)), engine.DEFAULT_WEIGHTS, ext_of)
                for group, needs in groups.items():
                    score = evaluate(ranked, qrels, needs=needs)
                    results[group][name].append(score["ndcg"])
                    if name == "with":
                        line.append(f"{group} needs ({score['needs']})")
            print("  nDCG@10 without -> with offsets: " + "; ".join(
                f"{label} {results[g]['without'][-1]:.3f} -> {results[g]['with'][-1]:.3f}"
                for label, g in zip(line, GROUPS, strict=True)))  # fmt: skip
    print(
        f"over {len(results['translated']['with'])} draws, nDCG@10 without -> with offsets (draws higher / "
        "level / lower):"
    )
    for group in GROUPS:
        with_, without = np.array(results[group]["with"]), np.array(results[group]["without"])
        print(
            f"  {group} needs: {without.mean():.3f} -> {with_.mean():.3f} ({(with_ > without + 1e-9).sum()} / "
            f"{(np.abs(with_ - without) <= 1e-9).sum()} / {(with_ < without - 1e-9).sum()})"
        )


if __name__ == "__main__":
    main()
