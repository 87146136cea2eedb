"""Values read from the environment are checked where the settings read them: a bad one stops every command at
startup with one line naming the variable, the value and what it takes, in every settings module.

Settings are read once per process, so each case runs `manage.py` in a process of its own (`manage`). Django
prints the traceback of an ImproperlyConfigured raised while settings load (manage.py does not catch it): these
tests check the exception's own line, the last of stderr."""

import dataclasses
import json

import pytest
from django.conf import settings

from tests.test_production import PRODUCTION_ENV, manage

TEST_SETTINGS = {"DJANGO_SETTINGS_MODULE": "nma_platform.settings.test"}
LOCAL_SETTINGS = {"DJANGO_SETTINGS_MODULE": "nma_platform.settings.local"}
# Every variable that the values shown by SHOW depend on: unset for the test of the defaults.
VARIABLES = (
    "MATCHING_WEIGHTS",
    "API_THROTTLE_TOKEN",
    "API_THROTTLE_USER",
    "API_THROTTLE_ANON",
    "LOG_LEVEL",
    "AXES_LOG_LEVEL",
    "MATCHING_FLOOR",
    "MATCHING_TOP_K",
    "POSTS_PAGE_SIZE",
    "CELERY_BROKER_CONNECTION_TIMEOUT",
    "CELERY_VISIBILITY_TIMEOUT",
    "CELERY_TASK_TIME_LIMIT",
    "DATABASE_URL",
    "DATABASE_CONNECT_TIMEOUT",
    "REDIS_URL",
)
# Prints, as JSON, the values that the environment sets in the tests below.
SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps(["
    "s.MATCHING_WEIGHTS, s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'], s.LOGGING['root']['level'], "
    "s.LOGGING['loggers']['axes']['level'], s.MATCHING_FLOOR, s.MATCHING_TOP_K, s.POSTS_PAGE_SIZE, "
    "s.CELERY_BROKER_TRANSPORT_OPTIONS, s.DATABASES['default'].get('OPTIONS', {})]))"
)


def refusal(result) -> str:
    """The message of the ImproperlyConfigured that ends stderr."""
    assert result.returncode != 0, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    return last.removeprefix("django.core.exceptions.ImproperlyConfigured: ")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "MATCHING_SWEEP_SECONDS",
            "0",
            "MATCHING_SWEEP_SECONDS must be a whole number from 10 to 900: a sweep must come while a silent "
            "rebuild can be resumed (got 0).",
        ),
        (
            "MATCHING_SWEEP_SECONDS",
            "3600",
            "MATCHING_SWEEP_SECONDS must be a whole number from 10 to 900: a sweep must come while a silent "
            "rebuild can be resumed (got 3600).",
        ),
        ("MATCHING_TOP_K", "-3", "MATCHING_TOP_K must be a whole number from 1 to 200 (got -3)."),
        (
            "HEALTH_QUEUE_STALL_SECONDS",
            "0",
            "HEALTH_QUEUE_STALL_SECONDS must be a whole number of 1 or more (got 0).",
        ),
        ("MATCHING_TOP_K", "twenty", "MATCHING_TOP_K must be a whole number from 1 to 200 (got 'twenty')."),
        ("MATCHING_FLOOR", "1.5", "MATCHING_FLOOR must be a number from 0 to below 1 (got 1.5)."),
        ("MATCHING_REFIT_GROWTH", "0", "MATCHING_REFIT_GROWTH must be a number above 0 (got 0)."),
        (
            "MATCHING_WEIGHTS",
            '{"foo": 1}',
            'MATCHING_WEIGHTS must be a JSON object such as {"lexical": 0.3} whose keys are among lexical, '
            "semantic, structured, cross_lingual_lexical, esa_share, alignment, rerank_depth, translated_lexical "
            "(got '{\"foo\": 1}').",
        ),
        ("MATCHING_WEIGHTS", "notjson", 'MATCHING_WEIGHTS must be a JSON object such as {"lexical": 0.3}'),
        (
            "MATCHING_WEIGHTS",
            '{"lexical": -0.1}',
            'MATCHING_WEIGHTS must give "lexical" a number of 0 or more',
        ),
        ("MATCHING_WEIGHTS", '{"rerank_depth": "30"}', 'MATCHING_WEIGHTS must give numbers: "rerank_depth"'),
        (
            "MATCHING_REBUILD_THREADS",
            "0",
            "MATCHING_REBUILD_THREADS must be a whole number of 1 or more (got 0).",
        ),
        ("POSTS_PAGE_SIZE", "0", "POSTS_PAGE_SIZE must be a whole number from 1 to 500 (got 0)."),
        (
            "API_THROTTLE_ANON",
            "10/fortnight",
            "API_THROTTLE_ANON must be a rate such as 120/minute: a whole number of 1 or more, a slash, and "
            "second, minute, hour or day (got '10/fortnight').",
        ),
        ("API_THROTTLE_USER", "0/minute", "API_THROTTLE_USER must be a rate such as 120/minute"),
        ("REDIS_URL", "garbage", "REDIS_URL must be empty or a Redis URL such as redis://host:6379/0"),
        ("REDIS_URL", "redis://127.0.0.1:6379/notanumber", "REDIS_URL must be empty or a Redis URL"),
        ("MATCHING_AUTORUN", "disabled", "MATCHING_AUTORUN must be true or false (got 'disabled')."),
        ("EMAIL_USE_TLS", "enabled", "EMAIL_USE_TLS must be true or false (got 'enabled')."),
        ("DEBUG", "maybe", "DEBUG must be true or false (got 'maybe')."),
        ("STATIC_ROOT", "", "STATIC_ROOT must be a directory's path, or unset for ./staticfiles (got '')."),
        (
            "EMAIL_BACKEND",
            "nope.Backend",
            "EMAIL_BACKEND must be the dotted path of an email backend, such as "
            "django.core.mail.backends.smtp.EmailBackend (got 'nope.Backend': it does not import).",
        ),
        ("REDIS_URL", "unix:///run/redis.sock", "REDIS_URL must be empty or a Redis URL"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got 'LOUD')."),
        ("DATABASE_URL", "garbage", "DATABASE_URL must be a database URL such as postgres://"),
        (
            "CELERY_VISIBILITY_TIMEOUT",
            "600",
            "CELERY_VISIBILITY_TIMEOUT must be a whole number of 2501 or more",
        ),
    ],
)
def test_a_bad_value_stops_startup_with_a_message_naming_it(variable, value, expected, tmp_path):
    result = manage("check", env={**TEST_SETTINGS, variable: value}, tmp_path=tmp_path)
    assert refusal(result).startswith(expected)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({**LOCAL_SETTINGS, "MATCHING_TOP_K": "0"}, "MATCHING_TOP_K must be"),
        ({**PRODUCTION_ENV, "AXES_LOG_LEVEL": "LOUD"}, "AXES_LOG_LEVEL must be one of"),
        ({**PRODUCTION_ENV, "SECURE_SSL_REDIRECT": "enabled"}, "SECURE_SSL_REDIRECT must be true or false"),
        ({**PRODUCTION_ENV, "SECURE_HSTS_PRELOAD": "sure"}, "SECURE_HSTS_PRELOAD must be true or false"),
        ({**PRODUCTION_ENV, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must name the site's host names"),
        ({**PRODUCTION_ENV, "EMAIL_BACKEND": "smtp"}, "EMAIL_BACKEND must be the dotted path"),
    ],
    ids=["local", "production", "ssl-redirect", "hsts-preload", "allowed-hosts", "email-backend"],
)
def test_every_settings_module_checks_the_values(env, expected, tmp_path):
    assert refusal(manage("check", env=env, tmp_path=tmp_path)).startswith(expected)


