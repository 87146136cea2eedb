"""The site's search in each script on PostgreSQL, with and without the trigram index (migration posts 0012) and
the index of Chinese and Japanese characters (0015), as ratios in the same run.

    python tests/benchmarks/search_scripts.py --database-url postgres://postgres@127.0.0.1:5432/nma_bench_search
        [--posts 100000] [--repeat 15]

The database is the benchmark's own (its name must contain "bench"): migrated, emptied of posts and filled
with --posts published posts in one INSERT ... SELECT per language: 85% English, 5% each Russian, Arabic and
Chinese, the languages mixed through the publication dates (a prime's multiples modulo the number of posts),
~600 characters of the domain's words each, their folded search text written as the platform writes it
(`folding.post_search_text`). Each query goes through `post_search` over the published posts, as the list page
and the API call it: the first page (20 posts, newest first) and the count, each timed as the median of
--repeat runs. Then each index in turn is dropped, the same queries timed again, and the index made again.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# (language, share of the posts, a title, a description): numbers make each post's text its own.
TEXTS = [
    (
        "en",
        85,
        "Early-warning system for flood-prone districts {i}",
        "Hydro-meteorological stations, forecasting capacity and community alerts for river floods; training "
        "of technicians, maintenance of the network and data sharing with neighbouring basins ({i}). ",
    ),
    (
        "ru",
        5,
        "Система раннего предупреждения о наводнениях {i}",
        "Гидрометеорологические станции, прогнозирование паводков и оповещение общин; обучение специалистов, "
        "обслуживание сети и обмен данными с соседними бассейнами ({i}). ",
    ),
    (
        "ar",
        5,
        "نظام الإنذار المبكر بالفيضانات {i}",
        "محطات الأرصاد الجوية والهيدرولوجية والتنبؤ بالفيضانات وتنبيه المجتمعات المحلية؛ تدريب الفنيين وصيانة "
        "الشبكة وتبادل البيانات مع الأحواض المجاورة ({i}). ",
    ),
    (
        "zh",
        5,
        "洪水预警系统 {i}",
        "水文气象站、洪水预报能力和社区警报；技术人员培训、网络维护以及与邻近流域的数据共享（{i}）。",
    ),
]
# (label, query): a rare word in each script and a common one, as a focal point would type them.
QUERIES = [
    ("English, common", "flood forecasting"),
    ("Russian, common", "паводков"),
    ("Russian, rare", "пожаров"),
    ("Arabic, common", "الفيضانات"),
    ("Arabic, rare", "الجفاف"),
    ("Chinese, common", "洪水预警"),
    ("Chinese, rare", "干旱"),
]
INDEXES = ("post_search_trigram", "post_search_cjk")


def build(posts: int) -> None:
    from django.db import connection

    from apps.parties.models import Party
    from apps.posts.folding import post_search_text
    from apps.posts.models import Post

    Post.objects.all().delete()
    party_ids = list(Party.objects.values_list("pk", flat=True)[:150])
    with connection.cursor() as cursor:
        first = 0
        for language, share, title, description in TEXTS:
            n = posts * share // 100
            # The folded text of one post, with a marker where its number goes (the fold keeps digits).
            title_sql = title.replace("{i}", "' || g || '")
            description_sql = (description * 3).replace("{i}", "' || g || '")
            folded = post_search_text(title, description * 3).replace("{i}", "' || g || '")
            cursor.execute(
                "INSERT INTO posts_post (kind, status, party_id, external_id, title, description, language, "
                "search_text, eligible, aims, involves_iplc, declares_voluntary, declares_no_transfer, "
                "declares_ndc, declares_rights, declares_safeguards, contact_name, contact_email, return_reason, "
                "outcome, created_at, updated_at, published_at, matching_pending) "
                "SELECT CASE WHEN mod(g, 2) = 0 THEN 'need' ELSE 'offer' END, 'published', "
                "(%s::int[])[1 + mod(g, %s)], 'bench-' || g, "
                f"'{title_sql}', '{description_sql}', %s, '{folded}', "
                "'[]', '[]', false, true, true, false, false, false, '', '', '', '', "
                "now() - mod(g * 7919, %s) * interval '1 minute', now() - mod(g * 7919, %s) * interval '1 minute', "
                "now() - mod(g * 7919, %s) * interval '1 minute', false "
                "FROM generate_series(%s, %s) AS g",
                [party_ids, len(party_ids), language, posts, posts, posts, first + 1, first + n],
            )
            first += n
        cursor.execute("ANALYZE posts_post")


def timed(qs, repeat: int) -> tuple[float, float, int]:
    """Median ms of the first page and of the count, and the count."""
    page, count = [], []
    found = 0
    for _ in range(repeat):
        started = time.perf_counter()
        list(qs[:20])
        page.append(time.perf_counter() - started)
        started = time.perf_counter()
        found = qs.count()
        count.append(time.perf_counter() - started)
    return statistics.median(page) * 1000, statistics.median(count) * 1000, found


def measure(repeat: int) -> dict[str, tuple[float, float, int]]:
    from apps.posts.models import Post
    from apps.posts.selectors import post_search

    published = Post.objects.published().order_by("-published_at", "-created_at", "-id")
    return {label: timed(post_search(published, query), repeat) for label, query in QUERIES}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    from tests.benchmarks.databases import django_on_bench_database

    django_on_bench_database(args.database_url)
    from django.db import connection

    definitions = {}
    with connection.cursor() as cursor:
        for index in INDEXES:
            cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [index])
            if cursor.fetchone() is None:
                sys.exit(
                    f"The index {index} is not there: its migration could not make it (see its warning)."
                )
            cursor.execute(f"SELECT pg_get_indexdef('{index}'::regclass)")
            definitions[index] = cursor.fetchone()[0]

    started = time.perf_counter()
    build(args.posts)
    sizes = []
    with connection.cursor() as cursor:
        for index in INDEXES:
            cursor.execute(f"SELECT gin_clean_pending_list('{index}')")  # as autovacuum leaves it
            cursor.execute(f"SELECT pg_size_pretty(pg_relation_size('{index}'))")
            sizes.append(f"{index} {cursor.fetchone()[0]}")
        cursor.execute("ANALYZE posts_post")
    print(f"{args.posts:,} posts built in {time.perf_counter() - started:.1f} s; indexes: {', '.join(sizes)}")

    with_indexes = measure(args.repeat)
    without = {}
    for index in INDEXES:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX {index}")
        without[index] = measure(args.repeat)
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(definitions[index])
            print(f"{index} made again in {time.perf_counter() - started:.1f} s")

    for index in INDEXES:
        print(f"\nwithout {index}")
        print(f"{'query':18s} {'found':>7s} | {'page, indexed':>13s} {'without':>9s} {'ratio':>6s} | "
              f"{'count, indexed':>14s} {'without':>9s} {'ratio':>6s}")  # fmt: skip
        for label, _query in QUERIES:
            page, count, found = with_indexes[label]
            page0, count0, found0 = without[index][label]
            assert found == found0, (label, found, found0)
            print(f"{label:18s} {found:7,d} | {page:10.1f} ms {page0:6.1f} ms {page / page0:6.2f} | "
                  f"{count:11.1f} ms {count0:6.1f} ms {count / count0:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
