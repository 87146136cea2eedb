"""Settings shared by every environment. Everything that differs between machines comes from the environment."""

from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer may keep their variables in .env; production passes them in the real environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
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
    "axes",
    "apps.parties",
    "apps.accounts",
    "apps.posts",
    "apps.matching",
    "apps.stocktake",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a login refused for too many failures into the lockout page.
    "axes.middleware.AxesMiddleware",
]

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
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
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
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
if AXES_FAILURE_LIMIT < 1 or LOGIN_LOCKOUT_MINUTES < 1:
    # django-axes reads a zero lockout time as "locked until the secretariat unlocks".
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be at least 1.")
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
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 60 * 60)
SESSION_IDLE_REFRESH_SECONDS = 5 * 60

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
LANGUAGES = [
    ("en", _("English")),
    ("fr", _("French")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="NMA Platform <no-reply@nma-platform.local>")
# The SMTP server of production's backend, under Django's own names.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
# Django waits for ever by default: a mail server that hangs must not hang a password-reset request with it.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# Celery: with REDIS_URL the tasks go to the broker and workers run them; without it they run in-process.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
# With Redis at hand the cache is shared by every web process (API throttling counts across processes).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
CELERY_RESULT_BACKEND = None
# The health check's broker and worker status is reused this long by each web process (each check takes 0.5 s).
HEALTH_BROKER_CACHE_SECONDS = env.float("HEALTH_BROKER_CACHE_SECONDS", default=10.0)
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=540)
# A broker outage must not hang a focal point's request: give up quickly and leave the post to the sweep.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
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
    "DEFAULT_THROTTLE_CLASSES": ["apps.accounts.permissions.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "token": env.str("API_THROTTLE_TOKEN", default="1200/minute"),
        "user": env.str("API_THROTTLE_USER", default="600/minute"),
        "anon": env.str("API_THROTTLE_ANON", default="120/minute"),
    },
    # 0: the client is REMOTE_ADDR, whatever X-Forwarded-For says (DRF's own default, None, would take the
    # whole header as the client, which a caller writes as it likes). The login's lockouts use the same address.
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),
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
        "429 throttled (see Retry-After).\n\n"
        '**Pagination**: lists return `{"next": url|null, "results": [...]}`; follow `next`.'
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # django-axes says at INFO what it cleaned at every login (three lines); its lockouts are warnings.
    "loggers": {"axes": {"level": env.str("AXES_LOG_LEVEL", default="WARNING")}},
}

# The API's read path prepares its repeated statements on PostgreSQL; turn off behind PgBouncer in
# transaction mode (before 1.21, or without max_prepared_statements).
API_PREPARED_STATEMENTS = env.bool("API_PREPARED_STATEMENTS", default=True)
# Posts per page in the public list and the dashboards.
POSTS_PAGE_SIZE = env.int("POSTS_PAGE_SIZE", default=20)
# How often the sweep looks for posts still waiting to be matched (seconds).
MATCHING_SWEEP_SECONDS = env.int("MATCHING_SWEEP_SECONDS", default=300)


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


# Matching (apps.matching). Weights are the engine's defaults unless overridden here; see the README.
# Hand each published or changed post to the worker as it commits; off, the periodic sweep matches them.
MATCHING_AUTORUN = env.bool("MATCHING_AUTORUN", default=True)
MATCHING_TOP_K = env.int("MATCHING_TOP_K", default=20)
MATCHING_FLOOR = env.float("MATCHING_FLOOR", default=0.2)
MATCHING_STRONG_SCORE = env.float("MATCHING_STRONG_SCORE", default=0.6)
MATCHING_WEIGHTS = env.json("MATCHING_WEIGHTS", default={})
MATCHING_REBUILD_CHUNK = env.int("MATCHING_REBUILD_CHUNK", default=500)
# BLAS threads per Celery worker process. Run one worker process per core (the prefork default): with more
# threads than cores, a post's encoder call waits for a core that another process holds.
MATCHING_WORKER_THREADS = env.int("MATCHING_WORKER_THREADS", default=1)
# Threads of an in-process rebuild (`rebuild_matches --sync`) that score and shortlist the next chunks while the
# current one is reranked, explained and written.
MATCHING_REBUILD_THREADS = env.int("MATCHING_REBUILD_THREADS", default=2)
# Word pieces whose first layers the sentence encoder remembers, per process (6.5 KB each, taken as pieces are
# first seen: at most 218 MB at the default). Fewer: less memory, slower embedding; 0 remembers none.
MATCHING_ENCODER_PIECES = env.int("MATCHING_ENCODER_PIECES", default=32_768)
# Refit the text model when the corpus has grown by this share since the last fit (checked by beat).
MATCHING_REFIT_GROWTH = env.float("MATCHING_REFIT_GROWTH", default=0.1)
CELERY_BEAT_SCHEDULE = {
    "matching-sweep": {"task": "apps.matching.tasks.sweep_pending", "schedule": MATCHING_SWEEP_SECONDS},
    "matching-refit": {"task": "apps.matching.tasks.refit_if_grown", "schedule": 60 * 60},
    "matching-digest": {"task": "apps.matching.tasks.send_digests", "schedule": crontab(hour=6, minute=0)},
}