def test_a_password_in_a_refused_url_is_not_printed(tmp_path):
    env = {**TEST_SETTINGS, "REDIS_URL": "redis://:s3cret@redis.example.org:port/0"}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert refusal(result).endswith("(got 'redis://:***@redis.example.org:port/0').")
    assert "s3cret" not in result.stderr


def test_the_defaults_start(tmp_path, monkeypatch):
    """None of the variables set: `check` passes and the documented defaults hold."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = {**LOCAL_SETTINGS, "DATABASE_URL": f"sqlite:///{tmp_path / 'local.sqlite3'}"}
    checked = manage("check", env=env, tmp_path=tmp_path)
    assert checked.returncode == 0, checked.stderr
    shown = manage("shell", "--no-imports", "-c", SHOW, env=env, tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    weights, rates, level, axes_level, floor, top_k, page, transport, db_options = json.loads(shown.stdout)
    assert weights == {}
    assert rates == {"token": "1200/minute", "user": "600/minute", "anon": "120/minute"}
    assert (level, axes_level, floor, top_k, page) == ("INFO", "WARNING", 0.2, 20, 20)
    assert transport["socket_timeout"] == transport["socket_connect_timeout"] == 2.0
    assert transport["visibility_timeout"] == 1900 + 600 + 300
    assert "connect_timeout" not in db_options  # PostgreSQL's only


def test_blank_values_take_the_defaults(tmp_path):
    """`MATCHING_TOP_K=` (a .env line left empty) is unset, as an empty switch or DATABASE_URL is; it stopped
    every process ("got ''")."""
    blank = ("API_THROTTLE_ANON", "LOG_LEVEL", "AXES_LOG_LEVEL", "MATCHING_FLOOR", "MATCHING_TOP_K",
             "POSTS_PAGE_SIZE", "CELERY_BROKER_CONNECTION_TIMEOUT", "CELERY_VISIBILITY_TIMEOUT")  # fmt: skip
    env = {
        **LOCAL_SETTINGS,
        **dict.fromkeys(blank, " "),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite3'}",
    }
    code = f"from django.core.management import call_command; call_command('check'); {SHOW}"
    result = manage("shell", "--no-imports", "-c", code, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    _weights, rates, level, axes_level, floor, top_k, page, transport, _ = json.loads(
        result.stdout.splitlines()[-1]
    )
    assert rates["anon"] == "120/minute"
    assert (level, axes_level, floor, top_k, page) == ("INFO", "WARNING", 0.2, 20, 20)
    assert transport["socket_timeout"] == 2.0 and transport["visibility_timeout"] == 1900 + 600 + 300


def test_valid_values_other_than_the_defaults_are_taken(tmp_path):
    env = {
        **LOCAL_SETTINGS,
        "MATCHING_WEIGHTS": '{"lexical": 0.3, "rerank_depth": 40.0, "translated_lexical": 0}',
        "API_THROTTLE_ANON": "100/hour",
        "API_THROTTLE_USER": "5/s",
        "LOG_LEVEL": "debug",
        "AXES_LOG_LEVEL": "Error",
        "MATCHING_FLOOR": "0",
        "MATCHING_TOP_K": "200",
        "POSTS_PAGE_SIZE": "500",
        "REDIS_URL": "rediss://:pw@redis.example.org:6380/1",
        "CELERY_BROKER_CONNECTION_TIMEOUT": "0.5",
        "CELERY_VISIBILITY_TIMEOUT": "2501",
    }
    code = f"from django.core.management import call_command; call_command('check'); {SHOW}"
    result = manage("shell", "--no-imports", "-c", code, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    weights, rates, level, axes_level, floor, top_k, page, transport, _ = json.loads(
        result.stdout.splitlines()[-1]
    )
    assert weights == {"lexical": 0.3, "rerank_depth": 40, "translated_lexical": 0}
    assert rates == {"token": "1200/minute", "user": "5/s", "anon": "100/hour"}
    assert (level, axes_level, floor, top_k, page) == ("DEBUG", "ERROR", 0, 200, 500)
    assert transport["socket_timeout"] == transport["socket_connect_timeout"] == 0.5
    assert transport["visibility_timeout"] == 2501


@pytest.mark.parametrize(
    ("env", "query", "expected"),
    [
        ({}, "", {"connect_timeout": 5}),
        ({"DATABASE_CONNECT_TIMEOUT": "7"}, "", {"connect_timeout": 7}),
        (
            {"DATABASE_CONNECT_TIMEOUT": "7"},
            "?connect_timeout=9&sslmode=require",
            {"connect_timeout": 9, "sslmode": "require"},
        ),
    ],
    ids=["default", "environment", "url"],
)
def test_postgresql_gives_up_connecting_after_the_connect_timeout(env, query, expected, tmp_path):
    """A database that accepts connections and never answers must not hold each request until gunicorn's worker
    timeout. Nothing connects here: the settings are only read."""
    env = {**PRODUCTION_ENV, **env, "DATABASE_URL": f"postgres://nma:pw@db.invalid:5432/nma{query}"}
    code = "from django.conf import settings as s; import json; print(json.dumps(s.DATABASES['default']['OPTIONS']))"
    result = manage("shell", "--no-imports", "-c", code, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_the_allowed_matching_weights_are_the_engines():
    """base.py lists Weights' fields rather than importing the engine (NumPy, SciPy, scikit-learn) at startup."""
    from apps.matching.engine import Weights

    assert tuple(field.name for field in dataclasses.fields(Weights)) == settings.MATCHING_WEIGHT_FIELDS
    assert set(settings.MATCHING_WEIGHT_SHARES) <= set(settings.MATCHING_WEIGHT_FIELDS)
    # The engine's defaults pass the checks that MATCHING_WEIGHTS' values get.
    defaults = dataclasses.asdict(Weights())
    assert all(0 <= defaults[name] <= 1 for name in settings.MATCHING_WEIGHT_SHARES)
    assert all(value >= 0 for value in defaults.values())
    assert isinstance(defaults["rerank_depth"], int) and defaults["rerank_depth"] >= 1


