"""The Celery application: `celery -A nma_platform worker` and `celery -A nma_platform beat`."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nma_platform.settings.local")

app = Celery("nma_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def prepare_worker_process(**kwargs) -> None:
    """Each worker process (the solo pool's one, or each prefork child) uses MATCHING_WORKER_THREADS BLAS threads
    and loads the sentence encoder before its first task.

    Several processes on the same cores that each start one BLAS thread per core oversubscribe them: a post's
    encoder call then waits for a core held by another process (measured: 6-10 ms alone, up to 260 ms so).
    Loading the encoder takes about a second, which the first publication after a start would otherwise wait.
    """
    from django.conf import settings

    from apps.matching import engine

    engine.configure_threads(settings.MATCHING_WORKER_THREADS)
    engine.encode_texts(["warm-up"])
