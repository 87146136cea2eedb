"""Time the whole stocktake report (every figure) on PostgreSQL with 100,000 posts and 1,000,000 matches.

    python tests/benchmarks/stocktake_report.py --database-url postgres://postgres@127.0.0.1:5432/h_stock_bench
        [--posts 100000] [--matches 1000000] [--small-factor 10] [--repeat 5] [--explain]

Builds the data with INSERT ... SELECT generate_series (a minute or two), first at the small size
(posts / factor, matches / factor) and then at the full size, and for each prints: build time, the report's
wall time (best and median of --repeat warm runs, without and with filters), the number of queries, and the
slowest queries. The query count must be the same at both sizes. The database is emptied first: the script
refuses a database whose name does not contain "bench".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PERIOD = {"date_from": dt.date(2026, 1, 1), "date_to": dt.date(2026, 6, 30)}
FILTERED = {"support_type": "finance", "regional_group": "African States"}
# Indexes under trial: the benchmark times the report with the migrations' indexes, then with these added.
# (The last one proposed, on need_interest_at, is now matching migration 0003.)
PROPOSED_INDEXES: dict[str, str] = {}
OBSOLETE_INDEXES = (
    "stocktake_match_need_interest",
    "stocktake_match_need_strong",
    "stocktake_match_need_connected",
    "stocktake_match_need_answer",
    "bench_match_need_strong",
    "bench_match_need_answer",
    "bench_match_need_connected",
)
# Posts are published over three years (2024-2026), so a half-year period holds about a sixth of them.
DATA_START = "2024-01-01"
DATA_DAYS = 3 * 365


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--matches", type=int, default=1_000_000)
    parser.add_argument("--small-factor", type=int, default=10, help="0 to skip the small size")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the slowest queries")
    parser.add_argument("--skip-build", action="store_true", help="time the data already in the database")
    args = parser.parse_args()

    from tests.benchmarks.databases import django_on_bench_database

    django_on_bench_database(args.database_url)

    sizes = []
    if args.small_factor and not args.skip_build:
        sizes.append((args.posts // args.small_factor, args.matches // args.small_factor))
    sizes.append((args.posts, args.matches))
    counts = {}
    for posts, matches in sizes:
        if not args.skip_build:
            started = time.perf_counter()
            build(posts=posts, matches=matches)
            print(
                f"\n== {posts:,} posts, {matches:,} matches: built in {time.perf_counter() - started:.1f} s"
            )
        else:
            print("\n== existing data")
        _drop_proposed_indexes()
        print("   -- with the migrations' indexes")
        counts[(posts, matches)] = measure(repeat=args.repeat, explain=args.explain)
        if PROPOSED_INDEXES:
            from django.db import connection

            with connection.cursor() as cursor:
                for definition in PROPOSED_INDEXES.values():
                    cursor.execute(definition)
                cursor.execute("ANALYZE matching_match")
            print(f"   -- with the proposed indexes: {', '.join(PROPOSED_INDEXES)}")
            measure(repeat=args.repeat, explain=args.explain)
    if len(counts) > 1:
        values = set(counts.values())
        print(f"\nQuery count at each size: {counts} -> {'constant' if len(values) == 1 else 'GROWS'}")


def _drop_proposed_indexes() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for name in (*PROPOSED_INDEXES, *OBSOLETE_INDEXES):
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


def build(*, posts: int, matches: int) -> None:
    from django.db import connection

    from apps.accounts.models import User
    from apps.matching.models import Match
    from apps.parties.models import SupportProvider
    from apps.posts.models import Post

    _drop_proposed_indexes()
    with connection.execute_wrapper(_report_slow_statement), connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE matching_match, posts_post_support_types, posts_post_focus_areas, posts_post_sectors, "
            "posts_post_instruments, posts_post_partner_parties, posts_postevent, matching_postembedding, "
            "posts_post, accounts_user, parties_supportprovider RESTART IDENTITY CASCADE"
        )
        cursor.execute("SELECT setseed(0.42)")
        insert_select(
            cursor,
            SupportProvider,
            {
                "short_name": "'BENCH' || g",
                "name": "'Bench provider ' || g",
                "kind": "'fund'",
                "created_at": "now()",
            },
            "generate_series(1, 40) g",
        )
        # A focal point for two Parties in three, registered over the three years.
        insert_select(
            cursor,
            User,
            {
                "username": "'fp_' || p.iso3",
                "password": "'!'",
                "role": "'focal_point'",
                "party_id": "p.id",
                "date_joined": f"'{DATA_START}'::timestamptz + (p.id % {DATA_DAYS}) * interval '1 day'",
                "is_active": "true",
            },
            "parties_party p WHERE p.id % 3 <> 0",
        )
        # Secondary indexes are dropped for the bulk load and rebuilt once at the end (minutes -> seconds);
        # their definitions are read from the catalogue, so they come back exactly as the migrations made them.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('posts_post', 'matching_match') "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        # Posts: 55% needs; offers from a provider one time in three; 2% drafts, 8% closed, 5% withdrawn.
        published = f"'{DATA_START}'::timestamptz + random() * interval '{DATA_DAYS} days'"
        is_provider = "(g % 20 >= 11 AND g % 3 = 0)"
        insert_select(
            cursor,
            Post,
            {
                "kind": "CASE WHEN g % 20 < 11 THEN 'need' ELSE 'offer' END",
                "status": "CASE WHEN g % 50 = 0 THEN 'draft' WHEN g % 25 = 1 THEN 'closed' "
                "WHEN g % 20 = 3 THEN 'withdrawn' ELSE 'published' END",
                "party_id": f"CASE WHEN {is_provider} THEN NULL ELSE p.ids[1 + (g * 7919) % p.n] END",
                "provider_id": f"CASE WHEN {is_provider} THEN v.ids[1 + g % v.n] END",
                "title": "'Benchmark post ' || g",
                "description": "'Early warning, solar mini-grids and forest monitoring for post ' || g",
                "amount_usd": "CASE WHEN g % 5 < 3 THEN round((random() * 5000000)::numeric, 2) END",
                "created_at": "now()",
                "updated_at": "now()",
                "published_at": "t.published_at",
                "closed_at": "CASE WHEN g % 50 <> 0 AND g % 25 = 1 "
                "THEN t.published_at + (1 + g % 200) * interval '1 day' END",
                "withdrawn_at": "CASE WHEN g % 50 <> 0 AND g % 25 <> 1 AND g % 20 = 3 "
                "THEN t.published_at + (1 + g % 150) * interval '1 day' END",
            },
            f"generate_series(1, {posts}) g "
            "CROSS JOIN (SELECT array_agg(id ORDER BY id) ids, count(*) n FROM parties_party) p "
            "CROSS JOIN (SELECT array_agg(id ORDER BY id) ids, count(*) n FROM parties_supportprovider) v "
            f"CROSS JOIN LATERAL (SELECT CASE WHEN g % 50 = 0 THEN NULL ELSE {published} END "
            "AS published_at OFFSET 0) t",
        )
        # Facets: one or two support types and focus areas, a sector, instruments for finance offers.
        cursor.execute(
            "INSERT INTO posts_post_support_types (post_id, supporttypeterm_id) "
            "SELECT id, (ARRAY['finance','technology','capacity_building'])[1 + id % 3] FROM posts_post "
            "UNION ALL SELECT id, (ARRAY['finance','technology','capacity_building'])[1 + (id + 1) % 3] "
            "FROM posts_post WHERE id % 4 = 0"
        )
        cursor.execute(
            "INSERT INTO posts_post_focus_areas (post_id, focusareaterm_id) "
            "SELECT id, (ARRAY['adaptation','mitigation','clean_energy'])[1 + (id / 3) % 3] FROM posts_post "
            "UNION ALL SELECT id, (ARRAY['adaptation','mitigation','clean_energy'])[1 + (id / 3 + 1) % 3] "
            "FROM posts_post WHERE id % 5 = 0"
        )
        cursor.execute(
            "INSERT INTO posts_post_sectors (post_id, sectorterm_id) "
            "SELECT p.id, s.key FROM posts_post p JOIN (SELECT key, row_number() OVER (ORDER BY key) - 1 rn "
            "FROM posts_sectorterm) s ON s.rn = p.id % 16"
        )
        cursor.execute(
            "INSERT INTO posts_post_instruments (post_id, instrumentterm_id) "
            "SELECT id, (ARRAY['grant','concessional_loan','guarantee','results_based_payment','debt_swap',"
            "'in_kind'])[1 + id % 6] FROM posts_post WHERE kind = 'offer' AND id % 3 = 0"
        )
        # Matches: each published need paired with k distinct published offers (j * 13 apart), found up to 30
        # days after both were published; 30% become strong, 6% get need-side interest, 5% offer-side,
        # and those with both are connections.
        cursor.execute(
            "SELECT count(*) FILTER (WHERE kind = 'need'), count(*) FILTER (WHERE kind = 'offer') "
            "FROM posts_post WHERE published_at IS NOT NULL"
        )
        needs, offers = cursor.fetchone()
        per_need = -(-matches // (needs * 9 // 10))
        assert offers > per_need * 13, "too few offers for distinct pairs"
        cursor.execute(
            # One need in ten is never matched.
            "CREATE TEMP TABLE bench_needs AS SELECT id, published_at, row_number() OVER (ORDER BY id) rn "
            "FROM posts_post WHERE kind = 'need' AND published_at IS NOT NULL AND id % 10 <> 7"
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_offers AS SELECT id, published_at, row_number() OVER (ORDER BY id) - 1 rn "
            "FROM posts_post WHERE kind = 'offer' AND published_at IS NOT NULL"
        )
        cursor.execute("CREATE UNIQUE INDEX ON bench_offers (rn)")
        strong = "(x.k % 10 < 3)"
        need_yes = "(x.k % 50 < 3)"
        offer_yes = "(x.k % 20 = 0 OR x.k % 50 = 1)"
        need_at = "x.created + (2 + x.k % 11) * interval '1 day'"
        offer_at = "x.created + (3 + x.k % 13) * interval '1 day'"
        insert_select(
            cursor,
            Match,
            {
                "need_id": "x.need_id",
                "offer_id": "x.offer_id",
                "score": f"CASE WHEN {strong} THEN 0.6 + random() * 0.4 ELSE random() * 0.6 END",
                "created_at": "x.created",
                "updated_at": "now()",
                "is_active": "true",
                "strong_at": f"CASE WHEN {strong} THEN x.created + (x.k % 7) * interval '1 day' END",
                "need_interest": f"CASE WHEN {need_yes} THEN 'interested' ELSE '' END",
                "need_interest_at": f"CASE WHEN {need_yes} THEN {need_at} END",
                "offer_interest": f"CASE WHEN {offer_yes} THEN 'interested' ELSE '' END",
                "offer_interest_at": f"CASE WHEN {offer_yes} THEN {offer_at} END",
                "connected_at": f"CASE WHEN {need_yes} AND {offer_yes} THEN greatest({need_at}, {offer_at}) END",
            },
            "(SELECT n.id need_id, o.id offer_id, n.rn * 31 + j k, "
            "greatest(n.published_at, o.published_at) + random() * interval '30 days' created "
            f"FROM bench_needs n CROSS JOIN generate_series(1, {per_need}) j "
            f"JOIN bench_offers o ON o.rn = (n.rn * 7 + j * 13) % {offers} LIMIT {matches}) x",
        )
        for _name, definition in indexes:
            cursor.execute(definition)
        cursor.execute("DROP TABLE bench_needs, bench_offers")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _report_slow_statement(execute, sql, params, many, context):
    started = time.perf_counter()
    result = execute(sql, params, many, context)
    elapsed = time.perf_counter() - started
    if elapsed > 2:
        print(f"   build step {elapsed:5.1f} s: {sql[:90]}")
    return result


def insert_select(cursor, model, columns: dict[str, str], source: str) -> None:
    """INSERT ... SELECT with the given SQL per column and each other column's model default.

    Django defaults are not database defaults, so every NOT NULL column the benchmark does not set gets the
    field's default as a parameter: new fields added to the models later do not break the build.
    """
    names, expressions, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        names.append(field.column)
        if field.column in columns:
            expressions.append(columns[field.column].replace("%", "%%"))
        elif field.null:
            expressions.append("NULL")
        else:
            default = field.get_default()
            if field.get_internal_type() == "JSONField":
                expressions.append("%s::jsonb")
                params.append(json.dumps(default))
            else:
                expressions.append("%s")
                params.append(default)
    cursor.execute(
        f"INSERT INTO {model._meta.db_table} ({', '.join(names)}) SELECT {', '.join(expressions)} "
        f"FROM {source.replace('%', '%%')}",
        params,
    )


def measure(*, repeat: int, explain: bool) -> int:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from apps.matching.models import Match
    from apps.posts.models import Post
    from apps.stocktake.selectors import export_headline, stocktake_export, stocktake_waiting_needs

    print(f"   {Post.objects.count():,} posts, {Match.objects.count():,} matches in the database")
    query_count = 0
    for label, filters in (("no filter", {}), (f"filters {FILTERED}", FILTERED)):
        times = []
        for _ in range(repeat + 1):  # the first run warms the caches and is not counted
            reset_queries()
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                export = stocktake_export(**PERIOD, filters=filters)
                stocktake_waiting_needs(**PERIOD, filters=filters, limit=100)
                times.append(time.perf_counter() - started)
        times = times[1:]
        if not filters:
            query_count = len(queries.captured_queries)
        in_database = sum(float(q["time"]) for q in queries.captured_queries)
        print(
            f"   report ({label}): best {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms, "
            f"{len(queries.captured_queries)} queries ({in_database * 1000:.0f} ms in the database), "
            f"{len(export['figures'])} figure rows; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(f"   headline: {export_headline(export)}")
        slowest = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:5]
        for query in slowest:
            print(f"     {float(query['time']) * 1000:6.0f} ms  {query['sql'][:150]}")
        if explain:
            with connection.cursor() as cursor:
                for query in slowest[:3]:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                    print("\n".join(row[0] for row in cursor.fetchall()))
    return query_count


if __name__ == "__main__":
    main()