def test_the_broker_times_out_with_the_connection_timeout_and_outlasts_every_task():
    """A publish gives up after CELERY_BROKER_CONNECTION_TIMEOUT, and a task still running, or held by a worker
    for its retry's countdown, is not delivered to a second worker."""
    from nma_platform.celery import app

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert options["socket_timeout"] == settings.CELERY_BROKER_CONNECTION_TIMEOUT
    assert options["socket_connect_timeout"] == settings.CELERY_BROKER_CONNECTION_TIMEOUT
    assert options["visibility_timeout"] == settings.CELERY_VISIBILITY_TIMEOUT
    assert (
        settings.CELERY_VISIBILITY_TIMEOUT
        > settings.LONGEST_TASK_TIME_LIMIT + settings.LONGEST_RETRY_COUNTDOWN
    )

    app.loader.import_default_modules()
    tasks = [task for name, task in app.tasks.items() if name.startswith("apps.")]
    assert tasks
    for task in tasks:
        assert (task.time_limit or settings.CELERY_TASK_TIME_LIMIT) <= settings.LONGEST_TASK_TIME_LIMIT, (
            task.name
        )
        if getattr(task, "autoretry_for", ()):
            assert task.retry_backoff_max <= settings.LONGEST_RETRY_COUNTDOWN, task.name
    # send_digests retries by hand, after min(30 * 2 ** retries, 600) seconds.
    assert settings.LONGEST_RETRY_COUNTDOWN >= 600


