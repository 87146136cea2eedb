"""The in-process rebuild's writer thread (PostgreSQL, outside a transaction): same result, errors surface."""

import threading

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

    def spy(*args):
        threads.append(threading.current_thread().name)
        return write(*args)

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

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return write(*args)

    monkeypatch.setattr(pipeline, "_write_chunk", failing)
    with pytest.raises(RuntimeError, match="went away"):
        pipeline.rebuild_start(sync=True)
    run = RebuildRun.objects.get()
    assert run.done_chunks == 1  # nothing written after the failure
    assert len(calls) == 2
    # The failed run is ended (it holds no other run back) and retires nothing.
    assert run.finished_at is not None and run.done_chunks < run.total_chunks
    assert sorted(Match.objects.active().values_list("need_id", "offer_id")) == before
