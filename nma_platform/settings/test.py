"""Settings for the test suite: the same stack as production where DATABASE_URL and REDIS_URL are given."""

from .base import *  # noqa: F403
from .base import LOG_LEVELS, env_choice

DEBUG = False
SECRET_KEY = "test-only-secret-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Unit tests run tasks in-process; tests marked `services` start a real worker against REDIS_URL.
CELERY_TASK_ALWAYS_EAGER = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": env_choice("LOG_LEVEL", "WARNING", LOG_LEVELS)},
}
# Unit tests of other apps need not pay for the engine; matching tests switch it on (tests/matching).
MATCHING_AUTORUN = False
# Each test starts with an empty cache (throttle counters), whatever REDIS_URL says.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
