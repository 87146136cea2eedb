"""Settings shared by every environment. Everything that differs between machines comes from the environment."""

import json
import math
import os
import re
import socket
import warnings
from collections.abc import Callable
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from apps.accounts.rates import parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer may keep their variables in .env; production passes them in the real environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


# Every value read from the environment is checked here, where it is read, in every settings module: a bad value
# stops `manage.py`, gunicorn and the workers at startup with one line naming the variable, what it got and what
# it takes, rather than passing `check --deploy` and failing later (a 500 on every page, a task failing each run).


def require(name: str, value: str) -> str:
    """Refuse to start with an empty value for a setting that production must set."""
    if not value:
        raise ImproperlyConfigured(f"The environment variable {name} must be set.")
    return value


def require_site_url(value: str) -> str:
    """SITE_URL as emails use it: an absolute http(s) URL of the site, without a trailing slash."""
    parts = urlsplit(require("SITE_URL", value))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"SITE_URL must be the site's absolute URL, such as https://nma.example.org (got {value!r})."
        )
    return value.rstrip("/")


def require_email_sender(value: str) -> str:
    """DEFAULT_FROM_EMAIL: the sender of every email, an address such as `NMA Platform <nma@example.org>`."""
    if "@" not in parseaddr(require("DEFAULT_FROM_EMAIL", value))[1]:
        raise ImproperlyConfigured(f"DEFAULT_FROM_EMAIL must be an email address (got {value!r}).")
    return value


def _received(name: str, default: object, parsed: bool) -> str:
    """The value as the environment gave it, for a message: bare when it read as a number, quoted otherwise."""
    raw = env.str(name, default=str(default))
    return raw if parsed else repr(raw)


def _blank(name: str) -> bool:
    """Unset, or set to nothing but spaces (`MATCHING_TOP_K=` in a .env file): the default applies, as for a
    switch or DATABASE_URL."""
    return not os.environ.get(name, "").strip()


def env_int(name: str, default: int, *, least: int, most: int | None = None, why: str = "") -> int:
    """A whole number from the environment, refused unless it is between `least` and `most` (both included);
    `why`, if given, ends the sentence that says so. Blank: `default`."""
    try:
        value = default if _blank(name) else env.int(name, default=default)
    except ValueError:
        value = None
    if value is None or value < least or (most is not None and value > most):
        bounds = f"of {least} or more" if most is None else f"from {least} to {most}"
        raise ImproperlyConfigured(
            f"{name} must be a whole number {bounds}{why} (got {_received(name, default, value is not None)})."
        )
    return value


def env_number(name: str, default: float, *, expected: str, valid: Callable[[float], bool]) -> float:
    """A number from the environment, refused unless `valid` says yes; `expected` says what it takes. Blank:
    `default`."""
    try:
        value = default if _blank(name) else env.float(name, default=default)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not valid(value):
        raise ImproperlyConfigured(
            f"{name} must be a number {expected} (got {_received(name, default, value is not None)})."
        )
    return value


_TRUE = frozenset(["true", "yes", "on", "1"])
_FALSE = frozenset(["false", "no", "off", "0"])


