"""The English full-text vector of `Post.search_text` stored beside it (a generated column) and indexed, in place of
the index over the expression `to_tsvector('english', search_text)` (0010).

A search for a word most posts hold ("flood", "climate") matches most rows. Over the expression, PostgreSQL
chose, by its statistics of the moment, either the index (24-51 ms to count 17,000 results of 20,000 posts) or
reading the table and computing each post's vector (about 0.1 ms a post: 1.9 s for the same count, measured by
tests/benchmarks/search_scripts.py on a freshly filled table), and the list selected the vector of each result it
showed. Stored, a vector is read, not computed, whatever the plan: 25 ms for that count, and 130-170 ms for
85,000 results at 100,000 posts. Writing a post costs no more (the vector was computed for the index before).

The column is PostgreSQL's own (the models do not name it; SQLite, the embedded default, searches with LIKE):
PostgreSQL writes it whenever `search_text` changes; a change of `search_text`'s type, or its removal, must drop
`search_vector` first (PostgreSQL refuses both while the column depends on it). Adding it rewrites the table once, locked meanwhile: 22 s
for 100,000 posts of about 1,800 characters on the 2-core machine, its index included."""

from django.db import migrations

ADD = """
ALTER TABLE posts_post ADD COLUMN IF NOT EXISTS search_vector tsvector
GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED
"""
INDEX = "CREATE INDEX IF NOT EXISTS post_search_folded ON posts_post USING GIN (search_vector)"
OLD_INDEX = (
    "CREATE INDEX IF NOT EXISTS post_search_folded ON posts_post USING GIN (to_tsvector('english', search_text))"
)


def store(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # The old index goes first: it would otherwise take an entry for each row the rewrite writes.
        # Fail fast rather than queue: once it waits for a lock, every read of posts waits behind it.
        schema_editor.execute("SET LOCAL lock_timeout = '10s'")
        schema_editor.execute("DROP INDEX IF EXISTS post_search_folded")
        schema_editor.execute(ADD)
        schema_editor.execute(INDEX)


def unstore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS post_search_folded")
        schema_editor.execute("ALTER TABLE posts_post DROP COLUMN IF EXISTS search_vector")
        schema_editor.execute(OLD_INDEX)


class Migration(migrations.Migration):
    dependencies = [("posts", "0012_search_trigram_index")]
    operations = [migrations.RunPython(store, unstore)]
