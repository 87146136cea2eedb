"""The Celery application: `celery -A nma_platform worker` and `celery -A nma_platform beat`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nma_platform.settings.local")

app = Celery("nma_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
