"""Indexes the stocktake report reads, on tables of the posts and matching apps.

- Each Party's first published post (new Parties): one index probe per Party instead of a GROUP BY over every
  post.
- Under filters, the need-side interests of the needs under the filters, read from the index alone.

Raw SQL (valid on PostgreSQL and SQLite) rather than AddIndex, because the posts and matching models do not
declare these indexes, so the autodetector must not see them either.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("stocktake", "0001_initial"),
        ("posts", "0004_api_sync_indexes"),
        ("matching", "0003_need_interest_index"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX stocktake_post_party_published ON posts_post (party_id, published_at)"
            " WHERE published_at IS NOT NULL",
            reverse_sql="DROP INDEX stocktake_post_party_published",
        ),
        migrations.RunSQL(
            "CREATE INDEX stocktake_match_need_interested ON matching_match (need_id, need_interest_at)"
            " WHERE need_interest = 'interested'",
            reverse_sql="DROP INDEX stocktake_match_need_interested",
        ),
    ]
