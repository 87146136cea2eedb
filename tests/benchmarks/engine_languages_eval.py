"""Ranking quality of the matching engine in Arabic, Chinese and Russian: the development set translated.

    python tests/benchmarks/engine_languages_eval.py [--data DIR] [--translations DIR]

The development set (`../shared/matching-dev`, 30 needs, 60 offers and 120 distractors in English, French and
Spanish) says how well needs meet offers in those languages, and across them. The platform serves all six UN
languages, so its posts and distractors were translated into Arabic, Chinese and Russian
(`data/matching-dev-translations/<lang>.jsonl`: the same posts, ids and tags, the title and description
translated; by machine-assisted translation, not reviewed by professional translators) and the same judgements
(`qrels.tsv`) score four arrangements per language:

- original: the posts as given (the reference: `engine_dev_eval.py`'s figures);
- all in the language: every need and offer translated (a platform where that language's Parties meet each
  other: the text models compare words in the language itself);
- needs translated: the needs in the language, the offers as given (cross-lingual, from the language);
- offers translated: the needs as given, the offers in the language (cross-lingual, into the language).

Distractors are offers: they are translated with them. `--without-distractors` leaves them out (an easier
set, where every arrangement scores near its ceiling).

Each prints nDCG@10, P@5 and MRR through the platform's own path (`index.match_rows`, k=20, with the rerank),
and beside it TF-IDF alone and USE alone over the same posts: TF-IDF says how much the words of a language are
understood (its morphology, its script), USE what the encoder knows of it. The same again with the word model
reading every word as written (`--no-stems` runs; the baseline of `apps.posts.stemming`, in the same run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from apps.matching import engine  # noqa: E402
from apps.matching.evaluation import evaluate  # noqa: E402
from tests.benchmarks.engine_dev_eval import PARTIES_CSV, indexed, rank  # noqa: E402

TRANSLATIONS = Path(__file__).resolve().parent / "data" / "matching-dev-translations"
LANGUAGES = ("ar", "zh", "ru")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        need, offer, grade = line.split("\t")
        qrels.setdefault(need, {})[offer] = int(grade)
    return qrels


@contextlib.contextmanager
def stems(on: bool):
    """The word model with Russian and Arabic stems (the engine's own) or with every word as written."""
    saved = engine.preprocess_words, engine.WORD_STOP_WORDS
    if not on:
        engine.preprocess_words, engine.WORD_STOP_WORDS = engine.preprocess_text, engine.STOP_WORDS
    try:
        yield
    finally:
        engine.preprocess_words, engine.WORD_STOP_WORDS = saved


def scores(posts: list[dict], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """The engine and its two text baselines over `posts`: {name: evaluate(...)}."""
    groups = engine.party_groups_from_csv(str(PARTIES_CSV))
    records = [engine.post_record_from_import(p, id=i, party_groups=groups) for i, p in enumerate(posts)]
    ext_of = {i: p["external_id"] for i, p in enumerate(posts)}
    index, rows, ok = indexed(records)
    needs, offers = index.needs.records, index.offers.records
    nf, of = index.needs.feats, index.offers.feats
    results = index.match_rows(engine.NEED, rows, k=20, floor=0.0)
    matched = {ext_of[needs[i].id]: [ext_of[r.offer_id] for r in res] for i, res in enumerate(results)}
    return {
        "engine": evaluate(matched, qrels),
        "TF-IDF": evaluate(rank((nf.words @ of.words.T).toarray(), ok, needs, offers, ext_of), qrels),
        "USE": evaluate(rank(nf.vectors @ of.vectors.T, ok, needs, offers, ext_of), qrels),
    }


def arrangements(original: list[dict], translated: list[dict]) -> dict[str, list[dict]]:
    by_id = {p["external_id"]: p for p in translated}
    missing = [p["external_id"] for p in original if p["external_id"] not in by_id]
    if missing:
        sys.exit(
            f"The translation lacks {len(missing)} posts of the development set ({', '.join(missing[:5])}...)"
        )
    return {
        "all in the language": [by_id[p["external_id"]] for p in original],
        "needs translated": [by_id[p["external_id"]] if p["kind"] == "need" else p for p in original],
        "offers translated": [by_id[p["external_id"]] if p["kind"] == "offer" else p for p in original],
    }


def line(label: str, posts: list[dict], qrels: dict[str, dict[str, int]]) -> str:
    with stems(False):
        before = scores(posts, qrels)
    with stems(True):
        after = scores(posts, qrels)
    e, t, u = after["engine"], after["TF-IDF"], after["USE"]
    return (f"  {label:20s} nDCG@10 {e['ndcg']:.3f}  P@5 {e['precision']:.3f}  MRR {e['mrr']:.3f}  "
            f"TF-IDF {t['ndcg']:.3f}  USE {u['ndcg']:.3f}  | without stems: nDCG@10 {before['engine']['ndcg']:.3f}  "
            f"P@5 {before['engine']['precision']:.3f}  MRR {before['engine']['mrr']:.3f}  "
            f"TF-IDF {before['TF-IDF']['ndcg']:.3f}")  # fmt: skip


def translated_set_parser(description: str) -> argparse.ArgumentParser:
    """The options of the benchmarks on the translated development set: --data, --translations, --languages."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "matching-dev")
    parser.add_argument("--translations", type=Path, default=TRANSLATIONS)
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES), choices=LANGUAGES)
    return parser


def main() -> None:
    parser = translated_set_parser(__doc__)
    parser.add_argument("--without-distractors", action="store_true", help="the needs and offers only")
    args = parser.parse_args()
    if not all((args.data / name).is_file() for name in ("posts.jsonl", "distractors.jsonl", "qrels.tsv")):
        sys.exit(f"The matching development set is not in {args.data}; give its folder with --data DIR.")

    original = read_jsonl(args.data / "posts.jsonl")
    if not args.without_distractors:
        original += read_jsonl(args.data / "distractors.jsonl")
    qrels = read_qrels(args.data / "qrels.tsv")
    t0 = time.perf_counter()
    print(f"{len(original)} posts, {len(qrels)} judged needs; engine = index.match_rows (k=20, rerank)")
    print(line("original", original, qrels))
    for lang in args.languages:
        print(lang)
        for label, posts in arrangements(original, read_jsonl(args.translations / f"{lang}.jsonl")).items():
            print(line(label, posts, qrels))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
