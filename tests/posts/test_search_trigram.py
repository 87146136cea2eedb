"""Search's indexes on PostgreSQL: the trigram index that serves searches in Arabic and Cyrillic letters
(migration posts 0012), and the migration's way on without it where the extension cannot be created; the stored
English vector (0013), which a search of a common word reads rather than computes for each post; the stored
vector of Chinese and Japanese characters (0015), which serves searches in those scripts."""

import importlib
import logging

import pytest
from django.db import connection

from apps.posts.models import Post
from apps.posts.selectors import post_search

from ..factories import PostFactory, party

pytestmark = pytest.mark.django_db

migration = importlib.import_module("apps.posts.migrations.0012_search_trigram_index")
cjk_migration = importlib.import_module("apps.posts.migrations.0015_search_cjk_column")


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("pg_trgm is PostgreSQL's; SQLite, the embedded default, has no index to use")


def index_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'post_search_trigram'")
        return cursor.fetchone() is not None


def plan(qs) -> str:
    """The plan PostgreSQL chooses for the query as Django writes it (`search_text::text LIKE ...`), with its
    statistics fresh and the index's pending list merged, as autovacuum leaves them (rows just written wait in
    that list, which the planner prices as read in full)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE posts_post")
        if index_exists():
            cursor.execute("SELECT gin_clean_pending_list('post_search_trigram')")
    return qs.explain()


def crowd(n: int = 3000) -> None:
    """`n` published English posts, written in one statement: a table where reading every row costs more than
    the index."""
    kenya = party("KEN")
    Post.objects.bulk_create(
        Post(
            kind="need",
            status="published",
            party=kenya,
            title=f"Early-warning system for flood-prone districts {i}",
            description="Hydro-meteorological stations, forecasting capacity and community alerts. " * 5,
            search_text=f"early-warning system for flood-prone districts {i} "
            + "hydro stations forecasting " * 10,
            language="en",
        )
        for i in range(n)
    )


def test_the_migration_made_the_index():
    assert index_exists()


@pytest.mark.parametrize("query", ["пожаров", "الفيضانات"])
def test_arabic_and_russian_are_searched_through_the_index(query):
    crowd()
    PostFactory(
        party=party("RUS"), language="ru", title="Пожары в лесах Сибири", description="Борьба с пожарами."
    )
    PostFactory(
        party=party("EGY"), language="ar", title="الإنذار المبكر بالفيضانات", description="محطات الرصد."
    )
    found = post_search(Post.objects.published(), query)
    assert found.count() == 1  # the search still finds what it did
    assert "post_search_trigram" in plan(found)
    # Without the index, the same query reads every post.
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX post_search_trigram")  # undone with the test's transaction
    assert "post_search_trigram" not in plan(found) and "Seq Scan" in plan(found)


def cjk_plan(qs) -> str:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE posts_post")
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'post_search_cjk'")
        if cursor.fetchone() is not None:
            cursor.execute("SELECT gin_clean_pending_list('post_search_cjk')")
    return qs.explain()


def test_chinese_is_searched_through_the_index_of_its_characters():
    """A Chinese query is searched as pairs of characters (`_within_terms`), which hold no trigram; the vector of
    the posts' characters (0015) leaves only the posts holding each of them to be read."""
    crowd()
    PostFactory(
        party=party("CHN"), language="zh", title="山洪预警系统建设", description="山区社区的预警系统。"
    )
    PostFactory(party=party("CHN"), language="zh", title="干旱保险", description="农业")
    found = post_search(Post.objects.published(), "山洪预警系统")
    assert [p.title for p in found] == ["山洪预警系统建设"]
    assert "post_search_cjk" in cjk_plan(found)
    assert "post_search_cjk" in cjk_plan(found.order_by().values("pk"))  # the count too
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX post_search_cjk")  # undone with the test's transaction
    assert "Seq Scan" in cjk_plan(found)
    assert [p.title for p in found] == ["山洪预警系统建设"]


# Texts and queries where a vector of characters could lose a post the LIKE finds: a character the text search
# parser reads as no word ('・'), a query of no other, a text past the 16,383 positions PostgreSQL counts, kana,
# compatibility ideographs (folded), scripts mixed in one word, an excluded term, a quoted phrase.
EDGE_TEXTS = [
    ("山洪预警系统建设", "山区社区的预警系统。"),
    ("干旱保险", "农业保险・干旱指数"),
    ("ミャンマーの洪水", "コミュニティ・防災"),
    ("長い説明", "気候" * 9000 + "洪水予報"),
    ("CO2排放核算", "MRV系统・报告; пожары"),
    ("Flood warnings", "No Chinese here at all."),
    ("豈有此理", "兼容汉字"),
]
EDGE_QUERIES = [
    "预警", "山洪预警系统", "・", "保险・", "ー", "ミャンマー", "洪水予報", "気候洪水", "CO2排放", "排放 MRV",
    "预警 -干旱", '"预警系统"', "豈", "洪水", "系统 OR 保险", "旱", "・ пожар",
]  # fmt: skip


