"""Stocktake figures for a period, computed by the database and returned as one long, tidy table.

Every figure is an aggregate query (conditional Count/Sum with `filter=`, GROUP BY through
`values().annotate()`, `TruncMonth` for the trend, `percentile_cont` for percentiles on PostgreSQL); no figure
loops over posts or matches in Python. Two places step outside plain ORM aggregates, each explained where it
is: the gap figures are one SQL statement composed around ORM querysets (`_gap_sql`), and on SQLite, which
has no percentile aggregate, a percentile reads the one or two values at its rank (`_sqlite_percentile`).
About thirty queries in all, whatever the amount of data (two more per month with durations on SQLite).
What each figure means: `FIGURES.md` beside this module.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import TruncMonth
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.matching.models import Interest, Match
from apps.parties.models import Party, RegionalGroup
from apps.posts.models import Post
from apps.posts.taxonomies import FinanceInstrument, FocusArea, Sector, SupportType

from .aggregates import DaysBetween, PercentileCont
from .models import Snapshot

# A need still open this many days after publication with no strong match (or no answer) is a gap.
GAP_DAYS = 60
# Long enough for any review the Committee asks for; bounds the size of the monthly trend.
MAX_PERIOD_DAYS = 366 * 10
PERCENTILES = {"median": 0.5, "p90": 0.9}

HEADLINE_FIGURES = (
    "needs_published",
    "offers_published",
    "parties_posting",
    "providers_posting",
    "matches",
    "strong_matches",
    "interests",
    "connections",
    "needs_unmatched_60d",
)

# Every dimension a row may carry, in the order of the CSV columns.
DIMENSIONS = ("support_type", "focus_area", "sector", "regional_group", "instrument", "side", "month")

FILTER_KEYS = ("regional_group", "ldc", "sids", "focus_area", "support_type")

# (figure, the dimension sets it is broken down by). The export lists rows in this order, after the headline.
_ST, _FA, _SEC, _RG, _INST, _SIDE, _MONTH = (
    ("support_type",),
    ("focus_area",),
    ("sector",),
    ("regional_group",),
    ("instrument",),
    ("side",),
    ("month",),
)
_ST_FA = ("support_type", "focus_area")
FIGURE_SPECS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    # Posts
    ("needs_published", ((), _ST, _FA, _SEC, _RG, _MONTH)),
    ("offers_published", ((), _ST, _FA, _SEC, _RG, _MONTH)),
    ("needs_open", ((), _ST, _FA, _ST_FA, _MONTH)),
    ("offers_open", ((), _ST, _FA, _ST_FA, _MONTH)),
    ("offers_per_need", (_ST, _FA, _ST_FA)),
    ("needs_closed", ((), _MONTH)),
    ("needs_withdrawn", ((), _MONTH)),
    ("offers_closed", ((), _MONTH)),
    ("offers_withdrawn", ((), _MONTH)),
    ("amount_needed_usd", ((), _INST, _MONTH)),
    ("amount_offered_usd", ((), _INST, _MONTH)),
    # Participation
    ("parties_posting", ((), _RG, _MONTH)),
    ("providers_posting", ((), _MONTH)),
    ("parties_with_focal_point", ((),)),
    ("new_parties", ((), _MONTH)),
    ("ldc_parties", ((),)),
    ("ldc_parties_posting", ((), _MONTH)),
    ("ldc_parties_posting_share", ((),)),
    ("sids_parties", ((),)),
    ("sids_parties_posting", ((), _MONTH)),
    ("sids_parties_posting_share", ((),)),
    # Matching
    ("matches", ((), _MONTH)),
    ("strong_matches", ((), _MONTH)),
    ("interests", ((), _SIDE, _MONTH)),
    ("connections", ((), _MONTH)),
    ("match_connection_rate", ((), _MONTH)),
    ("needs_with_strong_match", ((), _MONTH)),
    ("needs_with_strong_match_share", ((),)),
    ("needs_first_strong_match", ((), _MONTH)),
    ("days_to_first_strong_match_median", ((), _MONTH)),
    ("days_to_first_strong_match_p90", ((), _MONTH)),
    ("needs_first_connection", ((), _MONTH)),
    ("days_to_first_connection_median", ((), _MONTH)),
    ("days_to_first_connection_p90", ((), _MONTH)),
    # Gaps
    ("needs_unmatched_60d", ((), _FA, _ST, _RG, _MONTH)),
    ("needs_unanswered_60d", ((), _FA, _ST, _RG, _MONTH)),
)
FIGURE_NAMES = tuple(name for name, _dims in FIGURE_SPECS)
# Figures that are a ratio, a percentile or a duration: null (not 0) when there is nothing to measure.
_NULLABLE_FIGURES = frozenset(
    name
    for name in FIGURE_NAMES
    if name.endswith(("_share", "_rate", "_median", "_p90")) or name == "offers_per_need"
)

NEED, OFFER = Post.Kind.NEED, Post.Kind.OFFER


# --- the period and the filters ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Month:
    label: str  # "2026-01"
    start: dt.datetime  # clipped to the period
    end: dt.datetime  # exclusive, clipped to the period


@dataclass(frozen=True)
class Period:
    """Whole days from `date_from` to `date_to`, both included, in the site's time zone."""

    date_from: dt.date
    date_to: dt.date

    def __post_init__(self) -> None:
        if not isinstance(self.date_from, dt.date) or not isinstance(self.date_to, dt.date):
            raise ValueError("The period needs two dates.")
        if self.date_from > self.date_to:
            raise ValueError(f"The period starts ({self.date_from}) after it ends ({self.date_to}).")
        if (self.date_to - self.date_from).days > MAX_PERIOD_DAYS:
            raise ValueError("The period is longer than ten years; choose a shorter one.")

    @property
    def start(self) -> dt.datetime:
        return _midnight(self.date_from)

    @property
    def end(self) -> dt.datetime:
        """The first instant after the period."""
        return _midnight(self.date_to + dt.timedelta(days=1))

    def months(self) -> list[Month]:
        months = []
        first = self.date_from.replace(day=1)
        while first <= self.date_to:
            following = (first + dt.timedelta(days=32)).replace(day=1)
            months.append(
                Month(
                    label=first.strftime("%Y-%m"),
                    start=max(_midnight(first), self.start),
                    end=min(_midnight(following), self.end),
                )
            )
            first = following
        return months


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


