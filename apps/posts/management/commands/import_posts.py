"""`manage.py import_posts FILE.jsonl`: bulk import of posts in the JSON Lines format of docs/FORMATS.md.

Two streaming passes over the file, so 100,000 lines never sit in memory together:
1. validate every line (JSON, fields, duplicates inside the file, and, a chunk at a time against the
   database, the actor's rights on the posts it names and each status against the life cycle); if any line
   is bad, print each problem with its line number and field, and write nothing;
2. read the file again and hand the posts to `posts.services.post_import`, which writes them in chunks inside
   one transaction (all or nothing) and queues matching once per chunk. It checks each post again under
   its row lock; a refusal then (the database changed in between) still names its line and field.
Blank lines are skipped; line numbers count them.
"""

from __future__ import annotations

import json
import time
from array import array
from collections.abc import Iterator
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from apps.accounts.actors import Actor
from apps.accounts.models import Role
from apps.posts.models import Post
from apps.posts.post_data import PostData, PostDataError, ReferenceData, parse_post_record
from apps.posts.selectors import post_by_export_id
from apps.posts.services import IMPORT_CHUNK_SIZE, PostImportError, post_import, post_import_check
from nma_platform.commands import positive_int

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
        "Import needs and offers from a JSON Lines file (one post per line, docs/FORMATS.md). Re-importing "
        "an external_id updates that post. Nothing is written if any line is bad."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the .jsonl file")
        parser.add_argument(
            "--status",
            # Not closed nor returned: they need an outcome or a reason, which an import cannot give.
            choices=[s for s in Post.Status.values if s not in (Post.Status.CLOSED, Post.Status.RETURNED)],
            help="status of lines that give none (default: an existing post keeps its status; a new one is "
            "published when the secretariat imports, a draft otherwise)",
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
        parser.add_argument(
            "--chunk-size", type=positive_int, default=IMPORT_CHUNK_SIZE, help="posts per write"
        )
        parser.add_argument(
            "--progress-every", type=positive_int, default=1000, help="report progress every N lines (stderr)"
        )

    def handle(self, *args, **options) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        actor = self._actor(options["as_user"])
        # Only a status asked for: without one, a new post gets the actor's default and an existing one keeps
        # its own (post_import decides).
        default_status = options["status"]
        every = options["progress_every"]
        chunk_size = options["chunk_size"]
        refs = ReferenceData()
        started = time.monotonic()

        # Pass 1: validate everything, a chunk at a time (its posts' rights and statuses are checked against
        # the database together), remembering only the external ids seen (for duplicates).
        seen: dict[str, int] = {}
        posts = bad_lines = 0
        chunk: list[tuple[int, PostData | None, list[str]]] = []

        def check_chunk() -> int:
            parsed = [(position, data) for position, (_n, data, _m) in enumerate(chunk) if data is not None]
            if options["keep_existing"]:
                # Those lines will be skipped: nothing they say about an existing post matters.
                existing = _existing([data for _p, data in parsed])
                parsed = [(position, data) for position, data in parsed if data.external_id not in existing]
            for index, error in post_import_check(actor=actor, items=[data for _p, data in parsed]):
                chunk[parsed[index][0]][2].append(f"{error.field}: {error.message}")
            bad = 0
            for lineno, _data, messages in chunk:
                bad += bool(messages)
                for message in messages:
                    self.stderr.write(f"line {lineno}: {message}")
            chunk.clear()
            return bad

        for lineno, line in _lines(path):
            posts += 1
            try:
                data = _parse_line(line, refs, default_status)
            except BadLine as bad:
                chunk.append((lineno, None, bad.messages))
            else:
                chunk.append((lineno, data, _duplicate(data, seen, lineno)))
            if len(chunk) >= chunk_size:
                bad_lines += check_chunk()
            if lineno % every == 0:
                self.stderr.write(f"validated {lineno:,} lines", style_func=_plain)
        bad_lines += check_chunk()
        if bad_lines:
            raise CommandError(
                f"{bad_lines:,} of {posts:,} lines in {path} are bad (listed above); nothing was imported."
            )
        if not posts:
            raise CommandError(f"{path} holds no posts (it is empty or blank); nothing was imported.")
        del seen

        # Pass 2: stream the (now known good) lines into the service, in chunks, in one transaction.
        skipped = [0]

        def progress(done: int) -> None:
            total = done + skipped[0]
            if total // every > (total - chunk_size) // every or total == posts:
                self.stderr.write(f"imported {total:,} of {posts:,} lines", style_func=_plain)

        pairs: Iterator[tuple[int, PostData]] = (
            (lineno, _parse_line(line, refs, default_status)) for lineno, line in _lines(path)
        )
        if options["keep_existing"]:
            pairs = _without_existing(pairs, chunk_size, skipped)
        given = array("L")  # the line of each post handed to the service, to name the line of a refusal

        def items() -> Iterator[PostData]:
            for lineno, data in pairs:
                given.append(lineno)
                yield data

        try:
            result = post_import(actor=actor, items=items(), chunk_size=chunk_size, progress=progress)
        except PostImportError as error:
            # The database changed since pass 1 (or the file did): name the lines, as pass 1 would have.
            refused = "; ".join(f"line {given[index]}: {e.field}: {e.message}" for index, e in error.errors)
            raise CommandError(f"Import refused, nothing was imported: {refused}") from error
        except BadLine as error:
            raise CommandError(f"Import refused, nothing was imported: {error}") from error

        elapsed = time.monotonic() - started
        kept = f", kept as they were {skipped[0]:,}" if options["keep_existing"] else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {posts:,} post{'' if posts == 1 else 's'} from {path.name} in {elapsed:.1f} s: "
                f"created {result.created:,}, "
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
        if actor.is_deactivated_provider:
            # The real reason, not "only ... support providers can": the user is one, of a deactivated provider.
            raise CommandError(
                f"{username} may not import posts: the secretariat has deactivated their support provider, "
                f"{user.provider.short_name}. Its users may still withdraw or close its posts, on the site or "
                "through the API."
            )
        if not (actor.is_secretariat or actor.can_post):
            raise CommandError(
                f"{username} may not import posts: only the secretariat, focal points and support providers can."
            )
        return actor


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) for each line that is not blank, read one at a time; numbers count every line."""
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if lineno == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]
            # Whitespace only (an editor's final empty line, a gap between blocks): nothing to import. Decoded
            # leniently: a line that is not UTF-8 is not blank, and _parse_line says what is wrong with it.
            if raw.decode("utf-8", "replace").strip():
                yield lineno, raw


def _parse_line(raw: bytes, refs: ReferenceData, default_status: str | None) -> PostData:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadLine(
            [f"(line): The line is not valid UTF-8 ({error.reason} at byte {error.start})."]
        ) from None
    line = line.rstrip("\r\n")
    if "\r" in line:  # a bare CR is no JSON whitespace, and inside a string it is written \r
        raise BadLine(
            ["(line): " + _("Lines must end in LF or CRLF: this one holds a carriage return (CR) alone, as old Mac "
                            "files end their lines. Save the file with LF or CRLF line endings.")]
        )  # fmt: skip
    try:
        record = json.loads(line, parse_constant=_not_json_constant)
    except json.JSONDecodeError as error:
        raise BadLine(["(line): " + _json_problem(line, error)]) from None
    except _NotJSONConstant as error:
        raise BadLine(
            ["(line): " + _("Invalid JSON: %(value)s is not a JSON value.") % {"value": error.args[0]}]
        ) from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise BadLine(["(line): " + _("Invalid JSON: a number has too many digits.")]) from None
    except RecursionError:
        raise BadLine(
            ["(line): " + _("Invalid JSON: its arrays or objects are nested too deeply.")]
        ) from None
    messages = []
    # The import format requires an external_id (the API's create does not, so the parser allows none).
    if isinstance(record, dict) and record.get("external_id") is None:
        messages.append("external_id: " + _("This field is required."))
    try:
        data = parse_post_record(record, refs, default_status=default_status)
    except PostDataError as error:
        messages.extend(f"{e.field}: {e.message}" for e in error.errors)
    if messages:
        raise BadLine(messages)
    return data


class _NotJSONConstant(ValueError):
    pass


def _not_json_constant(name: str) -> None:
    """json.loads takes NaN, Infinity and -Infinity, which JSON does not have (the API refuses them too)."""
    raise _NotJSONConstant(name)


def _json_problem(line: str, error: json.JSONDecodeError) -> str:
    """What is wrong with a line that is not JSON, and where (a line holds no line break, so its column is the
    character's position in the line)."""
    if error.msg.startswith("Unterminated string"):
        # json reports where the string starts ("Unterminated string starting at"): the line ends inside it.
        return _("Invalid JSON: a text value is still open at the end of the line (is the line cut short?).")
    if error.pos >= len(line.rstrip()):
        return _("Invalid JSON: %(problem)s at the end of the line (is the line cut short?).") % {
            "problem": error.msg
        }
    return _("Invalid JSON: %(problem)s (column %(column)d).") % {
        "problem": error.msg,
        "column": error.pos + 1,
    }


def _duplicate(data: PostData, seen: dict[str, int], lineno: int) -> list[str]:
    """The line's problem if its external_id came earlier in the file (the service checks the rest)."""
    first = seen.setdefault(data.external_id, lineno)
    if first == lineno:
        return []
    return [
        "external_id: " + _("Duplicate of line %(line)d (%(id)r).") % {"line": first, "id": data.external_id}
    ]


def _existing(datas: list[PostData]) -> set[str]:
    """The external ids among these that name a post in the database (as the import resolves them)."""
    return set(post_by_export_id(d.external_id for d in datas))


def _without_existing(
    pairs: Iterator[tuple[int, PostData]], chunk_size: int, skipped: list[int]
) -> Iterator[tuple[int, PostData]]:
    """Drop the lines whose external_id names a post in the database (one or two queries per chunk)."""
    chunk: list[tuple[int, PostData]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) >= chunk_size:
            yield from _new_only(chunk, skipped)
            chunk = []
    if chunk:
        yield from _new_only(chunk, skipped)


def _new_only(chunk: list[tuple[int, PostData]], skipped: list[int]) -> list[tuple[int, PostData]]:
    existing = _existing([data for _lineno, data in chunk])
    skipped[0] += len(existing)
    return [(lineno, data) for lineno, data in chunk if data.external_id not in existing]
