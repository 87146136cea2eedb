"""The report page, its downloads, snapshots and the public summary, through the client, for every role."""

import csv
import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.posts.models import Post
from apps.stocktake.models import Snapshot
from apps.stocktake.selectors import DIMENSIONS, HEADLINE_FIGURES, stocktake_export

from .conftest import PERIOD

# Every test here touches the database (some only through request.getfixturevalue, which pytest-django
# cannot see when it orders tests: without the mark they would run after the transactional tests).
pytestmark = pytest.mark.django_db

QUERY = "?date_from=2026-01-01&date_to=2026-06-30"
REPORT = reverse("stocktake:report")
READERS = ["committee", "secretariat"]
OTHERS = ["focal_point", "provider_user", "observer"]


def _export_queries() -> int:
    with CaptureQueriesContext(connection) as queries:
        stocktake_export(**PERIOD, filters={})
    return len(queries.captured_queries)


# --- who may read ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        REPORT,
        reverse("stocktake:download", args=["json"]),
        reverse("stocktake:snapshots"),
    ],
)
def test_anonymous_is_sent_to_log_in(client, db, url):
    response = client.get(url + QUERY)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", OTHERS)
@pytest.mark.parametrize(
    "url",
    [REPORT, reverse("stocktake:download", args=["csv"]), reverse("stocktake:snapshots")],
)
def test_posters_and_observers_may_not_read_the_report(request, login, role, url):
    response = login(request.getfixturevalue(role)).get(url + QUERY)
    assert response.status_code == 403


@pytest.mark.parametrize("role", READERS)
def test_committee_and_secretariat_read_the_report(request, login, world, role):
    response = login(request.getfixturevalue(role)).get(REPORT + QUERY)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<dd>5</dd>" in html  # needs published
    assert "Period: 2026-01-01 to 2026-06-30" in html
    # Charts are inline SVG with a title and a description; tables have captions (test_view below) and scoped
    # headers.
    assert html.count('<svg class="chart"') == 5
    assert 'role="img" aria-labelledby="chart-posts-title chart-posts-desc"' in html
    assert '<title id="chart-posts-title">Needs and offers published, by month</title>' in html
    assert "<figcaption" in html and '<th scope="col">' in html and '<th scope="row">' in html
    # Supply and demand: a row is a type of support and a focus area, both row headers, so that a cell is read
    # out with the two (three rows per type of support sounded alike).
    balance = html[html.index('id="balance"') :]
    first_row = balance[balance.index("<tbody>") : balance.index("</tr>", balance.index("<tbody>"))]
    assert first_row.count('<th scope="row">') == 2 and '<th scope="row">Adaptation, resilience' in first_row
    assert "css/stocktake-print.css" in html
    # The waiting needs are listed by title: N_old (unanswered) and N4 (unmatched).
    assert world.n4.title in html and world.n_old.title in html
    # Only the secretariat sees the snapshot form.
    assert (reverse("stocktake:snapshot_create") in html) == (role == "secretariat")


def test_report_query_count_is_fixed(login, committee, world, django_assert_num_queries):
    client = login(committee)
    export_queries = _export_queries()
    # session, user, then the export's statements (seven, see test_selectors), then the waiting needs:
    # their ids (one CTE query) and the posts with their Party (one query); on PostgreSQL each of the two
    # selectors also sets its transaction up (SAVEPOINT, SET LOCAL jit, RELEASE).
    waiting = 2 + (3 if connection.vendor == "postgresql" else 0)
    with django_assert_num_queries(2 + export_queries + waiting):
        response = client.get(REPORT + QUERY)
    assert response.status_code == 200


def test_report_without_a_period_shows_the_current_half_year(login, committee):
    response = login(committee).get(REPORT)
    assert response.status_code == 200
    assert response.context["form"].is_valid()


def test_a_bad_period_is_explained_next_to_the_field(login, committee):
    response = login(committee).get(REPORT + "?date_from=2026-06-30&date_to=2026-01-01")
    assert response.status_code == 400
    assert "The end of the period must not be before its start." in response.content.decode()
    assert "export" not in response.context


