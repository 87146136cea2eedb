"""Ranking quality of the whole matching pipeline on the development set, next to baselines from the same run.

    python tests/benchmarks/matching_dev_pipeline.py [--data DIR] [--database-url URL]

Imports the development posts and the distractors into a fresh database with `import_posts`, runs
`rebuild_matches --sync`, reads the result back through `export_matches` (the real pipeline end to end) and
prints nDCG@10, P@5, MRR and coverage, overall and for cross-lingual needs. The baselines (random, TF-IDF only,
embeddings only, tags only) are computed by the engine on the same posts in the same process.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def fresh_database(url: str | None) -> str:
    """A new empty database: a temporary SQLite file, or a PostgreSQL database recreated under the URL's name."""
    if not url:
        return f"sqlite:///{tempfile.mkdtemp(prefix='nma-dev-eval-')}/db.sqlite3"
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url


def print_baselines(records, ext_of, qrels, cross) -> None:
    """Random, TF-IDF only, embeddings only and tags only, each with the hard rules, on the same posts."""
    import numpy as np

    from apps.matching import engine
    from tests.benchmarks import engine_dev_eval as baselines

    index, rows, ok = baselines.indexed(records)
    needs, offers = index.needs.records, index.offers.records
    nf, of = index.needs.feats, index.offers.feats
    candidates = {
        "random (seed 0)": np.random.default_rng(0).random(ok.shape),
        "TF-IDF only": (nf.words @ of.words.T).toarray(),
        "embeddings only (USE)": nf.vectors @ of.vectors.T,
        "tags only": index._block_scores(
            index.needs, engine.NEED, rows, engine.Weights(lexical=0, semantic=0, structured=1)
        ),
    }
    for name, scores in candidates.items():
        baselines.report(name, baselines.rank(scores, ok, needs, offers, ext_of), qrels, cross)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "matching-dev")
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL URL of a scratch database to recreate (default: SQLite)",
    )
    args = parser.parse_args()
    from tests.benchmarks.engine_dev_eval import require_dev_set

    require_dev_set(args.data)

    os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nma_platform.settings.local")
    # Import first, then one rebuild, as the secretariat would load a back catalogue.
    os.environ["MATCHING_AUTORUN"] = "false"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    from apps.matching.evaluation import evaluate
    from tests.benchmarks import engine_dev_eval as baselines

    timings = {}
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    for name in ("posts.jsonl", "distractors.jsonl"):
        call_command("import_posts", str(args.data / name), stdout=io.StringIO(), stderr=io.StringIO())
    timings["import"] = time.perf_counter() - started
    started = time.perf_counter()
    call_command("rebuild_matches", "--sync", stdout=io.StringIO(), stderr=io.StringIO())
    timings["rebuild"] = time.perf_counter() - started
    out = io.StringIO()
    call_command("export_matches", stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]

    ranked: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: (r["need"], r["rank"])):
        ranked.setdefault(row["need"], []).append(row["offer"])
    records, ext_of, qrels = baselines.load(args.data)
    cross = [ext_of[r.id] for r in records if r.kind == "need" and r.language != "en"]

    print(
        f"{len(records)} posts imported in {timings['import']:.1f} s, rebuilt in {timings['rebuild']:.1f} s, "
        f"{len(rows)} matches exported\n"
    )
    print_baselines(records, ext_of, qrels, cross)
    overall, crossed = evaluate(ranked, qrels), evaluate(ranked, qrels, needs=cross)
    print(
        f"{'PIPELINE (import, rebuild, export)':36s} nDCG@10 {overall['ndcg']:.3f}  P@5 {overall['precision']:.3f}  "
        f"MRR {overall['mrr']:.3f}  cov {overall['coverage']:.2f}  | cross-lingual ({crossed['needs']}) "
        f"nDCG@10 {crossed['ndcg']:.3f}  P@5 {crossed['precision']:.3f}  MRR {crossed['mrr']:.3f}  "
        f"cov {crossed['coverage']:.2f}"
    )


if __name__ == "__main__":
    main()
