"""Matching with a real Celery worker on Redis (and PostgreSQL in CI): the production hand-off."""

import os
import socket
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command
from kombu import pools as kombu_pools

from apps.matching import pipeline
from apps.matching.models import Match
from apps.posts import services
from apps.posts.models import Post
from apps.posts.post_data import PostData
from nma_platform.celery import app as celery_app

from ..conftest import skip_or_fail
from .conftest import CORPUS, SECRETARIAT_ACTOR, make_post

pytestmark = [
    pytest.mark.services,
    # Committed transactions, so the worker thread sees the posts; the migrated reference data is restored.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("REDIS_URL is not set: no Redis broker for a live worker")
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        skip_or_fail(f"Redis is not reachable at {url}")
    return url


@pytest.fixture
def live_worker(settings):
    url = _redis_url()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.update(task_always_eager=False, result_backend=None)
    point_broker(celery_app, url)
    celery_app.control.purge()
    # perform_ping_check needs a result backend, which the platform does not use.
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ):
        yield celery_app
    celery_app.conf.update(task_always_eager=True)
    point_broker(celery_app, "memory://localhost/")


def point_broker(app, url: str) -> None:
    """Switch the app to another broker URL, dropping pooled connections to the old one."""
    app.conf.broker_url = url
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    kombu_pools.reset()  # kombu caches producer pools per connection, globally


def wait_for(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_worker_matches_a_published_post_and_drops_them_on_withdrawal(live_worker):
    posts = {row[0]: make_post(*row, status="draft") for row in CORPUS}
    for post in posts.values():
        if post.external_id != "n-flood":
            services.post_submit(actor=SECRETARIAT_ACTOR, post=post)
            services.post_publish(actor=SECRETARIAT_ACTOR, post=post)
    assert wait_for(lambda: not Post.objects.filter(matching_pending=True).exists())
    need = posts["n-flood"]
    services.post_submit(actor=SECRETARIAT_ACTOR, post=need)
    services.post_publish(actor=SECRETARIAT_ACTOR, post=need)
    assert wait_for(lambda: Match.objects.active().filter(need=need, offer=posts["o-warn"]).exists())
    top = Match.objects.active().filter(need=need).order_by("-score").first()
    assert top.offer_id == posts["o-warn"].pk

    services.post_withdraw(actor=SECRETARIAT_ACTOR, post=need)
    assert wait_for(lambda: not Match.objects.active().filter(need=need).exists())


def test_a_publication_taken_back_leaves_the_workers_matches_until_published_again(live_worker):
    posts = {row[0]: make_post(*row, status="draft") for row in CORPUS}
    for post in posts.values():
        services.post_submit(actor=SECRETARIAT_ACTOR, post=post)
        services.post_publish(actor=SECRETARIAT_ACTOR, post=post)
    need, offer = posts["n-flood"], posts["o-warn"]
    assert wait_for(lambda: Match.objects.active().filter(need=need, offer=offer).exists())
    assert wait_for(lambda: not Post.objects.filter(matching_pending=True).exists())

    services.post_return(actor=SECRETARIAT_ACTOR, post=offer, reason="Not an offer of this provider.")
    assert not Match.objects.active().filter(offer=offer).exists()  # at once, in the same transaction
    # The worker's index still held the offer as published: matching the need again must not bring it back.
    data = PostData(kind="need", title=need.title, description=need.description + " Updated.",
                             support_types=["technology"], focus_areas=["adaptation"], sectors=["disaster_risk", "water"],
                    party=need.party)  # fmt: skip
    services.post_update(actor=SECRETARIAT_ACTOR, post=need, data=data)
    assert wait_for(lambda: not Post.objects.filter(matching_pending=True).exists())
    assert not Match.objects.active().filter(offer=offer).exists()

    # Resubmitted and published again: matched again.
    services.post_submit(actor=SECRETARIAT_ACTOR, post=Post.objects.get(pk=offer.pk))
    services.post_publish(actor=SECRETARIAT_ACTOR, post=Post.objects.get(pk=offer.pk))
    assert wait_for(lambda: Match.objects.active().filter(need=need, offer=offer).exists())


def test_a_broker_outage_loses_nothing(live_worker, settings):
    posts = {row[0]: make_post(*row) for row in CORPUS if row[0] != "o-warn"}
    assert wait_for(lambda: not Post.objects.filter(matching_pending=True).exists())

    # The broker goes away: point Celery at a closed port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    point_broker(live_worker, f"redis://127.0.0.1:{closed_port}/0")
    started = time.monotonic()
    offer = make_post(*next(row for row in CORPUS if row[0] == "o-warn"))  # the publication still succeeds
    assert time.monotonic() - started < 15
    offer.refresh_from_db()
    assert offer.status == "published" and offer.matching_pending

    # The broker is back: the periodic sweep (beat) hands the waiting post to the worker.
    point_broker(live_worker, _redis_url())
    from apps.matching.tasks import sweep_pending

    sweep_pending.delay()
    assert wait_for(lambda: Match.objects.active().filter(offer=offer, need=posts["n-flood"]).exists())
    # The task clears the flag after it has stored the matches (a loaded machine shows the gap between them).
    assert wait_for(lambda: not Post.objects.filter(pk=offer.pk, matching_pending=True).exists())
    offer.refresh_from_db()
    assert not offer.matching_pending


def test_rebuild_fans_out_to_the_workers(live_worker):
    posts = {row[0]: make_post(*row) for row in CORPUS}
    assert wait_for(lambda: not Post.objects.filter(matching_pending=True).exists())
    Match.objects.all().delete()
    run = pipeline.rebuild_start(sync=False, chunk_size=2)
    assert run.total_chunks == 4  # 3 needs and 4 offers in chunks of 2
    assert wait_for(lambda: pipeline.rebuild_progress(run.pk)[2])
    assert Match.objects.active().filter(need=posts["n-flood"], offer=posts["o-warn"]).exists()
    # The command, on the same live worker: it finds the worker, and says what is stored.
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("rebuild_matches", "--chunk-size", "2", "--timeout", "120", stdout=out, stderr=err)
    assert f"; {Match.objects.active().count()} matches stored" in out.getvalue()
    assert "No Celery worker answered" not in err.getvalue()


def test_the_sweep_on_a_worker_queues_again_the_chunks_a_broker_lost(live_worker, monkeypatch):
    """Chunks lost in the broker (a Redis restarted without its data): the beat's sweep, run by a worker,
    queues them again through Redis, and the workers finish the run."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.matching import tasks
    from apps.matching.models import RebuildRun

    posts = {row[0]: make_post(*row) for row in CORPUS}
    assert wait_for(lambda: not Post.objects.filter(matching_pending=True).exists())
    expected = set(Match.objects.active().values_list("need_id", "offer_id"))
    Match.objects.all().delete()
    with monkeypatch.context() as lost:
        lost.setattr(tasks.rebuild_chunk, "delay", lambda *args: None)
        run = pipeline.rebuild_start(sync=False, chunk_size=2)
    silent = timezone.now() - pipeline.CHUNKS_LOST_AFTER - timedelta(seconds=1)
    RebuildRun.objects.filter(pk=run.pk).update(progress_at=silent)
    tasks.sweep_pending.delay()
    assert wait_for(lambda: pipeline.rebuild_progress(run.pk)[2])
    run.refresh_from_db()
    assert not run.failed and run.done_chunks == run.total_chunks == 4 and run.requeued_at is not None
    assert set(Match.objects.active().values_list("need_id", "offer_id")) == expected
    assert Match.objects.active().filter(need=posts["n-flood"], offer=posts["o-warn"]).exists()