def test_filters_reach_the_figures(login, committee, world):
    response = login(committee).get(REPORT + QUERY + "&ldc=yes")
    headline = {item["figure"]: item["value"] for item in response.context["layout"]["headline"]}
    assert headline["needs_published"] == "1"
    assert headline["providers_posting"] == "0"


@pytest.mark.parametrize("value", ["yes", "true", "1", "TRUE", "on"])
def test_the_ldc_filter_takes_what_the_api_takes(login, committee, world, value):
    response = login(committee).get(REPORT + QUERY + f"&ldc={value}")
    assert response.status_code == 200
    assert response.context["form"].filters() == {"ldc": True}
    csv = login(committee).get(reverse("stocktake:download", args=["csv"]) + QUERY + f"&ldc={value}")
    assert csv.status_code == 200 and csv["Content-Disposition"].endswith('_ldc-true.csv"')


@pytest.mark.parametrize("value", ["true", "1", "on"])
def test_the_form_shows_the_filter_a_links_spelling_means(login, committee, world, value):
    """ldc=true filtered the figures while the select said "All Parties" and the chip was empty: showing the
    figures again dropped the filter without a word."""
    html = login(committee).get(REPORT + QUERY + f"&ldc={value}").content.decode()
    assert '<option value="yes" selected>Members only</option>' in html
    assert '<span class="filter-chip">Least developed countries: Members only</span>' in html


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        # Read by the page's language: 2 January in English, 1 February in French; one link, two periods.
        ("?date_from=01/02/2026&date_to=2026-06-30", "date_from", "Write the date as YYYY-MM-DD"),
        ("?date_from=2026-1-1&date_to=2026-06-30", "date_from", "Write the date as YYYY-MM-DD"),
        ("?date_from=%202026-01-01%20&date_to=2026-06-30", "date_from", "Write the date as YYYY-MM-DD"),
        ("?date_from=2026-01-01&date_to=2026-02-30", "date_to", "There is no such day as 2026-02-30."),
        # Given twice: it was read as its last value.
        (
            "?date_from=2026-01-01&date_from=2025-01-01&date_to=2026-06-30",
            "date_from",
            "Given more than once",
        ),
        ("?date_from=2026-01-01&date_to=2026-06-30&ldc=yes&ldc=no", "ldc", "Given more than once"),
    ],
)
def test_the_period_is_written_one_way_and_once(login, committee, query, field, message):
    client = login(committee)
    for language in ("en", "fr"):
        client.cookies["django_language"] = language
        response = client.get(REPORT + query, HTTP_ACCEPT_LANGUAGE=language)
        assert response.status_code == 400
        errors = response.context["form"].errors
        assert field in errors
        if language == "en":
            assert any(message in error for error in errors[field]), errors
    assert client.get(reverse("stocktake:download", args=["csv"]) + query).status_code == 400


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_bad_download_link_is_the_reports_page_with_its_errors(login, committee, fmt):
    """A hand-written download link with a reversed period: the report's page, each error by its field, not
    the form's raw error text naming its fields."""
    url = reverse("stocktake:download", args=[fmt]) + "?date_from=2026-12-31&date_to=2026-01-01"
    response = login(committee).get(url)
    html = response.content.decode()
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    assert "date_to" in response.context["form"].errors
    assert 'class="error-summary"' in html and "* date_to" not in html


def test_a_group_filter_it_cannot_read_is_a_form_error(login, committee, world):
    response = login(committee).get(REPORT + QUERY + "&sids=maybe")
    assert response.status_code == 400
    assert "sids" in response.context["form"].errors


# --- downloads ---------------------------------------------------------------------------------------------


def test_json_download_is_the_export(login, committee, world):
    response = login(committee).get(
        reverse("stocktake:download", args=["json"]) + QUERY + "&support_type=technology"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    # A filtered download says what it counts, in its file name and in the file.
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="stocktake_2026-01-01_2026-06-30_support_type-technology.json"'
    )
    export = json.loads(response.content)
    assert export == stocktake_export(**PERIOD, filters={"support_type": "technology"})
    assert export["filters"] == {"support_type": "technology"}
    whole = login(committee).get(reverse("stocktake:download", args=["json"]) + QUERY)
    assert whole["Content-Disposition"] == 'attachment; filename="stocktake_2026-01-01_2026-06-30.json"'
    assert json.loads(whole.content)["filters"] == {}