def test_a_sqlite_database_takes_its_write_lock_when_a_transaction_begins(tmp_path):
    """Two admins deciding on one post at once on the embedded SQLite: the second transaction, which had read
    before the first wrote, failed with "database is locked" at its own write (a 500). Begun IMMEDIATE, it waits
    for the first to commit instead."""
    import sqlite3
    import threading

    from nma_platform.settings.base import database_config

    config = database_config(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "OPTIONS" not in database_config("postgres://u@localhost:5432/nma") or (
        "transaction_mode" not in database_config("postgres://u@localhost:5432/nma")["OPTIONS"]
    )

    # What the mode does, on SQLite itself: both transactions read, then write; deferred, the second to write
    # fails at once (its snapshot is older than the first's write); immediate, it waits and succeeds.
    def race(begin: str) -> list[str]:
        path = tmp_path / f"{begin}.sqlite3"
        setup = sqlite3.connect(path)
        setup.execute("CREATE TABLE post (id INTEGER PRIMARY KEY, status TEXT)")
        setup.execute("INSERT INTO post VALUES (1, 'submitted')")
        setup.commit()
        setup.close()
        read, outcomes = threading.Barrier(2, timeout=5), []

        def decide(status: str) -> None:
            db = sqlite3.connect(path, timeout=2, isolation_level=None, check_same_thread=False)
            try:
                db.execute(f"BEGIN {begin}")
                db.execute("SELECT status FROM post WHERE id = 1").fetchone()
                if begin == "DEFERRED":
                    read.wait()  # both have read before either writes
                db.execute("UPDATE post SET status = ? WHERE id = 1", (status,))
                db.execute("COMMIT")
                outcomes.append("ok")
            except sqlite3.OperationalError as error:
                outcomes.append(str(error))
            finally:
                db.close()

        threads = [threading.Thread(target=decide, args=(s,)) for s in ("published", "returned")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(outcomes)

    assert race("DEFERRED") == ["database is locked", "ok"]
    assert race("IMMEDIATE") == ["ok", "ok"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("Yes", True), ("ON", True), ("1", True), ("false", False), (" no ", False), ("Off", False),
     ("0", False), ("", None), (None, None)],
)  # fmt: skip
def test_booleans_take_the_usual_words_and_default_when_unset(raw, expected, monkeypatch):
    from nma_platform.settings.base import env_bool

    if raw is None:
        monkeypatch.delenv("NMA_SOME_FLAG", raising=False)
    else:
        monkeypatch.setenv("NMA_SOME_FLAG", raw)
    for default in (True, False):
        assert env_bool("NMA_SOME_FLAG", default=default) is (default if expected is None else expected)


def test_redis_urls_with_a_database_number_or_none_are_taken(tmp_path):
    for url in ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/15"):
        result = manage("check", env={**TEST_SETTINGS, "REDIS_URL": url}, tmp_path=tmp_path)
        assert result.returncode == 0, (url, result.stderr)


def test_a_refused_request_is_logged_once_in_one_line_and_a_server_error_with_its_traceback(settings):
    """An expected 403 was a dozen lines of traceback, printed twice under `make run` (Django's own console
    handler, on with DEBUG, and the root's)."""
    import io
    import logging
    import logging.config
    import sys

    from django.utils.log import DEFAULT_LOGGING

    from nma_platform.settings import base

    settings.DEBUG = True  # as under `make run`: Django's console handler prints
    stream = io.StringIO()
    saved_stderr, sys.stderr = sys.stderr, stream  # where both console handlers write
    try:
        logging.config.dictConfig(
            DEFAULT_LOGGING
        )  # as Django configures logging: its own, then the project's
        logging.config.dictConfig(base.LOGGING)
        request_log = logging.getLogger("django.request")
        for status, error in ((403, PermissionError("not yours")), (500, RuntimeError("boom"))):
            try:
                raise error
            except Exception:
                request_log.warning("Refused: /posts/1/submit/", exc_info=True, extra={"status_code": status})
    finally:
        sys.stderr = saved_stderr
        logging.config.dictConfig(DEFAULT_LOGGING)  # back as the test run configured it
        logging.config.dictConfig(settings.LOGGING)
    text = stream.getvalue()
    assert text.count("Refused: /posts/1/submit/") == 2, text  # once each, not twice
    assert "PermissionError" not in text  # the 403 in one line
    assert "RuntimeError: boom" in text  # the 500 with its traceback
