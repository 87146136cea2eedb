"""`manage.py import_posts FILE.jsonl`: bulk import of posts in the JSON Lines format of DOMAIN.md.

Two streaming passes over the file, so 100,000 lines never sit in memory together:
1. validate every line (JSON, fields, duplicates inside the file, the actor's right to post it); if any
   line is bad, print each problem with its line number and write nothing;
2. read the file again and hand the posts to `posts.services.post_import`, which writes them in chunks inside
   one transaction (all or nothing) and queues matching once per chunk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.actors import Actor
from apps.accounts.models import Role
from apps.posts.models import Post
from apps.posts.post_data import PostData, PostDataError, ReferenceData, parse_post_record
from apps.posts.services import (
    IMPORT_CHUNK_SIZE,
    PostTransitionError,
    post_import,
    post_require_poster,
)

# Statuses someone other than the secretariat may ask for in a file (post_import enforces the rest).
NON_STAFF_STATUSES = (Post.Status.DRAFT, Post.Status.SUBMITTED, Post.Status.WITHDRAWN)
UTF8_BOM = b"\xef\xbb\xbf"


def _plain(text: str) -> str:
    """Progress is information, not an error: no red even though it goes to stderr."""
    return text


class BadLine(Exception):
    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


class Command(BaseCommand):
    help = (
        "Import needs and offers from a JSON Lines file (one post per line, DOMAIN.md format). Re-importing "
        "an external_id updates that post. Nothing is written if any line is bad."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the .jsonl file")
        parser.add_argument(
            "--status",
            choices=Post.Status.values,
            help="status of lines that give none (default: published when the secretariat imports, "
            "draft otherwise)",
        )
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            help="the user recorded as the author of the import (default: the secretariat's system account)",
        )
        parser.add_argument(
            "--keep-existing",
            action="store_true",
            help="leave posts whose external_id already exists as they are, instead of updating them",
        )
        parser.add_argument("--chunk-size", type=int, default=IMPORT_CHUNK_SIZE, help="posts per write")
        parser.add_argument(
            "--progress-every", type=int, default=1000, help="report progress every N lines (stderr)"
        )

    def handle(self, *args, **options) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        actor = self._actor(options["as_user"])
        default_status = options["status"] or (Post.Status.PUBLISHED if actor.is_secretariat else None)
        every = max(1, options["progress_every"])
        refs = ReferenceData()
        started = time.monotonic()

        # Pass 1: validate everything, remembering only the external ids seen (for duplicates).
        seen: dict[str, int] = {}
        bad_lines = lines = 0
        for lineno, line in _lines(path):
            lines = lineno
            try:
                data = _parse_line(line, refs, default_status)
                _check_line(data, actor, seen, lineno)
            except BadLine as bad:
                bad_lines += 1
                for message in bad.messages:
                    self.stderr.write(f"line {lineno}: {message}")
            if lineno % every == 0:
                self.stderr.write(f"validated {lineno:,} lines", style_func=_plain)
        if bad_lines:
            raise CommandError(
                f"{bad_lines:,} of {lines:,} lines in {path} are bad (listed above); nothing was imported."
            )
        if not lines:
            raise CommandError(f"{path} is empty; nothing was imported.")
        del seen

        # Pass 2: stream the (now known good) lines into the service, in chunks, in one transaction.
        skipped = [0]

        def progress(done: int) -> None:
            total = done + skipped[0]
            if total // every > (total - options["chunk_size"]) // every or total == lines:
                self.stderr.write(f"imported {total:,} of {lines:,} lines", style_func=_plain)

        items: Iterator[PostData] = (
            _parse_line(line, refs, default_status) for _lineno, line in _lines(path)
        )
        if options["keep_existing"]:
            items = _without_existing(items, options["chunk_size"], skipped)
        try:
            result = post_import(
                actor=actor, items=items, chunk_size=options["chunk_size"], progress=progress
            )
        except (PermissionDenied, PostTransitionError, ValueError, BadLine) as error:
            raise CommandError(f"Import refused, nothing was imported: {error}") from error

        elapsed = time.monotonic() - started
        kept = f", kept as they were {skipped[0]:,}" if options["keep_existing"] else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {lines:,} lines from {path.name} in {elapsed:.1f} s: created {result.created:,}, "
                f"updated {result.updated:,}, unchanged {result.unchanged:,}{kept}."
            )
        )

    def _actor(self, username: str | None) -> Actor:
        if not username:
            # No person to name: the audit trail records the command itself, with the secretariat's rights.
            return Actor(role=Role.SECRETARIAT, label="import_posts")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        actor = Actor.for_user(user)
        if not (actor.is_secretariat or actor.can_post):
            raise CommandError(
                f"{username} may not import posts: only the secretariat, focal points and support providers can."
            )
        return actor


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) for each line, read one at a time."""
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            yield lineno, raw[len(UTF8_BOM) :] if lineno == 1 and raw.startswith(UTF8_BOM) else raw


def _parse_line(raw: bytes, refs: ReferenceData, default_status: str | None) -> PostData:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadLine(
            [f"(line): The line is not valid UTF-8 ({error.reason} at byte {error.start})."]
        ) from None
    if not line.strip():
        raise BadLine(["(line): Blank line; every line must hold one post as a JSON object."])
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise BadLine([f"(line): Invalid JSON: {error.msg} (column {error.colno})."]) from None
    messages = []
    # The import format requires an external_id (the API's create does not, so the parser allows none).
    if isinstance(record, dict) and record.get("external_id") is None:
        messages.append("external_id: This field is required.")
    try:
        data = parse_post_record(record, refs, default_status=default_status)
    except PostDataError as error:
        messages.extend(f"{e.field}: {e.message}" for e in error.errors)
    if messages:
        raise BadLine(messages)
    return data


def _check_line(data: PostData, actor: Actor, seen: dict[str, int], lineno: int) -> None:
    """What can be known from the file alone besides the format: duplicates and the actor's rights."""
    messages = []
    first = seen.get(data.external_id)
    if first is not None:
        messages.append(f"external_id: Duplicate of line {first} ({data.external_id!r}).")
    else:
        seen[data.external_id] = lineno
    try:
        post_require_poster(actor=actor, data=data)
    except PermissionDenied as error:
        messages.append(f"{'provider' if data.provider else 'party'}: {error}")
    if not actor.is_secretariat and data.status and data.status not in NON_STAFF_STATUSES:
        messages.append(f"status: Only the secretariat imports posts as {data.status}.")
    if messages:
        raise BadLine(messages)


def _without_existing(items: Iterator[PostData], chunk_size: int, skipped: list[int]) -> Iterator[PostData]:
    """Drop the items whose external_id is already in the database (one query per chunk)."""
    chunk: list[PostData] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= chunk_size:
            yield from _new_only(chunk, skipped)
            chunk = []
    if chunk:
        yield from _new_only(chunk, skipped)


def _new_only(chunk: list[PostData], skipped: list[int]) -> list[PostData]:
    ids = [d.external_id for d in chunk]
    existing = set(Post.objects.filter(external_id__in=ids).values_list("external_id", flat=True))
    skipped[0] += len(existing)
    return [d for d in chunk if d.external_id not in existing]