def test_csv_download_has_a_column_per_dimension(login, committee, world):
    response = login(committee).get(reverse("stocktake:download", args=["csv"]) + QUERY)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == ["figure", *DIMENSIONS, "value"]
    assert [row["figure"] for row in rows[: len(HEADLINE_FIGURES)]] == list(HEADLINE_FIGURES)
    by_support = [r for r in rows if r["figure"] == "needs_published" and r["support_type"] == "finance"]
    assert len(by_support) == 1 and by_support[0]["value"] == "2" and by_support[0]["month"] == ""
    median = next(
        r for r in rows if r["figure"] == "days_to_first_strong_match_median" and r["month"] == "2026-02"
    )
    assert median["value"] == ""  # null: nothing to measure that month
    # A need names no finance instrument: the amount needed has no row by instrument, only its total.
    needed = [(r["instrument"], r["month"]) for r in rows if r["figure"] == "amount_needed_usd"]
    assert needed == [("", ""), *(("", m) for m in MONTHS)]


MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
NOT_APPLICABLE = (
    "Needs name no finance instrument (only offers do): the amount needed is given for all needs only."
)


def amounts_rows(layout) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in layout["amounts"].rows}


def test_the_amounts_table_gives_the_amount_needed_for_all_needs_only(login, committee, world):
    response = login(committee).get(REPORT + QUERY)
    amounts = response.context["layout"]["amounts"]
    assert amounts.header == ["Finance instrument", "Amount needed (USD)", "Amount offered (USD)"]
    rows = amounts_rows(response.context["layout"])
    # A dash (nothing to measure) by instrument, never "$0"; the total in the last row.
    assert rows["Grant"] == ["\u2013", "$2,000,000"]
    assert rows["Guarantee"] == ["\u2013", "$0"]
    assert rows["All posts"] == ["$1,500,001", "$2,000,000"]
    assert amounts.note.startswith(NOT_APPLICABLE)
    assert NOT_APPLICABLE in response.content.decode()


def test_unknown_download_format_is_404(login, committee):
    assert login(committee).get(reverse("stocktake:download", args=["xlsx"]) + QUERY).status_code == 404


def test_bad_period_download_is_400(login, committee):
    response = login(committee).get(reverse("stocktake:download", args=["json"]) + "?date_from=2026-13-01")
    assert response.status_code == 400


# --- snapshots ---------------------------------------------------------------------------------------------


SNAPSHOT_POST = {
    "date_from": "2026-01-01",
    "date_to": "2026-06-30",
    "title": "GCNMA 12, June 2026",
    "note": "For the twelfth meeting.",
}


def test_anonymous_cannot_freeze_a_snapshot(client, db):
    response = client.post(reverse("stocktake:snapshot_create"), SNAPSHOT_POST)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    # After logging in, to the report: the freezing address takes only a POST (it answered 405).
    assert response["Location"].endswith("?next=" + REPORT)
    assert not Snapshot.objects.exists()


def test_a_report_of_a_period_not_over_says_so(login, committee, world):
    """2030: "Needs unmatched after 60 days" and the waiting list "at the end of the period" were today's."""
    client = login(committee)
    note = "This period is not over"
    assert note not in client.get(REPORT + QUERY).content.decode()
    assert note in client.get(REPORT + "?date_from=2030-01-01&date_to=2030-01-31").content.decode()
    assert note in client.get(REPORT).content.decode()  # the current half-year, by default


@pytest.mark.parametrize("role", [*OTHERS, "committee"])
def test_only_the_secretariat_freezes_a_snapshot(request, login, role):
    response = login(request.getfixturevalue(role)).post(reverse("stocktake:snapshot_create"), SNAPSHOT_POST)
    assert response.status_code == 403
    assert not Snapshot.objects.exists()


