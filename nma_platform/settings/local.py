"""The embedded default used by `make run`: SQLite, tasks in-process, emails to the console, debug on."""

from .base import *  # noqa: F403
from .base import env, env_bool

DEBUG = env_bool("DEBUG", default=True)
# Only ever used on a developer's machine; production refuses to start without its own key.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-development-key-do-not-use-in-production")
