"""Speed of matching with the database: full rebuild writing matches to PostgreSQL, publish-to-visible latency.

    python tests/benchmarks/matching_speed_db.py [--database-url URL] [--sizes 10000,50000,100000]
                                                 [--real-embeddings] [--live N] [--verbose]
                                                 [--embed-sentences-up-to N]

For each size (half needs, half offers, fixed seed, the synthetic vocabulary of engine_speed.py) in a fresh
database:
- embedding throughput, measured on a real sample of posts; with --real-embeddings every post is embedded,
  otherwise the cache is filled with random unit vectors (same cost downstream) and the full embedding time is
  extrapolated from the sample, which the output says;
- `manage.py rebuild_matches --sync`, each time in a process of its own (as an operator runs it), twice:
  first with the post embeddings cached (the rerank embeds and stores the sentence vectors of shortlisted
  posts), then again with every vector cached: model fit, index build, matching, writing every match. Each
  run's time as the command reports it (from its start, after Python and Django load) and the process's wall
  time and peak memory (resident set). Above --embed-sentences-up-to posts (default 10,000) the cache
  also holds random sentence vectors (their embedding time extrapolated from the sample, embedded with the
  posts as the pipeline does: `engine.embed_posts_and_sentences`) and only the second,
  fully cached rebuild runs: embedding 100k posts' sentences here takes longer than the rest together;
- the same rebuild fanned out to two live Celery worker processes on Redis;
- publish-to-visible: a post published through the service, with two live workers (model and index warm),
  until its matches are in the database (p50/p95 over --live posts);
- peak memory of this process too (everything above in one process: the corpus, the encoder, the samples);
- baseline in the same run: scikit-learn NearestNeighbors(metric="cosine", algorithm="brute") over the same
  TF-IDF vectors, top 20 offers of every need.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


# `manage.py rebuild_matches --sync`, printing at exit the process's own peak resident set (VmHWM). Not the
# rusage of the child: Linux charges a child the peak of the address space it replaced at exec, here this
# benchmark's (2.3 GB at 100k), whatever the child itself used.
REBUILD_COMMAND = """
import atexit, runpy, sys
atexit.register(lambda: sys.stderr.write(next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))))
sys.argv = ["manage.py", "rebuild_matches", "--sync"]
runpy.run_path("manage.py", run_name="__main__")
"""


def fresh_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def insert_posts(records) -> dict[int, int]:
    """Bulk-insert synthetic records as published posts; returns record id -> post id."""
    from django.db import transaction
    from django.utils import timezone

    from apps.parties.models import Party, SupportProvider
    from apps.posts.models import Post

    parties = dict(Party.objects.values_list("iso3", "id"))
    providers = {}
    for name in sorted({r.provider for r in records if r.provider}):
        providers[name] = SupportProvider.objects.get_or_create(short_name=name, defaults={"name": name})[
            0
        ].pk
    now = timezone.now()
    mapping: dict[int, int] = {}
    with transaction.atomic():
        for start in range(0, len(records), 5000):
            chunk = records[start : start + 5000]
            posts = Post.objects.bulk_create(
                [
                    Post(
                        kind=r.kind,
                        status="published",
                        party_id=parties.get(r.party) if r.party else None,
                        provider_id=None if r.party else providers[r.provider],
                        title=r.title[:200],
                        description=r.description,
                        language=r.language,
                        amount_usd=r.amount_usd,
                        eligible=sorted(r.eligible),
                        published_at=now,
                        submitted_at=now,
                    )
                    for r in chunk
                ]
            )
            for r, p in zip(chunk, posts, strict=True):
                mapping[r.id] = p.pk
            for name in ("support_types", "focus_areas", "sectors"):
                through = getattr(Post, name).through
                column = next(
                    f.attname for f in through._meta.concrete_fields if f.name not in ("id", "post")
                )
                through.objects.bulk_create(
                    [
                        through(post_id=mapping[r.id], **{column: key})
                        for r in chunk
                        for key in getattr(r, name)
                    ]
                )
    return mapping


def fill_embeddings(records, mapping, *, real: bool, sentences: bool) -> float:
    """Fill the embedding cache; returns the measured (or extrapolated) seconds to embed every post.

    `sentences` (without `real`): the rerank's sentence vectors too, random, their time extrapolated."""
    from apps.matching import engine, pipeline
    from apps.matching.models import PostEmbedding

    sample = records[: min(len(records), 1000)]
    if real:
        started = time.perf_counter()
        pipeline.embeddings_for(pipeline.post_records())
        return time.perf_counter() - started
    # As the pipeline embeds a post (`embeddings_for`): with its sentences, the title once for both, sentences
    # repeated across posts once (the process' sentence cache, emptied first: an earlier size's posts are these).
    engine._sentence_cache.clear()
    started = time.perf_counter()
    if sentences:
        engine.embed_posts_and_sentences(sample)
    else:  # the first rebuild embeds the sentences (and the titles again), which it times
        engine.embed_posts(sample)
    per_post = (time.perf_counter() - started) / len(sample)
    rng = np.random.default_rng(0)
    db_records = pipeline.post_records()

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, engine.EMBED_DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    for start in range(0, len(db_records), 5000):
        chunk = db_records[start : start + 5000]
        PostEmbedding.objects.bulk_create(
            [
                PostEmbedding(
                    post_id=r.id,
                    text_hash=engine.post_embedding_key(r),
                    vector=v.tobytes(),
                    **(
                        {
                            "sentences_hash": engine.post_sentences_key(r),
                            "sentences": unit(len(engine.post_sentences(r))).astype(np.float16).tobytes(),
                        }
                        if sentences
                        else {}
                    ),
                )
                for r, v in zip(chunk, unit(len(chunk)), strict=True)
            ]
        )
    return per_post * len(records)