def _assert_captions_stand_above_their_frames(html: str) -> int:
    """Every figure table's caption is outside the frame that scrolls sideways, just above it, and names the frame
    and the table: a <caption> inside the frame was as wide as the table, cut off at the frame's edge on a phone
    and scrolled away with the columns."""
    frames = list(
        re.finditer(r'<div class="table-scroll" role="region" aria-labelledby="([\w-]+)" tabindex="0">', html)
    )
    for frame in frames:
        caption_id = frame.group(1)
        inside = html[frame.end() : html.index("</table>", frame.end())]
        assert "<caption" not in inside and f'id="{caption_id}"' not in inside
        assert re.match(
            rf'<table class="figures"( id="[\w-]+")? aria-labelledby="{caption_id}">', inside.strip()
        )
        before = html[: frame.start()]
        caption = before.rindex(f'<figcaption id="{caption_id}">')
        assert (
            before.rindex('<figure class="table-figure">') < caption
        )  # its own figure, not a previous one's
        assert "<table" not in before[caption:]
    return len(frames)


def test_table_captions_stand_above_the_frames_that_scroll(request, login, secretariat, world):
    client = login(secretariat)
    html = client.get(REPORT + QUERY).content.decode()
    assert _assert_captions_stand_above_their_frames(html) == html.count('<table class="figures"') > 10
    client.post(reverse("stocktake:snapshot_create"), SNAPSHOT_POST)
    html = client.get(reverse("stocktake:snapshots")).content.decode()
    assert _assert_captions_stand_above_their_frames(html) == 1
    snapshot = Snapshot.objects.get()
    html = client.get(snapshot.get_absolute_url()).content.decode()
    assert _assert_captions_stand_above_their_frames(html) == html.count('<table class="figures"') > 10


def test_secretariat_freezes_a_snapshot(login, secretariat, world):
    response = login(secretariat).post(reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "ldc": "yes"})
    snapshot = Snapshot.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/stocktake/snapshots/{snapshot.slug}/"
    assert snapshot.slug == "gcnma-12-june-2026"
    assert snapshot.title == "GCNMA 12, June 2026"
    assert snapshot.filters == {"ldc": True}
    assert snapshot.created_by == secretariat
    assert snapshot.export == stocktake_export(**PERIOD, filters={"ldc": True})


def test_snapshot_needs_post(login, secretariat):
    assert login(secretariat).get(reverse("stocktake:snapshot_create")).status_code == 405


def test_snapshot_without_a_title_is_refused_beside_its_field_keeping_the_note(login, secretariat):
    """It redirected to the report, with the error as a message: the note typed was lost."""
    response = login(secretariat).post(
        reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "title": "", "note": "For agenda item 4."}
    )
    assert response.status_code == 400
    assert not Snapshot.objects.exists()
    html = response.content.decode()
    title_field = html.split('id="field-title"')[1].split("</div>")[0]
    assert "This field is required." in title_field
    assert "For agenda item 4.</textarea>" in html
    assert response.context["export"]["period"] == {"from": "2026-01-01", "to": "2026-06-30"}
    # Said where the page starts too, as every other form of the site says it: the title, and a summary (that
    # the page's script focuses) linking to the field; the browser's own bubble does not pre-empt it.
    assert "<title>Error: Stocktake report" in html
    summary = html.split('<div class="error-summary"')[1].split("</div>")[0]
    assert '<a href="#id_title">Title: This field is required.</a>' in summary
    snapshot_form = html.split('action="/stocktake/snapshots/new/"')[1].split(">")[0]
    assert "novalidate" in snapshot_form


def test_snapshot_of_a_bad_period_is_refused_with_a_message(login, secretariat):
    response = login(secretariat).post(
        reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "date_to": "2026-13-01"}, follow=True
    )
    assert not Snapshot.objects.exists()
    assert "There is no such day as 2026-13-01." in response.content.decode()
    assert response.redirect_chain[-1][0].startswith(REPORT + "?date_from=2026-01-01")


def test_a_snapshot_keeps_its_figures_when_posts_change(login, secretariat, committee, world):
    login(secretariat).post(reverse("stocktake:snapshot_create"), SNAPSHOT_POST)
    snapshot = Snapshot.objects.get()
    Post.objects.filter(pk=world.n5.pk).update(published_at=None, status=Post.Status.DRAFT)
    assert stocktake_export(**PERIOD, filters={})["figures"][0]["value"] == 4
    response = login(committee).get(snapshot.get_absolute_url())
    assert response.status_code == 200
    headline = {item["figure"]: item["value"] for item in response.context["layout"]["headline"]}
    assert headline["needs_published"] == "5"
    assert "This is the first snapshot with these filters." in response.content.decode()
    download = login(committee).get(reverse("stocktake:snapshot_download", args=[snapshot.slug, "json"]))
    body = json.loads(download.content)
    assert body["figures"][0] == {
        "figure": "needs_published",
        "dimension": {},
        "value": 5,
    }
    # The file says which snapshot it is.
    assert body["snapshot"]["title"] == snapshot.title and body["snapshot"]["slug"] == snapshot.slug
    assert body["snapshot"]["url"].endswith(snapshot.get_absolute_url())


