"""A trigram index over `Post.search_text`, for searches in the scripts that full-text search does not serve.

A query in Arabic, Cyrillic or Chinese letters is searched within the folded texts (`post_search`: `search_text
LIKE '%term%'`), which read every published post: 320-360 ms at 100,000 posts for a word none holds or for the
count of one 5,000 hold (tests/benchmarks/search_scripts.py). PostgreSQL's pg_trgm serves such a LIKE from a GIN
index: 1-18 ms. A Chinese term of two characters has no trigram and is still read post by post. The index takes
about 8-11 s to build at 100,000 posts, and 61 MB.

pg_trgm is a trusted extension (PostgreSQL 13 and later): the database's owner may create it without being a
superuser, as hosted databases allow. Where it cannot be created, or the index cannot be made (the extension in a
schema off the search path), or the database's LC_CTYPE is C (pg_trgm then finds no trigram in other scripts'
letters), the migration says so (a warning in the log) and goes on without the index: searches work as before,
only slower; `INDEX_SQL` below, run once the extension is there, adds it."""

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger("apps.posts")

EXTENSION_SQL = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
INDEX_SQL = (
    "CREATE INDEX IF NOT EXISTS post_search_trigram ON posts_post USING GIN (search_text gin_trgm_ops)"
)


# A Cyrillic word: under a database whose LC_CTYPE is C, pg_trgm counts no letter beyond ASCII as one, finds no
# trigram in it, and an index would serve no search it is for.
PROBE_SQL = "SELECT show_trgm('пожар') <> '{}'"


def create_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    advice = "To speed them up, have the database's owner run: %s; %s;" % (EXTENSION_SQL, INDEX_SQL)
    try:
        # In a savepoint: a failure undoes this step alone, and the migration goes on.
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            # Fail fast rather than queue behind a long transaction, with every write to posts queued behind it.
            cursor.execute("SET LOCAL lock_timeout = '10s'")
            cursor.execute(EXTENSION_SQL)
            cursor.execute(PROBE_SQL)
            if not cursor.fetchone()[0]:
                logger.warning(
                    "pg_trgm finds no trigram in Cyrillic or Arabic words under this database's LC_CTYPE (C?): "
                    "the trigram index is not made, and searches in those letters read every post. A database "
                    "made with a UTF-8 locale (C.UTF-8, en_US.UTF-8) serves them."
                )
                return
            cursor.execute(INDEX_SQL)
    except DatabaseError as error:
        logger.warning(
            "The trigram index could not be made (%s): searches in Arabic, Cyrillic and Chinese letters will read "
            "every post. %s",
            str(error).strip(),
            advice,
        )


def drop_index(apps, schema_editor):
    # The extension stays: other databases' objects, or the administrator's, may use it.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS post_search_trigram")


class Migration(migrations.Migration):
    dependencies = [("posts", "0011_amount_ceiling")]
    operations = [migrations.RunPython(create_index, drop_index)]
