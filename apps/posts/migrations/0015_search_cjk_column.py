"""The Chinese and Japanese characters of `Post.search_text`, each a word of a stored vector (a generated column)
and indexed, so that a search in those scripts reads only the posts that hold its characters.

A Chinese query is searched within the folded texts (`post_search`: `search_text LIKE '%预警%'`, a run of four
characters or more as its pairs): a pair holds no trigram, so the trigram index of 0012 cannot serve it, and every
published post was read: 55 to 300 ms at 100,000 posts for a word none holds, by the machine's load, and 0.8 ms
through this index (tests/benchmarks/search_scripts.py).
`post_search` now also asks this vector for every character of the query (`search_cjk @@ '预' & '警'`): a
condition each post it finds meets anyway, which the index answers, before the LIKE reads the few posts left.
The vector holds no positions (`strip`): PostgreSQL counts positions only up to 16,383, which a description of
20,000 characters passes, and a phrase read from them could miss a post the LIKE finds.

Characters, not words: the text search parser reads a run of Chinese characters as one word. Spaced out, each is
a word under any LC_CTYPE, C included (checked). A post without such characters holds an empty vector.

The column is PostgreSQL's own, as `search_vector` (0013): the models do not name it, SQLite searches with LIKE,
and a change of `search_text`'s type or its removal must drop it first. Adding it rewrites the table once, locked
meanwhile (the lock waited for at most 10 s)."""

from django.db import migrations

# The ranges of selectors._CJK (kana, CJK extension A, unified ideographs, compatibility ideographs).
CJK_CLASS = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
ADD = rf"""
ALTER TABLE posts_post ADD COLUMN IF NOT EXISTS search_cjk tsvector
GENERATED ALWAYS AS (
    strip(to_tsvector('simple', regexp_replace(
        regexp_replace(search_text, '[^{CJK_CLASS}]+', ' ', 'g'), '([{CJK_CLASS}])', '\1 ', 'g'
    )))
) STORED
"""
INDEX = "CREATE INDEX IF NOT EXISTS post_search_cjk ON posts_post USING GIN (search_cjk)"


def store(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET LOCAL lock_timeout = '10s'")
        schema_editor.execute(ADD)
        schema_editor.execute(INDEX)


def unstore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS post_search_cjk")
        schema_editor.execute("ALTER TABLE posts_post DROP COLUMN IF EXISTS search_cjk")


class Migration(migrations.Migration):
    dependencies = [("posts", "0014_post_event_recalled")]
    operations = [migrations.RunPython(store, unstore)]