def test_a_snapshot_lists_what_changed_since_the_previous_one(login, secretariat, committee, world):
    client = login(secretariat)
    client.post(reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "title": "GCNMA 11"})
    Post.objects.filter(pk=world.n5.pk).update(published_at=None, status=Post.Status.DRAFT)
    client.post(reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "title": "GCNMA 12"})
    second = Snapshot.objects.get(title="GCNMA 12")
    response = login(committee).get(second.get_absolute_url())
    changes = response.context["changes"]
    rows = {(row[0], row[1]): row[2:] for row in changes.rows}
    assert rows[("Needs published", "Total")] == ["5", "4", "-1"]
    assert rows[("Needs published", "Month: 2026-06")] == ["1", "0", "-1"]
    assert ("Offers published", "Total") not in rows
    assert (
        "GCNMA 11" in response.content.decode()
        and "(2026-01-01 \u2013 2026-06-30)" in response.content.decode()
    )


def test_an_old_snapshot_with_the_amount_needed_by_instrument_shows_compares_and_downloads_without_it(
    login, secretariat, committee, world
):
    """Snapshots frozen before held `amount_needed_usd` by instrument, 0 by construction. They are kept as
    frozen, but shown, compared with the next one and downloaded as a snapshot frozen now: no "$0" by
    instrument, nor a change "$0 → (no row)" for each instrument."""
    client = login(secretariat)
    client.post(reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "title": "GCNMA 11"})
    old = Snapshot.objects.get()
    figures = old.export["figures"]
    at = next(i for i, r in enumerate(figures) if r["figure"] == "amount_offered_usd")
    retired = [{"figure": "amount_needed_usd", "dimension": {"instrument": k}, "value": 0}
               for k in ("grant", "concessional_loan", "guarantee", "results_based_payment", "debt_swap",
                         "in_kind")]  # fmt: skip
    Snapshot.objects.filter(pk=old.pk).update(export={**old.export, "figures": [*figures[:at], *retired,
                                                                                *figures[at:]]})  # fmt: skip
    client.post(reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "title": "GCNMA 12"})
    reader = login(committee)
    page = reader.get(old.get_absolute_url())
    assert page.status_code == 200
    assert amounts_rows(page.context["layout"])["Grant"] == ["\u2013", "$2,000,000"]
    new = reader.get(Snapshot.objects.get(title="GCNMA 12").get_absolute_url())
    assert new.context["previous"].title == "GCNMA 11"
    assert new.context["changes"].rows == []  # the same figures: nothing changed
    for fmt in ("json", "csv"):
        body = reader.get(reverse("stocktake:snapshot_download", args=[old.slug, fmt])).content.decode()
        assert body.count("amount_needed_usd") == 1 + len(MONTHS), fmt  # the total and the months
        assert body.count("amount_offered_usd") == 1 + 6 + len(MONTHS), fmt  # and by instrument


def test_a_snapshot_is_compared_with_the_last_one_under_the_same_filters(
    login, secretariat, committee, world
):
    """A snapshot for LDCs was compared with the unfiltered one frozen before it: "Needs published 8 → 1"
    read as a change."""
    client = login(secretariat)
    client.post(reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "title": "All, first half"})
    client.post(
        reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "title": "LDC, first half", "ldc": "true"}
    )
    ldc = Snapshot.objects.get(title="LDC, first half")
    assert ldc.filters and ldc.filters != Snapshot.objects.get(title="All, first half").filters
    page = login(committee).get(ldc.get_absolute_url())
    assert page.context["previous"] is None
    assert "This is the first snapshot with these filters." in page.content.decode()
    client.post(reverse("stocktake:snapshot_create"), {**SNAPSHOT_POST, "title": "All, again"})
    again = login(committee).get(Snapshot.objects.get(title="All, again").get_absolute_url())
    assert again.context["previous"].title == "All, first half"
    # The list tells them apart: each row says its filters.
    rows = re.findall(
        r"<tr>.*?</tr>", login(committee).get(reverse("stocktake:snapshots")).content.decode(), re.S
    )
    by_title = {re.search(r'">([^<]+)</a>', row).group(1): row for row in rows if "</a>" in row}
    assert "<td>Least developed countries: Members only</td>" in by_title["LDC, first half"]
    assert "<td>None</td>" in by_title["All, first half"]


