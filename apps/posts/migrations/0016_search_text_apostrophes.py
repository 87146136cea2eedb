"""The search folds a typographic apostrophe (’, ‘, ʼ) as the typewriter's ('): `l’eau` and `l'eau` are one query
(`apps/posts/folding.py`). The stored `search_text` of the posts that hold one is folded again here, in one
statement (the fold of such a text is the text with those three replaced: nothing else in the fold touches them);
the others are unchanged. Their indexed vectors (0013, 0015) are generated from it. On PostgreSQL it waits for a
row lock at most 10 s (a long report, a rebuild's transaction), as 0013 and 0015 do: run it again then."""

from django.db import migrations

APOSTROPHES = "’‘ʼ"


def refold(apps, schema_editor):
    connection = schema_editor.connection
    table = connection.ops.quote_name(apps.get_model("posts", "Post")._meta.db_table)
    replaced = "search_text"
    for mark in APOSTROPHES:
        replaced = f"replace({replaced}, '{mark}', '''')"
    holding = " OR ".join(f"search_text LIKE '%%{mark}%%'" for mark in APOSTROPHES)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL lock_timeout = '10s'")
        cursor.execute(f"UPDATE {table} SET search_text = {replaced} WHERE {holding}")  # noqa: S608 (constants)


class Migration(migrations.Migration):
    dependencies = [("posts", "0015_search_cjk_column")]
    operations = [migrations.RunPython(refold, migrations.RunPython.noop, elidable=True)]
