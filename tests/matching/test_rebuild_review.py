"""A fanned-out rebuild's checks, as a release review found them: the ranking settings' digest, and the chunks the
sweep queues again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.matching import pipeline, tasks
from apps.matching.models import RebuildRun
from apps.posts import services
from nma_platform.settings.base import env_matching_weights

from .conftest import SECRETARIAT_ACTOR, make_post

pytestmark = pytest.mark.django_db


def _digest_for(monkeypatch, settings, raw: str) -> str:
    """The digest of a process whose environment sets MATCHING_WEIGHTS to `raw`."""
    monkeypatch.setenv("MATCHING_WEIGHTS", raw)
    settings.MATCHING_WEIGHTS = env_matching_weights()
    return pipeline.ranking_settings_digest()


@pytest.mark.parametrize(
    ("written", "same"),
    [
        ('{"lexical": 1, "alignment": 0}', '{"lexical": 1.0, "alignment": 0.0}'),
        ('{"lexical": 0.4}', '{"lexical": 0.40}'),
        ('{"semantic": 0.5, "lexical": 0.4}', '{"lexical": 4e-1}'),  # the defaults, written or not
        ('{"cross_lingual_lexical": -0.0}', "{}"),
        ('{"rerank_depth": 30.0}', '{"rerank_depth": 30}'),
    ],
)
def test_equal_ranking_settings_give_equal_digests(monkeypatch, settings, written, same):
    """A worker whose MATCHING_WEIGHTS wrote 1 where the command's wrote 1.0 (equal weights, equal rankings)
    ended every rebuild as failed: the digest was of the JSON text of the numbers, "1" against "1.0"."""
    assert _digest_for(monkeypatch, settings, written) == _digest_for(monkeypatch, settings, same)


def test_other_ranking_settings_still_give_another_digest(monkeypatch, settings):
    assert _digest_for(monkeypatch, settings, '{"lexical": 1}') != _digest_for(
        monkeypatch, settings, '{"lexical": 0.9}'
    )
    settings.MATCHING_WEIGHTS = {}
    base = pipeline.ranking_settings_digest()
    settings.MATCHING_FLOOR = 0.3
    assert pipeline.ranking_settings_digest() != base


def _need(external_id: str, status: str = "published"):
    return make_post(
        external_id, "need", "KEN", ["technology"], ["adaptation"], ["water"], "en",
        f"River gauges {external_id}", "Automatic river gauges and flood warnings for the villages.",
        status=status,
    )  # fmt: skip


def test_a_chunk_queued_again_holds_the_posts_it_was_planned_with(corpus, monkeypatch):
    """A chunk queued again took every post of its side published between its first and last post when the
    sweep ran: drafts and submissions published meanwhile (their ids between those of the chunk's posts) made
    it grow beyond MATCHING_REBUILD_CHUNK, up to the whole id range (its 11-minute time limit then kills it,
    again at each delivery), although their own matching tasks match them."""
    first = _need("n-a")
    waiting = [_need(f"n-wait-{i}", status="submitted") for i in range(6)]
    last = _need("n-b")
    lost = []
    monkeypatch.setattr(tasks.rebuild_chunk, "delay", lambda *args: lost.append(args))
    run = pipeline.rebuild_start(chunk_size=5)
    planned = {ids[0]: ids for _run, side, ids in lost if side == "need"}
    chunk = next(ids for ids in planned.values() if first.pk in ids)
    assert last.pk in chunk and len(chunk) == 5  # the chunk spans the submissions' ids
    for post in waiting:  # the moderation queue, published while the rebuild runs
        services.post_publish(actor=SECRETARIAT_ACTOR, post=post)
    RebuildRun.objects.filter(pk=run.pk).update(
        progress_at=timezone.now() - pipeline.CHUNKS_LOST_AFTER - timedelta(minutes=1)
    )
    queued = []
    monkeypatch.setattr(tasks.rebuild_chunk, "delay", lambda *args: queued.append(args))
    assert pipeline.rebuild_requeue_lost() == run.total_chunks
    again = {ids[0]: ids for _run, side, ids in queued if side == "need"}
    assert again == planned


@pytest.mark.parametrize("ended", ["dead", "finished"])
def test_a_chunk_whose_run_ended_while_it_ranked_writes_nothing(corpus, monkeypatch, ended):
    """A chunk checked that its run was unfinished before ranking, not when it wrote: a run ended as dead by the
    next rebuild's start (its chunks and pairs deleted) meanwhile, or finished by a first delivery of the same
    chunk (a copy the sweep queued again), got its chunk recorded again, its pairs, one more chunk counted, and
    its matches written after the next run started, which that run's end then keeps whatever it ranks."""
    from apps.matching.models import Match, RebuildChunk, RebuildPair

    lost = []
    monkeypatch.setattr(tasks.rebuild_chunk, "delay", lambda *args: lost.append(args))
    run = pipeline.rebuild_start(chunk_size=2)
    ranking = pipeline.MatchIndex.match_rows
    _run, side, ids = lost[0]

    def ended_meanwhile(*args, **kwargs):
        if ended == "dead":
            RebuildRun.objects.filter(pk=run.pk).update(
                progress_at=timezone.now() - pipeline.RUN_STALLED_AFTER - timedelta(minutes=1)
            )
            pipeline._end_dead_runs()
            RebuildChunk.objects.filter(run=run).delete()  # as the next rebuild's start does
        else:
            pipeline.rebuild_finish(RebuildRun.objects.get(pk=run.pk))
        return ranking(*args, **kwargs)

    monkeypatch.setattr(pipeline.MatchIndex, "match_rows", ended_meanwhile)
    before = timezone.now()
    assert pipeline.rebuild_run_chunk(run_id=run.pk, side=side, post_ids=ids) == 0
    run.refresh_from_db()
    assert run.finished_at is not None and run.done_chunks == 0
    assert (
        not RebuildChunk.objects.filter(run=run).exists() and not RebuildPair.objects.filter(run=run).exists()
    )
    assert not Match.objects.filter(updated_at__gte=before).exists()
