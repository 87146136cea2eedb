"""Server-side SVG charts (line and grouped bar): no script, no network, they print and save to PDF as drawn.

Each chart is an accessible image: role="img" labelled by its <title> and described by its <desc>, with a
<title> on every point or bar for the exact value; the same numbers are always in a table beside it.
Series differ by colour and by dash pattern or hatching, so they survive greyscale printing.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils import formats
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

WIDTH, HEIGHT = 640, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 16, 64
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
DASHES = ("", "6 4", "2 3", "8 3 2 3", "1 2", "10 2")

# Bars of the second series on are hatched (white strokes over their colour), so that series stay apart in
# greyscale and for readers who do not tell the colours apart: none, diagonal, cross, horizontal, vertical, other.
HATCHES = ("", "M0,8 L8,0", "M0,0 L8,8 M0,8 L8,0", "M0,4 L8,4", "M4,0 L4,8", "M0,0 L8,8")

Series = Sequence[tuple[str, Sequence[float | int | None]]]


def _bar_fills(chart_id: str, count: int) -> tuple[list[str], list[str]]:
    """The fill of each series' bars and the <defs> of their hatch patterns."""
    fills, defs = [], []
    for i in range(count):
        colour, hatch = COLOURS[i % len(COLOURS)], HATCHES[i % len(HATCHES)]
        if not hatch:
            fills.append(colour)
            continue
        pattern = f"{escape(chart_id)}-hatch-{i}"
        defs.append(
            f'<pattern id="{pattern}" width="8" height="8" patternUnits="userSpaceOnUse">'
            f'<rect width="8" height="8" fill="{colour}"/><path d="{hatch}" stroke="#ffffff" stroke-width="2"/>'
            "</pattern>"
        )
        fills.append(f"url(#{pattern})")
    return fills, (["<defs>", *defs, "</defs>"] if defs else [])


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `maximum` (steps of 1, 2 or 5 times a power of ten)."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if step < 1 and maximum >= 1:
        step = 1
    top = math.ceil(maximum / step) * step
    return [round(i * step, 10) for i in range(round(top / step) + 1)]


def local_number(value: Any, decimals: int | None = None) -> str:
    """`value` as the page's language writes numbers (1,500.5 in English, 1 500,5 in French), rounded half up
    to `decimals` places: Django's number_format cuts the places beyond (2/3 would read 66.6 %)."""
    if decimals is not None:
        value = Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return formats.number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)


def _fmt(value: float) -> str:
    """A tick or a point's value, written as the tables beside the chart write theirs (in French "1,500"
    reads one and a half)."""
    return local_number(int(value)) if value == int(value) else local_number(value, 2)


def _point(series: str, label: str, value: float) -> str:
    """A point's or a bar's exact value, its tooltip and what a screen reader reads."""
    # Translators: a chart's point: its series, its label on the axis (a month, a focus area...), its value.
    text = _("%(series)s, %(label)s: %(value)s") % {"series": series, "label": label, "value": _fmt(value)}
    return escape(text)


def _frame(
    chart_id: str, title: str, desc: str, body: list[str], legend: tuple[list[str], int]
) -> SafeString:
    legend_parts, rows = legend
    height = HEIGHT + LEGEND_ROW * (rows - 1)
    parts = [
        # Drawn left to right whatever the page's direction: on a right-to-left page the SVG would inherit
        # direction: rtl, which turns text-anchor start and end round (the legend's names ran over their swatches,
        # and past the frame). Arabic labels still read right to left within themselves.
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" direction="ltr" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
        *body,
        *legend_parts,
        "</svg>",
    ]
    # Every value above went through escape().
    return mark_safe("\n".join(parts))


def _axes(ticks: list[float], labels: Sequence[str], slot: float) -> list[str]:
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    top = ticks[-1] or 1
    out = ['<g class="chart-axes" font-size="11" fill="#4a5561">']
    for tick in ticks:
        y = MARGIN_TOP + plot_h - plot_h * tick / top
        out.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c9d1d9" '
            f'stroke-width="1"/><text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
        )
    # Label every slot when they fit, otherwise every n-th one.
    every = max(1, math.ceil(len(labels) * 60 / (WIDTH - MARGIN_LEFT - MARGIN_RIGHT)))
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = MARGIN_LEFT + slot * (i + 0.5)
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    out.append("</g>")
    return out


LEGEND_ROW = 18  # height of a row of the legend; a legend too wide for one row wraps, and the chart grows