def test_snapshot_list_query_count(login, committee, secretariat, world, django_assert_num_queries):
    from apps.accounts.actors import Actor
    from apps.stocktake.services import snapshot_create

    for title in ("GCNMA 11", "GCNMA 12", "GCNMA 12"):
        snapshot_create(actor=Actor.for_user(secretariat), title=title, **PERIOD)
    client = login(committee)
    # session, user, the snapshots with who froze them (one join)
    with django_assert_num_queries(3):
        response = client.get(reverse("stocktake:snapshots"))
    html = response.content.decode()
    assert html.count('href="/stocktake/snapshots/gcnma-12') == 2  # the second "GCNMA 12" is gcnma-12-2
    assert "/stocktake/snapshots/gcnma-12-2/" in html


def test_unknown_snapshot_is_404(login, committee):
    assert login(committee).get(reverse("stocktake:snapshot", args=["nope"])).status_code == 404


def test_snapshots_are_read_only_in_the_admin(admin_client, secretariat, world):
    from apps.accounts.actors import Actor
    from apps.stocktake.services import snapshot_create

    snapshot = snapshot_create(actor=Actor.for_user(secretariat), title="GCNMA 12", **PERIOD)
    assert admin_client.get(reverse("admin:stocktake_snapshot_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:stocktake_snapshot_add")).status_code == 403
    page = admin_client.get(reverse("admin:stocktake_snapshot_change", args=[snapshot.pk])).content.decode()
    assert "needs_published" in page
    assert 'name="export"' not in page and 'name="date_from"' not in page  # read-only, not inputs
    assert 'name="title"' not in page  # the permalink's record too (tests/stocktake/test_admin.py)


# --- the public summary ------------------------------------------------------------------------------------


def test_public_summary_needs_no_login(client, world, django_assert_max_num_queries):
    # session-less anonymous request: the headline's queries only (posts, posters, 5 match events, gaps) and
    # on PostgreSQL the transaction set-up.
    with django_assert_max_num_queries(14):
        response = client.get(reverse("stocktake:summary") + QUERY)
    assert response.status_code == 200
    headline = {item["figure"]: item["value"] for item in response.context["headline"]}
    assert headline == {
        "needs_published": "5",
        "offers_published": "2",
        "parties_posting": "5",
        "providers_posting": "1",
        "matches": "4",
        "strong_matches": "3",
        "interests": "3",
        "connections": "1",
        "needs_unmatched_60d": "1",
    }
    html = response.content.decode()
    assert world.n4.title not in html  # counts only, no post
    assert "<svg" not in html and "Download" not in html


def test_public_summary_bad_period(client, db):
    response = client.get(reverse("stocktake:summary") + "?date_from=2026-06-30&date_to=2026-01-01")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "period", [("9999-01-01", "9999-12-31"), ("0001-01-01", "0001-12-31"), ("2014-12-31", "2015-06-30")]
)
def test_a_period_out_of_range_is_a_form_error_never_a_500(period, client, login, committee, secretariat, db):
    query = f"?date_from={period[0]}&date_to={period[1]}"
    message = "Give a date from 2015-01-01 to 2100-12-31."
    summary = client.get(reverse("stocktake:summary") + query)
    assert summary.status_code == 400 and message in summary.content.decode()
    report = login(committee).get(REPORT + query)
    assert report.status_code == 400 and message in report.content.decode()
    for fmt in ("csv", "json"):
        assert login(committee).get(reverse("stocktake:download", args=[fmt]) + query).status_code == 400
    response = login(secretariat).post(
        reverse("stocktake:snapshot_create"),
        {**SNAPSHOT_POST, "date_from": period[0], "date_to": period[1]},
        follow=True,
    )
    # Back on the report, which explains the period next to its field.
    assert response.status_code == 400 and message in response.content.decode()
    assert not Snapshot.objects.exists()


