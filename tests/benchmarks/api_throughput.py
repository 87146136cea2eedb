"""API throughput under gunicorn on PostgreSQL with 100,000 posts, as a ratio to a trivial view in the same run.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/nma_bench .venv/bin/python tests/benchmarks/api_throughput.py

The database must be one kept for benchmarks: the script migrates it and, the first time, bulk-inserts
synthetic posts (external ids `bench-*`). It then starts gunicorn with the production settings on 127.0.0.1,
drives it with C concurrent keep-alive clients (wrk when installed, else Python threads in a few processes,
`--client` chooses) for a bounded time and number of requests per scenario, and reports requests per second,
latency percentiles, and each scenario's throughput as a ratio to `GET /api/v1/ping/` (no database query).

Goals (issue): a post list page at least a third of the trivial view's throughput, and its p95 under 100 ms
at 16 concurrent clients on a 2-core machine. `--check` exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/nma_bench"


_STATIC_ROOT: list[str] = []


def _static_root() -> str:
    if not _STATIC_ROOT:
        _STATIC_ROOT.append(tempfile.mkdtemp(prefix="nma-bench-static-"))
    return _STATIC_ROOT[0]


def server_env(database_url: str) -> dict[str, str]:
    """Production settings, with what a laptop lacks supplied; throttles out of the way of the load."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="nma_platform.settings.production",
        DATABASE_URL=database_url,
        SECRET_KEY="benchmark-only-secret-key-not-for-production-use-0123456789",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SITE_URL="http://127.0.0.1",
        DEFAULT_FROM_EMAIL="bench@example.org",
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="0",
        CONN_MAX_AGE="60",
        LOG_LEVEL="WARNING",
        API_THROTTLE_ANON="100000000/minute",
        API_THROTTLE_TOKEN="100000000/minute",
        API_THROTTLE_USER="100000000/minute",
        # The public pages' own limit (ui_pages.py drives them with one client address).
        SITE_THROTTLE_ANON="100000000/minute",
        MATCHING_AUTORUN="false",
        # An empty folder: the API serves no static file, and WhiteNoise warned of a missing one at every request.
        STATIC_ROOT=_static_root(),
    )
    env.pop("REDIS_URL", None)
    return env


# --- data --------------------------------------------------------------------------------------------------