def _character_width(character: str) -> int:
    if unicodedata.east_asian_width(character) in "WF":
        return 12
    if "\u0370" <= character <= "\u052f":  # Greek and Cyrillic
        return 8
    return 7


def legend_text_width(name: str) -> int:
    """A legend entry's width in the chart's units at its font size (12): 7 a character, as a Latin letter is on
    average; 8 for a Cyrillic (or Greek) one, wider on average (DejaVu Sans drew «Опубликовано потребностей» 184
    units wide: measured as 7 a letter, it touched the next entry's key); and the whole 12 for a wide one
    (Chinese characters, full-width punctuation: East Asian Width W or F), which measured as 7 ran a Chinese
    legend's entries into each other."""
    return sum(_character_width(character) for character in name)


def _legend(names: Sequence[str], *, bars: bool, fills: Sequence[str] = ()) -> tuple[list[str], int]:
    """The legend's elements and its number of rows: entries left to right, wrapping before one would pass the
    right margin (a French legend is a third longer than the English one)."""
    out = ['<g class="chart-legend" font-size="12" fill="#1b1f24">']
    x, row = MARGIN_LEFT, 0
    for i, name in enumerate(names):
        width = 24 + legend_text_width(name)
        if x > MARGIN_LEFT and x + width > WIDTH - MARGIN_RIGHT:
            x, row = MARGIN_LEFT, row + 1
        y = HEIGHT - 18 + LEGEND_ROW * row
        colour = COLOURS[i % len(COLOURS)]
        if bars:
            fill = fills[i] if i < len(fills) else colour
            out.append(f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{fill}"/>')
        else:
            dash = DASHES[i % len(DASHES)]
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<line x1="{x}" x2="{x + 18}" y1="{y - 3}" y2="{y - 3}" stroke="{colour}" stroke-width="3"'
                f"{dash_attr}/>"
            )
        out.append(f'<text x="{x + 24}" y="{y + 2}">{escape(name)}</text>')
        x += width + 10
    out.append("</g>")
    return out, row + 1


def line_chart(*, chart_id: str, title: str, desc: str, labels: Sequence[str], series: Series) -> SafeString:
    """One line per series over the labels (months); missing values (None) break the line."""
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    values = [v for _name, vs in series for v in vs if v is not None]
    ticks = nice_ticks(max(values, default=0))
    top = ticks[-1] or 1
    slot = plot_w / max(len(labels), 1)
    body = _axes(ticks, labels, slot)
    for i, (name, vs) in enumerate(series):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        segments: list[list[str]] = [[]]
        points = []
        for j, value in enumerate(vs):
            if value is None:
                segments.append([])
                continue
            x = MARGIN_LEFT + slot * (j + 0.5)
            y = MARGIN_TOP + plot_h - plot_h * value / top
            segments[-1].append(f"{x:.1f},{y:.1f}")
            points.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{_point(name, labels[j], value)}</title></circle>"
            )
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<g class="chart-series" aria-label="{escape(name)}">')
        for segment in segments:
            if len(segment) > 1:
                body.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2.5"{dash_attr} '
                    f'points="{" ".join(segment)}"/>'
                )
        body.extend(points)
        body.append("</g>")
    return _frame(chart_id, title, desc, body, _legend([name for name, _vs in series], bars=False))


def bar_chart(*, chart_id: str, title: str, desc: str, labels: Sequence[str], series: Series) -> SafeString:
    """Grouped bars: for each label, one bar per series side by side."""
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    values = [v for _name, vs in series for v in vs if v is not None]
    ticks = nice_ticks(max(values, default=0))
    top = ticks[-1] or 1
    slot = plot_w / max(len(labels), 1)
    bar_w = slot * 0.8 / max(len(series), 1)
    fills, defs = _bar_fills(chart_id, len(series))
    body = [*defs, *_axes(ticks, labels, slot)]
    for i, (name, vs) in enumerate(series):
        body.append(f'<g class="chart-series" aria-label="{escape(name)}" fill="{fills[i]}">')
        for j, value in enumerate(vs):
            height = plot_h * (value or 0) / top
            x = MARGIN_LEFT + slot * j + slot * 0.1 + bar_w * i
            y = MARGIN_TOP + plot_h - height
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{height:.1f}">'
                f"<title>{_point(name, labels[j], value or 0)}</title></rect>"
            )
        body.append("</g>")
    return _frame(
        chart_id, title, desc, body, _legend([name for name, _vs in series], bars=True, fills=fills)
    )
