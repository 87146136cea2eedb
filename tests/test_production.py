"""Production configuration: secrets, the site's URL and the emails' sender required, `check --deploy` clean,
gunicorn serves the site with whitenoise."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "nma_platform.settings.production",
    "SECRET_KEY": "x7#k2!p9q@w4e8r1t6y3u0i5o2p7a9s4d1f6g3h8j5k0l2z7x4c9v1b6n3m8q5w0e",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "SITE_URL": "https://nma.example.org",
    "DEFAULT_FROM_EMAIL": "NMA Platform <nma@example.org>",
}


def manage(*args: str, env: dict, tmp_path: Path, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    # Only the project's own variables: a browser test may have set DJANGO_ALLOW_ASYNC_UNSAFE in this process.
    dropped = ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE", *unset)
    full_env = {k: v for k, v in os.environ.items() if k not in dropped}
    full_env.setdefault("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.sqlite3'}")
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_print(code: str, *, env: dict, tmp_path: Path) -> list[str]:
    """What `code` prints on its last line, run by `manage.py shell` under `env`, split at '|'."""
    result = manage("shell", "--no-imports", "-c", code, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split("|")


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_a_database_url(tmp_path):
    env = {**PRODUCTION_ENV, "DATABASE_URL": ""}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DATABASE_URL must be set" in result.stderr


@pytest.mark.parametrize("value", [None, "", " , "])
def test_production_refuses_to_start_without_allowed_hosts(value, tmp_path):
    """Unset, the development default (localhost) answered 400 to every request for the site's name while
    `check` said nothing and the health check passed."""
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "ALLOWED_HOSTS"}
    if value is not None:
        env["ALLOWED_HOSTS"] = value
    result = manage("check", env=env, tmp_path=tmp_path, unset=("ALLOWED_HOSTS",) if value is None else ())
    assert result.returncode != 0
    expected = "nothing" if value is None else repr(value)
    assert f"ALLOWED_HOSTS must name the site's host names, such as nma.example.org (got {expected})." in (
        result.stderr
    )


def test_production_refuses_to_start_without_a_site_url(tmp_path):
    """Emailed links would otherwise point at the development default, http://127.0.0.1:8000."""
    env = {**PRODUCTION_ENV, "SITE_URL": ""}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SITE_URL must be set" in result.stderr


@pytest.mark.parametrize(
    "site_url", ["nma.example.org", "//nma.example.org", "ftp://nma.example.org", "https://"]
)
def test_production_refuses_a_site_url_that_is_not_an_absolute_http_url(site_url, tmp_path):
    result = manage("check", env={**PRODUCTION_ENV, "SITE_URL": site_url}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SITE_URL must be the site's absolute URL" in result.stderr


@pytest.mark.parametrize("sender", ["", "no-reply"])
def test_production_refuses_to_start_without_an_email_sender(sender, tmp_path):
    result = manage("check", env={**PRODUCTION_ENV, "DEFAULT_FROM_EMAIL": sender}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DEFAULT_FROM_EMAIL must" in result.stderr


def test_production_takes_the_site_url_sender_and_session_age_from_the_environment(tmp_path):
    env = {**PRODUCTION_ENV, "SITE_URL": "https://nma.example.org/", "SESSION_COOKIE_AGE": "3600"}
    code = (
        "from django.conf import settings as s; "
        "print(s.SITE_URL, s.DEFAULT_FROM_EMAIL, s.SESSION_COOKIE_AGE, s.SESSION_ENGINE, "
        "s.DATABASES['default']['CONN_HEALTH_CHECKS'], s.DEMO_DATA_ALLOWED, sep='|')"
    )
    # Persistent connections are checked before reuse (a restarted database failed each process's first request).
    assert production_print(code, env=env, tmp_path=tmp_path) == [
        "https://nma.example.org", "NMA Platform <nma@example.org>", "3600", "apps.accounts.sessions", "True", "False"
    ]  # fmt: skip


def test_load_demo_is_refused_under_production_settings(tmp_path):
    """It made `secretariat` a superuser with a published password, and rewrote real providers."""
    result = manage("load_demo", env=PRODUCTION_ENV, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "load_demo is refused under these settings" in result.stderr


def test_check_deploy_passes_under_production_settings(tmp_path):
    # The real defaults: HTTPS redirect on (the gunicorn test below turns it off to speak plain HTTP).
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECURE_SSL_REDIRECT"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_health_and_ping_answer_plain_http_while_the_rest_redirects_to_https(tmp_path):
    """Load balancers and liveness probes speak plain HTTP straight to gunicorn: a 301 is not an answer."""
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECURE_SSL_REDIRECT"}
    env["ALLOWED_HOSTS"] = "testserver"
    code = (
        "from django.test import Client; c = Client(); "
        "print(*[c.get(p).status_code for p in ('/api/v1/health/', '/api/v1/ping/', '/', '/api/v1/posts/')], "
        "c.get('/').headers['Location'], sep='|')"
    )
    health, ping, home, posts, location = production_print(code, env=env, tmp_path=tmp_path)
    # The health check's own answer (503 only if the database does not answer), not a redirect.
    assert health in ("200", "503")
    assert (ping, home, posts) == ("200", "301", "301")
    assert location == "https://testserver/"


def test_gunicorn_serves_pages_and_static_files(tmp_path):
    db = f"sqlite:///{tmp_path / 'gunicorn.sqlite3'}"
    env = {**PRODUCTION_ENV, "DATABASE_URL": db, "STATIC_ROOT": str(tmp_path / "static")}
    assert manage("migrate", "--no-input", env=env, tmp_path=tmp_path).returncode == 0
    collected = manage("collectstatic", "--no-input", env=env, tmp_path=tmp_path)
    assert collected.returncode == 0, collected.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    full_env = {**os.environ, **env}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "nma_platform.wsgi", "--bind", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert body is not None and "<html" in body.lower()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/css/site.css", timeout=2) as response:
            assert response.status == 200
            assert "max-age" in response.headers.get("Cache-Control", "")
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("module", ["nma_platform.settings.local", "nma_platform.settings.test"])
def test_other_settings_import_without_secrets(module, tmp_path):
    result = manage("check", env={"DJANGO_SETTINGS_MODULE": module}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_database_that_cannot_be_reached_is_named_in_one_line(tmp_path):
    """A wrong host or port in DATABASE_URL gave `migrate` a traceback of forty lines."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**PRODUCTION_ENV, "DATABASE_URL": f"postgres://nobody@127.0.0.1:{port}/nma"}
    result = manage("migrate", "--no-input", env=env, tmp_path=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Cannot reach the database nma at 127.0.0.1:{port} (DATABASE_URL): ")


def test_other_database_errors_keep_their_traceback(tmp_path):
    result = manage("shell", "--no-imports", "-c", "from django.db import connection; "
                    "connection.cursor().execute('select * from no_such_table')",
                    env={"DJANGO_SETTINGS_MODULE": "nma_platform.settings.local",
                         "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}, tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "no such table" in result.stderr
