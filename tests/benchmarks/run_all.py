"""Run every benchmark of `make bench` one after the other and say which failed.

    python tests/benchmarks/run_all.py [--quick] [--data DIR]

`--quick` passes each script its own small-size option where it has one, for a smoke run. PostgreSQL
benchmarks use BENCH_DATABASE_URL (default: a scratch database on the local server). `--data` names the
matching development set's folder for the four quality benchmarks (default: ../shared/matching-dev beside the
repository; `make bench DATA=DIR`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PG = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nma_bench")

# Read the labelled development set (`--data`).
QUALITY = (
    "matching_dev_pipeline.py",
    "engine_dev_eval.py",
    "engine_languages_eval.py",
    "engine_language_background_eval.py",
)
# (script, full-run arguments, quick-run arguments); each PostgreSQL benchmark gets its own scratch database.
BENCHMARKS = [
    ("matching_dev_pipeline.py", [], []),
    ("engine_dev_eval.py", ["--cv"], []),
    ("engine_languages_eval.py", [], ["--languages", "ru"]),
    ("engine_language_background_eval.py", [], ["--languages", "ru", "--draws", "1"]),
    ("engine_speed.py", [], ["--quick", "--sizes", "10000"]),
    (
        "matching_speed_db.py",
        ["--database-url", f"{PG}_matching"],
        ["--database-url", f"{PG}_matching", "--sizes", "2000"],
    ),
    (
        "api_throughput.py",
        ["--database-url", f"{PG}_api"],
        ["--database-url", f"{PG}_api", "--posts", "10000", "--seconds", "3"],
    ),
    (
        "stocktake_report.py",
        ["--database-url", f"{PG}_stocktake"],
        ["--database-url", f"{PG}_stocktake", "--posts", "10000", "--matches", "100000", "--repeat", "2"],
    ),
    (
        "search_scripts.py",
        ["--database-url", f"{PG}_search"],
        ["--database-url", f"{PG}_search", "--posts", "10000", "--repeat", "3"],
    ),
    (
        "ui_pages.py",
        ["--database-url", f"{PG}_ui"],
        ["--database-url", f"{PG}_ui", "--posts", "10000", "--seconds", "3"],
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="each script's small sizes: a smoke run")
    parser.add_argument("--data", help="the matching development set's folder, for the quality benchmarks")
    options = parser.parse_args()
    quick = options.quick
    failed = []
    for script, full, small in BENCHMARKS:
        path = HERE / script
        if not path.exists():
            print(f"== {script}: not present, skipped")
            continue
        args = small if quick else full
        if options.data and script in QUALITY:
            args = [*args, "--data", options.data]
        print(f"\n== {script} {' '.join(args)}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(path), *args], cwd=REPO)
        print(f"== {script}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