def env_bool(name: str, default: bool) -> bool:
    """true/false (also yes/no, on/off, 1/0, in any case) from the environment; unset or empty: `default`.
    Anything else is refused: django-environ read every unknown word as false, so SECURE_SSL_REDIRECT=enabled
    turned the redirect off without a word."""
    raw = os.environ.get(name, "")
    text = raw.strip().lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (got {raw!r}).")


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (upper case), from the environment in any case. Blank: `default`."""
    value = default if _blank(name) else env.str(name, default=default)
    if value.strip().upper() not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)} (got {value!r}).")
    return value.strip().upper()


def env_rate(name: str, default: str) -> str:
    """An API rate as the throttle reads it (`apps.accounts.rates.parse_rate`, as DRF's own): `<n>/<period>`, n a
    whole number of 1 or more, the period read by its first letter only (s, m, h or d: `100/hour`, `5/s`).
    Anything else made every API request of its kind a 500. Blank: `default`."""
    value = default if _blank(name) else env.str(name, default=default)
    try:
        parse_rate(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a rate such as 120/minute: a whole number of 1 or more, a slash, and second, minute, "
            f"hour or day (got {value!r})."
        ) from None
    return value


# The fields of apps.matching.engine.Weights, which MATCHING_WEIGHTS may set. Listed here because importing the
# engine (NumPy, SciPy, scikit-learn) would add a second to every process's start; tests/test_settings_values.py
# checks that the list is the dataclass's fields. Shares are fractions of another weight (0 to 1).
MATCHING_WEIGHT_FIELDS = (
    "lexical",
    "semantic",
    "structured",
    "cross_lingual_lexical",
    "esa_share",
    "alignment",
    "rerank_depth",
    "translated_lexical",
)
MATCHING_WEIGHT_SHARES = ("cross_lingual_lexical", "esa_share", "translated_lexical")


def env_matching_weights(name: str = "MATCHING_WEIGHTS") -> dict[str, float | int]:
    """MATCHING_WEIGHTS: a JSON object setting some of the engine's Weights, checked as each matching task would
    build them (an unknown key was a TypeError in every task; text that is not JSON, a traceback at startup)."""
    raw = env.str(name, default="{}")

    def refuse(expected: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{name} {expected} (got {raw!r}).")

    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(key in MATCHING_WEIGHT_FIELDS for key in value):
        raise refuse(
            'must be a JSON object such as {"lexical": 0.3} whose keys are among '
            + ", ".join(MATCHING_WEIGHT_FIELDS)
        )
    weights: dict[str, float | int] = {}
    for key, number in value.items():
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number):
            raise refuse(f'must give numbers: "{key}" is not one')
        if key == "rerank_depth":
            if number != int(number) or number < 1:
                raise refuse('must give "rerank_depth" a whole number of 1 or more')
            number = int(number)
        elif key in MATCHING_WEIGHT_SHARES and not 0 <= number <= 1:
            raise refuse(f'must give "{key}" a number from 0 to 1')
        elif number < 0:
            raise refuse(f'must give "{key}" a number of 0 or more')
        weights[key] = number
    if all(weights.get(key) == 0 for key in ("lexical", "semantic", "structured")):
        raise refuse('must not set "lexical", "semantic" and "structured" all to 0')
    return weights


def _without_password(url: str) -> str:
    """A URL for a message: its password, if any, replaced by ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return url
    return url.replace(f":{password}@", ":***@") if password else url


def database_config(url: str) -> dict:
    """DATABASE_URL as Django's DATABASES entry. django-environ turns a URL of a scheme it does not know into no
    database at all (found by the first query, with a warning that shows the password): refused here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = environ.Env.db_url_config(url)
        problem = "" if config.get("ENGINE") else ", whose scheme is not a known database"
        if config.get("ENGINE") == "django.db.backends.sqlite3":
            # A write transaction takes SQLite's lock when it begins, not at its first write: two admins
            # deciding on one post at once wait for each other instead of one failing ("database is locked").
            config.setdefault("OPTIONS", {}).setdefault("transaction_mode", "IMMEDIATE")
    except ValueError as error:  # a port that is not a number
        config, problem = {}, f": {error}"
    if problem:
        raise ImproperlyConfigured(
            "DATABASE_URL must be a database URL such as postgres://user:password@host:5432/nma "
            f"(got {_without_password(url)!r}{problem})."
        )
    return config


DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The scheme and host that every emailed link starts with ("{{ site_url }}{% url ... %}"): emails are also sent by
# workers, which have no request to take a host from, and a request's Host header is not to be trusted in a
# password-reset link. Production requires it (settings.production).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "apps.accounts.axes_app.AxesConfig",  # django-axes, its admin section named in the page's language
    "apps.parties",
    "apps.accounts",
    "apps.posts",
    "apps.matching",
    "apps.stocktake",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body: only the API's bulk import takes a large one.
    "apps.accounts.middleware.RequestSizeMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Its page is rendered with the user and the messages the base template shows.
    "apps.accounts.middleware.MethodNotAllowedPageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a login refused for too many failures into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# Content-Security-Policy (django-csp): scripts only from the site's own files, no inline script and no evaluated
# code, so that a script injected into a page would not run. Styles may be inline (Swagger UI, Redoc and htmx
# inject theirs). Redoc builds its search index in a worker started from a blob.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# `load_demo` creates accounts with published passwords: refused where this is off (production).
DEMO_DATA_ALLOWED = True

ROOT_URLCONF = "nma_platform.urls"
WSGI_APPLICATION = "nma_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default is a SQLite file so that `make run` needs no server; production sets DATABASE_URL.
# An empty DATABASE_URL is taken as unset here; production refuses it (settings.production).
DATABASES = {
    "default": database_config(env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("CONN_MAX_AGE", 0, least=0))
# A database that accepts connections but never answers held each request until gunicorn's worker timeout (a
# 500 after 30 s, the health check included, which never said 503): PostgreSQL gives up connecting after
# DATABASE_CONNECT_TIMEOUT seconds (libpq's connect_timeout, at least 2; 0 waits for ever), unless
# DATABASE_URL's query string sets it (`?connect_timeout=9`). A connection already open that stops answering
# is not covered (CONN_MAX_AGE keeps connections open in production).
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5, least=0)
if DATABASES["default"]["ENGINE"].endswith((".postgresql", ".postgis")):
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "posts:list"
# django-axes' backend first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Password guessing (django-axes, on the site's and the admin's login alike): LOGIN_FAILURE_LIMIT failures for
# one user name from one client address lock that pair for LOGIN_LOCKOUT_MINUTES (each further try during the
# lockout starts the wait again, so the page's "try again in 15 minutes" holds); a successful login or a password
# reset clears the count. Locking the pair, not the account, means nobody can lock a focal point out of the
# platform from elsewhere. API tokens never go through this login. The client address is the one the API's
# throttle uses (API_NUM_PROXIES): behind a reverse proxy, set it, or every client counts as the proxy.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, least=1)
# At least 1: django-axes reads a zero lockout time as "locked until the secretariat unlocks".
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, least=1)
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_CLIENT_IP_CALLABLE = "apps.accounts.views.login_client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.views.login_locked_out"
# Only failed attempts are kept (and dropped once their lockout time has passed): a row per successful login
# would grow without end, and Django keeps each user's last login anyway.
AXES_DISABLE_ACCESS_LOG = True
# The secretariat's admin page of lockouts is registered by apps.accounts.admin, with the platform's roles.
AXES_ENABLE_ADMIN = False

# Sessions end after SESSION_COOKIE_AGE seconds without a request (8 hours: a working day of use keeps a focal
# point logged in, the next morning asks again), the admin's included, rather than two weeks after the login.
# The engine writes a used session again (moving its expiry) at most every SESSION_IDLE_REFRESH_SECONDS, where
# SESSION_SAVE_EVERY_REQUEST would write on every request. Run `manage.py clearsessions` daily: expired rows stay.
SESSION_ENGINE = "apps.accounts.sessions"
SESSION_IDLE_REFRESH_SECONDS = 5 * 60
# Above the refresh interval, or a session in constant use would end before it is ever written again.
SESSION_COOKIE_AGE = env_int(
    "SESSION_COOKIE_AGE",
    8 * 60 * 60,
    least=SESSION_IDLE_REFRESH_SECONDS + 1,
    why=f", above the {SESSION_IDLE_REFRESH_SECONDS} seconds after which a session in use is renewed",
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The languages of the interface: those with a catalogue in locale/ (English is the source). A page is never
# declared in a language it is not written in (screen readers would read English text with an Arabic voice, and
# an untranslated page laid out right to left garbles its English sentences). Posts themselves may be in any of
# the 20 languages of apps.posts.taxonomies.POST_LANGUAGES; add a language here with its catalogue.
LANGUAGE_CODE = "en"
# The six official languages of the UN, in the order the UN lists them (by their English names), English first.
LANGUAGES = [
    ("en", _("English")),
    ("ar", _("Arabic")),
    ("zh-hans", _("Chinese")),
    ("fr", _("French")),
    ("ru", _("Russian")),
    ("es", _("Spanish")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Where a language's numbers or dates are written otherwise than Django writes them (Arabic and Chinese group
# thousands: nma_platform/formats/).
FORMAT_MODULE_PATH = ["nma_platform.formats"]

STATIC_URL = "static/"
if "STATIC_ROOT" in os.environ and not os.environ["STATIC_ROOT"].strip():
    # An empty path is the current directory: collectstatic would have written into it.
    raise ImproperlyConfigured("STATIC_ROOT must be a directory's path, or unset for ./staticfiles (got '').")
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


def require_email_backend(value: str) -> str:
    """EMAIL_BACKEND: a class that imports (a typo failed only when the first email was sent)."""
    try:
        import_string(value)
    except ImportError:
        raise ImproperlyConfigured(
            "EMAIL_BACKEND must be the dotted path of an email backend, such as "
            f"django.core.mail.backends.smtp.EmailBackend (got {value!r}: it does not import)."
        ) from None
    return value


EMAIL_BACKEND = require_email_backend(
    env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="NMA Platform <no-reply@nma-platform.local>")
# The SMTP server of production's backend, under Django's own names.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, least=1, most=65535)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    # Django's SMTP backend refuses the pair only when it sends, in a worker: every email would fail.
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS and EMAIL_USE_SSL must not both be on: TLS is STARTTLS (usually port 587), SSL is "
        "implicit TLS (usually port 465) (got both on)."
    )
# Django waits for ever by default: a mail server that hangs must not hang a password-reset request with it.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, least=1)

# Celery: with REDIS_URL the tasks go to the broker and workers run them; without it they run in-process.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # The same URL serves Celery (kombu) and the cache (redis-py): only redis:// and rediss:// suit both (kombu
    # has no unix:// transport, redis-py no redis+socket://). Anything else failed only when used: an API 500
    # ("Redis URL must specify ...") and a worker trying amqp://guest@<the value>.
    try:
        _redis_url = urlsplit(REDIS_URL)
        _redis_url.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        _redis_url = None
    # The path names the database: a number (or nothing, database 0). redis://host/notanumber passed here, then
    # the worker died at start in kombu ("Database is int between 0 and limit - 1").
    if (
        _redis_url is None
        or _redis_url.scheme not in ("redis", "rediss")
        or not re.fullmatch(r"/?([0-9]+)?", _redis_url.path)
    ):
        raise ImproperlyConfigured(
            "REDIS_URL must be empty or a Redis URL such as redis://host:6379/0 or rediss://host:6380/0 "
            f"(got {_without_password(REDIS_URL)!r})."
        )
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
# With Redis at hand the cache is shared by every web process (API throttling counts across processes). It
# holds only counters, which let requests through while it does not answer (`apps.accounts.counters`): a hung
# Redis costs a request one second, not a wait without end.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
CELERY_RESULT_BACKEND = None
# Anonymous visitors of the site's expensive public pages (the posts' search, the stocktake summary), per client
# address (`apps.accounts.limits`); the same form as the API's rates. Logged-in users are not limited there.
SITE_THROTTLE_ANON = env_rate("SITE_THROTTLE_ANON", "120/minute")
# A logged-in user's changes on the site (forms, a post's steps, answers to matches), per user: far above what a
# person does by hand, to stop a script or a stuck page. Requests for a password-reset email, per client address
# (each mailbox also gets at most 3 an hour).
SITE_THROTTLE_WRITES = env_rate("SITE_THROTTLE_WRITES", "60/minute")
SITE_THROTTLE_RESET = env_rate("SITE_THROTTLE_RESET", "30/hour")
# The health check's broker and worker status is reused this long by each web process (each check takes 0.5 s).
HEALTH_BROKER_CACHE_SECONDS = env_number(
    "HEALTH_BROKER_CACHE_SECONDS", 10.0, expected="of 0 or more", valid=lambda v: v >= 0
)
# The health check says "degraded" when the task next in line has waited this long (as seen by the web process
# that checks): workers that answer pings but take no task (each process busy longer than that, or stuck).
HEALTH_QUEUE_STALL_SECONDS = env_int("HEALTH_QUEUE_STALL_SECONDS", 900, least=1)
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# The limits of a task that sets none of its own (the matching tasks and the digests set theirs).
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600, least=1)
# Below the hard limit, or the task is killed without the chance to stop cleanly that the soft limit gives it.
CELERY_TASK_SOFT_TIME_LIMIT = env_int(
    "CELERY_TASK_SOFT_TIME_LIMIT",
    540,
    least=1,
    most=CELERY_TASK_TIME_LIMIT - 1,
    why=", below CELERY_TASK_TIME_LIMIT",
)
# A broker outage must not hang a focal point's request: give up quickly and leave the post to the sweep. It
# bounds what publishes (web requests, beat, tasks that queue others); the workers' consumer waits out a stalled
# broker instead (BROKER_CONSUMER_TRANSPORT_OPTIONS below).
CELERY_BROKER_CONNECTION_TIMEOUT = env_number(
    "CELERY_BROKER_CONNECTION_TIMEOUT", 2.0, expected="of seconds above 0", valid=lambda v: v > 0
)
# Redis redelivers a task that a worker took but did not acknowledge (tasks acknowledge when they end,
# CELERY_TASK_ACKS_LATE) after the visibility timeout: that is how the task of a worker that died (its main
# process killed, its machine lost; a pool process that dies has its task requeued at once,
# CELERY_TASK_REJECT_ON_WORKER_LOST) runs again. Kombu's default is an hour. It must exceed the longest time a
# worker can hold a task unacknowledged, or a task still running (or still waiting for its retry's countdown,
# which the worker holds unacknowledged too) is delivered to a second worker and runs twice: the longest hard
# time limit (the tasks' own, apps/*/tasks.py, or CELERY_TASK_TIME_LIMIT) plus the longest retry countdown
# (retry_backoff_max and send_digests' cap). Those two are below; tests/test_settings_values.py checks them against the tasks.
# The default adds 5 minutes of margin (1900 + 600 + 300 = 2800 s with the default CELERY_TASK_TIME_LIMIT); a
# lower value redelivers a dead worker's task sooner, down to the bound that the setting is checked against.
LONGEST_TASK_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT, 1900)  # 1900: refit_if_grown and send_digests
LONGEST_RETRY_COUNTDOWN = 600
CELERY_VISIBILITY_TIMEOUT = env_int(
    "CELERY_VISIBILITY_TIMEOUT",
    LONGEST_TASK_TIME_LIMIT + LONGEST_RETRY_COUNTDOWN + 300,
    least=LONGEST_TASK_TIME_LIMIT + LONGEST_RETRY_COUNTDOWN + 1,
    why=(
        f", above the longest task's hard time limit ({LONGEST_TASK_TIME_LIMIT} s) plus the longest wait "
        f"before a retry ({LONGEST_RETRY_COUNTDOWN} s), or a running task is delivered twice"
    ),
)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    # Both socket timeouts follow CELERY_BROKER_CONNECTION_TIMEOUT: with a Redis that accepts connections but
    # does not answer, a publish otherwise waited the longer socket_timeout (5 s) before giving up.
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    "socket_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
}
# A publish that fails is not tried again: kombu's default (reconnect and publish again, up to 3 times) waited
# the timeout once more for each reconnection's PING, so a Redis that accepts connections but does not answer
# held the first publish 10.6 s instead of 2. A pooled connection that Redis closed (a restart) is replaced by
# redis-py when it is taken from the pool, before the publish, so no retry is needed for it either.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 0}
# The connection on which a worker takes and acknowledges its tasks (and answers pings), merged over the options
# above by `nma_platform.celery` (only for reading; what a worker publishes keeps the timeouts above). No read
# timeout: with the 2 s of a publish, an acknowledgement sent while Redis stalled a few seconds timed out, and the
# worker, which counts that task as held until it is acknowledged, took one task fewer for every such ack, until
# none (celery/celery#3046 and kin): it still answered pings while the queue filled. It now waits for Redis
# however long it stalls and goes on. A broker that vanishes without closing the connection is still noticed:
# kombu drops a BRPOP whose answer is overdue (health_check_interval) and TCP keepalive probes an idle socket.
BROKER_CONSUMER_TRANSPORT_OPTIONS = {
    "socket_timeout": None,
    "socket_keepalive": True,
    # Probes after 60 s of silence, every 10 s, 6 unanswered: a dead peer is given up in about 2 minutes. A
    # Redis that is alive but stalled answers them (its kernel does), so it is waited for.
    "socket_keepalive_options": {
        getattr(socket, name): value
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6))
        if hasattr(socket, name)
    },
    "health_check_interval": 25,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE

# The REST API (/api/v1/). Rates are DRF's "<n>/<second|minute|hour|day>"; each token, each logged-in user
# and each anonymous IP has its own budget. Behind a reverse proxy set API_NUM_PROXIES so that the client's
# IP (not the proxy's) is counted. Throttle counts live in the default cache: give production a shared cache
# (Redis) so that every gunicorn process counts the same requests.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so that a request without credentials to a protected endpoint gets 401 with WWW-Authenticate.
        "apps.accounts.authentication.ApiTokenAuthentication",
        "apps.accounts.authentication.ApiSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": ["apps.accounts.serializers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "apps.accounts.apis.api_exception_handler",
    # ?format= picks a renderer where there are several (the schema: ?format=json); elsewhere a format the
    # endpoint does not speak is ignored, as any unknown parameter (DRF answered "?format=csv" with a bare 404).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.accounts.negotiation.LenientFormatNegotiation",
    "DEFAULT_THROTTLE_CLASSES": ["apps.accounts.permissions.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "token": env_rate("API_THROTTLE_TOKEN", "1200/minute"),
        "user": env_rate("API_THROTTLE_USER", "600/minute"),
        "anon": env_rate("API_THROTTLE_ANON", "120/minute"),
    },
    # 0: the client is REMOTE_ADDR, whatever X-Forwarded-For says (DRF's own default, None, would take the
    # whole header as the client, which a caller writes as it likes). The login's lockouts use the same address.
    # Not negative: DRF would then take a hop of X-Forwarded-For that the caller writes.
    "NUM_PROXIES": env_int("API_NUM_PROXIES", 0, least=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "NMA Platform API",
    "DESCRIPTION": (
        "Needs and offers of non-market cooperation under Article 6.8 of the Paris Agreement, for partner "
        "systems.\n\n"
        "**Authentication**: `Authorization: Bearer <token>` with a token issued by the secretariat in the "
        "admin (scope `read`, `stocktake`, or `write` for one Party or provider), or a logged-in browser "
        "session (send the CSRF token on writes). Anonymous callers read published posts and reference data.\n\n"
        '**Errors** always have the body `{"errors": [{"field": ..., "code": ..., "message": ...}]}` '
        "(`field` is null when the error is not about one field; bulk import items add `index`): 400 bad "
        "input, 401 no valid token, 403 not allowed, 404 not found, 409 illegal life-cycle transition, "
        "412 the post changed since it was read (`If-Match`), 413 body too large, 429 throttled (see "
        "Retry-After; refused requests count too).\n\n"
        '**Pagination**: `posts/` returns `{"next": url|null, "results": [...]}` pages (`page_size` 1-100); follow '
        "`next`. `posts/removed/`, `posts/{id}/matches/` and `connections/` take `offset` and `limit`, return a "
        "list and say the total in the `X-Total-Count` header; reference lists (`parties/`, `providers/`) come "
        "whole."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A token pasted into /api/v1/docs/ is forgotten with the page: persisted, it would sit in the site's
    # localStorage, readable by any script that ever ran on this origin.
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": False},
    "ENUM_NAME_OVERRIDES": {
        "PostStatusEnum": "apps.posts.models.Post.Status",
        "PostKindEnum": "apps.posts.models.Post.Kind",
        "MatchInterestEnum": "apps.matching.models.Interest",
        "ProviderKindEnum": "apps.parties.models.SupportProvider.Kind",
    },
    "TAGS": [
        {
            "name": "posts",
            "description": "Needs and offers: list, detail, create, update, life cycle, import.",
        },
        {"name": "matches", "description": "Ranked matches of your posts, and your interest in them."},
        {"name": "reference data", "description": "Parties, support providers and taxonomy keys."},
        {"name": "stocktake", "description": "Figures for the committee's reports."},
        {"name": "platform", "description": "Health and liveness."},
    ],
}

# Python's logging refuses any other name (a ValueError traceback at startup).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"client_errors_in_one_line": {"()": "nma_platform.logs.ClientErrorsInOneLine"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_errors_in_one_line"],
        }
    },
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "INFO", LOG_LEVELS)},
    "loggers": {
        # django-axes says at INFO what it cleaned at every login (three lines); its lockouts are warnings.
        "axes": {"level": env_choice("AXES_LOG_LEVEL", "WARNING", LOG_LEVELS)},
        # Django's own console handler (with DEBUG) printed each of its lines a second time beside the root's.
        "django": {"handlers": [], "level": "INFO"},
    },
}

# The API's read path prepares its repeated statements on PostgreSQL; turn off behind PgBouncer in
# transaction mode (before 1.21, or without max_prepared_statements).
API_PREPARED_STATEMENTS = env_bool("API_PREPARED_STATEMENTS", default=True)
# The largest body of the API's bulk import (bytes). Django's 2.5 MB refused an import of 140 long posts; 1,000
# posts of the longest description (20,000 characters) take about 25 MB. Anything larger is a 413 naming the limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 32 * 1024 * 1024, least=1024 * 1024)
# Every other request's body (forms, the rest of the API): Django's own default (`accounts.middleware`).
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 2_621_440, least=64 * 1024)
# Posts per page in the public list and the dashboards (0 made the home page a 500).
POSTS_PAGE_SIZE = env_int("POSTS_PAGE_SIZE", 20, least=1, most=500)
# How often the sweep looks for posts still waiting to be matched (seconds; at 0, beat queued thousands).
# At most 15 minutes: a rebuild silent for 15 to 30 minutes has its lost chunks queued again by a sweep
# (pipeline.CHUNKS_LOST_AFTER, RUN_STALLED_AFTER), which must then come at least once.
MATCHING_SWEEP_SECONDS = env_int(
    "MATCHING_SWEEP_SECONDS",
    300,
    least=10,
    most=900,
    why=": a sweep must come while a silent rebuild can be resumed",
)

# Matching (apps.matching). Weights are the engine's defaults unless overridden here; see the README.
# Hand each published or changed post to the worker as it commits; off, the periodic sweep matches them.
MATCHING_AUTORUN = env_bool("MATCHING_AUTORUN", default=True)
MATCHING_TOP_K = env_int("MATCHING_TOP_K", 20, least=1, most=200)
# Scores are from 0 to 1; a floor of 1 or more would store no match at all.
MATCHING_FLOOR = env_number("MATCHING_FLOOR", 0.2, expected="from 0 to below 1", valid=lambda v: 0 <= v < 1)
MATCHING_STRONG_SCORE = env_number(
    "MATCHING_STRONG_SCORE", 0.6, expected="from 0 to 1", valid=lambda v: 0 <= v <= 1
)
MATCHING_WEIGHTS = env_matching_weights()
MATCHING_REBUILD_CHUNK = env_int("MATCHING_REBUILD_CHUNK", 500, least=1)
# BLAS threads per Celery worker process. Run one worker process per core (the prefork default): with more
# threads than cores, a post's encoder call waits for a core that another process holds.
MATCHING_WORKER_THREADS = env_int("MATCHING_WORKER_THREADS", 1, least=1)
# Threads of an in-process rebuild (`rebuild_matches --sync`) that score and shortlist the next chunks while the
# current one is reranked, explained and written.
MATCHING_REBUILD_THREADS = env_int("MATCHING_REBUILD_THREADS", 2, least=1)
# Word pieces whose first layers the sentence encoder remembers, per process (6.5 KB each, taken as pieces are
# first seen: at most 218 MB at the default). Fewer: less memory, slower embedding; 0 remembers none.
MATCHING_ENCODER_PIECES = env_int("MATCHING_ENCODER_PIECES", 32_768, least=0)
# Refit the text model when the corpus has grown by this share since the last fit (checked by beat).
MATCHING_REFIT_GROWTH = env_number("MATCHING_REFIT_GROWTH", 0.1, expected="above 0", valid=lambda v: v > 0)
CELERY_BEAT_SCHEDULE = {
    "matching-sweep": {"task": "apps.matching.tasks.sweep_pending", "schedule": MATCHING_SWEEP_SECONDS},
    "matching-refit": {"task": "apps.matching.tasks.refit_if_grown", "schedule": 60 * 60},
    "matching-digest": {"task": "apps.matching.tasks.send_digests", "schedule": crontab(hour=6, minute=0)},
    "accounts-prune-sent-emails": {
        "task": "apps.accounts.tasks.prune_sent_emails",
        "schedule": crontab(hour=3, minute=30),
    },
    "accounts-clear-sessions": {
        "task": "apps.accounts.tasks.clear_sessions",
        "schedule": crontab(hour=3, minute=45),
    },
}
