"""Data steps of the matching app's migrations, run on the database as an upgrade would."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_chunks_of_a_run_going_at_the_upgrade_stay_written():
    """Before chunks were planned, a chunk's row was made by its commit: a row without `written_at` would read
    as planned, and a second delivery of that chunk would count twice."""
    before, after = [("matching", "0016_rebuildchunk")], [("matching", "0017_rebuild_chunks_planned")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        run = old.get_model("matching", "RebuildRun").objects.create(model_version=1, total_chunks=2)
        old.get_model("matching", "RebuildChunk").objects.create(run=run, side="need", first_post_id=7)
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        chunk = new.get_model("matching", "RebuildChunk").objects.get()
        assert chunk.written_at is not None and chunk.last_post_id is None
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