def test_the_figures_definitions_are_one_click_from_the_report(client, login, committee):
    url = reverse("stocktake:definitions")
    assert url in login(committee).get(REPORT).content.decode()
    page = client.get(url)  # public, like the summary: definitions hold no data
    assert page.status_code == 200
    html = page.content.decode()
    assert "needs_unmatched_60d" in html and "State at an instant" in html
    # The way back leads where the reader came from: the summary for the public, the report for the Committee.
    summary = reverse("stocktake:summary")
    assert url in client.get(summary).content.decode()
    assert f'<a href="{summary}">Back to the figures</a>' in html
    assert f'<a href="{REPORT}">Back to the figures</a>' in login(committee).get(url).content.decode()


def test_a_date_that_is_no_date_is_shown_as_typed_beside_its_error(client, login, committee):
    """A date box cannot show 2025-13-40: it showed an empty box beside "There is no such day as 2025-13-40"."""
    import re

    for page, url in (("summary", reverse("stocktake:summary")), ("report", REPORT)):
        reader = client if page == "summary" else login(committee)
        html = reader.get(url + "?date_from=2025-13-40&date_to=2025-06-30").content.decode()
        date_from = re.search(r'<input[^>]*name="date_from"[^>]*>', html).group(0)
        date_to = re.search(r'<input[^>]*name="date_to"[^>]*>', html).group(0)
        assert 'type="text"' in date_from and 'value="2025-13-40"' in date_from, page
        assert 'type="date"' in date_to and 'value="2025-06-30"' in date_to, page
        assert "There is no such day as 2025-13-40." in html


def test_the_definitions_read_as_a_document_not_as_markdown(client):
    """Headings, lists and tables a screen reader moves through, below the page's own h1; the tables scroll
    sideways in a named, focusable frame on a narrow screen; no Markdown syntax left to read."""
    import re

    html = client.get(reverse("stocktake:definitions")).content.decode()
    # English, and left to right on an Arabic page too.
    body = html[html.index('<div class="definitions" lang="en" dir="ltr">') :]
    assert re.findall(r"<h1[ >]", html) == ["<h1>"]  # the page's own
    assert (
        "<h2>Stocktake figures</h2>" in body and "<h3>Conventions</h3>" in body and "<h3>Figures</h3>" in body
    )
    assert "<li><strong>Period.</strong>" in body
    assert (
        body.count(
            '<div class="table-scroll" role="region" tabindex="0" aria-label="Table: scroll sideways to'
        )
        >= 1
    )
    assert "<th>figure</th>" in body and "<td><code>needs_published</code></td>" in body
    assert "## " not in body and "|---|" not in body and "**" not in body
    assert "<pre" not in html[: html.index('<div class="definitions"')]


def test_figures_are_written_as_the_pages_language_writes_numbers():
    from django.utils import translation

    from apps.stocktake.tables import format_value

    assert format_value("amount_needed_usd", 1_500_000) == "$1,500,000"
    assert format_value("ldc_parties_posting_share", 0.07) == "7.0 %"
    assert format_value("offers_per_need", 1.5) == "1.50"
    assert format_value("needs_published", 12345) == "12,345"
    with translation.override("fr"):
        # French: a no-break space between thousands, a decimal comma, the sign after the number.
        assert format_value("amount_needed_usd", 1_500_000) == "1\u00a0500\u00a0000\u00a0$"
        assert format_value("ldc_parties_posting_share", 0.07) == "7,0\u00a0%"
        assert format_value("offers_per_need", 1.5) == "1,50"
        assert format_value("days_to_first_strong_match_median", 19.25) == "19,3"