def embed_distinct_seconds(records, n: int) -> float:
    """Seconds to embed n posts if no sentence repeated: every text of 200 posts (its opening, title + description,
    and its sentences, the title first) encoded without the sentence cache, which the synthetic corpus' repeated sentences hit
    (135k distinct of 700k at 100k posts), real text much less."""
    from apps.matching import engine

    sample = records[:200]
    texts = [t for r in sample for t in (engine.post_embedding_texts(r)[1], *engine.post_sentences(r))]
    started = time.perf_counter()
    engine.encode_texts(texts)
    return (time.perf_counter() - started) / len(sample) * n


def baseline_nearest_neighbours(records) -> float:
    from sklearn.neighbors import NearestNeighbors

    from apps.matching import engine

    model = engine.TextModel.fit(
        [engine.post_text(r) for r in records[:2000]],
        embeddings=np.zeros((min(2000, len(records)), 512), "f4"),
    )
    needs = [engine.post_text(r) for r in records if r.kind == "need"]
    offers = [engine.post_text(r) for r in records if r.kind == "offer"]
    started = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=20, metric="cosine", algorithm="brute").fit(
        model.vectorizer.transform(offers)
    )
    nn.kneighbors(model.vectorizer.transform(needs))
    return time.perf_counter() - started


def start_workers(n: int, env: dict) -> list[subprocess.Popen]:
    celery = str(Path(sys.executable).parent / "celery")
    return [
        subprocess.Popen(
            [
                celery,
                "-A",
                "nma_platform",
                "worker",
                "--pool=solo",
                "--loglevel=WARNING",
                f"--hostname=bench{i}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(n)
    ]


def wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def run(size: int, args) -> None:
    from django.core.management import call_command
    from django.db import connection

    from apps.matching import engine, pipeline
    from apps.matching.models import Match, PostEmbedding, RebuildRun
    from apps.parties.selectors import party_groups_by_iso3
    from apps.posts.models import Post
    from tests.benchmarks.engine_speed import synthetic_posts

    connection.close()
    fresh_database(args.database_url)
    call_command("migrate", verbosity=0)
    records = synthetic_posts(size, 7, party_groups_by_iso3())
    started = time.perf_counter()
    mapping = insert_posts(records)
    inserted = time.perf_counter() - started
    cached_sentences = not args.real_embeddings and size > args.embed_sentences_up_to
    embed_all = fill_embeddings(records, mapping, real=args.real_embeddings, sentences=cached_sentences)
    embed_note = "measured" if args.real_embeddings else "extrapolated from 1,000 real embeddings"
    if cached_sentences:
        embed_note += " with their sentences; the cache holds random sentence vectors"
    print(
        f"\n## {size:,} posts: inserted in {inserted:.1f} s; embedding all: {embed_all:.0f} s ({embed_note})"
    )
    # The encoder remembers each word piece's first layers: the synthetic vocabulary reuses few pieces, real
    # text many more (the development set's 210 posts: ~5,000), each computed in full the first time.
    pieces = engine._get_encoder()._model._encode_batch.__self__.used
    print(f"  word pieces remembered by the encoder: {pieces:,}")
    distinct = embed_distinct_seconds(records, len(records))
    print(f"  embedding all if no sentence repeated (as in real text): {distinct:.0f} s (extrapolated)")

    def rebuild_in_process():
        """`rebuild_matches --sync` in a new process: (run, the command's own time, process wall time, peak RSS
        of the process in MB)."""
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", REBUILD_COMMAND], cwd=REPO, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"rebuild_matches failed ({done.returncode}): {done.stderr[-2000:]}")
        reported = float(done.stdout.rsplit(" in ", 1)[1].split(" s")[0])
        peak_kb = int(done.stderr.rsplit("VmHWM:", 1)[1].split()[0])
        run = RebuildRun.objects.order_by("-pk").first()
        return run, reported, wall, peak_kb / 1024

    if not cached_sentences:
        run, first, wall, peak = rebuild_in_process()
        print(
            f"first rebuild_matches --sync (post embeddings cached; the rerank embeds and stores the sentences "
            f"of every shortlisted post): {first:.1f} s (process {wall:.1f} s, peak RSS {peak:,.0f} MB), "
            f"{run.matches_written:,} rows written"
        )
        print(f"  = with every embedding computed: {first + embed_all:.0f} s")
    # Every vector (post and sentences) read from the cache.
    stored = Match.objects.count()
    run, in_process, wall, peak = rebuild_in_process()
    print(
        f"rebuild_matches --sync, every embedding cached (fit + index + match + write): {in_process:.1f} s "
        f"(process {wall:.1f} s, peak RSS {peak:,.0f} MB), {run.matches_written:,} rows written, "
        f"{Match.objects.active().count():,} active ({'into an empty table' if not stored else 'the matches stored'})"
    )
    if cached_sentences:
        print(f"  = with every embedding computed: {in_process + embed_all:.0f} s (embedding extrapolated)")
        print(f"    and if no sentence repeated: {in_process + distinct:.0f} s")
        # What a rebuild of a running platform costs: the matches are stored, and most come out unchanged.
        run, again, wall, peak = rebuild_in_process()
        print(
            f"the same rebuild again, the matches stored: {again:.1f} s (process {wall:.1f} s, "
            f"peak RSS {peak:,.0f} MB)"
        )
    baseline = baseline_nearest_neighbours(records)
    print(f"baseline NearestNeighbors(cosine, brute) over TF-IDF, top 20 of every need: {baseline:.1f} s "
          f"(rebuild / baseline = {in_process / baseline:.1f}x)")  # fmt: skip

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "nma_platform.settings.local", "DEBUG": "false"}
    env["DATABASE_URL"], env["REDIS_URL"] = args.database_url, args.redis_url
    workers = start_workers(2, env)
    try:
        from nma_platform.celery import app as celery_app

        celery_app.conf.update(broker_url=args.redis_url, task_always_eager=False)
        celery_app.control.purge()
        started = time.perf_counter()
        queued = pipeline.rebuild_start(sync=False)
        ok = wait(lambda: RebuildRun.objects.get(pk=queued.pk).finished_at is not None, 3600)
        fanned = time.perf_counter() - started
        print(
            f"rebuild fanned out to 2 worker processes: {fanned:.1f} s "
            f"({queued.total_chunks} chunks; each worker loads the model and builds its index once)"
            + ("" if ok else " TIMED OUT")
        )

        from apps.accounts.actors import Actor
        from apps.posts import services
        from apps.posts.post_data import ReferenceData, parse_post_record

        secretariat = Actor(role="secretariat", label="bench")
        refs = ReferenceData()
        latencies = []
        for i, record in enumerate(records[: args.live]):
            data = parse_post_record(
                {
                    "kind": record.kind,
                    "party": record.party or "KEN",
                    "title": f"{record.title} (live {i})"[:200],
                    "description": record.description,
                    "support_types": sorted(record.support_types),
                    "focus_areas": sorted(record.focus_areas),
                    "sectors": sorted(record.sectors),
                    "status": "submitted",
                },
                refs,
            )
            post = services.post_create(actor=secretariat, data=data)
            # Its text is new: embed it now as the live path would, so the figure is the worker's latency.
            started = time.perf_counter()
            services.post_publish(actor=secretariat, post=post)
            side = "need" if post.kind == "need" else "offer"
            found = wait(
                lambda post=post, side=side: (
                    not Post.objects.filter(pk=post.pk, matching_pending=True).exists()
                ),
                60,
            )
            if found:
                latencies.append(time.perf_counter() - started)
                if args.verbose:
                    print(f"  live post {i} ({side}): {latencies[-1] * 1000:.0f} ms", flush=True)
        if latencies:
            latencies.sort()
            p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
            print(
                f"publish to matches stored (2 live workers, warm): p50 {statistics.median(latencies) * 1000:.0f} ms, "
                f"p95 {p95 * 1000:.0f} ms over {len(latencies)} posts (includes embedding the new text)"
            )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
    print(
        f"embeddings cached: {PostEmbedding.objects.count():,}; peak RSS of this process: {peak_rss_mb():,.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/nma_bench_matching")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5"))
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--real-embeddings", action="store_true")
    parser.add_argument("--live", type=int, default=20, help="posts published with live workers")
    parser.add_argument("--verbose", action="store_true", help="print each live post's latency")
    parser.add_argument(
        "--embed-sentences-up-to",
        type=int,
        default=10_000,
        help="above this size (without --real-embeddings) the sentence vectors are cached random ones too",
    )
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ["REDIS_URL"] = args.redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "nma_platform.settings.local"
    os.environ["MATCHING_AUTORUN"] = "true"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DEBUG"] = "false"
    fresh_database(args.database_url)
    import django

    django.setup()
    for size in (int(s) for s in args.sizes.split(",")):
        run(size, args)


if __name__ == "__main__":
    main()