def seed(database_url: str, posts: int) -> list[int]:
    """Migrate and, if needed, bulk-insert `posts` synthetic posts; return a sample of published ids."""
    os.environ.update(server_env(database_url))
    sys.path.insert(0, str(ROOT))
    if database_url.startswith("postgres"):
        from tests.benchmarks.databases import ensure_database

        ensure_database(database_url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.parties.models import Party
    from apps.posts.models import Post
    from apps.posts.taxonomies import FinanceInstrument, FocusArea, Sector, SupportType

    if connection.vendor != "postgresql":
        sys.exit("The benchmark needs PostgreSQL: set BENCH_DATABASE_URL.")
    call_command("migrate", verbosity=0)
    have = Post.objects.filter(external_id__startswith="bench-").count()
    if have < posts:
        started = time.perf_counter()
        rng = random.Random(8)
        parties = list(Party.objects.values_list("pk", flat=True))
        words = [
            "flood",
            "early",
            "warning",
            "solar",
            "mini-grid",
            "mangrove",
            "restoration",
            "drought",
            "resilient",
            "seeds",
            "coastal",
            "protection",
            "forest",
            "monitoring",
            "clean",
            "cooking",
            "heat",
            "health",
            "action",
            "plan",
            "water",
            "harvesting",
            "geothermal",
            "training",
            "finance",
            "grant",
            "technology",
            "transfer",
            "capacity",
            "building",
        ]
        now = timezone.now()
        support, focus, sectors, instruments = (
            SupportType.values,
            FocusArea.values,
            Sector.values,
            FinanceInstrument.values,
        )
        with transaction.atomic():
            for start in range(have, posts, 5000):
                batch = []
                for i in range(start, min(start + 5000, posts)):
                    kind = "offer" if i % 3 == 0 else "need"
                    status = "published" if i % 10 else rng.choice(["draft", "submitted", "closed"])
                    moment = now - timezone.timedelta(minutes=posts - i)
                    batch.append(
                        Post(
                            kind=kind,
                            status=status,
                            party_id=rng.choice(parties),
                            external_id=f"bench-{i}",
                            title=" ".join(rng.choices(words, k=6)).capitalize()[:200],
                            description=" ".join(rng.choices(words, k=80)),
                            language="en",
                            amount_usd=rng.randrange(10_000, 5_000_000) if i % 2 else None,
                            eligible=["LDC"] if kind == "offer" and i % 4 == 0 else [],
                            published_at=moment if status in ("published", "closed") else None,
                            submitted_at=moment if status != "draft" else None,
                        )
                    )
                created = Post.objects.bulk_create(batch)
                rows = {name: [] for name in ("support_types", "focus_areas", "sectors", "instruments")}
                for post in created:
                    rows["support_types"] += [
                        (post.pk, key) for key in rng.sample(support, rng.randint(1, 2))
                    ]
                    rows["focus_areas"] += [(post.pk, rng.choice(focus))]
                    rows["sectors"] += [(post.pk, key) for key in rng.sample(sectors, rng.randint(0, 2))]
                    if post.kind == "offer":
                        rows["instruments"] += [(post.pk, rng.choice(instruments))]
                for name, pairs in rows.items():
                    through = getattr(Post, name).through
                    column = next(f.name for f in through._meta.fields if f.name not in ("id", "post"))
                    through.objects.bulk_create(
                        [through(post_id=pk, **{f"{column}_id": key}) for pk, key in pairs], batch_size=10_000
                    )
        with connection.cursor() as cursor:
            # Spread updated_at like a real history (auto_now set every row to the insert time).
            cursor.execute(
                "UPDATE posts_post SET updated_at = coalesce(published_at, submitted_at, created_at) "
                "WHERE external_id LIKE 'bench-%%'"
            )
            cursor.execute("ANALYZE")
        print(f"Seeded {posts - have} posts in {time.perf_counter() - started:.0f} s", flush=True)
    ids = list(
        Post.objects.filter(status="published", external_id__startswith="bench-")
        .order_by("?")
        .values_list("pk", flat=True)[:2000]
    )
    connection.close()
    return ids


# --- server ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(database_url: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    command = [
        str(VENV_BIN / "gunicorn"),
        "nma_platform.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=server_env(database_url))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/v1/ping/")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    sys.exit("gunicorn did not start")


# --- CPU accounting ----------------------------------------------------------------------------------------


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(master: int, database: str) -> tuple[list[int], list[int]]:
    """The gunicorn master and workers, and the PostgreSQL backends serving the benchmark's database."""
    app, db = [master], []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            app.append(int(entry.name))
        elif cmdline.startswith("postgres:") and f" {database} " in cmdline:
            db.append(int(entry.name))
    return app, db


def cpu_snapshot(master: int, database: str) -> tuple[float, float]:
    """CPU seconds used so far by the application server and by the database backends.

    On a machine shared with other work, throughput swings with the load; the CPU each request costs does
    not (much), so the report gives both.
    """
    app, db = server_pids(master, database)
    return sum(map(_process_cpu, app)), sum(map(_process_cpu, db))


# --- clients -----------------------------------------------------------------------------------------------


def _thread_loop(
    port: int, paths: list[str], deadline: float, budget: int, out: list, lock, headers: dict[str, str]
) -> None:
    connection = HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, errors, index = [], 0, random.randrange(len(paths))
    while time.perf_counter() < deadline:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        path = paths[index % len(paths)]
        index += 1
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except OSError:
            connection.close()
            connection = HTTPConnection("127.0.0.1", port, timeout=10)
            ok = False
        latencies.append(time.perf_counter() - started)
        errors += not ok
    out.append((latencies, errors))


