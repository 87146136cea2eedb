"""The Celery application: `celery -A nma_platform worker` and `celery -A nma_platform beat`."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nma_platform.settings.local")


class PlatformCelery(Celery):
    def connection_for_read(self, url=None, **kwargs):
        """The connection on which a worker takes tasks, acknowledges them and answers pings: with
        `BROKER_CONSUMER_TRANSPORT_OPTIONS` over the broker's options, so that it waits out a stalled broker,
        where a publish (`connection_for_write`: web requests, beat, tasks) gives up after
        CELERY_BROKER_CONNECTION_TIMEOUT."""
        from django.conf import settings

        kwargs["transport_options"] = {
            **settings.BROKER_CONSUMER_TRANSPORT_OPTIONS,
            **(kwargs.get("transport_options") or {}),
        }
        return super().connection_for_read(url, **kwargs)


app = PlatformCelery("nma_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _limit_blas_threads() -> None:
    from django.conf import settings

    from apps.matching import engine

    engine.configure_threads(settings.MATCHING_WORKER_THREADS)


@worker_init.connect
def prepare_worker(**kwargs) -> None:
    """The worker's main process: MATCHING_WORKER_THREADS BLAS threads, the sentence encoder loaded and the
    matching's compiled loops ready before the first task (a second or more, which the first publication after
    a start would otherwise wait).

    Loaded here, before a prefork pool forks its children, so they inherit it (the load is done and no thread
    holds a lock at the fork), and not in each child, which must report for work within 4 s.
    """
    from apps.matching import engine

    _limit_blas_threads()
    engine.encode_texts(["warm-up"])
    engine.warm_up()


@worker_process_init.connect
def prepare_worker_process(**kwargs) -> None:
    """Each prefork child also runs MATCHING_WORKER_THREADS BLAS threads.

    Several processes on the same cores that each start one BLAS thread per core oversubscribe them: a post's
    encoder call then waits for a core held by another process (measured: 6-10 ms alone, up to 260 ms so).
    """
    _limit_blas_threads()
