"""`manage.py import_posts` and the import service against the post life cycle: an import follows the same
transitions as the life-cycle services, finds every problem in its first pass (with the line and the field),
skips blank lines, and says what is really wrong."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.actors import Actor
from apps.accounts.models import Role
from apps.posts import services
from apps.posts.models import Post, PostEvent
from apps.posts.post_data import ReferenceData, parse_post_record
from apps.posts.services import (
    PostImportError,
    PostTransitionError,
    post_close,
    post_import,
    post_publish,
    post_return,
    post_submit,
    post_withdraw,
)
from tests.factories import PostFactory, party

S = Post.Status
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def queued(monkeypatch):
    calls: list[list[int]] = []
    monkeypatch.setattr(services, "matching_enqueue", lambda *, post_ids: calls.append(list(post_ids)))
    return calls


def need(n: int, **changes) -> dict:
    record = {
        "external_id": f"need-{n}",
        "kind": "need",
        "party": "KEN",
        "title": f"Flood early warning for district {n}",
        "description": "River gauges, forecasts and community alerts for forty villages.",
        "support_types": ["technology"],
        "focus_areas": ["adaptation"],
    }
    record.update(changes)
    return record


def write(tmp_path: Path, lines: list, name="posts.jsonl", end="\n") -> Path:
    path = tmp_path / name
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + end for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def run(path, *args) -> str:
    out = StringIO()
    call_command("import_posts", str(path), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def run_failing(path, *args) -> tuple[str, str]:
    err = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("import_posts", str(path), *args, stdout=StringIO(), stderr=err)
    return str(raised.value), err.getvalue()


def the_post(external_id="need-1") -> Post:
    return Post.objects.get(external_id=external_id)


def history(post: Post) -> list[dict]:
    return list(post.events.order_by("pk").values_list("changes", flat=True))


STAFF = Actor(role=Role.SECRETARIAT, label="tests")


# --- 1. the life cycle ----------------------------------------------------------------------------------------


def test_reimport_without_status_leaves_a_withdrawn_post_withdrawn(tmp_path, focal_point, secretariat):
    path = write(tmp_path, [need(1), need(2)])
    run(path, "--as", "secretariat")
    post_withdraw(actor=Actor.for_user(focal_point), post=the_post("need-2"))

    out = run(path, "--as", "secretariat")

    assert "created 0, updated 0, unchanged 2" in out
    assert the_post("need-2").status == S.WITHDRAWN
    assert not any("status" in changes for changes in history(the_post("need-2")))


def test_reimport_without_status_leaves_a_closed_post_closed(tmp_path, focal_point):
    path = write(tmp_path, [need(1)])
    run(path)
    post_close(actor=Actor.for_user(focal_point), post=the_post(), outcome="Funded by a partner.")

    run(write(tmp_path, [need(1, title="Flood early warning, revised")]))

    post = the_post()
    assert (post.status, post.title, post.outcome) == (
        S.CLOSED,
        "Flood early warning, revised",
        "Funded by a partner.",
    )
    assert "status" not in history(post)[-1]


def test_reimport_without_status_keeps_a_draft_and_new_posts_are_still_published(tmp_path):
    run(write(tmp_path, [need(1)]), "--status", "draft")
    run(write(tmp_path, [need(1), need(2)]))
    assert dict(Post.objects.values_list("external_id", "status")) == {
        "need-1": S.DRAFT,
        "need-2": S.PUBLISHED,
    }


@pytest.mark.parametrize("final", [S.CLOSED, S.WITHDRAWN])
@pytest.mark.parametrize("wanted", [S.DRAFT, S.SUBMITTED, S.PUBLISHED])
def test_a_status_the_post_has_moved_past_leaves_it_where_it_is(final, wanted, tmp_path):
    """A partner's file that still says "published" (or submitted) for a post withdrawn or closed since: the file is
    behind, not asking to go back (which no step allows). Refused, it made a whole unchanged re-sync fail."""
    PostFactory(external_id="need-2", status=final)
    run(write(tmp_path, [need(1), need(2, status=wanted)]))
    assert the_post("need-2").status == final
    assert Post.objects.filter(external_id="need-1").exists()  # and the rest of the file went in


def test_a_published_post_stays_published_when_its_file_still_says_submitted(tmp_path, focal_point):
    lines = [need(1, status="submitted"), need(2, status="submitted")]
    run(write(tmp_path, lines))
    post_publish(actor=STAFF, post=the_post("need-1"))
    out = run(write(tmp_path, lines))  # the same file again
    assert (the_post("need-1").status, the_post("need-2").status) == (S.PUBLISHED, S.SUBMITTED)
    assert "unchanged 2" in out


def test_a_returned_post_goes_back_to_the_queue_only_when_its_line_changes_it(tmp_path):
    lines = [need(1, status="submitted"), need(2, status="submitted")]
    run(write(tmp_path, lines))
    for external_id in ("need-1", "need-2"):
        post_return(actor=STAFF, post=the_post(external_id), reason="Add the budget.")
    # need-1's line is fixed (an amount added) and resubmits it; need-2's is the same line again: it stays returned.
    run(write(tmp_path, [need(1, status="submitted", amount_usd=250000), need(2, status="submitted")]))
    assert (the_post("need-1").status, the_post("need-2").status) == (S.SUBMITTED, S.RETURNED)


@pytest.mark.parametrize("final", [S.CLOSED, S.WITHDRAWN])
def test_closed_and_withdrawn_posts_are_never_returned_nor_moved_on(final, tmp_path):
    PostFactory(external_id="need-2", status=final)
    for wanted in (S.RETURNED, S.WITHDRAWN if final == S.CLOSED else S.CLOSED):
        _error, stderr = run_failing(write(tmp_path, [need(1), need(2, status=wanted)]))
        assert "line 2: status: " in stderr and "line 1:" not in stderr
        assert the_post("need-2").status == final
        assert not Post.objects.filter(external_id="need-1").exists()


def test_a_final_post_refuses_the_move_with_a_whole_sentence(tmp_path):
    PostFactory(external_id="need-1", status=S.WITHDRAWN)
    _error, stderr = run_failing(write(tmp_path, [need(1, status="closed")]))
    assert "line 1: status: A withdrawn post cannot be closed." in stderr


def test_import_never_closes_nor_returns_a_post(tmp_path, secretariat):
    """The import format has no outcome and no reason: closing and returning stay in the platform."""
    PostFactory(external_id="need-1", status=S.PUBLISHED)
    PostFactory(external_id="need-2", status=S.SUBMITTED, published_at=None)
    lines = [
        need(1, status="closed"),
        need(2, status="returned"),
        need(3, status="closed"),
        need(4, status="returned"),
    ]
    error, stderr = run_failing(write(tmp_path, lines), "--as", "secretariat")
    assert "4 of 4 lines" in error
    assert (
        "line 1: status: An import cannot close a post: close it in the platform, with its outcome." in stderr
    )
    assert (
        "line 2: status: An import cannot return a post: return it from the moderation queue, with a reason."
        in stderr
    )
    assert "line 3: status: An import cannot close a post" in stderr
    assert "line 4: status: An import cannot return a post" in stderr
    assert Post.objects.count() == 2
    assert not Post.objects.filter(status__in=[S.CLOSED, S.RETURNED]).exists()


def test_the_secretariat_publishes_by_import_only_what_moderation_could(tmp_path):
    PostFactory(external_id="need-1", status=S.SUBMITTED, published_at=None)
    PostFactory(external_id="need-2", status=S.DRAFT, published_at=None)
    _error, stderr = run_failing(write(tmp_path, [need(1, status="published"), need(2, status="published")]))
    assert "line 2: status: A draft post cannot be published." in stderr and "line 1:" not in stderr

    run(write(tmp_path, [need(1, status="published"), need(2, status="submitted")]))
    assert dict(Post.objects.values_list("external_id", "status")) == {
        "need-1": S.PUBLISHED,
        "need-2": S.SUBMITTED,
    }


def test_a_focal_point_withdraws_by_import_but_never_moderates(tmp_path, focal_point):
    PostFactory(external_id="need-1", status=S.PUBLISHED)
    PostFactory(external_id="need-2", status=S.SUBMITTED, published_at=None)
    _error, stderr = run_failing(
        write(tmp_path, [need(1, status="withdrawn"), need(2, status="published")]),
        "--as",
        focal_point.username,
    )
    assert "line 1:" not in stderr
    assert "line 2: status: Only the secretariat imports posts as published." in stderr
    run(write(tmp_path, [need(1, status="withdrawn")]), "--as", focal_point.username)
    assert the_post().status == S.WITHDRAWN
    # Recorded as a withdrawal, as on the site (it was an "update" with a changed status).
    event = the_post().events.get()
    assert (event.action, event.from_status, event.to_status) == ("withdrawn", S.PUBLISHED, S.WITHDRAWN)


def test_service_refuses_a_final_post_with_the_item_and_field(focal_point):
    """The service checks again under its row locks (the file may be older than a change made meanwhile)."""
    refs = ReferenceData()
    post_import(actor=STAFF, items=[parse_post_record(need(1), refs), parse_post_record(need(2), refs)])
    post_withdraw(actor=Actor.for_user(focal_point), post=the_post("need-2"))
    items = [
        parse_post_record(need(1, title="Changed"), refs),
        parse_post_record(need(2, status="closed"), refs),
    ]
    with pytest.raises(PostImportError) as raised:
        post_import(actor=STAFF, items=items)
    assert [(index, e.field, e.code) for index, e in raised.value.errors] == [
        (1, "status", "invalid_transition")
    ]
    assert the_post("need-1").title == "Flood early warning for district 1"


# --- 2. every problem found in the first pass, with its line and field -----------------------------------------


def test_lone_surrogate_and_nul_are_field_errors(tmp_path):
    path = write(
        tmp_path,
        [
            '{"external_id": "need-1", "kind": "need", "party": "KEN", "title": "Flood \\ud800 warning", '
            '"description": "Gauges.", "support_types": ["technology"], "focus_areas": ["adaptation"]}',
            need(2, description="Gauges\u0000 and alerts"),
            need(3, contact_name="\udc80"),
            need(4),
        ],
    )
    error, stderr = run_failing(path)
    assert "line 1: title: Invalid Unicode (unpaired surrogate)." in stderr
    assert "line 2: description: NUL characters are not allowed." in stderr
    assert "line 3: contact_name: Invalid Unicode (unpaired surrogate)." in stderr
    assert "3 of 4 lines" in error and "nothing was imported" in error
    assert not Post.objects.exists()


def test_bad_text_in_a_field_name_or_a_list_is_reported_without_crashing(tmp_path):
    path = write(
        tmp_path, ['{"external_id": "need-1", "ti\\u0000tle": "x"}', need(2, sectors=["wa\udc80ter"])]
    )
    _error, stderr = run_failing(path)
    assert "line 1: ti\\x00tle: Unknown field(s): ti\\x00tle." in stderr
    assert "line 2: sectors: Invalid Unicode (unpaired surrogate)." in stderr


def test_a_new_post_cannot_start_withdrawn(tmp_path, focal_point):
    _error, stderr = run_failing(
        write(tmp_path, [need(1), need(2, status="withdrawn")]), "--as", focal_point.username
    )
    assert (
        "line 2: status: A new post cannot be imported as withdrawn: import it first, then withdraw it."
        in stderr
    )
    assert "line 1:" not in stderr and "cannot be edited" not in stderr
    assert not Post.objects.exists()


def test_rights_on_existing_ids_are_checked_in_the_first_pass(tmp_path, focal_point):
    PostFactory(external_id="demo-need-003", party=party("BRA"), status=S.PUBLISHED)
    lines = [need(1), need(2, external_id="demo-need-003"), need(3), need(4, external_id="post-999999")]
    error, stderr = run_failing(write(tmp_path, lines), "--as", focal_point.username, "--chunk-size", "2")
    assert "2 of 4 lines" in error and "nothing was imported" in error
    assert "line 2: external_id: This external_id belongs to a post of another Party or provider." in stderr
    assert (
        "line 4: external_id: post-999999 names a post made in the platform, and there is none by that number."
        in stderr
    )
    assert Post.objects.count() == 1


def test_editing_a_post_in_moderation_is_found_in_the_first_pass(tmp_path, focal_point):
    PostFactory(external_id="need-2", status=S.SUBMITTED, published_at=None, title="In moderation")
    lines = [need(1), need(2, title="Changed in moderation"), need(3)]
    _error, stderr = run_failing(write(tmp_path, lines), "--as", focal_point.username)
    assert "line 2: title: A submitted post cannot be edited: take it back from review first." in stderr
    assert "line 1:" not in stderr and "line 3:" not in stderr


def test_an_error_found_while_writing_names_its_line(tmp_path, focal_point, monkeypatch):
    """A post changed between the two passes: the refusal still says which line and which field."""
    from apps.posts.management.commands import import_posts

    PostFactory(external_id="need-3", status=S.PUBLISHED)
    path = write(tmp_path, [need(1), "", need(2), need(3, status="withdrawn")])
    real = import_posts.post_import

    def withdraw_first(**kwargs):
        Post.objects.filter(external_id="need-3").update(status=S.CLOSED)
        return real(**kwargs)

    monkeypatch.setattr(import_posts, "post_import", withdraw_first)
    error, _stderr = run_failing(path, "--as", focal_point.username)
    assert "line 4: status: A closed post cannot be withdrawn." in error
    assert "nothing was imported" in error
    assert not Post.objects.filter(external_id__in=["need-1", "need-2"]).exists()


# --- 3. blank lines -------------------------------------------------------------------------------------------


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_text(
        "\n"
        + json.dumps(need(1))
        + "\n  \t\n"
        + json.dumps(need(2))
        + "\r\n\r\n"
        + json.dumps(need(3))
        + "\n\n",
        encoding="utf-8",
    )
    out = run(path)
    assert "Imported 3 posts" in out and "created 3" in out

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n\n" + json.dumps(need(4)) + "\n\n" + json.dumps(need(5, amount_usd=-1)) + "\n\n", encoding="utf-8"
    )
    error, stderr = run_failing(bad)
    assert "line 5: amount_usd: The amount may not be negative." in stderr
    assert "1 of 2 lines" in error


def test_a_file_of_blank_lines_imports_nothing(tmp_path):
    error, _ = run_failing(write(tmp_path, ["", "   "]))
    assert "holds no posts" in error


# --- 4. messages ---------------------------------------------------------------------------------------------


def test_platform_id_of_a_post_that_has_an_external_id(tmp_path):
    post = PostFactory(external_id="demo-need-003")
    _error, stderr = run_failing(write(tmp_path, [need(1, external_id=f"post-{post.pk}")]))
    assert (
        f"line 1: external_id: post-{post.pk} cannot name post {post.pk}: it has an external_id of its own, "
        "'demo-need-003'; import it under that one." in stderr
    )
    assert "there is none by that number" not in stderr


def test_platform_id_of_another_partys_post_does_not_reveal_its_external_id(tmp_path, focal_point):
    post = PostFactory(external_id="bra-secret", party=party("BRA"))
    _error, stderr = run_failing(
        write(tmp_path, [need(1, external_id=f"post-{post.pk}")]), "--as", focal_point.username
    )
    assert (
        f"line 1: external_id: post-{post.pk} cannot name post {post.pk}: it has an external_id of its own."
        in stderr
    )
    assert "bra-secret" not in stderr


@pytest.mark.parametrize(
    ("start", "act", "message"),
    [
        (S.DRAFT, "close", "A draft post cannot be closed."),
        (S.SUBMITTED, "submit", "A submitted post cannot be submitted again."),
        (S.CLOSED, "return", "A closed post cannot be returned."),
        (S.WITHDRAWN, "withdraw", "A withdrawn post cannot be withdrawn again."),
        (S.CLOSED, "edit", "A closed post cannot be edited."),
    ],
)
def test_transition_errors_are_whole_sentences(start, act, message):
    error = PostTransitionError(act, start)
    assert str(error) == message
    assert (error.action, error.status) == (act, start)


def test_transition_error_of_a_service(focal_point, secretariat):
    post = PostFactory(status=S.DRAFT, published_at=None)
    with pytest.raises(PostTransitionError, match=r"^A draft post cannot be closed\.$"):
        post_close(actor=Actor.for_user(focal_point), post=post, outcome="Done.")
    with pytest.raises(PostTransitionError, match=r"^A draft post cannot be returned\.$"):
        post_return(actor=Actor.for_user(secretariat), post=post, reason="Why.")
    post_submit(actor=Actor.for_user(focal_point), post=post)
    with pytest.raises(PostTransitionError, match=r"^A submitted post cannot be submitted again\.$"):
        post_submit(actor=Actor.for_user(focal_point), post=post)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"external_id": "x", "kind": "need",',
            "(line): Invalid JSON: Expecting property name enclosed in double quotes at the end of the line "
            "(is the line cut short?).",
        ),
        ('{"external_id": "x" "kind": "need"}', "(line): Invalid JSON: Expecting ',' delimiter (column 21)."),
        (
            '{"external_id": "x", "title": "Flood early warn',
            "(line): Invalid JSON: a text value is still open at the end of the line (is the line cut short?).",
        ),
        (
            '{"external_id": "é", x}',
            "(line): Invalid JSON: Expecting property name enclosed in double quotes (column 22).",
        ),
        # What Python's json takes and JSON is not, or what it cannot convert: a message, not a traceback.
        ('{"external_id": "x", "amount_usd": NaN}', "(line): Invalid JSON: NaN is not a JSON value."),
        (
            '{"external_id": "x", "amount_usd": -Infinity}',
            "(line): Invalid JSON: -Infinity is not a JSON value.",
        ),
        (
            '{"external_id": "x", "amount_usd": ' + "9" * 5000 + "}",
            "(line): Invalid JSON: a number has too many digits.",
        ),
        (
            '{"external_id": "x", "y": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "(line): Invalid JSON: its arrays or objects are nested too deeply.",
        ),
        # Old Mac line endings: the whole file reads as one line.
        (
            json.dumps(need(2)) + "\r" + json.dumps(need(3)),
            "(line): Lines must end in LF or CRLF: this one holds a carriage return (CR) alone",
        ),
    ],
)
def test_invalid_json_is_reported_where_it_is(line, message, tmp_path):
    _error, stderr = run_failing(write(tmp_path, [need(1), line, '{"external_id": "z",']))
    assert f"line 2: {message}" in stderr
    assert "column 1)" not in stderr
    # Checking goes on after it: the next bad line is named too.
    assert "line 3: (line): Invalid JSON" in stderr
    assert not Post.objects.exists()


def test_history_of_an_import_that_changes_nothing_but_its_content(tmp_path):
    run(write(tmp_path, [need(1)]))
    run(write(tmp_path, [need(1, title="Renamed")]))
    assert PostEvent.objects.filter(action="updated").get().changes == {
        "title": ["Flood early warning for district 1", "Renamed"]
    }