@dataclass(frozen=True)
class Filters:
    """Which posts count. Party filters select posts by the posting Party (provider offers have none, so
    any Party filter leaves them out); facet filters select posts that carry the term. Matching and gap
    figures apply the filters to the need."""

    regional_group: str | None = None
    ldc: bool | None = None
    sids: bool | None = None
    focus_area: str | None = None
    support_type: str | None = None

    @classmethod
    def from_dict(cls, filters: Mapping[str, Any] | None) -> Filters:
        filters = dict(filters or {})
        unknown = set(filters) - set(FILTER_KEYS)
        if unknown:
            raise ValueError(f"Unknown filter: {', '.join(sorted(unknown))}. Use {', '.join(FILTER_KEYS)}.")
        values: dict[str, Any] = {}
        for key, choices in (
            ("regional_group", RegionalGroup.values),
            ("focus_area", FocusArea.values),
            ("support_type", SupportType.values),
        ):
            value = filters.get(key)
            if value in (None, ""):
                continue
            if value not in choices:
                raise ValueError(f"Unknown {key} {value!r}; use one of: {', '.join(choices)}.")
            values[key] = value
        for key in ("ldc", "sids"):
            value = _parse_bool(key, filters.get(key))
            if value is not None:
                values[key] = value
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in FILTER_KEYS if getattr(self, key) is not None}

    @property
    def party_q(self) -> Q:
        """The Party filters, on the Party model."""
        q = Q()
        if self.regional_group:
            q &= Q(regional_group=self.regional_group)
        if self.ldc is not None:
            q &= Q(is_ldc=self.ldc)
        if self.sids is not None:
            q &= Q(is_sids=self.sids)
        return q

    def post_conditions(self, *, prefix: str = "", post_ref: str = "pk") -> list[Q | Exists]:
        """Conditions selecting the posts (or, with prefix 'need__', the matches of the needs) that count.

        Facets are tested with EXISTS rather than a join, so a post is never counted twice and a later
        GROUP BY another facet does not reuse (and narrow) the filter's join.
        """
        conditions: list[Q | Exists] = []
        if self.regional_group:
            conditions.append(Q(**{f"{prefix}party__regional_group": self.regional_group}))
        if self.ldc is not None:
            conditions.append(Q(**{f"{prefix}party__is_ldc": self.ldc}))
        if self.sids is not None:
            conditions.append(Q(**{f"{prefix}party__is_sids": self.sids}))
        if self.support_type:
            through = Post.support_types.through
            conditions.append(
                Exists(
                    through.objects.filter(post_id=OuterRef(post_ref), supporttypeterm_id=self.support_type)
                )
            )
        if self.focus_area:
            through = Post.focus_areas.through
            conditions.append(
                Exists(through.objects.filter(post_id=OuterRef(post_ref), focusareaterm_id=self.focus_area))
            )
        return conditions


