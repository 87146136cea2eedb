"""A broker that stalls (accepts connections, reads requests, answers nothing for a while, as a Redis stopped
with SIGSTOP or behind a network that hangs): a worker waits it out and goes on taking tasks; a publish gives up
after one socket timeout and the request that published still succeeds."""

import select
import socket
import threading

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings

from apps.posts.models import Post
from nma_platform.celery import app as celery_app

from .conftest import CORPUS, make_post
from .test_worker import _redis_url, point_broker, wait_for


class StallingProxy:
    """A TCP proxy in front of Redis. While stalled it accepts connections and reads what clients send, but
    forwards nothing either way; what it holds goes through once it resumes, as with a stopped Redis process
    whose kernel keeps accepting and buffering."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split("//", 1)[1].split("/", 1)[0].split(":")
        self.upstream = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0  # accepted so far
        self.requests: list[bytes] = []  # what clients sent, as received
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: str) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed.set()
        self.flowing.set()
        self.server.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        upstream = None
        to_upstream = to_client = b""
        try:
            while not self.closed.is_set():
                readable, _, _ = select.select([client] + ([upstream] if upstream else []), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        with self.lock:
                            self.requests.append(data)
                        to_upstream += data
                    else:
                        to_client += data
                if self.flowing.is_set():
                    if upstream is None:
                        upstream = socket.create_connection(self.upstream)
                    if to_upstream:
                        upstream.sendall(to_upstream)
                        to_upstream = b""
                    if to_client:
                        client.sendall(to_client)
                        to_client = b""
        except OSError:
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()


def _db_of(url: str) -> str:
    path = url.split("//", 1)[1].split("/", 1)
    return path[1] if len(path) > 1 and path[1] else "0"


@pytest.fixture
def stalling_broker(settings):
    """Celery pointed at Redis through a StallingProxy; tasks published, not run in-process."""
    url = _redis_url()
    proxy = StallingProxy(url)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.update(task_always_eager=False, result_backend=None)
    point_broker(celery_app, proxy.url(_db_of(url)))
    celery_app.control.purge()
    yield proxy
    proxy.resume()
    celery_app.control.purge()
    celery_app.conf.update(task_always_eager=True)
    point_broker(celery_app, "memory://localhost/")
    proxy.close()


# The worker's test task: it stalls the broker just before the worker acknowledges it (tasks acknowledge when
# they end), and lets it answer again `STALL_SECONDS` later; more than CELERY_BROKER_CONNECTION_TIMEOUT, the read
# timeout that the worker's acknowledgement waited.
STALL_SECONDS = 3 * django_settings.CELERY_BROKER_CONNECTION_TIMEOUT
_stall_state: dict = {}


@celery_app.task(name="tests.matching.stall_the_broker")
def stall_the_broker() -> None:
    proxy = _stall_state["proxy"]
    proxy.stall()
    threading.Timer(STALL_SECONDS, proxy.resume).start()


@celery_app.task(name="tests.matching.note_a_run")
def note_a_run(tag: str) -> None:
    _stall_state.setdefault("ran", set()).add(tag)


def test_the_worker_consumes_only_with_the_consumer_options_and_publishes_with_the_short_ones():
    """What the broker's connections are given (no broker needed): the consumer (taking and acknowledging tasks)
    waits for a stalled broker with TCP keepalive, a publish gives up after the connection timeout and tries
    once."""
    timeout = django_settings.CELERY_BROKER_CONNECTION_TIMEOUT
    with celery_app.connection_for_read() as consumer:
        options = consumer.transport_options
        assert options["socket_timeout"] is None
        assert options["socket_keepalive"] is True
        assert options["health_check_interval"] > 0
        assert options["socket_connect_timeout"] == timeout
        assert options["visibility_timeout"] == django_settings.CELERY_VISIBILITY_TIMEOUT
    with celery_app.connection_for_write() as publisher:
        assert publisher.transport_options["socket_timeout"] == timeout
        assert publisher.transport_options["socket_connect_timeout"] == timeout
    # kombu otherwise reconnects and publishes again, each reconnection waiting the timeout once more.
    assert celery_app.conf.task_publish_retry_policy["max_retries"] == 0


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_goes_on_consuming_after_the_broker_stalled_during_an_acknowledgement(stalling_broker):
    _stall_state.clear()
    _stall_state["proxy"] = stalling_broker
    # The solo pool takes one task at a time: an acknowledgement lost to a timeout left the worker holding that
    # task for ever (until the visibility timeout), so it took no other (prefork lost one process per such ack).
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ):
        stall_the_broker.delay()
        assert wait_for(lambda: not stalling_broker.flowing.is_set(), timeout=30)  # the task ran
        assert wait_for(
            stalling_broker.flowing.is_set, timeout=STALL_SECONDS + 30
        )  # the broker answers again
        note_a_run.delay("after the stall")
        assert wait_for(lambda: "after the stall" in _stall_state.get("ran", ()), timeout=30)
        note_a_run.delay("and after that")
        assert wait_for(lambda: "and after that" in _stall_state.get("ran", ()), timeout=30)


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_publication_waits_one_socket_timeout_for_a_stalled_broker(stalling_broker, caplog):
    """Counted, not timed: while the broker is silent, handing a published post to the workers reads one answer
    that never comes (its LPUSH) and gives up; kombu's retries reconnected 4 more times, waiting the timeout for
    each reconnection's PING (10.6 s instead of 2). The publication succeeds and leaves the post to the sweep."""
    make_post(*CORPUS[0])  # a publication while the broker answers: the connection is open and pooled
    stalling_broker.stall()
    connections, requests = stalling_broker.connections, len(stalling_broker.requests)
    offer = make_post(*next(row for row in CORPUS if row[0] == "o-warn"))
    assert (
        stalling_broker.connections - connections == 0
    )  # no reconnection: each would wait the timeout again
    sent = b"".join(stalling_broker.requests[requests:])
    assert sent.count(b"LPUSH") == 1 and b"PING" not in sent
    assert "left for the sweep" in caplog.text
    offer.refresh_from_db()
    assert offer.status == "published" and offer.matching_pending
    assert Post.objects.filter(pk=offer.pk, matching_pending=True).exists()
