"""Lay an export (the tidy figure rows) out as the report's tables and charts.

Works on the few hundred figure rows of one export, never on posts or matches, so the live report and a
frozen snapshot render the same way from the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.parties.models import RegionalGroup
from apps.posts.taxonomies import FinanceInstrument, FocusArea, Sector, SupportType

from .charts import bar_chart, line_chart, local_number
from .selectors import HEADLINE_FIGURES, export_lookup

FIGURE_LABELS: dict[str, Any] = {
    "needs_published": _("Needs published"),
    "offers_published": _("Offers published"),
    "needs_open": _("Needs open"),
    "offers_open": _("Offers open"),
    "offers_per_need": _("Open offers per open need"),
    "needs_closed": _("Needs closed, whatever the outcome"),
    "needs_withdrawn": _("Needs withdrawn"),
    "offers_closed": _("Offers closed"),
    "offers_withdrawn": _("Offers withdrawn"),
    "amount_needed_usd": _("Amount needed (USD)"),
    "amount_offered_usd": _("Amount offered (USD)"),
    "parties_posting": _("Parties that posted"),
    "providers_posting": _("Providers that posted"),
    "parties_with_focal_point": _("Parties with a focal point"),
    "new_parties": _("New Parties (first post ever)"),
    "ldc_parties": _("LDC Parties"),
    "ldc_parties_posting": _("LDC Parties that posted"),
    "ldc_parties_posting_share": _("Share of LDC Parties that posted"),
    "sids_parties": _("SIDS Parties"),
    "sids_parties_posting": _("SIDS Parties that posted"),
    "sids_parties_posting_share": _("Share of SIDS Parties that posted"),
    "matches": _("Matches generated"),
    "strong_matches": _("Strong matches"),
    "interests": _("Expressions of interest"),
    "connections": _("Connections"),
    "match_connection_rate": _("Matches that became connections"),
    "needs_with_strong_match": _("Needs published with a strong match"),
    "needs_with_strong_match_share": _("Share of needs published with a strong match"),
    "needs_first_strong_match": _("Needs first strongly matched"),
    "days_to_first_strong_match_median": _("Days to first strong match (median)"),
    "days_to_first_strong_match_p90": _("Days to first strong match (90th percentile)"),
    "needs_first_connection": _("Needs first connected"),
    "days_to_first_connection_median": _("Days to first connection (median)"),
    "days_to_first_connection_p90": _("Days to first connection (90th percentile)"),
    "needs_unmatched_60d": _("Needs unmatched after 60 days"),
    "needs_unanswered_60d": _("Needs unanswered after 60 days"),
}
DIMENSION_LABELS: dict[str, Any] = {
    "support_type": _("Type of support"),
    "focus_area": _("Focus area"),
    "sector": _("Sector"),
    "regional_group": _("Regional group"),
    "instrument": _("Finance instrument"),
    "side": _("Side"),
    "month": _("Month"),
}
_VALUE_LABELS: dict[str, dict[str, Any]] = {
    "support_type": dict(SupportType.choices),
    "focus_area": dict(FocusArea.choices),
    "sector": dict(Sector.choices),
    "regional_group": dict(RegionalGroup.choices),
    "instrument": dict(FinanceInstrument.choices),
    "side": {"need": _("Need side"), "offer": _("Offer side")},
}
# How a value is shown: shares as percentages, amounts as money, days with one decimal.
_PERCENT = ("_share", "_rate")


def value_label(dimension: str, value: str) -> str:
    return str(_VALUE_LABELS.get(dimension, {}).get(value, value))


def format_value(figure: str, value: Any) -> str:
    """A figure's value as the page's language writes numbers (1,500,000.5 in English, 1 500 000,5 in
    French); the exports keep the raw numbers."""
    if value is None:
        return "\u2013"  # an en dash: nothing to measure
    if figure.endswith(_PERCENT):
        return _("%(value)s %%") % {"value": local_number(value * 100, 1)}
    if figure.endswith("_usd"):
        return _("$%(value)s") % {"value": local_number(value, 0)}
    if figure.startswith("days_"):
        return local_number(value, 1)
    if figure == "offers_per_need":
        return local_number(value, 2)
    return local_number(value)


@dataclass
class Table:
    """A table with a caption, a header row (the first cell labels the row headers) and rows of cells."""

    id: str
    caption: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""
    # How many first cells of a row name it (row headers): two where a row is a pair, such as a type of support
    # and a focus area, so that a cell is read out with both.
    row_headers: int = 1


def report_layout(export: dict) -> dict[str, Any]:
    """Everything the report template shows, from an export."""
    lookup = export_lookup(export)
    months = sorted({row["dimension"]["month"] for row in export["figures"] if "month" in row["dimension"]})

    def get(figure: str, **dimension: str) -> Any:
        return lookup.get((figure, tuple(sorted(dimension.items()))))

    def shown(figure: str, **dimension: str) -> str:
        return format_value(figure, get(figure, **dimension))

    headline = [
        {"figure": name, "label": FIGURE_LABELS[name], "value": shown(name)} for name in HEADLINE_FIGURES
    ]

    def by_dimension(
        table_id: str, caption: str, dimension: str, figures: list[str], note: str = ""
    ) -> Table:
        values = list(_VALUE_LABELS[dimension])
        table = Table(
            id=table_id,
            caption=str(caption),
            header=[str(DIMENSION_LABELS[dimension]), *(str(FIGURE_LABELS[f]) for f in figures)],
            note=str(note),
        )
        for value in values:
            table.rows.append(
                [value_label(dimension, value), *(shown(f, **{dimension: value}) for f in figures)]
            )
        return table

    def figure_list(table_id: str, caption: str, figures: list[str]) -> Table:
        table = Table(id=table_id, caption=str(caption), header=[str(_("Figure")), str(_("Value"))])
        for name in figures:
            table.rows.append([str(FIGURE_LABELS[name]), shown(name)])
        return table

    overlap = _("A post with several terms counts under each, so the rows can add up to more than the total.")
    published = [
        by_dimension(
            f"published-{d}",
            _("Posts published in the period, by %(dimension)s")
            % {"dimension": str(DIMENSION_LABELS[d]).lower()},
            d,
            ["needs_published", "offers_published"],
            overlap if d != "regional_group" else "",
        )
        for d in ("support_type", "focus_area", "sector", "regional_group")
    ]
    published[-1].note = str(
        _("Offers of support providers, and of Parties outside the five UN regional groups, have no group.")
    )
    status = Table(
        id="status",
        caption=str(_("Posts at the end of the period")),
        header=[str(_("Status")), str(_("Needs")), str(_("Offers"))],
        rows=[
            [str(_("Open")), shown("needs_open"), shown("offers_open")],
            [str(_("Closed, whatever the outcome")), shown("needs_closed"), shown("offers_closed")],
            [
                str(pgettext_lazy("needs and offers", "Withdrawn")),
                shown("needs_withdrawn"),
                shown("offers_withdrawn"),
            ],
        ],
    )
    amounts = by_dimension(
        "amounts",
        _("Amounts in posts published in the period, by finance instrument (USD)"),
        "instrument",
        ["amount_offered_usd"],
        _(
            "Needs name no finance instrument (only offers do): the amount needed is given for all needs only. "
            "An offer with several instruments counts under each, so the rows can add up to more than the total."
        ),
    )
    # A need names no instrument, so the amount needed is a dash (nothing to measure) by instrument, never
    # "$0", which read as "no need asked for grants" (and whatever an old snapshot holds there); its total is
    # in the last row, beside the amount offered.
    amounts.header.insert(1, str(FIGURE_LABELS["amount_needed_usd"]))
    for row in amounts.rows:
        row.insert(1, format_value("amount_needed_usd", None))
    amounts.rows.append([str(_("All posts")), shown("amount_needed_usd"), shown("amount_offered_usd")])
    participation = figure_list(
        "participation",
        _("Who took part in the period"),
        [
            "parties_posting",
            "providers_posting",
            "parties_with_focal_point",
            "new_parties",
            "ldc_parties_posting",
            "ldc_parties",
            "ldc_parties_posting_share",
            "sids_parties_posting",
            "sids_parties",
            "sids_parties_posting_share",
        ],
    )
    parties_by_group = by_dimension(
        "parties-by-group", _("Parties that posted, by regional group"), "regional_group", ["parties_posting"]
    )
    matching = figure_list(
        "matching",
        _("Matching in the period"),
        [
            "matches",
            "strong_matches",
            "needs_with_strong_match",
            "needs_with_strong_match_share",
            "interests",
            "connections",
            "match_connection_rate",
            "needs_first_strong_match",
            "days_to_first_strong_match_median",
            "days_to_first_strong_match_p90",
            "needs_first_connection",
            "days_to_first_connection_median",
            "days_to_first_connection_p90",
        ],
    )
    matching.rows.insert(
        5,
        [
            str(_("… of which need side / offer side")),
            f"{shown('interests', side='need')} / {shown('interests', side='offer')}",
        ],
    )
    gaps = [
        by_dimension(
            f"gaps-{d}",
            _("Needs waiting at the end of the period, by %(dimension)s")
            % {"dimension": str(DIMENSION_LABELS[d]).lower()},
            d,
            ["needs_unmatched_60d", "needs_unanswered_60d"],
        )
        for d in ("focus_area", "support_type", "regional_group")
    ]
    balance = Table(
        id="balance",
        caption=str(_("Supply and demand at the end of the period: open needs and offers")),
        header=[
            str(_("Type of support")),
            str(_("Focus area")),
            str(FIGURE_LABELS["needs_open"]),
            str(FIGURE_LABELS["offers_open"]),
            str(FIGURE_LABELS["offers_per_need"]),
        ],
        note=str(_("Fewer than one open offer per open need: offers are missing there.")),
        row_headers=2,
    )
    for st in SupportType.values:
        for fa in FocusArea.values:
            balance.rows.append(
                [
                    value_label("support_type", st),
                    value_label("focus_area", fa),
                    shown("needs_open", support_type=st, focus_area=fa),
                    shown("offers_open", support_type=st, focus_area=fa),
                    shown("offers_per_need", support_type=st, focus_area=fa),
                ]
            )
    trend_figures = [name for name in FIGURE_LABELS if any((name, (("month", m),)) in lookup for m in months)]
    trend = Table(
        id="trend",
        caption=str(_("Each figure by month")),
        header=[str(_("Figure")), *months],
        note=str(
            _(
                "Counts of events are for the month; open, closed, withdrawn and waiting are at its end (for a "
                "month not over yet, today)."
            )
        ),
    )
    for name in trend_figures:
        trend.rows.append([str(FIGURE_LABELS[name]), *(shown(name, month=m) for m in months)])

    def series(*names: str) -> list[tuple[str, list]]:
        return [(str(FIGURE_LABELS[n]), [get(n, month=m) for m in months]) for n in names]

    # The bar charts' numbers (open posts are in no other table by one facet alone).
    open_by = [
        by_dimension(
            "open-support",
            _("Open needs and offers by type of support"),
            "support_type",
            ["needs_open", "offers_open"],
        ),
        by_dimension(
            "open-focus",
            _("Open needs and offers by focus area"),
            "focus_area",
            ["needs_open", "offers_open"],
        ),
    ]
    chart_titles = [
        str(_("Needs and offers published, by month")),
        str(_("Matches, strong matches, interest and connections, by month")),
        str(_("Open needs, and those waiting more than 60 days, at the end of each month")),
        str(_("Open needs and offers by type of support")),
        str(_("Open needs and offers by focus area")),
    ]
    charts = [
        line_chart(
            chart_id="chart-posts",
            title=chart_titles[0],
            desc=str(_("Line chart; the numbers are in the table “Each figure by month”.")),
            labels=months,
            series=series("needs_published", "offers_published"),
        ),
        line_chart(
            chart_id="chart-matching",
            title=chart_titles[1],
            desc=str(_("Line chart; the numbers are in the table “Each figure by month”.")),
            labels=months,
            series=series("matches", "strong_matches", "interests", "connections"),
        ),
        line_chart(
            chart_id="chart-gaps",
            title=chart_titles[2],
            desc=str(_("Line chart; the numbers are in the table “Each figure by month”.")),
            labels=months,
            series=series("needs_open", "needs_unmatched_60d", "needs_unanswered_60d"),
        ),
        bar_chart(
            chart_id="chart-balance-support",
            title=chart_titles[3],
            desc=str(
                _("Bar chart; the numbers are in the table “Open needs and offers by type of support”.")
            ),
            labels=[value_label("support_type", k) for k in SupportType.values],
            series=[
                (str(FIGURE_LABELS[n]), [get(n, support_type=k) for k in SupportType.values])
                for n in ("needs_open", "offers_open")
            ],
        ),
        bar_chart(
            chart_id="chart-balance-focus",
            title=chart_titles[4],
            desc=str(_("Bar chart; the numbers are in the table “Open needs and offers by focus area”.")),
            labels=[_short_focus(k) for k in FocusArea.values],
            series=[
                (str(FIGURE_LABELS[n]), [get(n, focus_area=k) for k in FocusArea.values])
                for n in ("needs_open", "offers_open")
            ],
        ),
    ]
    # `id` names the chart's caption, which labels the frame the chart scrolls in on a phone.
    charts = [{"id": f"figure-{i + 1}", "title": chart_titles[i], "svg": svg} for i, svg in enumerate(charts)]
    return {
        "headline": headline,
        "published": published,
        "status": status,
        "amounts": amounts,
        "participation": participation,
        "parties_by_group": parties_by_group,
        "matching": matching,
        "gaps": gaps,
        "balance": balance,
        "open_by": open_by,
        "trend": trend,
        "charts": charts,
        "months": months,
    }


def _short_focus(key: str) -> str:
    # The full focus-area labels are sentences; an axis needs a word.
    return str(
        {"adaptation": _("Adaptation"), "mitigation": _("Mitigation"), "clean_energy": _("Clean energy")}[key]
    )


def named_value(name: Any, value: Any) -> str:
    """ "Type of support: Finance", as the page's language writes a label and its value (French puts a
    no-break space before the colon)."""
    return _("%(label)s: %(value)s") % {"label": name, "value": value}  # the snapshot's filters' string


def changes_table(changes: list[dict[str, Any]], limit: int = 400) -> Table:
    """The figure-by-figure differences between two snapshots."""
    table = Table(
        id="changes",
        caption=str(_("What changed since the previous snapshot")),
        header=[str(_("Figure")), str(_("Breakdown")), str(_("Before")), str(_("Now")),
                str(pgettext_lazy("the difference between two values", "Change"))],
    )  # fmt: skip
    for change in changes[:limit]:
        dimension = ", ".join(
            str(named_value(DIMENSION_LABELS.get(k, k), value_label(k, v)))
            for k, v in change["dimension"].items()
        )
        figure = change["figure"]
        delta = change["change"]
        table.rows.append(
            [
                str(FIGURE_LABELS.get(figure, figure)),
                dimension or str(_("Total")),
                format_value(figure, change["before"])
                if change["status"] != "added"
                else str(_("(new row)")),
                format_value(figure, change["after"])
                if change["status"] != "removed"
                else str(_("(no row)")),
                ""
                if delta is None
                else (f"+{format_value(figure, delta)}" if delta > 0 else format_value(figure, delta)),
            ]
        )
    if len(changes) > limit:
        table.note = str(
            _(
                "Showing the first %(limit)s of %(count)s changes; each snapshot's downloads hold all its figures."
            )
        ) % {
            "limit": limit,
            "count": len(changes),
        }
    return table
