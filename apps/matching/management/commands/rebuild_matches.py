"""Recompute every match: fanned out in chunks to the Celery workers, or in this process with --sync."""

import signal
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection

from apps.matching.models import Match
from apps.matching.pipeline import rebuild_progress, rebuild_start
from nma_platform.commands import positive_int


def _workers_answer() -> bool:
    """Whether a Celery worker answers a ping within a second (True where tasks run in this process, or the
    broker cannot be asked: the wait says the rest)."""
    from nma_platform.celery import app

    if app.conf.task_always_eager:
        return True
    try:
        return bool(app.control.ping(timeout=1.0))
    except Exception:
        return True


def _terminated(signum, frame) -> None:
    sys.stderr.write("\nStopped by SIGTERM: the rebuild ends as failed and retires nothing.\n")
    raise SystemExit(128 + signum)


class Command(BaseCommand):
    help = (
        "Recompute all matches. By default the work is split into chunks and queued for the Celery workers "
        "(so every machine's workers share it) and this command shows progress until they finish; with --sync "
        "everything runs in this process."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--sync", action="store_true", help="Run in this process instead of on the workers."
        )
        parser.add_argument("--refit", action="store_true", help="Refit the text model first.")
        parser.add_argument(
            "--chunk-size", type=positive_int, default=None, help="Posts per chunk (default: settings)."
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="Queue the chunks and return without waiting for the workers.",
        )
        parser.add_argument(
            "--timeout", type=positive_int, default=3600, help="Seconds to wait for the workers."
        )

    def handle(self, *args, sync, refit, chunk_size, no_wait, timeout, **options):
        started = time.monotonic()

        shown = {"line": "", "ended": False}

        def report(done: int, total: int) -> None:
            line = f"rebuild: {done}/{total} chunks"
            if line == shown["line"]:
                return
            # The line ends with the last chunk: what the run's end logs then starts a line of its own.
            shown["line"], shown["ended"] = line, done >= total
            if sys.stderr.isatty():  # one line, rewritten
                sys.stderr.write("\r" + line + ("\n" if shown["ended"] else ""))
            else:  # a log: a line each
                sys.stderr.write(line + "\n")
            sys.stderr.flush()

        # Stopped by SIGTERM (systemd, `timeout`, an operator's kill), an in-process run must still end as
        # failed: Python's default dies at once, leaving the run unfinished, and every other rebuild then
        # retired nothing until it counted as dead.
        previous = signal.signal(signal.SIGTERM, _terminated) if sync else None
        try:
            run = rebuild_start(sync=sync, refit=refit, chunk_size=chunk_size, progress=report)
        except Exception as error:  # the broker is down, most likely; in process, whatever stopped it
            if sync:
                raise CommandError(f"The rebuild failed: {error}.") from error
            raise CommandError(f"Could not start the rebuild: {error}. Try --sync.") from error
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if not sync and not no_wait:
            if not _workers_answer():
                sys.stderr.write(
                    "No Celery worker answered: the chunks wait in the broker until one starts (make worker), "
                    f"for up to {timeout} s. To rebuild without workers, stop this and run it with --sync.\n"
                )
            deadline = started + timeout
            while True:
                try:
                    done, total, finished = rebuild_progress(run.pk)
                except OperationalError as error:  # the database away for a moment: the workers retry too
                    if time.monotonic() > deadline:
                        raise CommandError(f"\nThe database did not answer: {error}") from error
                    if not connection.in_atomic_block:  # a broken connection: the next query opens another
                        connection.close_if_unusable_or_obsolete()
                    time.sleep(1)
                    continue
                report(done, total)
                if finished:
                    break
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"\nThe workers did not finish within {timeout} s ({done}/{total} chunks)."
                    )
                time.sleep(0.5)
        if not shown["ended"]:
            sys.stderr.write("\n")
        run.refresh_from_db()
        if run.failed:  # by a worker (its settings differ), or by another rebuild that found it silent
            raise CommandError(
                f"Rebuild {run.pk} failed and retired no match: {run.failure or 'no reason given.'}"
            )
        elapsed = time.monotonic() - started
        if no_wait and not sync:
            self.stdout.write(f"Rebuild {run.pk}: {run.total_chunks} chunks queued in {elapsed:.1f} s")
            return
        # The matches stored now: the workers' chunks each rank one side, and a pair both of its posts rank
        # is written twice (once by each side's chunk), so the rows written say less about the result.
        self.stdout.write(
            f"Rebuild {run.pk}: {run.total_chunks} chunks in {elapsed:.1f} s; "
            f"{Match.objects.active().count()} matches stored"
        )