def _parse_bool(key: str, value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y"):
        return True
    if text in ("false", "0", "no", "n"):
        return False
    raise ValueError(f"{key} must be true or false, not {value!r}.")


def strong_score_threshold() -> float:
    """The score at which the worker records a match's `strong_at`; shown beside the figures."""
    return float(getattr(settings, "MATCHING_STRONG_SCORE", 0.6))


# --- the public entry points -------------------------------------------------------------------------------


@contextmanager
def _report_transaction() -> Iterator[None]:
    """One transaction for the report's queries, tuned for PostgreSQL.

    JIT compilation is off: the report's queries carry dozens of conditional aggregates, which PostgreSQL's
    cost model (inflated by the correlated subqueries) sends to LLVM for seconds of compilation to save
    milliseconds of execution. When the report opens the transaction itself, it also reads one snapshot
    (REPEATABLE READ), so figures taken a few milliseconds apart still add up.
    """
    if connection.vendor != "postgresql":
        yield
        return
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SET LOCAL jit = off")
        yield


def stocktake_export(*, date_from: dt.date, date_to: dt.date, filters: dict) -> dict:
    """Every figure for the period, as the export contract: {"period": {...}, "figures": [rows]}.

    Raises ValueError for a bad period or filter (the message says what to fix).
    """
    period = Period(date_from, date_to)
    f = Filters.from_dict(filters)
    figures = _Figures(period)
    with _report_transaction():
        _compute(figures, period, f, full=True)
    return {
        "period": {"from": period.date_from.isoformat(), "to": period.date_to.isoformat()},
        "figures": figures.rows(),
    }


def stocktake_headline(
    *, date_from: dt.date, date_to: dt.date, filters: dict | None = None
) -> dict[str, Any]:
    """Only the headline figures (name -> value), in a handful of queries: the public summary's numbers."""
    period = Period(date_from, date_to)
    f = Filters.from_dict(filters)
    figures = _Figures(period)
    with _report_transaction():
        _compute(figures, period, f, full=False)
    return {name: figures.get(name) for name in HEADLINE_FIGURES}


def export_headline(export: dict) -> dict[str, Any]:
    """The headline figures of an export (name -> value)."""
    return {
        row["figure"]: row["value"]
        for row in export["figures"]
        if not row["dimension"] and row["figure"] in HEADLINE_FIGURES
    }


def export_lookup(export: dict) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    """Index an export's rows by (figure, sorted dimension items), for tables and comparisons."""
    return {(row["figure"], _dim_key(row["dimension"])): row["value"] for row in export["figures"]}


def export_diff(previous: dict, current: dict) -> list[dict[str, Any]]:
    """Figure-by-figure changes from one export to another: rows whose value differs, appeared or vanished.

    Each change: {"figure", "dimension", "before", "after", "change"} where change is after - before when
    both are numbers, else None. Listed in the current export's order, then rows that vanished.
    """
    before = export_lookup(previous)
    changes: list[dict[str, Any]] = []
    seen = set()
    for row in current["figures"]:
        key = (row["figure"], _dim_key(row["dimension"]))
        seen.add(key)
        old = before.get(key, _MISSING)
        if old is not _MISSING and old == row["value"]:
            continue
        old_value = None if old is _MISSING else old
        changes.append(
            {
                "figure": row["figure"],
                "dimension": row["dimension"],
                "before": old_value,
                "after": row["value"],
                "change": _difference(old_value, row["value"]),
                "status": "added" if old is _MISSING else "changed",
            }
        )
    for row in previous["figures"]:
        key = (row["figure"], _dim_key(row["dimension"]))
        if key not in seen:
            changes.append(
                {
                    "figure": row["figure"],
                    "dimension": row["dimension"],
                    "before": row["value"],
                    "after": None,
                    "change": None,
                    "status": "removed",
                }
            )
    return changes


_MISSING = object()


def _difference(before: Any, after: Any) -> float | int | None:
    if isinstance(before, int | float) and isinstance(after, int | float):
        return _number(after - before)
    return None


def _dim_key(dimension: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(dimension.items()))


def stocktake_waiting_needs(
    *, date_from: dt.date, date_to: dt.date, filters: dict, limit: int = 100
) -> list[Post]:
    """The needs behind `needs_unmatched_60d` and `needs_unanswered_60d` at the period's end, oldest first.

    Each carries `days_waiting` and `gap` ('unmatched' or 'unanswered'). Two queries (the ids, then the
    posts with their Party); `limit` bounds the page, the counts are in the figures.
    """
    period = Period(date_from, date_to)
    f = Filters.from_dict(filters)
    end = period.end
    # The needs are read oldest first and each is probed for its first strong match and first offer-side
    # interest before the end (scalar subqueries, ORDER BY ... LIMIT 1 on the partial indexes (need_id,
    # strong_at) and (need_id, offer_interest_at)), so the query stops after `limit` gaps instead of computing
    # every need's first events. Scalar subqueries, not EXISTS: PostgreSQL turns an EXISTS under OR into a
    # hash of every matched need, built before the first row is read.
    first_strong = Match.objects.filter(need=OuterRef("pk"), strong_at__lt=end).order_by("strong_at")
    first_answer = Match.objects.filter(
        need=OuterRef("pk"), offer_interest=Interest.INTERESTED, offer_interest_at__lt=end
    ).order_by("offer_interest_at")
    with _report_transaction():
        gaps = dict(
            _posts(f)
            .filter(_open_q(end), kind=NEED, published_at__lt=end - dt.timedelta(days=GAP_DAYS))
            .annotate(
                first_strong=Subquery(first_strong.values("strong_at")[:1]),
                first_answer=Subquery(first_answer.values("offer_interest_at")[:1]),
            )
            .filter(Q(first_strong__isnull=True) | Q(first_answer__isnull=True))
            .annotate(unmatched=Q(first_strong__isnull=True))
            .order_by("published_at", "id")
            .values_list("id", "unmatched")[:limit]
        )
    posts = Post.objects.select_related("party").in_bulk(list(gaps))
    result = []
    for post_id, unmatched in gaps.items():
        need = posts[post_id]
        # Arithmetic on the few rows fetched for display, not a figure.
        need.days_waiting = (end - need.published_at).days
        need.gap = "unmatched" if unmatched else "unanswered"
        result.append(need)
    return result


# --- collecting the figures --------------------------------------------------------------------------------


@dataclass
class _Figures:
    """Values keyed by (figure, dimension items); `rows()` lays them out in the export's fixed order."""

    period: Period
    values: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = field(default_factory=dict)

    def set(self, figure: str, value: Any, **dimension: str) -> None:
        assert figure in FIGURE_NAMES, figure
        self.values[(figure, _dim_key(dimension))] = _number(value)

    def add(self, figure: str, value: Any, **dimension: str) -> None:
        key = (figure, _dim_key(dimension))
        self.values[key] = _number((self.values.get(key) or 0) + (value or 0))

    def get(self, figure: str, **dimension: str) -> Any:
        return self.values.get((figure, _dim_key(dimension)), self._default(figure))

    @staticmethod
    def _default(figure: str) -> Any:
        return None if figure in _NULLABLE_FIGURES else 0

    def rows(self) -> list[dict[str, Any]]:
        """Headline rows first, then every figure's breakdowns; zero rows included, so exports line up."""
        domains = {
            "support_type": SupportType.values,
            "focus_area": FocusArea.values,
            "sector": Sector.values,
            "regional_group": RegionalGroup.values,
            "instrument": FinanceInstrument.values,
            "side": ["need", "offer"],
            "month": [m.label for m in self.period.months()],
        }
        rows = [{"figure": name, "dimension": {}, "value": self.get(name)} for name in HEADLINE_FIGURES]
        for name, dimension_sets in FIGURE_SPECS:
            for dims in dimension_sets:
                if not dims:
                    if name not in HEADLINE_FIGURES:
                        rows.append({"figure": name, "dimension": {}, "value": self.get(name)})
                    continue
                for combination in _product([domains[d] for d in dims]):
                    dimension = dict(zip(dims, combination, strict=True))
                    rows.append(
                        {"figure": name, "dimension": dimension, "value": self.get(name, **dimension)}
                    )
        return rows


def _product(domains: list[list[str]]) -> Iterable[tuple[str, ...]]:
    if not domains:
        yield ()
        return
    for value in domains[0]:
        for rest in _product(domains[1:]):
            yield (value, *rest)


def _number(value: Any) -> int | float | None:
    """JSON-friendly numbers: Decimal sums become int when whole, float (cents) otherwise."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(round(value, 2))
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return round(value, 4)
    return value


def _ratio(numerator: float | int, denominator: float | int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _month_label(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m")


def _compute(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    _posts_figures(figures, period, f, full=full)
    _participation_figures(figures, period, f, full=full)
    _matching_figures(figures, period, f, full=full)
    _gap_figures(figures, period, f, full=full)


# --- posts -------------------------------------------------------------------------------------------------


def _posts(f: Filters) -> QuerySet[Post]:
    """Posts that were ever published, under the filters; `order_by()` drops Meta.ordering from GROUP BYs."""
    return Post.objects.filter(*f.post_conditions(), published_at__isnull=False).order_by()


def _published_in(start: dt.datetime, end: dt.datetime, prefix: str = "") -> Q:
    return Q(**{f"{prefix}published_at__gte": start, f"{prefix}published_at__lt": end})


def _open_q(at: dt.datetime) -> Q:
    """Published before `at` and neither closed nor withdrawn before it: open at that instant."""
    return (
        Q(published_at__lt=at)
        & (Q(closed_at__isnull=True) | Q(closed_at__gte=at))
        & (Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gte=at))
    )


def _posts_figures(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    start, end = period.start, period.end
    in_period = _published_in(start, end)
    is_need, is_offer = Q(kind=NEED), Q(kind=OFFER)
    posts = _posts(f)

    # Query 1: totals over every post published before the end; the state at each month's end rides along.
    aggregates: dict[str, Any] = {
        "needs_published": Count("id", filter=is_need & in_period),
        "offers_published": Count("id", filter=is_offer & in_period),
    }
    if full:
        months = period.months()
        # The last month ends with the period, so its state is the period-end figure.
        for i, month in enumerate(months):
            at = month.end
            for kind, is_kind in (("needs", is_need), ("offers", is_offer)):
                aggregates[f"{kind}_open__{i}"] = Count("id", filter=is_kind & _open_q(at))
                aggregates[f"{kind}_closed__{i}"] = Count("id", filter=is_kind & Q(closed_at__lt=at))
                aggregates[f"{kind}_withdrawn__{i}"] = Count("id", filter=is_kind & Q(withdrawn_at__lt=at))
        aggregates["amount_needed_usd"] = Sum("amount_usd", filter=is_need & in_period)
        aggregates["amount_offered_usd"] = Sum("amount_usd", filter=is_offer & in_period)
    totals = posts.filter(published_at__lt=end).aggregate(**aggregates)
    figures.set("needs_published", totals["needs_published"])
    figures.set("offers_published", totals["offers_published"])
    if not full:
        return
    last = len(months) - 1
    for i, month in enumerate(months):
        for state in ("open", "closed", "withdrawn"):
            for kind in ("needs", "offers"):
                value = totals[f"{kind}_{state}__{i}"]
                figures.set(f"{kind}_{state}", value, month=month.label)
                if i == last:
                    figures.set(f"{kind}_{state}", value)
    figures.set("amount_needed_usd", totals["amount_needed_usd"] or 0)
    figures.set("amount_offered_usd", totals["amount_offered_usd"] or 0)

    # Query 2: monthly flows (posts, amounts) and the posters of each month.
    monthly = (
        posts.filter(in_period)
        .annotate(month=TruncMonth("published_at"))
        .values("month")
        .annotate(
            needs=Count("id", filter=is_need),
            offers=Count("id", filter=is_offer),
            amount_needed=Sum("amount_usd", filter=is_need),
            amount_offered=Sum("amount_usd", filter=is_offer),
            parties=Count("party", distinct=True),
            providers=Count("provider", distinct=True),
            ldc=Count("party", distinct=True, filter=Q(party__is_ldc=True)),
            sids=Count("party", distinct=True, filter=Q(party__is_sids=True)),
        )
    )
    for row in monthly:
        label = _month_label(row["month"])
        figures.set("needs_published", row["needs"], month=label)
        figures.set("offers_published", row["offers"], month=label)
        figures.set("amount_needed_usd", row["amount_needed"] or 0, month=label)
        figures.set("amount_offered_usd", row["amount_offered"] or 0, month=label)
        figures.set("parties_posting", row["parties"], month=label)
        figures.set("providers_posting", row["providers"], month=label)
        figures.set("ldc_parties_posting", row["ldc"], month=label)
        figures.set("sids_parties_posting", row["sids"], month=label)

    # Queries 3-5: published in the period and open at its end, by each taxonomy facet. A post with two
    # terms counts under each, so these rows do not add up to the total.
    open_at_end = _open_q(end)
    for dimension, facet in (
        ("support_type", "support_types"),
        ("focus_area", "focus_areas"),
        ("sector", "sectors"),
    ):
        # Sectors have no balance figure: only the period's posts need joining.
        scope = in_period if dimension == "sector" else in_period | open_at_end
        rows = (
            posts.filter(scope)
            .values("kind", term=F(facet))
            .annotate(published=Count("id", filter=in_period), open=Count("id", filter=open_at_end))
        )
        for row in rows:
            if row["term"] is None:
                continue
            kind = "needs" if row["kind"] == NEED else "offers"
            figures.set(f"{kind}_published", row["published"], **{dimension: row["term"]})
            if dimension != "sector":
                figures.set(f"{kind}_open", row["open"], **{dimension: row["term"]})

    # Query 6: the balance of open needs and offers for each (support type, focus area) pair.
    pairs = (
        posts.filter(open_at_end)
        .values("kind", st=F("support_types"), fa=F("focus_areas"))
        .annotate(n=Count("id"))
    )
    for row in pairs:
        if row["st"] is None or row["fa"] is None:
            continue
        kind = "needs" if row["kind"] == NEED else "offers"
        figures.set(f"{kind}_open", row["n"], support_type=row["st"], focus_area=row["fa"])
    # Ratios of figures already aggregated (a dozen numbers), not of rows.
    for dims in (
        [{"support_type": k} for k in SupportType.values]
        + [{"focus_area": k} for k in FocusArea.values]
        + [{"support_type": s, "focus_area": a} for s in SupportType.values for a in FocusArea.values]
    ):
        figures.set(
            "offers_per_need",
            _ratio(figures.get("offers_open", **dims), figures.get("needs_open", **dims)),
            **dims,
        )

    # Query 7: published posts by the poster's regional group (with the Parties posting in each group).
    by_group = (
        posts.filter(in_period)
        .values("kind", party_group=F("party__regional_group"))
        .annotate(n=Count("id"), parties=Count("party", distinct=True))
    )
    for row in by_group:
        if row["party_group"] not in RegionalGroup.values:
            continue  # provider offers and the Parties outside the five groups (EU, Holy See)
        kind = "needs" if row["kind"] == NEED else "offers"
        figures.set(f"{kind}_published", row["n"], regional_group=row["party_group"])
        # A Party posting both a need and an offer is in both rows; add() would count it twice, so
        # regional-group posters come from query 9 instead.

    # Query 8: amounts by finance instrument (a post with two instruments counts under both).
    by_instrument = (
        posts.filter(in_period, instruments__isnull=False)
        .values("kind", instrument=F("instruments"))
        .annotate(amount=Sum("amount_usd"))
    )
    for row in by_instrument:
        figure = "amount_needed_usd" if row["kind"] == NEED else "amount_offered_usd"
        figures.set(figure, row["amount"] or 0, instrument=row["instrument"])


# --- participation -----------------------------------------------------------------------------------------


def _participation_figures(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    start, end = period.start, period.end
    posted = _posts(f).filter(_published_in(start, end))

    # Query 9: who posted in the period.
    totals = posted.aggregate(
        parties=Count("party", distinct=True),
        providers=Count("provider", distinct=True),
        ldc=Count("party", distinct=True, filter=Q(party__is_ldc=True)),
        sids=Count("party", distinct=True, filter=Q(party__is_sids=True)),
    )
    figures.set("parties_posting", totals["parties"])
    figures.set("providers_posting", totals["providers"])
    if not full:
        return
    figures.set("ldc_parties_posting", totals["ldc"])
    figures.set("sids_parties_posting", totals["sids"])

    # Query 10: Parties posting by regional group.
    for row in posted.values(party_group=F("party__regional_group")).annotate(
        parties=Count("party", distinct=True)
    ):
        if row["party_group"] in RegionalGroup.values:
            figures.set("parties_posting", row["parties"], regional_group=row["party_group"])

    # Query 11: the Parties (under the Party filters): LDC and SIDS totals, and those with a focal point
    # registered by the end of the period.
    focal_points = User.objects.filter(
        party=OuterRef("pk"), role=Role.FOCAL_POINT, is_active=True, date_joined__lt=end
    )
    parties = Party.objects.filter(f.party_q).aggregate(
        ldc=Count("id", filter=Q(is_ldc=True)),
        sids=Count("id", filter=Q(is_sids=True)),
        with_focal_point=Count("id", filter=Q(Exists(focal_points))),
    )
    figures.set("ldc_parties", parties["ldc"])
    figures.set("sids_parties", parties["sids"])
    figures.set("parties_with_focal_point", parties["with_focal_point"])
    figures.set("ldc_parties_posting_share", _ratio(totals["ldc"], parties["ldc"]))
    figures.set("sids_parties_posting_share", _ratio(totals["sids"], parties["sids"]))

    # Query 12: new Parties: posted in the period (under the filters), and their first post ever published
    # (any post, any facet) falls in the period; by the month of that first post. A GROUP BY Party over
    # their posts, aggregated again (by month, with FILTER) over that as a subquery.
    first_posts = (
        Post.objects.filter(party__in=Party.objects.filter(f.party_q), published_at__isnull=False)
        .order_by()
        .values("party")
        .annotate(first=Min("published_at"))
        .filter(first__gte=start, first__lt=end)
    )
    if f.support_type or f.focus_area:
        # The first post may be of another facet; the Party must also have posted under the filters.
        first_posts = first_posts.filter(party__in=posted.values("party"))
    months = period.months()
    counts = first_posts.aggregate(
        n=Count("party"),
        **{
            f"n_{i}": Count("party", filter=Q(first__gte=m.start, first__lt=m.end))
            for i, m in enumerate(months)
        },
    )
    figures.set("new_parties", counts["n"])
    for i, month in enumerate(months):
        figures.set("new_parties", counts[f"n_{i}"], month=month.label)


# --- matching ----------------------------------------------------------------------------------------------


def _matches(f: Filters) -> QuerySet[Match]:
    return Match.objects.filter(*f.post_conditions(prefix="need__", post_ref="need_id")).order_by()


def _matching_figures(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    start, end = period.start, period.end
    matches = _matches(f)
    # Queries 13-17: one per event, each on its own timestamp (each indexed), by month; the headline is the
    # sum of the months. Inactive matches count: they were generated, and their history stands.
    events = (
        ("matches", "created_at", Q(), None),
        ("strong_matches", "strong_at", Q(), None),
        ("connections", "connected_at", Q(), None),
        ("interests", "need_interest_at", Q(need_interest=Interest.INTERESTED), "need"),
        ("interests", "offer_interest_at", Q(offer_interest=Interest.INTERESTED), "offer"),
    )
    for figure, timestamp, condition, side in events:
        qs = matches.filter(condition, **{f"{timestamp}__gte": start, f"{timestamp}__lt": end})
        if not full:
            figures.add(figure, qs.count())
            continue
        # COUNT(*), not COUNT(id): only the timestamp is read, so without filters PostgreSQL counts from its
        # index alone (index-only scan) instead of fetching every row of the period from the table.
        for row in qs.annotate(month=TruncMonth(timestamp)).values("month").annotate(n=Count("*")):
            label = _month_label(row["month"])
            figures.add(figure, row["n"])
            figures.add(figure, row["n"], month=label)
            if side:
                figures.add(figure, row["n"], side=side)
    if not full:
        return

    # Query 18: of the matches generated in the period (by month), those connected by its end: read from the
    # few connections, through the connected_at index.
    cohort = (
        matches.filter(connected_at__lt=end, created_at__gte=start, created_at__lt=end)
        .annotate(month=TruncMonth("created_at"))
        .values("month")
        .annotate(n=Count("*"))
    )
    connected = {_month_label(row["month"]): row["n"] for row in cohort}
    for month in period.months():
        figures.set(
            "match_connection_rate",
            _ratio(connected.get(month.label, 0), figures.get("matches", month=month.label)),
            month=month.label,
        )
    figures.set("match_connection_rate", _ratio(sum(connected.values()), figures.get("matches")))

    # Query 19: needs published in the period with a strong match by its end, by month of publication.
    strong_by_end = Match.objects.filter(need=OuterRef("pk"), strong_at__lt=end)
    covered = (
        _posts(f)
        .filter(_published_in(start, end), kind=NEED)
        .filter(Exists(strong_by_end))
        .annotate(month=TruncMonth("published_at"))
        .values("month")
        .annotate(n=Count("id"))
    )
    for row in covered:
        figures.set("needs_with_strong_match", row["n"], month=_month_label(row["month"]))
        figures.add("needs_with_strong_match", row["n"])
    figures.set(
        "needs_with_strong_match_share",
        _ratio(figures.get("needs_with_strong_match"), figures.get("needs_published")),
    )

    # Queries 20-21: days from a need's publication to its first strong match / first connection, for the
    # needs whose first such event falls in the period.
    for timestamp, count_figure, prefix in (
        ("strong_at", "needs_first_strong_match", "days_to_first_strong_match"),
        ("connected_at", "needs_first_connection", "days_to_first_connection"),
    ):
        durations = _first_event_durations(matches, timestamp, start, end)
        result = _percentiles(durations, timestamp, period)
        for label, (n, values) in result.items():
            dimension = {"month": label} if label else {}
            figures.set(count_figure, n, **dimension)
            for name, value in values.items():
                figures.set(f"{prefix}_{name}", value, **dimension)


def _first_event_durations(
    matches: QuerySet[Match], timestamp: str, start: dt.datetime, end: dt.datetime
) -> QuerySet[Match]:
    """One row per need whose first event of this kind (first strong match, first connection) falls in
    [start, end): `first` (when) and `days` from the need's publication to it.

    A GROUP BY need over the need's events before the end (MIN is the first); with the partial index
    (need_id, <timestamp>) WHERE <timestamp> IS NOT NULL this is an index-only scan in need order. The
    publication is read after the HAVING, for the few needs left (a primary-key lookup each), rather than
    by joining every match to its need before grouping (the strong-match query went from 210 to 90 ms).
    """
    published = Post.objects.filter(pk=OuterRef("need")).order_by().values("published_at")
    return (
        matches.filter(**{f"{timestamp}__isnull": False, f"{timestamp}__lt": end})
        .values("need")
        .annotate(first=Min(timestamp))
        .filter(first__gte=start)
        .annotate(days=DaysBetween("first", Subquery(published)))
    )


def _percentiles(
    durations: QuerySet, timestamp: str, period: Period
) -> dict[str | None, tuple[int, dict[str, float | None]]]:
    """{month label or None for the whole period: (count, {"median": .., "p90": ..})}.

    `durations` is grouped (one row per need), so an aggregate over it runs on a subquery; the months are
    FILTERed aggregates of that one query rather than a GROUP BY, which Django cannot put over a subquery.
    """
    months = period.months()
    in_month = {m.label: Q(first__gte=m.start, first__lt=m.end) for m in months}
    counts = {"n": Count("need")} | {
        f"n_{i}": Count("need", filter=q) for i, q in enumerate(in_month.values())
    }
    result: dict[str | None, tuple[int, dict[str, float | None]]] = {}
    if connection.vendor == "postgresql":
        aggregates = dict(counts)
        for name, fraction in PERCENTILES.items():
            aggregates[name] = PercentileCont("days", fraction)
            for i, q in enumerate(in_month.values()):
                aggregates[f"{name}_{i}"] = PercentileCont("days", fraction, filter=q)
        row = durations.aggregate(**aggregates)
        result[None] = (row["n"], {name: row[name] for name in PERCENTILES})
        for i, label in enumerate(in_month):
            result[label] = (row[f"n_{i}"], {name: row[f"{name}_{i}"] for name in PERCENTILES})
        return result
    # SQLite has no percentile_cont: count each group (one query), then read the one or two values around
    # each rank with ORDER BY ... LIMIT 2 OFFSET k, interpolating as percentile_cont does. Two values per
    # percentile leave the database, never the rows.
    row = durations.aggregate(**counts)
    groups: list[tuple[str | None, int, QuerySet]] = [(None, row["n"], durations)]
    for i, (label, q) in enumerate(in_month.items()):
        groups.append((label, row[f"n_{i}"], durations.filter(q)))
    for label, n, qs in groups:
        values = {name: _sqlite_percentile(qs, n, p) if n else None for name, p in PERCENTILES.items()}
        result[label] = (n, values)
    return result


def _sqlite_percentile(qs: QuerySet, n: int, fraction: float) -> float:
    rank = fraction * (n - 1)
    lower = math.floor(rank)
    values = list(qs.order_by("days").values_list("days", flat=True)[lower : lower + 2])
    if len(values) == 1 or rank == lower:
        return values[0]
    return values[0] + (rank - lower) * (values[1] - values[0])


# --- gaps --------------------------------------------------------------------------------------------------


def _gap_base(f: Filters, *, since: dt.datetime, end: dt.datetime) -> QuerySet[Post]:
    """Needs that could be waiting at some instant in [since, end]: their regional group and life-cycle
    timestamps (the columns `_gap_sql` reads)."""
    return (
        _posts(f)
        .filter(kind=NEED, published_at__lt=end - dt.timedelta(days=GAP_DAYS))
        # Closed or withdrawn before the first instant we look at: never waiting.
        .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=since))
        .filter(Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gte=since))
        .annotate(party_group=F("party__regional_group"))
        .values("id", "party_group", "published_at", "closed_at", "withdrawn_at")
    )


def _first_per_need(condition: Q, timestamp: str, end: dt.datetime) -> QuerySet[Match]:
    """(need, first): each need's first event of a kind before `end`; an index-only GROUP BY with the
    partial index (need_id, <timestamp>) WHERE <condition>."""
    return (
        Match.objects.filter(condition, **{f"{timestamp}__lt": end})
        .order_by()
        .values("need")
        .annotate(first=Min(timestamp))
    )


def _gap_conditions(at: dt.datetime) -> tuple[str, list, str, list]:
    """SQL conditions on the columns of `w`: (unmatched at `at`, params, unanswered at `at`, params).

    Waiting: open at `at` and published 60+ days before it. Unmatched: no strong match before `at`.
    Unanswered: a strong match before `at`, but no offer side interested before `at`.
    """
    adapt = connection.ops.adapt_datetimefield_value
    waiting = (
        "(w.published_at < %s AND (w.closed_at IS NULL OR w.closed_at >= %s)"
        " AND (w.withdrawn_at IS NULL OR w.withdrawn_at >= %s))"
    )
    waiting_params = [adapt(at - dt.timedelta(days=GAP_DAYS)), adapt(at), adapt(at)]
    unmatched = f"({waiting} AND (w.first_strong_at IS NULL OR w.first_strong_at >= %s))"
    unanswered = (
        f"({waiting} AND w.first_strong_at < %s AND (w.first_answer_at IS NULL OR w.first_answer_at >= %s))"
    )
    return unmatched, [*waiting_params, adapt(at)], unanswered, [*waiting_params, adapt(at), adapt(at)]


def _gap_sql(
    f: Filters, *, since: dt.datetime, end: dt.datetime, instants: list[dt.datetime]
) -> tuple[str, list]:
    """The candidate needs as a common table expression `w`, each with its first strong match and first
    offer-side interest, and `g`, which adds `gap<i>` = 1 (unmatched) or 2 (unanswered) at each instant.

    This is the one place written in SQL, around querysets the ORM builds: a need's first events are a
    GROUP BY over its matches joined to the need, which the ORM can only express as correlated subqueries,
    and PostgreSQL runs a correlated subquery once per mention, per need (seconds at 100,000 posts).
    """
    needs_sql, needs_params = _gap_base(f, since=since, end=end).query.sql_with_params()
    strong_sql, strong_params = _first_per_need(
        Q(strong_at__isnull=False), "strong_at", end
    ).query.sql_with_params()
    answer_sql, answer_params = _first_per_need(
        Q(offer_interest=Interest.INTERESTED), "offer_interest_at", end
    ).query.sql_with_params()
    columns, params = [], []
    for i, at in enumerate(instants):
        unmatched, unmatched_params, unanswered, unanswered_params = _gap_conditions(at)
        columns.append(f"CASE WHEN {unmatched} THEN 1 WHEN {unanswered} THEN 2 ELSE 0 END AS gap{i}")
        params += unmatched_params + unanswered_params
    # MATERIALIZED: without it PostgreSQL inlines `w` into each use.
    materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
    sql = (
        f"WITH w AS {materialized} (SELECT n.*, s.first AS first_strong_at, a.first AS first_answer_at"
        f" FROM ({needs_sql}) n LEFT JOIN ({strong_sql}) s ON s.need = n.id"
        f" LEFT JOIN ({answer_sql}) a ON a.need = n.id),"
        f" g AS (SELECT w.id, w.party_group, w.published_at, {', '.join(columns)} FROM w)"
    )
    return sql, [*needs_params, *strong_params, *answer_params, *params]


def _terms_of_g(facet: str) -> str:
    """SQL joining each row of `g` to its terms of a facet, as `t.term`.

    On PostgreSQL a LATERAL subquery with OFFSET 0 (which keeps the planner from flattening it into a plain
    join): the few thousand waiting needs each look their terms up in the (post, term) index, instead of
    the whole facet table (125,000 rows at 100,000 posts) being hashed for them (about 40 ms of 290).
    """
    field = Post._meta.get_field(facet)
    table, post, term = field.m2m_db_table(), field.m2m_column_name(), field.m2m_reverse_name()
    if connection.vendor == "postgresql":
        return f"CROSS JOIN LATERAL (SELECT x.{term} AS term FROM {table} x WHERE x.{post} = g.id OFFSET 0) t"
    return f"JOIN (SELECT {post} AS post, {term} AS term FROM {table}) t ON t.post = g.id"


def _gap_figures(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    """One query: the gaps at the period's end and at each month's end, and at the end by focus area, support
    type and regional group (UNION ALL over the CTE, which PostgreSQL computes once)."""
    end = period.end
    months = period.months() if full else []
    instants = [end] + [month.end for month in months]
    since = min(instants)
    cte, params = _gap_sql(f, since=since, end=end, instants=instants)
    sums = ", ".join(
        f"SUM(CASE WHEN gap{i} = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN gap{i} = 2 THEN 1 ELSE 0 END)"
        for i in range(len(instants))
    )
    zeros = ", ".join("0, 0" for _ in instants[1:])
    tail = f", {zeros}" if zeros else ""
    end_sums = "SUM(CASE WHEN gap0 = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN gap0 = 2 THEN 1 ELSE 0 END)"
    parts = [f"SELECT 'total', '', {sums} FROM g"]
    if full:
        for dimension, name in (("focus_area", "focus_areas"), ("support_type", "support_types")):
            parts.append(
                f"SELECT '{dimension}', t.term, {end_sums}{tail} FROM g {_terms_of_g(name)}"
                " WHERE g.gap0 > 0 GROUP BY t.term"
            )
        parts += [
            f"SELECT 'regional_group', g.party_group, {end_sums}{tail} FROM g WHERE g.gap0 > 0 GROUP BY g.party_group",
        ]
    with connection.cursor() as cursor:
        cursor.execute(f"{cte} {' UNION ALL '.join(parts)}", params)
        rows = cursor.fetchall()
    for row in rows:
        dimension, key, counts = row[0], row[1], [int(value or 0) for value in row[2:]]
        if dimension == "total":
            figures.set("needs_unmatched_60d", counts[0])
            figures.set("needs_unanswered_60d", counts[1])
            for i, month in enumerate(months, start=1):
                figures.set("needs_unmatched_60d", counts[2 * i], month=month.label)
                figures.set("needs_unanswered_60d", counts[2 * i + 1], month=month.label)
        elif key:
            figures.set("needs_unmatched_60d", counts[0], **{dimension: key})
            figures.set("needs_unanswered_60d", counts[1], **{dimension: key})


# --- snapshots ---------------------------------------------------------------------------------------------


def snapshot_list() -> QuerySet[Snapshot]:
    """Every snapshot, newest first, with who froze it (one query)."""
    return Snapshot.objects.select_related("created_by").defer("export")


def snapshot_previous(snapshot: Snapshot) -> Snapshot | None:
    """The snapshot frozen just before this one, or None."""
    return (
        Snapshot.objects.filter(
            Q(created_at__lt=snapshot.created_at) | Q(created_at=snapshot.created_at, id__lt=snapshot.id)
        )
        .order_by("-created_at", "-id")
        .first()
    )
