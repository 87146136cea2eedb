"""The search folds a typographic apostrophe (’, ‘, ʼ) as the typewriter's ('): `l’eau` and `l'eau` are one query
(`apps/posts/folding.py`). The stored `search_text` of the posts that hold one is folded again here; the others
are unchanged. Their indexed vectors (0013, 0015) are generated from it."""

from django.db import migrations
from django.db.models import Q

from apps.posts.folding import post_search_text

APOSTROPHES = "’‘ʼ"
BATCH = 1000


def refold(apps, schema_editor):
    Post = apps.get_model("posts", "Post")
    connection = schema_editor.connection
    table = schema_editor.quote_name(Post._meta.db_table)
    holding = Q()
    for mark in APOSTROPHES:
        holding |= Q(title__contains=mark) | Q(description__contains=mark)
    posts = Post._base_manager.using(connection.alias).filter(holding).order_by("pk")
    last = 0
    while rows := list(posts.filter(pk__gt=last).values_list("pk", "title", "description")[:BATCH]):
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET search_text = %s WHERE id = %s",  # noqa: S608 (the table's own name)
                [(post_search_text(title, description), pk) for pk, title, description in rows],
            )
        last = rows[-1][0]


class Migration(migrations.Migration):
    dependencies = [("posts", "0015_search_cjk_column")]
    operations = [migrations.RunPython(refold, migrations.RunPython.noop, elidable=True)]