def _process_run(args) -> tuple[list[float], int, float]:
    port, paths, threads, seconds, budget, headers = args
    started = time.perf_counter()
    deadline = started + seconds
    out: list = []
    lock = threading.Lock()
    shared = [budget]
    workers = [
        threading.Thread(target=_thread_loop, args=(port, paths, deadline, shared, out, lock, headers))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    latencies = [x for lat, _e in out for x in lat]
    return latencies, sum(e for _l, e in out), time.perf_counter() - started


def run_python(
    port: int,
    paths: list[str],
    concurrency: int,
    seconds: float,
    max_requests: int,
    headers: dict[str, str] | None = None,
) -> dict:
    """`headers`: sent with every request (a session cookie)."""
    processes = min(4, concurrency)
    per_process = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(
            _process_run,
            [(port, paths, n, seconds, max_requests // processes, headers or {}) for n in per_process],
        )
    latencies = sorted(x for lat, _e, _s in results for x in lat)
    errors = sum(e for _l, e, _s in results)
    # Each process timed its own run (starting the pool takes a while): the rate is the sum of theirs.
    rate = sum((len(lat) - e) / s for lat, e, s in results)
    elapsed = (len(latencies) - errors) / rate if rate else 1.0
    return summarise(len(latencies), errors, elapsed, latencies)


def summarise(count: int, errors: int, elapsed: float, latencies: list[float]) -> dict:
    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "requests": count,
        "errors": errors,
        "rps": round((count - errors) / elapsed, 1),
        "p50_ms": round(pct(50), 1),
        "p95_ms": round(pct(95), 1),
        "p99_ms": round(pct(99), 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else 0.0,
        "elapsed": elapsed,
        "latencies": latencies,
    }


def combine(parts: list[dict]) -> dict:
    """One scenario's rounds as one result: all its requests over all its time."""
    if len(parts) == 1:
        return parts[0]
    count, errors = sum(p["requests"] for p in parts), sum(p["errors"] for p in parts)
    elapsed = sum(p["elapsed"] for p in parts)
    if all("latencies" in p for p in parts):
        return summarise(count, errors, elapsed, sorted(x for p in parts for x in p["latencies"]))
    # wrk gives percentiles only: weigh each round's by its requests (an approximation).
    weighted = {
        key: round(sum(p[key] * p["requests"] for p in parts) / max(1, count), 1)
        for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
    }
    return {"requests": count, "errors": errors, "rps": round((count - errors) / elapsed, 1), **weighted}


WRK_SCRIPT = """
paths = {}
counter = 0
init = function(args) for i, p in ipairs(args) do paths[i] = p end end
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.1f %.1f %.1f %.1f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000))
end
"""


def run_wrk(
    port: int,
    paths: list[str],
    concurrency: int,
    seconds: float,
    max_requests: int,
    headers: dict[str, str] | None = None,
) -> dict:
    """`headers`: sent with every request (a session cookie); `wrk.format` in the script adds them."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        output = subprocess.run(
            [
                "wrk",
                f"-t{min(2, concurrency)}",
                f"-c{concurrency}",
                f"-d{int(seconds)}s",
                "--timeout",
                "10s",
                *(arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")),
                "-s",
                script.name,
                f"http://127.0.0.1:{port}",
                "--",
                *paths[:500],
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(line for line in output.splitlines() if line.startswith("RESULT"))
    requests, errors, duration_us, p50, p95, p99, mean = line.split()[1:]
    requests, errors = int(requests), int(errors)
    elapsed = int(duration_us) / 1e6
    return {
        "requests": requests,
        "errors": errors,
        "rps": round((requests - errors) / elapsed, 1),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(mean),
        "elapsed": elapsed,
    }


# --- main --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10, help="per scenario")
    parser.add_argument("--max-requests", type=int, default=60_000, help="per scenario (Python client)")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 2) * 2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="split each scenario's time into this many slices, the scenarios taking turns (on a machine "
        "shared with other work, every scenario then sees the same mix of load)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    options = parser.parse_args()

    ids = seed(options.database_url, options.posts)
    client = options.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    runner = run_wrk if client == "wrk" else run_python
    scenarios = {
        "ping (no query)": ["/api/v1/ping/"],
        "post list page": ["/api/v1/posts/"],
        "post list, filtered": ["/api/v1/posts/?kind=offer&focus_area=adaptation"],
        "post detail": [f"/api/v1/posts/{pk}/" for pk in ids],
    }
    port = free_port()
    server = start_gunicorn(options.database_url, port, options.workers, options.threads)
    results = {}
    database = options.database_url.rsplit("/", 1)[-1].split("?")[0]
    try:
        for paths in scenarios.values():  # warm every worker's connection and caches
            run_python(port, paths, min(options.concurrency, 8), 1.0, 400)
        rounds = max(1, options.rounds)
        parts: dict[str, list[dict]] = {name: [] for name in scenarios}
        cpu = dict.fromkeys(scenarios, (0.0, 0.0))
        for _round in range(rounds):
            for name, paths in scenarios.items():
                app_before, db_before = cpu_snapshot(server.pid, database)
                parts[name].append(
                    runner(
                        port,
                        paths,
                        options.concurrency,
                        options.seconds / rounds,
                        options.max_requests // rounds,
                    )
                )
                app_after, db_after = cpu_snapshot(server.pid, database)
                cpu[name] = (cpu[name][0] + app_after - app_before, cpu[name][1] + db_after - db_before)
        for name in scenarios:
            results[name] = combine(parts[name])
            served = max(1, results[name]["requests"])
            results[name]["app_cpu_ms"] = round(cpu[name][0] / served * 1000, 2)
            results[name]["db_cpu_ms"] = round(cpu[name][1] / served * 1000, 2)
            results[name].pop("latencies", None)
            results[name].pop("elapsed", None)
    finally:
        server.terminate()
        server.wait(timeout=30)

    baseline = results["ping (no query)"]["rps"] or 1
    print(
        f"\nAPI throughput: {options.posts:,} posts, gunicorn {options.workers} workers x {options.threads} "
        f"threads, {options.concurrency} concurrent clients ({client}), {os.cpu_count()} CPUs"
        + (f", {options.rounds} rounds" if options.rounds > 1 else "")
        + "\n"
    )
    ping_cpu = (results["ping (no query)"]["app_cpu_ms"] + results["ping (no query)"]["db_cpu_ms"]) or 1
    print(
        f"{'scenario':<22}{'req/s':>9}{'ratio':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'app cpu':>9}{'db cpu':>8}{'cpu ratio':>10}"
    )
    for name, r in results.items():
        r["ratio_to_ping"] = round(r["rps"] / baseline, 3)
        # Ping's server CPU per request over this one's: the throughput ratio a dedicated machine would show
        # if the server were the only thing using the CPUs (the load generator is not counted).
        r["cpu_ratio_to_ping"] = round(ping_cpu / ((r["app_cpu_ms"] + r["db_cpu_ms"]) or ping_cpu), 3)
        print(
            f"{name:<22}{r['rps']:>9.0f}{r['ratio_to_ping']:>8.2f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
            f"{r['p99_ms']:>9.1f}{r['errors']:>8}{r['app_cpu_ms']:>9.2f}{r['db_cpu_ms']:>8.2f}"
            f"{r['cpu_ratio_to_ping']:>10.2f}"
        )
    print(
        "(app/db cpu: server CPU ms per request, gunicorn and PostgreSQL backends; cpu ratio: ping's over it)"
    )
    listing = results["post list page"]
    goals = {
        "list >= 1/3 of ping": listing["ratio_to_ping"] >= 1 / 3,
        "list p95 < 100 ms": listing["p95_ms"] < 100,
        "no errors": all(r["errors"] == 0 for r in results.values()),
    }
    print("\n" + "  ".join(f"{goal}: {'yes' if met else 'NO'}" for goal, met in goals.items()))
    print(json.dumps({"results": results, "goals": goals}, indent=None))
    return 0 if all(goals.values()) or not options.check else 1


if __name__ == "__main__":
    sys.exit(main())
