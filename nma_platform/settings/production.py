"""Production: every secret comes from the environment and nothing insecure is defaulted."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import (
    ALLOWED_HOSTS,
    DATABASES,
    SECRET_KEY,
    env,
    env_bool,
    env_int,
    require,
    require_email_backend,
    require_email_sender,
    require_site_url,
)

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = require("SECRET_KEY", SECRET_KEY)
require("DATABASE_URL", env.str("DATABASE_URL", default=""))
# Emailed links (password resets, matches, digests) must point at this site, and their sender must be real:
# the development defaults (http://127.0.0.1:8000, a .local address) would go out unnoticed.
SITE_URL = require_site_url(env.str("SITE_URL", default=""))
DEFAULT_FROM_EMAIL = require_email_sender(env.str("DEFAULT_FROM_EMAIL", default=""))
DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60, least=0)
# A connection kept open is checked before a request reuses it: after a database restart, each web process's
# first request got the dead connection (a 500, and the health check said the database was down).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
# Load balancers and liveness probes speak plain HTTP straight to gunicorn: redirected to https, they saw a 301
# and never the health check's 200 or 503. Neither answer sets a cookie or says anything secret.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/(health|ping)/$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365, least=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
EMAIL_BACKEND = require_email_backend(
    env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
)
# Unset, the development default (localhost) stays, and an empty list: either refuses every request for the
# site's name (400) while the processes look healthy.
if "ALLOWED_HOSTS" not in os.environ or not any(host.strip() for host in ALLOWED_HOSTS):
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must name the site's host names, such as nma.example.org "
        f"(got {repr(os.environ['ALLOWED_HOSTS']) if 'ALLOWED_HOSTS' in os.environ else 'nothing'})."
    )
# `load_demo` would make `secretariat` a superuser with a published password, and rewrite real providers.
DEMO_DATA_ALLOWED = False
