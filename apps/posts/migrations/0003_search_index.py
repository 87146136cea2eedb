"""A full-text index over title and description on PostgreSQL (SQLite searches with LIKE instead)."""

from django.db import migrations

CREATE = """
CREATE INDEX IF NOT EXISTS post_search_vector ON posts_post
USING GIN (to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(description, '')))
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS post_search_vector")


class Migration(migrations.Migration):
    dependencies = [("posts", "0002_load_taxonomies")]
    operations = [migrations.RunPython(create, drop)]