def test_figures_are_rounded_not_cut():
    """Django's number_format cuts the places it does not show: 1 LDC of 44 read 2.2 %, 2/3 66.6 %."""
    from apps.stocktake.tables import format_value

    assert format_value("ldc_parties_posting_share", 1 / 44) == "2.3 %"
    assert format_value("ldc_parties_posting_share", 2 / 3) == "66.7 %"
    assert format_value("ldc_parties_posting_share", 0.0004) == "0.0 %"
    assert format_value("days_to_first_strong_match_p90", 62.55) == "62.6"
    assert format_value("days_to_first_connection_median", 0.96) == "1.0"
    assert format_value("offers_per_need", 1.999) == "2.00"
    assert format_value("amount_offered_usd", 999.99) == "$1,000"
    assert format_value("amount_needed_usd", 1_250_000.5) == "$1,250,001"
    assert format_value("needs_published", 7) == "7"


def test_every_bar_chart_names_a_table_that_holds_its_numbers(world):
    """The support-type chart pointed at the published posts' table and showed open posts; the focus-area
    one at the pairs table, which cannot be summed: the numbers were in no table."""
    import re

    from apps.posts.taxonomies import FocusArea, SupportType
    from apps.stocktake.tables import report_layout

    export = stocktake_export(**PERIOD, filters={})
    layout = report_layout(export)
    value = {(row["figure"], tuple(row["dimension"].items())): row["value"] for row in export["figures"]}
    tables = {str(table.caption): table for table in layout["open_by"]}
    for chart, (dimension, keys) in zip(
        layout["charts"][3:],
        (("support_type", SupportType.values), ("focus_area", FocusArea.values)),
        strict=True,
    ):
        named = re.search(r"the table \u201c([^\u201d]+)\u201d", str(chart["svg"])).group(1)
        table = tables[named]
        expected = [
            [str(value[(f, ((dimension, key),))]) for f in ("needs_open", "offers_open")] for key in keys
        ]
        assert [row[1:] for row in table.rows] == expected
        assert any(v != "0" for row in expected for v in row)  # the world has open posts to show


# --- in Spanish --------------------------------------------------------------------------------------------


def test_a_committee_member_reads_the_report_in_spanish(login, committee, world):
    committee.preferred_language = "es"
    committee.save()
    client = login(committee)
    client.cookies["django_language"] = committee.email_language
    response = client.get(REPORT + QUERY)
    html = response.content.decode()
    assert '<html lang="es"' in html
    assert "Informe de balance" in html
    assert "Comité de Glasgow sobre los Enfoques No Relacionados con el Mercado" in html
    assert "Período: del 2026-01-01 al 2026-06-30 (ambos incluidos)." in html
    assert '<title id="chart-posts-title">Necesidades y ofertas publicadas, por mes</title>' in html
    amounts = response.context["layout"]["amounts"]
    assert amounts.header == ["Instrumento de financiación", "Monto necesario (USD)", "Monto ofrecido (USD)"]
    # Spanish writes thousands with a (no-break) space, and the currency after the number.
    rows = amounts_rows(response.context["layout"])
    assert rows["Donación"] == ["\u2013", "2\u00a0000\u00a0000\u00a0USD"]
    assert rows["Todos los anuncios"] == ["1\u00a0500\u00a0001\u00a0USD", "2\u00a0000\u00a0000\u00a0USD"]
    assert "Period:" not in html and "Finance instrument" not in html


def test_figures_are_written_as_spanish_writes_numbers():
    from django.utils import translation

    from apps.stocktake.tables import format_value

    with translation.override("es"):
        assert format_value("amount_needed_usd", 1_500_000) == "1\u00a0500\u00a0000\u00a0USD"
        assert format_value("ldc_parties_posting_share", 0.07) == "7,0\u00a0%"
        assert format_value("offers_per_need", 1.5) == "1,50"
        assert format_value("needs_published", 12345) == "12\u00a0345"


def test_every_region_of_the_report_has_a_name_of_its_own(login, committee, world):
    """A screen reader lists the regions by name: a bar chart's frame and its table were both named by the one
    caption (axe: landmark-unique)."""
    import re

    html = login(committee).get(REPORT + QUERY).content.decode()
    texts = {
        m[0]: re.sub(r"<[^>]+>", "", m[1]).strip() for m in re.findall(r'id="([^"]+)"[^>]*>(.*?)</', html)
    }
    names = [
        " ".join(texts[ref] for ref in refs.split())
        for refs in re.findall(r'role="region" aria-labelledby="([^"]+)"', html)
    ]
    assert len(names) >= 10
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert "Open needs and offers by focus area (chart)" in names
