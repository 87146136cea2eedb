"""The benchmarks' scratch PostgreSQL databases."""

from __future__ import annotations


def ensure_database(url: str) -> None:
    """Create the database that `url` names on its server if it does not exist yet (a benchmark that keeps its
    data between runs reuses it; `make bench` on a fresh server would otherwise stop at its first query)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    name = name.split("?", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created the database {name}", flush=True)


def django_on_bench_database(url: str) -> None:
    """Set Django up on the benchmark's own database `url` (created if need be, then migrated); refuse a database
    whose name does not contain "bench", which the benchmark empties."""
    import os
    import sys

    if "bench" not in url.rsplit("/", 1)[-1]:
        sys.exit("Refusing to empty a database whose name does not contain 'bench'.")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nma_platform.settings.test")
    ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
