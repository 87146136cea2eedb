"""Accent-insensitive search: `Post.search_text`, title and description folded as the search folds a query
(`apps/posts/folding.py`), filled here for every existing post; the full-text index is rebuilt over it and the
one over the raw texts (0005) dropped, since no query uses it any more.

The fold is done in Python rather than by PostgreSQL's `unaccent`, whose CREATE EXTENSION needs a superuser on
most hosted databases: this migration needs only the rights over the table that every other one needs."""

from django.db import migrations, models

from apps.posts.folding import post_search_text

# Posts read and written per round trip while filling: a few MB of text at most.
BATCH = 1000

CREATE = """
CREATE INDEX IF NOT EXISTS post_search_folded ON posts_post USING GIN (to_tsvector('english', search_text))
"""
CREATE_0005 = """
CREATE INDEX IF NOT EXISTS post_search_vector_english ON posts_post
USING GIN (to_tsvector('english', coalesce(title, '') || ' ' || coalesce(description, '')))
"""


def fill(apps, schema_editor):
    Post = apps.get_model("posts", "Post")
    connection = schema_editor.connection
    table = schema_editor.quote_name(Post._meta.db_table)
    posts = Post._base_manager.using(connection.alias).order_by("pk")
    last = 0
    while rows := list(posts.filter(pk__gt=last).values_list("pk", "title", "description")[:BATCH]):
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET search_text = %s WHERE id = %s",  # noqa: S608 (the table's own name)
                [(post_search_text(title, description), pk) for pk, title, description in rows],
            )
        last = rows[-1][0]


def drop_old_index(apps, schema_editor):
    # Before the fill, which rewrites every row: an index left in place would take an entry for each of them.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS post_search_vector_english")


def create_old_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_0005)


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS post_search_folded")


class Migration(migrations.Migration):
    dependencies = [("posts", "0009_postevent_actor_role")]
    operations = [
        migrations.AddField(
            model_name="post",
            name="search_text",
            field=models.TextField(db_default="", default="", editable=False, verbose_name="search text"),
        ),
        migrations.RunPython(drop_old_index, create_old_index),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.RunPython(create_index, drop_index),
    ]
