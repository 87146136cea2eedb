"""The in-process rebuild's threads (PostgreSQL, outside a transaction): the writer and the read of the stored
matches give the same result as the caller would, and their errors surface."""

import threading

import numpy as np
import pytest
from django.db import connection

from apps.matching import pipeline
from apps.matching.models import Match, RebuildPair, RebuildRun
from apps.posts.models import Post

from .conftest import CORPUS, make_post

# Committed transactions, so that the writer's own connection sees the posts.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def posts(settings):
    if connection.vendor != "postgresql":
        pytest.skip("the rebuild writes in a thread of its own on PostgreSQL only")
    settings.MATCHING_REBUILD_CHUNK = 2  # several chunks, so that the writer has a queue
    made = {row[0]: make_post(*row) for row in CORPUS}  # matched eagerly on commit
    assert not Post.objects.filter(matching_pending=True).exists()
    return made


def test_the_writer_thread_stores_what_the_caller_would(posts, monkeypatch):
    # Matched as the corpus grew, under earlier model versions: every post again under the current one.
    pipeline.matching_run_for_posts(post_ids=list(Post.objects.values_list("id", flat=True)))
    incremental = sorted(Match.objects.active().values_list("need_id", "offer_id", "score"))
    Match.objects.all().delete()
    threads = []
    write = pipeline._write_chunk

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return write(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_write_chunk", spy)
    run = pipeline.rebuild_start(sync=True)
    assert run.finished_at is not None and run.done_chunks == run.total_chunks > 2
    assert set(threads) == {"rebuild-writer"} and len(threads) == run.total_chunks
    rebuilt = sorted(Match.objects.active().values_list("need_id", "offer_id", "score"))
    assert [(n, o) for n, o, _ in rebuilt] == [(n, o) for n, o, _ in incremental]
    assert [s for *_, s in rebuilt] == pytest.approx([s for *_, s in incremental], abs=1e-6)
    assert not RebuildPair.objects.exists()


def test_an_error_of_the_writer_stops_the_rebuild_in_the_caller(posts, monkeypatch):
    before = sorted(Match.objects.active().values_list("need_id", "offer_id"))
    calls = []
    write = pipeline._write_chunk

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return write(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_write_chunk", failing)
    with pytest.raises(RuntimeError, match="went away"):
        pipeline.rebuild_start(sync=True)
    run = RebuildRun.objects.get()
    assert run.done_chunks == 1  # nothing written after the failure
    assert len(calls) == 2
    # The failed run is ended (it holds no other run back) and retires nothing.
    assert run.finished_at is not None and run.done_chunks < run.total_chunks
    assert sorted(Match.objects.active().values_list("need_id", "offer_id")) == before


def test_the_stored_matches_are_read_in_a_thread_of_their_own_and_serve_the_whole_run(posts, monkeypatch):
    from datetime import timedelta

    pipeline.rebuild_start(sync=True)  # everything stored under the current model
    kept, unranked = Match.objects.active().order_by("pk")[:2]
    # A pair the next run does not rank (left out of what it ranked, below), last written before the run
    # started: retired at the end, found in the read of the stored matches at the start.
    readers = []
    read = pipeline.StoredFingerprints.read

    def spy():
        readers.append(threading.current_thread().name)
        return read()

    monkeypatch.setattr(pipeline.StoredFingerprints, "read", staticmethod(spy))
    finish = pipeline.rebuild_finish
    seen = {}

    def finish_spy(run, *, ranked=None, active=None):
        seen["active"] = active
        drop = pipeline._pair_keys([(unranked.need_id, unranked.offer_id)])
        return finish(run, ranked=ranked[~np.isin(ranked, drop)], active=active)

    monkeypatch.setattr(pipeline, "rebuild_finish", finish_spy)
    Match.objects.filter(pk=unranked.pk).update(updated_at=kept.updated_at - timedelta(minutes=1))
    reads = []
    monkeypatch.setattr(pipeline, "_active_pairs_before", lambda when: reads.append(when))
    run = pipeline.rebuild_start(sync=True)

    assert readers == ["rebuild-stored"]
    # The finish took the active matches from the start's read: no second read of every active match.
    assert reads == [] and unranked.pk in seen["active"].ids.tolist()
    assert run.finished_at is not None
    assert Match.objects.get(pk=kept.pk).is_active
    assert not Match.objects.get(pk=unranked.pk).is_active


def test_an_error_of_the_read_of_the_stored_matches_stops_the_rebuild_in_the_caller(posts, monkeypatch):
    before = sorted(Match.objects.active().values_list("need_id", "offer_id", "updated_at"))

    def failing():
        raise RuntimeError("the scan was cancelled")

    monkeypatch.setattr(pipeline.StoredFingerprints, "read", staticmethod(failing))
    with pytest.raises(RuntimeError, match="cancelled"):
        pipeline.rebuild_start(sync=True)
    run = RebuildRun.objects.get()
    assert run.finished_at is not None and run.done_chunks == 0
    assert sorted(Match.objects.active().values_list("need_id", "offer_id", "updated_at")) == before


def test_a_failed_run_is_recorded_once_the_database_answers_again(monkeypatch, caplog):
    """The run that a database outage stopped could not be recorded as failed on the connection the outage
    broke: unfinished, it held every other rebuild's retiring back for 30 minutes."""
    from django.db import OperationalError, connection

    from apps.matching.models import RebuildRun

    run = RebuildRun.objects.create(model_version=1, total_chunks=3, in_process=True)
    monkeypatch.setattr(pipeline.time, "sleep", lambda seconds: None)
    refused = []

    def away_twice(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and "matching_rebuildrun" in sql and len(refused) < 2:
            refused.append(sql)
            raise OperationalError("the database system is starting up")
        return execute(sql, params, many, context)

    with caplog.at_level("WARNING", logger="apps.matching.pipeline"), connection.execute_wrapper(away_twice):
        pipeline._end_as_failed(run.pk)
    run.refresh_from_db()
    assert len(refused) == 2 and run.failed and run.finished_at is not None
    assert sum("trying again" in r.getMessage() for r in caplog.records) == 2
