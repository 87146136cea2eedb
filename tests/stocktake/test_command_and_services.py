"""The `stocktake` management command, the snapshot service's permissions, and the SVG chart helpers."""

import csv
import datetime as dt
import io
import json

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from apps.accounts.actors import ANONYMOUS, SYSTEM, Actor
from apps.stocktake.charts import bar_chart, legend_text_width, line_chart, nice_ticks
from apps.stocktake.exports import export_csv
from apps.stocktake.models import Snapshot
from apps.stocktake.selectors import stocktake_export
from apps.stocktake.services import snapshot_create

from .conftest import PERIOD

# Every test here touches the database (some only through request.getfixturevalue, which pytest-django
# cannot see when it orders tests: without the mark they would run after the transactional tests).
pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("stocktake", *args, stdout=out)
    return out.getvalue()


def test_command_prints_the_json_export(world):
    output = json.loads(run("--from", "2026-01-01", "--to", "2026-06-30"))
    assert output == stocktake_export(**PERIOD, filters={})


def test_command_prints_csv_with_filters(world):
    output = run(
        "--from",
        "2026-01-01",
        "--to",
        "2026-06-30",
        "--format",
        "csv",
        "--ldc",
        "yes",
        "--support-type",
        "finance",
    )
    assert output == export_csv(stocktake_export(**PERIOD, filters={"ldc": True, "support_type": "finance"}))
    rows = list(csv.DictReader(io.StringIO(output)))
    assert rows[0] == {**dict.fromkeys(rows[0], ""), "figure": "needs_published", "value": "1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-02-30", "--to", "2026-06-30"], "'2026-02-30' is not a date: There is no such day"),
        (["--from", "January", "--to", "2026-06-30"], "Write the date as YYYY-MM-DD"),
        # Other ISO forms that Python reads: 2025-W01-1 was 2024-12-30, with no word said.
        (
            ["--from", "20260101", "--to", "2026-06-30"],
            "'20260101' is not a date: Write the date as YYYY-MM-DD",
        ),
        (["--from", "2026-W01-1", "--to", "2026-06-30"], "'2026-W01-1' is not a date"),
        (["--from", "2026-01-01", "--to", "٢٠٢٦-06-30"], "is not a date: Write the date as YYYY-MM-DD"),
        (["--from", "2026-07-01", "--to", "2026-06-30"], "starts (2026-07-01) after it ends"),
        (
            ["--from", "2026-01-01", "--to", "2026-06-30", "--focus-area", "space"],
            "Unknown focus_area 'space'",
        ),
        (["--from", "2026-01-01", "--to", "2026-06-30", "--sids", "maybe"], "sids must be true or false"),
        # The last day had no next day to end the period: an OverflowError traceback.
        (["--from", "2026-01-01", "--to", "9999-12-31"], "9999-12-31 is out of range: give a date from"),
        (["--from", "0001-01-01", "--to", "2026-06-30"], "0001-01-01 is out of range"),
    ],
)
def test_command_refuses_bad_input_clearly(db, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(*args)


@pytest.mark.parametrize("value", ["yes", "true", "1"])
def test_command_takes_the_ldc_filter_as_the_page_and_the_api_do(world, value):
    output = json.loads(run("--from", "2026-01-01", "--to", "2026-06-30", "--ldc", value))
    assert output == stocktake_export(**PERIOD, filters={"ldc": True})


def test_command_bad_dates_exit_non_zero(db):
    from django.core.management import ManagementUtility

    utility = ManagementUtility(["manage.py", "stocktake", "--from", "2026-13-01", "--to", "2026-06-30"])
    with pytest.raises(SystemExit) as exit_info:
        utility.execute()
    assert exit_info.value.code != 0


@pytest.mark.parametrize("role", ["focal_point", "provider_user", "committee", "observer"])
def test_only_the_secretariat_may_create_a_snapshot(request, role):
    with pytest.raises(PermissionDenied):
        snapshot_create(actor=Actor.for_user(request.getfixturevalue(role)), title="GCNMA 12", **PERIOD)
    assert not Snapshot.objects.exists()


def test_anonymous_and_read_only_tokens_may_not_create_a_snapshot(db):
    with pytest.raises(PermissionDenied):
        snapshot_create(actor=ANONYMOUS, title="GCNMA 12", **PERIOD)
    read_only = Actor(role="secretariat", label="token", can_write=False)
    with pytest.raises(PermissionDenied):
        snapshot_create(actor=read_only, title="GCNMA 12", **PERIOD)


def test_snapshot_service_validates(secretariat):
    actor = Actor.for_user(secretariat)
    with pytest.raises(ValueError, match="title"):
        snapshot_create(actor=actor, title="  ", **PERIOD)
    with pytest.raises(ValueError, match="Unknown filter"):
        snapshot_create(actor=actor, title="x", filters={"country": "KEN"}, **PERIOD)
    assert not Snapshot.objects.exists()


def test_snapshot_slugs_are_unique_and_never_new(db):
    first = snapshot_create(actor=SYSTEM, title="GCNMA 12, June 2026", **PERIOD)
    second = snapshot_create(actor=SYSTEM, title="GCNMA 12, June 2026", **PERIOD)
    reserved = snapshot_create(actor=SYSTEM, title="New", **PERIOD)
    assert (first.slug, second.slug, reserved.slug) == (
        "gcnma-12-june-2026",
        "gcnma-12-june-2026-2",
        "new-snapshot",
    )


def test_a_title_without_latin_letters_is_named_by_its_period(db):
    meeting = {"date_from": dt.date(2026, 7, 1), "date_to": dt.date(2026, 12, 31)}
    russian = snapshot_create(actor=SYSTEM, title="Совещание Комитета, декабрь", **meeting)
    again = snapshot_create(actor=SYSTEM, title="Совещание Комитета, декабрь", **meeting)
    chinese = snapshot_create(actor=SYSTEM, title="非市场方法委员会第12次会议（2026年12月）", **meeting)
    french = snapshot_create(actor=SYSTEM, title="Réunion du Comité, décembre", **meeting)
    assert [s.slug for s in (russian, again, chinese, french)] == [
        "snapshot-2026-07-01-2026-12-31",
        "snapshot-2026-07-01-2026-12-31-2",
        "snapshot-2026-07-01-2026-12-31-3",
        "reunion-du-comite-decembre",
    ]


def test_nice_ticks():
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(1234) == [0, 500, 1000, 1500]
    assert nice_ticks(0.45) == [0, 0.1, 0.2, 0.3, 0.4, 0.5]


def test_charts_are_labelled_and_escape_text():
    svg = line_chart(
        chart_id="c1",
        title="Needs <published>",
        desc="A & B",
        labels=["2026-01", "2026-02", "2026-03"],
        series=[("Needs", [1, None, 3]), ("Offers", [0, 2, 1])],
    )
    assert svg.startswith(
        '<svg class="chart" id="c1" viewBox="0 0 640 300" role="img" aria-labelledby="c1-title c1-desc"'
    )
    assert '<title id="c1-title">Needs &lt;published&gt;</title>' in svg
    assert '<desc id="c1-desc">A &amp; B</desc>' in svg
    # A missing month breaks the line: no polyline for "Needs" (two one-point segments), one for "Offers".
    assert svg.count("<polyline") == 1
    assert "<title>Needs, 2026-03: 3</title>" in svg
    bars = bar_chart(
        chart_id="c2", title="t", desc="d", labels=["a", "b"], series=[("x", [1, 2]), ("y", [3, None])]
    )
    assert bars.count("<rect x=") == 4 + 2  # four bars and two legend keys
    assert "<title>y, b: 0</title>" in bars
    # The second series is hatched, its legend key too: the two differ without their colours.
    assert '<pattern id="c2-hatch-1"' in bars and "c2-hatch-0" not in bars
    assert bars.count('fill="url(#c2-hatch-1)"') == 2  # its bars' group and its legend key


def test_charts_write_numbers_as_the_pages_language_does():
    """The axis and the points read 1,500 in English and 1 500 in French (where "1,500" is one and a half), as
    the tables beside the chart do; a point's colon takes its French space."""
    from django.utils import translation

    def svg():
        return line_chart(chart_id="c", title="t", desc="d", labels=["2026-01", "2026-02"],
                          series=[("Needs", [1500, 2.345])])  # fmt: skip

    english = svg()
    assert ">1,500</text>" in english  # a tick
    assert "<title>Needs, 2026-01: 1,500</title>" in english
    assert "<title>Needs, 2026-02: 2.35</title>" in english  # rounded, not cut
    with translation.override("fr"):
        french = svg()
    assert ">1\u00a0500</text>" in french
    assert "<title>Needs, 2026-01\u00a0: 1\u00a0500</title>" in french
    assert "<title>Needs, 2026-02\u00a0: 2,35</title>" in french


def test_a_legend_too_wide_for_one_row_wraps_and_the_chart_grows_to_hold_it():
    import re

    names = ["Besoins publiés", "Offres publiées", "Mises en relation", "Besoins sans réponse après 60 jours"]
    svg = line_chart(chart_id="c3", title="t", desc="d", labels=["a", "b"],
                     series=[(name, [1, 2]) for name in names])  # fmt: skip
    width, height = map(int, re.search(r'viewBox="0 0 (\d+) (\d+)"', svg).groups())
    legend = svg[svg.index('class="chart-legend"') :]
    texts = [
        (float(x), float(y), name)
        for x, y, name in re.findall(r'<text x="([\d.]+)" y="([\d.]+)">([^<]+)</text>', legend)
    ]
    assert [name for _x, _y, name in texts] == names
    # Every entry starts inside the chart and, by the legend's own measure (7 units a character), ends inside it.
    assert all(x + 7 * len(name) <= width for x, _y, name in texts)
    rows = sorted({y for _x, y, _name in texts})
    assert len(rows) == 2 and height == 300 + 18 and max(rows) < height


def test_a_russian_legend_leaves_room_for_its_wider_letters():
    """Cyrillic letters are wider than Latin ones on average: measured at 7 units a letter, as Latin, the Russian
    entries ran into the next entry's key. The widths are those Chromium drew at the legend's 12 units."""
    import itertools
    import re

    drawn = {
        "Опубликовано потребностей": 184,
        "Опубликовано предложений": 183,
        "Найдено совпадений": 134,
        "Сильные совпадения": 134,
        "Выражения интереса": 136,
        "Установленные связи": 137,
    }
    svg = line_chart(chart_id="c5", title="t", desc="d", labels=["a", "b"],
                     series=[(name, [1, 2]) for name in drawn])  # fmt: skip
    width = int(re.search(r'viewBox="0 0 (\d+) ', svg).group(1))
    legend = svg[svg.index('class="chart-legend"') :]
    texts = [
        (float(x), float(y), name)
        for x, y, name in re.findall(r'<text x="([\d.]+)" y="([\d.]+)">([^<]+)</text>', legend)
    ]
    assert [name for _x, _y, name in texts] == list(drawn)
    for (x, y, name), (next_x, next_y, _next) in itertools.pairwise(texts):
        # The next entry's key (24 units before its text) starts clear of this entry's text.
        assert next_y > y or next_x - 24 >= x + drawn[name] + 4
    assert all(x + drawn[name] <= width for x, _y, name in texts)


def test_a_chinese_legend_is_measured_by_its_wide_characters():
    """Chinese characters are as wide as the font is high (12 units), not 7 as a Latin letter: measured as Latin,
    the entries of a Chinese legend overlapped."""
    import itertools
    import re

    assert legend_text_width("Needs") == 35 and legend_text_width("已发布的需求") == 72
    assert legend_text_width("60天后仍无回应的需求") == 7 * 2 + 12 * 9
    names = [
        "生成的匹配",
        "强匹配",
        "感兴趣表示",
        "对接",
        "已发布的需求",
        "已发布的供给",
        "60天后仍无回应的需求",
    ]
    svg = line_chart(chart_id="c4", title="t", desc="d", labels=["a", "b"],
                     series=[(name, [1, 2]) for name in names])  # fmt: skip
    width = int(re.search(r'viewBox="0 0 (\d+) ', svg).group(1))
    legend = svg[svg.index('class="chart-legend"') :]
    texts = [
        (float(x), float(y), name)
        for x, y, name in re.findall(r'<text x="([\d.]+)" y="([\d.]+)">([^<]+)</text>', legend)
    ]
    assert [name for _x, _y, name in texts] == names
    for (x, y, name), (next_x, next_y, _next) in itertools.pairwise(texts):
        assert next_y > y or next_x >= x + 12 * len(name)  # the next entry starts after this one's text
    assert all(x + legend_text_width(name) <= width for x, _y, name in texts)
