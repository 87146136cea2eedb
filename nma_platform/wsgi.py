"""WSGI entry point: `gunicorn nma_platform.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nma_platform.settings.production")
application = get_wsgi_application()