def test_the_characters_vector_never_loses_a_post_the_search_finds(monkeypatch):
    from apps.posts import selectors

    for title, description in EDGE_TEXTS:
        PostFactory(party=party("CHN"), language="zh", title=title, description=description)
    with_index = {q: sorted(p.title for p in post_search(Post.objects.published(), q)) for q in EDGE_QUERIES}
    # The same searches by their LIKEs alone: the condition on the vector made neutral.
    monkeypatch.setattr(selectors, "_SEARCH_CJK_SQL", "(%s IS NOT NULL AND %s IS NOT NULL)")
    without = {q: sorted(p.title for p in post_search(Post.objects.published(), q)) for q in EDGE_QUERIES}
    assert with_index == without
    assert with_index["洪水予報"] == ["長い説明"]  # past the 16,383rd character
    assert with_index["ー"] == ["ミャンマーの洪水"]
    # '・' is no word for the parser: the vector asks nothing of a query with no other such character.
    assert with_index["・ пожар"] == ["CO2排放核算"]
    assert with_index["保险・"] == ["干旱保险"]
    assert with_index["预警 -干旱"] == ["山洪预警系统建设"]


def test_the_characters_vector_follows_the_text():
    post = PostFactory(party=party("CHN"), language="zh", title="洪水预警", description="社区")
    english = PostFactory(title="Mangroves of Lamu")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, search_cjk::text FROM posts_post ORDER BY id")
        vectors = dict(cursor.fetchall())
    assert vectors[english.pk] == ""  # nothing stored for a post without such characters
    assert set(vectors[post.pk].replace("'", "").split()) == set("洪水预警社区")
    assert list(post_search(Post.objects.all(), "预警")) == [post]
    Post.objects.filter(pk=post.pk).update(search_text="干旱保险")
    assert list(post_search(Post.objects.all(), "预警")) == []
    assert list(post_search(Post.objects.all(), "干旱")) == [post]


def test_the_characters_migration_is_undone_and_done_again():
    def columns() -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'posts_post'"
            )
            return {row[0] for row in cursor.fetchall()}

    post = PostFactory(party=party("CHN"), language="zh", title="洪水预警", description="社区")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no ALTER TABLE while the post's checks wait
    with connection.schema_editor() as editor:
        cjk_migration.unstore(None, editor)
        assert "search_cjk" not in columns()
        cjk_migration.store(None, editor)
    assert "search_cjk" in columns()
    assert list(post_search(Post.objects.all(), "预警")) == [post]  # filled for the rows already there


@pytest.mark.parametrize(
    ("name", "sql", "said"),
    [
        # No extension to be had (or no right to create it).
        ("EXTENSION_SQL", "CREATE EXTENSION IF NOT EXISTS pg_trgm_not_installed_here", "could not be made"),
        # The extension there, but its operator class out of reach (a schema off the search path).
        ("INDEX_SQL", "CREATE INDEX post_search_trigram ON posts_post USING GIN (search_text no_such_ops)",
         "could not be made"),
        # A database whose LC_CTYPE is C: no trigram in a Cyrillic word.
        ("PROBE_SQL", "SELECT show_trgm('пожар') = '{}'", "finds no trigram"),
    ],
)  # fmt: skip
def test_without_a_usable_index_the_migration_goes_on_and_says_why(monkeypatch, caplog, name, sql, said):
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX post_search_trigram")  # undone with the test's transaction
    monkeypatch.setattr(migration, name, sql)
    with caplog.at_level(logging.WARNING, logger="apps.posts"), connection.schema_editor() as editor:
        migration.create_index(None, editor)
    assert not index_exists()
    (record,) = [r for r in caplog.records if said in r.getMessage()]
    if said == "could not be made":
        assert migration.INDEX_SQL in record.getMessage()  # what to run once it can be
    # The failed statement was undone on its own: the migration's transaction goes on.
    assert Post.objects.count() == 0
    PostFactory(title="Пожары")
    assert post_search(Post.objects.published(), "пожар").count() == 1


def test_undone_and_done_again():
    with connection.schema_editor() as editor:
        migration.drop_index(None, editor)
        assert not index_exists()
        migration.create_index(None, editor)
    assert index_exists()


def test_a_common_english_word_is_counted_from_the_stored_vectors():
    """Over an expression index, the count of a word most posts hold could read the table computing every post's
    vector (1.9 s at 20,000 posts); the list also selected each result's vector. Stored, no plan computes it."""
    crowd()
    found = post_search(Post.objects.published(), "flood forecasting")
    assert found.count() == 3000
    assert "to_tsvector" not in plan(found)
    assert "to_tsvector" not in str(found.query)
    count_plan = plan(found.order_by().values("pk"))
    assert "to_tsvector" not in count_plan and "search_vector" in count_plan
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM posts_post WHERE search_vector IS NULL")
        assert cursor.fetchone()[0] == 0  # written by PostgreSQL for every row, bulk inserts included
    post = Post.objects.get(pk=PostFactory(title="Mangroves of Lamu").pk)
    assert list(post_search(Post.objects.all(), "mangrove")) == [post]
    Post.objects.filter(pk=post.pk).update(search_text="coral reefs")  # the column follows the text
    assert list(post_search(Post.objects.all(), "mangrove")) == []
    assert list(post_search(Post.objects.all(), "reef")) == [post]
