"""The full-text index with English stemming: "mangrove" finds "mangroves", "flood" finds "flooding" (the
'simple' configuration of 0003 matched exact words only). Posts in other languages are stemmed by the same
rules on both sides, so their words still find themselves."""

from django.db import migrations

CREATE = """
CREATE INDEX IF NOT EXISTS post_search_vector_english ON posts_post
USING GIN (to_tsvector('english', coalesce(title, '') || ' ' || coalesce(description, '')))
"""
CREATE_SIMPLE = """
CREATE INDEX IF NOT EXISTS post_search_vector ON posts_post
USING GIN (to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(description, '')))
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)
        schema_editor.execute("DROP INDEX IF EXISTS post_search_vector")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_SIMPLE)
        schema_editor.execute("DROP INDEX IF EXISTS post_search_vector_english")


class Migration(migrations.Migration):
    dependencies = [("posts", "0004_api_sync_indexes")]
    operations = [migrations.RunPython(forwards, backwards)]
