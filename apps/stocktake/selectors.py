"""Stocktake figures for a period, computed by the database and returned as one long, tidy table.

Every figure is an aggregate computed by the database; no figure loops over posts or matches in Python. The
sectors, instruments and Parties are ORM aggregates (conditional Count/Sum with `filter=`, GROUP BY through
`values().annotate()`). Four statements are SQL composed around querysets the ORM builds, each explained
where it is, so that what several figures share is read once: the posts (`_posts_sql`), the balance of
needs and offers by type of support and focus area (`_balance_sql`), the match events (`_events_sql`) and
the needs' first strong matches, durations and gaps (`_needs_sql`). They number each timestamp against the
months' ends (`_bucket`), so that a month's figure is an integer comparison over a few grouped rows rather
than timestamp conditions on every row. On SQLite, which has no percentile aggregate, a percentile reads
the one or two values at its rank (`_sqlite_percentile`). Seven statements in all, whatever the amount of
data (on SQLite, plus a count and the ranks of each month with durations). What each figure means:
`FIGURES.md` beside this module.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
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
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import Role, User
from apps.matching.models import Interest, Match
from apps.parties.models import Party, RegionalGroup
from apps.posts.models import Post
from apps.posts.taxonomies import FinanceInstrument, FocusArea, Sector, SupportType

from .aggregates import DaysBetween, days_between_sql, percentile_cont_sql
from .models import Snapshot

# A need still open this many days after publication with no strong match (or no answer) is a gap.
GAP_DAYS = 60
# Long enough for any review the Committee asks for; bounds the size of the monthly trend.
MAX_PERIOD_DAYS = 366 * 10
# The platform's figures start with the Paris Agreement; the bounds keep date arithmetic in range (a period
# ending in 9999 overflowed computing its gap dates).
EARLIEST = dt.date(2015, 1, 1)
LATEST = dt.date(2100, 12, 31)
_CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


class NotADate(ValueError):
    """`message`: what is wrong, for the person who wrote it."""


def calendar_date(text: object) -> dt.date:
    """A day written YYYY-MM-DD in ASCII digits, as the report's page, its downloads, the API and the command
    all take it. Python's parser also takes other scripts' digits (٢٠٢٦-01-01), other ISO forms (2026-W01-1,
    20260101) and, in a form, the page language's own (01/02/2026 is 2 January in English and 1 February in
    French): one link would show other figures to another reader."""
    if not (isinstance(text, str) and _CALENDAR_DATE.fullmatch(text)):
        raise NotADate(_("Write the date as YYYY-MM-DD, e.g. 2026-01-31."))
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise NotADate(_("There is no such day as %(date)s.") % {"date": text}) from None


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
    # Not by instrument: a need names none (posts.post_data refuses them), so each row read 0 (RETIRED_ROWS).
    ("amount_needed_usd", ((), _MONTH)),
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
# Rows that exports once had and no longer have, as (figure, its dimension names). Snapshots frozen before keep
# them as stored, but are shown, compared and downloaded without them (`without_retired_rows`), as a snapshot
# frozen now. The amount needed by finance instrument was 0 by construction, which read as "no need asked for
# grants": a need names no instrument.
RETIRED_ROWS = frozenset({("amount_needed_usd", ("instrument",))})
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
    """Every figure for the period, as the export contract: {"period": {...}, "filters": {...}, "figures": [rows]}
    (`filters`: the ones applied, those set only, so that a filtered download says what it counts).

    Raises ValueError for a bad period or filter (the message says what to fix).
    """
    period = Period(date_from, date_to)
    f = Filters.from_dict(filters)
    figures = _Figures(period)
    with _report_transaction():
        _compute(figures, period, f, full=True)
    return {
        "period": {"from": period.date_from.isoformat(), "to": period.date_to.isoformat()},
        "filters": f.as_dict(),
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


def without_retired_rows(export: dict) -> dict:
    """The export without the rows the contract no longer has (`RETIRED_ROWS`): an old snapshot read as one
    frozen now."""
    figures = [
        row
        for row in export["figures"]
        if (row["figure"], tuple(sorted(row["dimension"]))) not in RETIRED_ROWS
    ]
    return export if len(figures) == len(export["figures"]) else {**export, "figures": figures}


def export_diff(previous: dict, current: dict) -> list[dict[str, Any]]:
    """Figure-by-figure changes from one export to another: rows whose value differs, appeared or vanished.

    Each change: {"figure", "dimension", "before", "after", "change"} where change is after - before when
    both are numbers, else None. Listed in the current export's order, then rows that vanished. Rows the
    contract no longer has are no change: an old snapshot's would each read as a row removed.
    """
    previous, current = without_retired_rows(previous), without_retired_rows(current)
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
    as_at = min(end, timezone.now())  # a period not over yet: the days waiting so far, not until its end
    # The needs are read oldest first and each is probed for its first strong match and first offer-side
    # interest before the end (scalar subqueries, ORDER BY ... LIMIT 1 on the partial indexes (need_id,
    # strong_at) and (need_id, offer_interest_at)), so the query stops after `limit` gaps instead of computing
    # every need's first events. Scalar subqueries, not EXISTS: PostgreSQL turns an EXISTS under OR into a
    # hash of every matched need, built before the first row is read. Each first event is the first since the
    # need's current publication, as the gap figures read it (`_since_sql`): a need taken back and published
    # again is matched and answered only by what came since, or the list leaves out needs the figures count.
    since = OuterRef("published_at")
    first_strong = Match.objects.filter(
        need=OuterRef("pk"), strong_at__gte=since, strong_at__lt=end
    ).order_by("strong_at")
    first_answer = Match.objects.filter(
        need=OuterRef("pk"),
        offer_interest=Interest.INTERESTED,
        offer_interest_at__gte=since,
        offer_interest_at__lt=end,
    ).order_by("offer_interest_at")
    with _report_transaction():
        gaps = dict(
            _posts(f)
            .filter(_open_q(end), kind=NEED, published_at__lt=as_at - dt.timedelta(days=GAP_DAYS))
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
        need.days_waiting = (as_at - need.published_at).days
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
        """Headline rows first, then every figure's breakdowns; zero rows included, so exports line up. A month
        that has not begun yet (a period that ends in the future) has no figures: null, not 0, so that no trend
        ends in a fall to nothing that has not happened."""
        now = timezone.now()
        not_begun = {m.label for m in self.period.months() if m.start > now}
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
                    value = None if dimension.get("month") in not_begun else self.get(name, **dimension)
                    rows.append({"figure": name, "dimension": dimension, "value": value})
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


def _amount(value: Any) -> Any:
    """A sum of amounts read by raw SQL, as the ORM would return it: PostgreSQL gives a Decimal; SQLite,
    which keeps decimals as floats, a float that Django would round to the field's two decimal places."""
    if value is None:
        return 0
    if isinstance(value, float):
        return decimal.Context(prec=15).create_decimal_from_float(value).quantize(Decimal("0.01"))
    return value


def _ratio(numerator: float | int, denominator: float | int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _compute(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    _posts_figures(figures, period, f, full=full)
    _participation_figures(figures, period, f, full=full)
    _matching_figures(figures, period, f, full=full)
    _needs_figures(figures, period, f, full=full)


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


class _Statement:
    """A raw SQL statement written in parts, each with its parameters in order."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list = []

    def add(self, text: str, values: Iterable = ()) -> None:
        self.parts.append(text)
        self.params.extend(values)

    def build(self) -> tuple[str, list]:
        return "".join(self.parts), self.params


def _posts_sql(f: Filters, period: Period, *, full: bool) -> tuple[str, list]:
    """The posts statement: rows (part, i, term, needs, offers, amount needed, amount offered, Parties,
    providers, LDC Parties, SIDS Parties), the last four counted distinct.

    `g` counts the posts published before the end by kind, poster, month of publication (`pb`: 0 before
    the period, i + 1 in month i) and the month's end by which they were closed (`cb`) or withdrawn (`wb`),
    numbered as in `_bucket`: a few thousand rows, which every part reads instead of the posts. Parts:

    - total: published in the period (and the distinct posters).
    - month, i: the same for month i.
    - regional_group, term: the same by the posting Party's regional group.
    - state, i (full report only): open (needs, offers), closed (amounts columns) and withdrawn (Parties,
      providers columns) at the end of month i; a post is open at instant t when published before it and
      neither closed nor withdrawn before it.
    """
    start, end = period.start, period.end
    months = [month.end for month in period.months()] if full else [end]
    adapt = connection.ops.adapt_datetimefield_value
    statement = _Statement()
    add = statement.add

    posts_sql, posts_params = (
        Post.objects.filter(*f.post_conditions())
        .order_by()
        .values("kind", "party_id", "provider_id", "published_at", "closed_at", "withdrawn_at", "amount_usd")
        .query.sql_with_params()
    )
    materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
    add(f"WITH RECURSIVE g AS {materialized} (SELECT p.kind, p.party_id, p.provider_id")
    for name, column, thresholds in (
        ("pb", "p.published_at", [start, *months]),  # published before the end of month i: pb <= i + 1
        ("cb", "p.closed_at", months),  # closed by the end of month i: cb <= i
        ("wb", "p.withdrawn_at", months),  # withdrawn by the end of month i: wb <= i
    ):
        bucket_sql, bucket_params = _bucket(column, thresholds)
        add(f", {bucket_sql} AS {name}", bucket_params)
    add(f", COUNT(*) AS n, SUM(p.amount_usd) AS amount FROM ({posts_sql}) p", posts_params)
    add(" WHERE p.published_at IS NOT NULL AND p.published_at < %s", [adapt(end)])
    if not full:  # no states: only the period's posts
        add(" AND p.published_at >= %s", [adapt(start)])
    add(" GROUP BY 1, 2, 3, 4, 5, 6)")
    add(", m AS (SELECT 0 AS i UNION ALL SELECT i + 1 FROM m WHERE i < %s)", [len(months) - 1])
    add(
        ", gp AS (SELECT g.*, pp.regional_group, pp.is_ldc, pp.is_sids FROM g"
        f" LEFT JOIN {Party._meta.db_table} pp ON pp.id = g.party_id WHERE g.pb >= 1)"
    )
    flows = (
        "SUM(CASE WHEN kind = %s THEN n ELSE 0 END), SUM(CASE WHEN kind = %s THEN n ELSE 0 END),"
        " SUM(CASE WHEN kind = %s THEN amount END), SUM(CASE WHEN kind = %s THEN amount END),"
        " COUNT(DISTINCT party_id), COUNT(DISTINCT provider_id),"
        " COUNT(DISTINCT CASE WHEN is_ldc THEN party_id END),"
        " COUNT(DISTINCT CASE WHEN is_sids THEN party_id END)"
    )
    kinds = [NEED, OFFER, NEED, OFFER]
    # The first part types the columns for the ones after (PostgreSQL types a UNION pairwise).
    add(f" SELECT 'total', CAST(NULL AS INTEGER), CAST(NULL AS TEXT), {flows} FROM gp", kinds)
    if full:
        add(f" UNION ALL SELECT 'month', pb - 1, NULL, {flows} FROM gp GROUP BY pb", kinds)
        add(
            " UNION ALL SELECT 'regional_group', NULL, regional_group,"
            " SUM(CASE WHEN kind = %s THEN n ELSE 0 END), SUM(CASE WHEN kind = %s THEN n ELSE 0 END),"
            " NULL, NULL, COUNT(DISTINCT party_id), NULL, NULL, NULL"
            " FROM gp GROUP BY regional_group",
            [NEED, OFFER],
        )
        states = ", ".join(
            f"SUM(CASE WHEN kind = %s AND {condition} THEN n ELSE 0 END)"
            for condition in ("pb <= m.i + 1 AND cb > m.i AND wb > m.i", "cb <= m.i", "wb <= m.i")
            for _kind in (NEED, OFFER)
        )
        add(
            f" UNION ALL SELECT 'state', m.i, NULL, {states}, NULL, NULL FROM g CROSS JOIN m GROUP BY m.i",
            [NEED, OFFER] * 3,
        )
    return statement.build()


def _balance_sql(f: Filters, period: Period) -> tuple[str, list]:
    """The balance statement: rows (part, kind, term, focus area, published in the period, open at its end):
    part `support_type` or `focus_area` by term, and `pair` by (type of support, focus area), open only.

    Each post's terms of a facet are read as one number, a bit per term (`mask`: a GROUP BY post over the
    (post, term) index, in post order), so the posts published in the period or open at its end are
    counted once, grouped by kind, the two states and the two numbers: about a hundred groups, which the
    parts split by term with a join on the bits. Joining the posts to each facet table, then to both for the
    pairs, multiplied the rows and cost half the report (100,000 posts: 370 ms for the three queries, 260
    ms for this one). Terms outside the taxonomy have no bit, as they have no row in the export.
    """
    start, end = period.start, period.end
    adapt = connection.ops.adapt_datetimefield_value
    statement = _Statement()
    add = statement.add

    facets = {
        "support_type": ("support_types", SupportType.values),
        "focus_area": ("focus_areas", FocusArea.values),
    }

    def terms(values: list[str]) -> tuple[str, list]:
        """The taxonomy as a table (term, bit)."""
        rows = [f"SELECT %s AS term, {1 << i} AS bit" for i in range(len(values))]
        return " UNION ALL ".join(rows), list(values)

    posts_sql, posts_params = (
        Post.objects.filter(*f.post_conditions())
        .order_by()
        .values("id", "kind", "published_at", "closed_at", "withdrawn_at")
        .query.sql_with_params()
    )
    materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
    is_open = (
        "(p.closed_at IS NULL OR p.closed_at >= %s) AND (p.withdrawn_at IS NULL OR p.withdrawn_at >= %s)"
    )
    add(
        f"WITH g AS {materialized} (SELECT p.kind, CASE WHEN p.published_at >= %s THEN 1 ELSE 0 END AS pub,"
        f" CASE WHEN {is_open} THEN 1 ELSE 0 END AS op, support_type.mask AS support_type,"
        " focus_area.mask AS focus_area, COUNT(*) AS n",
        [adapt(start), adapt(end), adapt(end)],
    )
    add(f" FROM ({posts_sql}) p", posts_params)
    for dimension, (facet, values) in facets.items():
        field = Post._meta.get_field(facet)
        post, term = field.m2m_column_name(), field.m2m_reverse_name()
        assert len(values) < 63, "one bit per term in a 64-bit integer"
        whens = " ".join(f"WHEN %s THEN {1 << i}" for i in range(len(values)))
        add(
            f" LEFT JOIN (SELECT {post} AS post, SUM(CASE {term} {whens} ELSE 0 END) AS mask"
            f" FROM {field.m2m_db_table()} GROUP BY {post}) {dimension} ON {dimension}.post = p.id",
            values,
        )
    add(
        f" WHERE p.published_at IS NOT NULL AND p.published_at < %s AND (p.published_at >= %s OR ({is_open}))"
        " GROUP BY 1, 2, 3, 4, 5)",
        [adapt(end), adapt(start), adapt(end), adapt(end)],
    )
    # The first part types the columns for the ones after (PostgreSQL types a UNION pairwise).
    for number, dimension in enumerate(facets):
        terms_sql, terms_params = terms(facets[dimension][1])
        fourth = "CAST(NULL AS TEXT)" if number == 0 else "NULL"
        add(
            f"{' UNION ALL ' if number else ' '}SELECT '{dimension}', g.kind, t.term, {fourth},"
            " SUM(CASE WHEN g.pub = 1 THEN g.n ELSE 0 END), SUM(CASE WHEN g.op = 1 THEN g.n ELSE 0 END)"
            f" FROM g JOIN ({terms_sql}) t ON (g.{dimension} & t.bit) <> 0 GROUP BY g.kind, t.term",
            terms_params,
        )
    support_sql, support_params = terms(SupportType.values)
    focus_sql, focus_params = terms(FocusArea.values)
    add(
        " UNION ALL SELECT 'pair', g.kind, s.term, a.term, NULL, SUM(g.n) FROM g"
        f" JOIN ({support_sql}) s ON (g.support_type & s.bit) <> 0"
        f" JOIN ({focus_sql}) a ON (g.focus_area & a.bit) <> 0"
        " WHERE g.op = 1 GROUP BY g.kind, s.term, a.term",
        [*support_params, *focus_params],
    )
    return statement.build()


def _posts_figures(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    start, end = period.start, period.end
    in_period = _published_in(start, end)
    posts = _posts(f)

    # Query 1 (`_posts_sql`): posts published, amounts and posters in the period, by month and regional
    # group, and the states at each month's end.
    sql, params = _posts_sql(f, period, full=full)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    months = period.months()
    for part, i, term, needs, offers, needed, offered, parties, providers, ldc, sids in rows:
        if part == "state":
            # needs/offers open, closed (in the amount columns), withdrawn (in the poster columns)
            for state, (n_needs, n_offers) in (
                ("open", (needs, offers)),
                ("closed", (needed, offered)),
                ("withdrawn", (parties, providers)),
            ):
                for figure, value in ((f"needs_{state}", n_needs), (f"offers_{state}", n_offers)):
                    figures.set(figure, int(value or 0), month=months[i].label)
                    if i == len(months) - 1:  # the last month ends with the period
                        figures.set(figure, int(value or 0))
            continue
        if part == "regional_group":
            if term in RegionalGroup.values:  # not provider offers, nor Parties outside the five groups
                figures.set("needs_published", int(needs or 0), regional_group=term)
                figures.set("offers_published", int(offers or 0), regional_group=term)
                figures.set("parties_posting", parties, regional_group=term)
            continue
        dimension = {"month": months[i].label} if part == "month" else {}
        figures.set("needs_published", int(needs or 0), **dimension)
        figures.set("offers_published", int(offers or 0), **dimension)
        figures.set("parties_posting", parties, **dimension)
        figures.set("providers_posting", providers, **dimension)
        if full:
            figures.set("amount_needed_usd", _amount(needed), **dimension)
            figures.set("amount_offered_usd", _amount(offered), **dimension)
            figures.set("ldc_parties_posting", ldc, **dimension)
            figures.set("sids_parties_posting", sids, **dimension)
    if not full:
        return

    # Query 2 (`_balance_sql`): published in the period and open at its end, by type of support and by
    # focus area, and open at its end by (type of support, focus area) pair. A post with two terms counts
    # under each, so these rows do not add up to the total.
    sql, params = _balance_sql(f, period)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for part, kind, term, focus_area, published, open_ in rows:
        kind = "needs" if kind == NEED else "offers"
        if part == "pair":
            figures.set(f"{kind}_open", int(open_ or 0), support_type=term, focus_area=focus_area)
        else:
            figures.set(f"{kind}_published", int(published or 0), **{part: term})
            figures.set(f"{kind}_open", int(open_ or 0), **{part: term})

    # Query 3: published in the period by sector (sectors have no balance figure: only the period's posts
    # need joining).
    rows = posts.filter(in_period).values("kind", term=F("sectors")).annotate(published=Count("id"))
    for row in rows:
        if row["term"] is not None:
            kind = "needs" if row["kind"] == NEED else "offers"
            figures.set(f"{kind}_published", row["published"], sector=row["term"])
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

    # Query 4: amounts offered by finance instrument (an offer with two instruments counts under both). Offers
    # only: a need names no instrument.
    by_instrument = (
        posts.filter(in_period, kind=OFFER, instruments__isnull=False)
        .values(instrument=F("instruments"))
        .annotate(amount=Sum("amount_usd"))
    )
    for row in by_instrument:
        figures.set("amount_offered_usd", row["amount"] or 0, instrument=row["instrument"])


# --- participation -----------------------------------------------------------------------------------------


def _participation_figures(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    start, end = period.start, period.end
    posted = _posts(f).filter(_published_in(start, end))
    # Who posted in the period (the totals, by month and by regional group) comes with the posts (query 1).
    if not full:
        return

    # Query 5: the Parties (under the Party filters): LDC and SIDS totals, those with a focal point registered
    # by the end of the period, and the new Parties: posted in the period (under the filters), and their
    # first post ever published (any post, any facet) falls in the period; by the month of that first post.
    # Each Party's first post is one probe of the index (party_id, published_at) (migration stocktake 0002),
    # not a GROUP BY over every post.
    focal_points = User.objects.filter(
        party=OuterRef("pk"), role=Role.FOCAL_POINT, is_active=True, date_joined__lt=end
    )
    first_post = (
        Post.objects.filter(party=OuterRef("pk"), published_at__isnull=False)
        .order_by("published_at")
        .values("published_at")[:1]
    )
    is_new = Q(first__gte=start, first__lt=end)
    if f.support_type or f.focus_area:
        # The first post may be of another facet; the Party must also have posted under the filters.
        is_new &= Q(pk__in=posted.values("party"))
    months = period.months()
    parties = (
        Party.objects.filter(f.party_q)
        # Annotations, so that the aggregates over them (Django wraps the query as a subquery) can see them.
        .annotate(first=Subquery(first_post), has_focal_point=Exists(focal_points))
        .aggregate(
            ldc=Count("id", filter=Q(is_ldc=True)),
            sids=Count("id", filter=Q(is_sids=True)),
            with_focal_point=Count("id", filter=Q(has_focal_point=True)),
            new=Count("id", filter=is_new),
            **{
                f"new_{i}": Count("id", filter=is_new & Q(first__gte=m.start, first__lt=m.end))
                for i, m in enumerate(months)
            },
        )
    )
    figures.set("ldc_parties", parties["ldc"])
    figures.set("sids_parties", parties["sids"])
    figures.set("parties_with_focal_point", parties["with_focal_point"])
    figures.set("ldc_parties_posting_share", _ratio(figures.get("ldc_parties_posting"), parties["ldc"]))
    figures.set("sids_parties_posting_share", _ratio(figures.get("sids_parties_posting"), parties["sids"]))
    figures.set("new_parties", parties["new"])
    for i, month in enumerate(months):
        figures.set("new_parties", parties[f"new_{i}"], month=month.label)


# --- matching ----------------------------------------------------------------------------------------------


def _matches(f: Filters) -> QuerySet[Match]:
    return Match.objects.filter(*f.post_conditions(prefix="need__", post_ref="need_id")).order_by()


def _matching_figures(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    start, end = period.start, period.end
    months = period.months()
    # Query 6 (`_events_sql`): the matches generated, strong, connected and answered in the period, by
    # month; the headline is the sum of the months. Inactive matches count: they were generated, and their
    # history stands.
    sql, params = _events_sql(f, period, full=full)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    connected: dict[str, int] = {}
    for part, i, n in rows:
        label = months[i].label if full else None
        if part == "cohort":
            connected[label] = n
            continue
        figure, side = _EVENTS[part][0], _EVENTS[part][3]
        figures.add(figure, n)
        if full:
            figures.add(figure, n, month=label)
            if side:
                figures.add(figure, n, side=side)
    if not full:
        return

    # Of the matches generated in the period (by month), those connected by its end.
    for month in months:
        figures.set(
            "match_connection_rate",
            _ratio(connected.get(month.label, 0), figures.get("matches", month=month.label)),
            month=month.label,
        )
    figures.set("match_connection_rate", _ratio(sum(connected.values()), figures.get("matches")))

    if connection.vendor != "postgresql":
        matches = _matches(f)
        # On PostgreSQL these durations come with the gaps (`_needs_figures`), which compute each need's
        # first strong match once for both; here, each is a GROUP BY need read at its percentile ranks.
        for timestamp, count_figure, prefix in _DURATIONS:
            durations = _first_event_durations(matches, timestamp, start, end)
            result = _sqlite_percentiles(durations, period)
            for label, (n, values) in result.items():
                dimension = {"month": label} if label else {}
                figures.set(count_figure, n, **dimension)
                for name, value in values.items():
                    figures.set(f"{prefix}_{name}", value, **dimension)


# part of `_events_sql`: (figure, timestamp, extra SQL condition, side)
_EVENTS = {
    "matches": ("matches", "created_at", "", None),
    "strong": ("strong_matches", "strong_at", "", None),
    "connections": ("connections", "connected_at", "", None),
    "need_interests": ("interests", "need_interest_at", "need_interest = %s", "need"),
    "offer_interests": ("interests", "offer_interest_at", "offer_interest = %s", "offer"),
}


def _events_sql(f: Filters, period: Period, *, full: bool) -> tuple[str, list]:
    """The events statement: rows (part, i, count): the matches of each part of `_EVENTS` whose timestamp
    falls in month i of the period, and `cohort`: the matches generated in month i and connected by the end.

    One part per event, each on its own timestamp (each indexed): without filters PostgreSQL counts each
    from its index alone (index-only scans, COUNT(*) reads nothing else). With filters, the matches count
    when their need is under the filters: those needs are found once (`needs`), not once per part, and
    each part probes its (need_id, <timestamp>) index per need, except the matches generated, which are
    fetched from the table (an index on (need_id, created_at) would halve this statement under filters,
    but costs every write of a match about a quarter more).
    """
    start, end = period.start, period.end
    instants = [month.end for month in period.months()] if full else [end]
    adapt = connection.ops.adapt_datetimefield_value
    table = Match._meta.db_table
    sql: list[str] = []
    params: list = []
    conditions = f.post_conditions()
    if conditions:
        needs_sql, needs_params = (
            Post.objects.filter(*conditions).order_by().values("id").query.sql_with_params()
        )
        materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
        sql.append(f"WITH needs AS {materialized} ({needs_sql}) ")
        params += needs_params
    parts = [(part, timestamp, extra) for part, (_figure, timestamp, extra, _side) in _EVENTS.items()]
    if full:
        parts.append(("cohort", "created_at", "connected_at < %s"))
    for number, (part, timestamp, extra) in enumerate(parts):
        bucket_sql, bucket_params = _bucket(timestamp, instants)
        sql.append(
            f"{' UNION ALL ' if number else ''}SELECT '{part}', {bucket_sql}, COUNT(*) FROM {table}"
            f" WHERE {timestamp} >= %s AND {timestamp} < %s"
        )
        params += [*bucket_params, adapt(start), adapt(end)]
        if extra:
            sql.append(f" AND {extra}")
            params.append(adapt(end) if part == "cohort" else Interest.INTERESTED)
        if conditions:
            sql.append(" AND need_id IN (SELECT id FROM needs)")
        sql.append(" GROUP BY 2")
    return "".join(sql), params


# (timestamp, the figure counting the needs whose first such event falls in the period, prefix of its
# percentile figures)
_DURATIONS = (
    ("strong_at", "needs_first_strong_match", "days_to_first_strong_match"),
    ("connected_at", "needs_first_connection", "days_to_first_connection"),
)


def _first_event_durations(
    matches: QuerySet[Match], timestamp: str, start: dt.datetime, end: dt.datetime
) -> QuerySet[Match]:
    """One row per need whose first event of this kind (first strong match, first connection) since its
    publication (`_since_publication`) falls in [start, end): `first` (when) and `days` from the need's
    publication to it.

    A GROUP BY need over the need's events before the end (MIN is the first); the publication is read again
    after the HAVING, for the few needs left. Only posts that are needs now: a need the secretariat changed
    into an offer keeps its matches as a need (retired), but is no need any more (as in `_needs_sql`).
    """
    published = Post.objects.filter(pk=OuterRef("need")).order_by().values("published_at")
    return (
        matches.filter(_since_publication(timestamp), need__kind=NEED, **{f"{timestamp}__lt": end})
        .values("need")
        .annotate(first=Min(timestamp))
        .filter(first__gte=start)
        .annotate(days=DaysBetween("first", Subquery(published)))
    )


def _since_publication(timestamp: str) -> Q:
    """The matches whose event `timestamp` is at or after their need's publication: every figure that reads a
    need's first strong match, first offer-side interest or first connection counts it from the need's current
    publication. A need taken back by the secretariat has none (it is not counted as published, FIGURES.md),
    and one published again counts from its new publication: the events of the publication taken back (a strong
    match keeps its time when the pair is found again) would make it matched before it was published, and give
    its durations from nothing or negative ones."""
    return Q(**{f"{timestamp}__isnull": False, f"{timestamp}__gte": F("need__published_at")})


def _sqlite_percentiles(
    durations: QuerySet, period: Period
) -> dict[str | None, tuple[int, dict[str, float | None]]]:
    """{month label or None for the whole period: (count, {"median": .., "p90": ..})}, on SQLite.

    SQLite has no percentile_cont: count each month (one query, FILTERed counts over the grouped rows),
    then read the one or two values around each rank with ORDER BY ... LIMIT 2 OFFSET k, interpolating as
    percentile_cont does. Two values per percentile leave the database, never the rows.
    """
    in_month = {m.label: Q(first__gte=m.start, first__lt=m.end) for m in period.months()}
    row = durations.aggregate(
        n=Count("need"), **{f"n_{i}": Count("need", filter=q) for i, q in enumerate(in_month.values())}
    )
    groups: list[tuple[str | None, int, QuerySet]] = [(None, row["n"], durations)]
    for i, (label, q) in enumerate(in_month.items()):
        groups.append((label, row[f"n_{i}"], durations.filter(q)))
    result: dict[str | None, tuple[int, dict[str, float | None]]] = {}
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


# --- needs: strong matches, durations and gaps -----------------------------------------------------------


def _first_per_need(condition: Q, timestamp: str, end: dt.datetime) -> QuerySet[Match]:
    """(need, first): each need's first event of a kind before `end`; an index-only GROUP BY with the
    partial index (need_id, <timestamp>) WHERE <condition>. Its first since its publication: `_since_sql`."""
    return (
        Match.objects.filter(condition, **{f"{timestamp}__lt": end})
        .order_by()
        .values("need")
        .annotate(first=Min(timestamp))
    )


# The events whose first per need the needs statement reads, by the alias of its `first_<alias>` table:
# (timestamp, the matches that have one, the same as SQL over a match `e`).
_FIRSTS = {
    "s": ("strong_at", Q(strong_at__isnull=False), "TRUE"),
    "a": ("offer_interest_at", Q(offer_interest=Interest.INTERESTED), "e.offer_interest = %s"),
    "c": ("connected_at", Q(connected_at__isnull=False), "TRUE"),
}


def _since_sql(alias: str, first: str, need: str, published: str, end: dt.datetime) -> tuple[str, list]:
    """SQL of a need's first event of a kind since its publication (`_since_publication`) before `end`, from
    `first`, its first ever (`first_<alias>.first`): the same, unless it came before the publication (a
    publication the secretariat took back, the need published again since), when it is looked up again in
    the need's index from the publication on. That is rare, and only then is the subquery run."""
    timestamp, _q, condition = _FIRSTS[alias]
    params = [Interest.INTERESTED] if "%s" in condition else []
    sql = (
        f"CASE WHEN {first} IS NULL OR {first} >= {published} THEN {first} ELSE"
        f" (SELECT MIN(e.{timestamp}) FROM {Match._meta.db_table} e WHERE e.need_id = {need} AND {condition}"
        f" AND e.{timestamp} >= {published} AND e.{timestamp} < %s) END"
    )
    return sql, [*params, connection.ops.adapt_datetimefield_value(end)]


def _bucket(column: str, thresholds: list[dt.datetime]) -> tuple[str, list]:
    """SQL numbering where `column` falls among ascending thresholds t0 < t1 < ...: how many are at or
    before it (0 .. len), and len + 1 when it is NULL (never happened). So `column < t_i` reads
    `bucket <= i`, and `column IS NULL OR column >= t_i` reads `bucket > i`: an integer comparison per
    instant instead of the timestamp conditions, and a handful of distinct values to GROUP BY."""
    adapt = connection.ops.adapt_datetimefield_value
    whens = " ".join(f"WHEN {column} < %s THEN {i}" for i in range(len(thresholds)))
    sql = f"CASE WHEN {column} IS NULL THEN {len(thresholds) + 1} {whens} ELSE {len(thresholds)} END"
    return sql, [adapt(t) for t in thresholds]


def _terms_of(alias: str, facet: str) -> str:
    """SQL joining each row of `alias` (which has the post's `id`) to its terms of a facet, as `t.term`.

    On PostgreSQL a LATERAL subquery with OFFSET 0 (which keeps the planner from flattening it into a plain
    join): the few thousand waiting needs each look their terms up in the (post, term) index, instead of
    the whole facet table (125,000 rows at 100,000 posts) being hashed for them.
    """
    field = Post._meta.get_field(facet)
    table, post, term = field.m2m_db_table(), field.m2m_column_name(), field.m2m_reverse_name()
    if connection.vendor == "postgresql":
        return (
            f"CROSS JOIN LATERAL (SELECT x.{term} AS term FROM {table} x WHERE x.{post} = {alias}.id"
            " OFFSET 0) t"
        )
    return f"JOIN (SELECT {post} AS post, {term} AS term FROM {table}) t ON t.post = {alias}.id"


def _needs_sql(f: Filters, period: Period, *, full: bool, durations: bool) -> tuple[str, list]:
    """The needs statement: rows (part, i, term, a, b, <one column per percentile>).

    It is written in SQL around querysets the ORM builds, because every part reads each need's first strong
    match (or first offer-side interest, first connection): a GROUP BY over the matches, computed once here
    in a common table expression, where the ORM could only repeat it as correlated subqueries, which
    PostgreSQL runs once per mention and per need. `n` holds the needs that can matter (published in the
    period, or possibly waiting at one of the instants) with their timestamps numbered against the instants
    (`_bucket`), and each part reads it:

    - gap, i: needs unmatched (a) and unanswered (b) at instant i (each month's end; the last is the end).
      `w` first counts the needs by their five bucket numbers (a few hundred rows), so the conditions are
      tested per group, not per need and instant.
    - with_strong, i: needs published in month i with a strong match by the end (a).
    - regional_group / focus_area / support_type, term: the gaps at the end, by the need's term.
    - strong / connection, i (NULL: the whole period), PostgreSQL only (`durations`): needs whose first
      such event falls in month i (a) and the percentiles of the days from publication to it.
    """
    start, end = period.start, period.end
    instants = [month.end for month in period.months()] if full else [end]
    last = len(instants) - 1
    # A need is a gap once GAP_DAYS have passed: at an instant still to come (a period or month not over yet),
    # only the days passed so far count, not those until its end.
    now = timezone.now()
    cutoffs = [min(at, now) - dt.timedelta(days=GAP_DAYS) for at in instants]
    adapt = connection.ops.adapt_datetimefield_value
    statement = _Statement()
    add = statement.add

    firsts = ["s", "a", "c"] if durations else ["s", "a"]  # connections for the durations only
    add("WITH RECURSIVE ")
    materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
    filtered = bool(f.post_conditions())
    if filtered:  # the posts under the filters, found once for `n` and the durations
        ids_sql, ids_params = (
            Post.objects.filter(*f.post_conditions()).order_by().values("id").query.sql_with_params()
        )
        add(f"ids AS {materialized} ({ids_sql}), ", ids_params)
    for alias in firsts:
        timestamp, condition, _sql = _FIRSTS[alias]
        first_sql, first_params = _first_per_need(condition, timestamp, end).query.sql_with_params()
        add(f"first_{alias} AS ({first_sql}), ", first_params)
    # Each need's first strong match and first offer-side interest since its publication (`_since_sql`),
    # numbered against the instants by the outer SELECT.
    add(f"n AS {materialized} (SELECT x.id, x.published_at, x.party_id, x.first_strong")
    for name, column, thresholds in (
        ("bw", "x.published_at", cutoffs),  # waiting 60 days at instant i: bw <= i
        ("bc", "x.closed_at", instants),  # not closed at instant i: bc > i
        ("bx", "x.withdrawn_at", instants),  # not withdrawn at instant i: bx > i
        ("bs", "x.first_strong", instants),  # no strong match before instant i: bs > i
        ("ba", "x.first_answer", instants),  # no offer-side interest before instant i: ba > i
    ):
        bucket_sql, bucket_params = _bucket(column, thresholds)
        add(f", {bucket_sql} AS {name}", bucket_params)
    add(" FROM (SELECT p.id, p.published_at, p.party_id, p.closed_at, p.withdrawn_at")
    for alias, name in (("s", "first_strong"), ("a", "first_answer")):
        since_sql, since_params = _since_sql(alias, f"{alias}.first", "p.id", "p.published_at", end)
        add(f", {since_sql} AS {name}", since_params)
    add(
        f" FROM {Post._meta.db_table} p"
        " LEFT JOIN first_s s ON s.need = p.id LEFT JOIN first_a a ON a.need = p.id"
    )
    # Needs that may be waiting at some instant (published 60 days before the last, open at the first),
    # and the needs published in the period.
    add(
        " WHERE p.kind = %s AND p.published_at IS NOT NULL AND ((p.published_at < %s"
        " AND (p.closed_at IS NULL OR p.closed_at >= %s)"
        " AND (p.withdrawn_at IS NULL OR p.withdrawn_at >= %s))",
        [NEED, adapt(cutoffs[-1]), adapt(instants[0]), adapt(instants[0])],
    )
    if full:
        add(" OR (p.published_at >= %s AND p.published_at < %s)", [adapt(start), adapt(end)])
    add(")")
    if filtered:
        add(" AND p.id IN (SELECT id FROM ids)")
    add(") x), m AS (SELECT 0 AS i UNION ALL SELECT i + 1 FROM m WHERE i < %s)", [last])
    add(", w AS (SELECT bw, bc, bx, bs, ba, COUNT(*) AS n FROM n GROUP BY bw, bc, bx, bs, ba)")
    # The first part types the columns for the ones after (PostgreSQL types a UNION pairwise).
    percentile_nulls = "".join(", CAST(NULL AS DOUBLE PRECISION)" for _ in PERCENTILES)
    waiting = "w.bw <= m.i AND w.bc > m.i AND w.bx > m.i"
    add(
        " SELECT 'gap', m.i, CAST(NULL AS TEXT),"
        f" SUM(CASE WHEN {waiting} AND w.bs > m.i THEN w.n ELSE 0 END),"
        f" SUM(CASE WHEN {waiting} AND w.bs <= m.i AND w.ba > m.i THEN w.n ELSE 0 END){percentile_nulls}"
        " FROM w CROSS JOIN m GROUP BY m.i"
    )
    nulls = "".join(", NULL" for _ in PERCENTILES)
    if full:
        bucket_sql, bucket_params = _bucket("n.published_at", instants)
        add(
            f" UNION ALL SELECT 'with_strong', {bucket_sql}, NULL, COUNT(*), NULL{nulls} FROM n"
            " WHERE n.published_at >= %s AND n.published_at < %s AND n.first_strong IS NOT NULL GROUP BY 2",
            [*bucket_params, adapt(start), adapt(end)],
        )
        gap_at_end = (
            f"n.bw <= {last} AND n.bc > {last} AND n.bx > {last} AND (n.bs > {last} OR n.ba > {last})"
        )
        counts = (
            f"SUM(CASE WHEN n.bs > {last} THEN 1 ELSE 0 END), SUM(CASE WHEN n.bs <= {last} THEN 1 ELSE 0 END)"
        )
        # The Party's regional group is looked up for the few needs in a gap only.
        add(
            f" UNION ALL SELECT 'regional_group', NULL, pp.regional_group, {counts}{nulls} FROM n"
            f" LEFT JOIN {Party._meta.db_table} pp ON pp.id = n.party_id"
            f" WHERE {gap_at_end} GROUP BY pp.regional_group"
        )
        for dimension, facet in (("focus_area", "focus_areas"), ("support_type", "support_types")):
            add(
                f" UNION ALL SELECT '{dimension}', NULL, t.term, {counts}{nulls}"
                f" FROM n {_terms_of('n', facet)}"
                f" WHERE {gap_at_end} GROUP BY t.term"
            )
    if durations:
        # The needs whose first such event since their publication (`_since_sql`) falls in the period, whatever
        # the post (as the matches say), not only those of `n`. It is at or after their first ever: the needs
        # whose first ever is in the period, each of which looks its publication up by primary key (LATERAL ...
        # OFFSET 0 keeps it a nested loop: a few thousand probes, not a hash of every post), and the needs
        # published again since their first ever, which the secretariat returned (`returned_at`) in between:
        # the only way back to publication. Under filters, among the posts under the filters (`ids`). Only
        # posts that are needs now: the secretariat may change a need into an offer, whose matches as a need
        # are kept (retired) and stay in `first_<alias>`, while it is no need any more (the gaps read `n`,
        # needs only).
        posts = Post._meta.db_table
        among = " AND e.need IN (SELECT id FROM ids)" if filtered else ""
        for part, alias in (("strong", "s"), ("connection", "c")):
            since_sql, since_params = _since_sql(alias, "c.first", "c.need", "c.published_at", end)
            days = days_between_sql("f.first", "c.published_at")
            percentiles = "".join(
                f", {percentile_cont_sql(fraction, days)}" for fraction in PERCENTILES.values()
            )
            bucket_sql, bucket_params = _bucket("f.first", instants)
            add(
                f" UNION ALL SELECT '{part}', {bucket_sql}, NULL, COUNT(*), NULL{percentiles}"
                f" FROM (SELECT e.need, e.first, p.published_at FROM first_{alias} e CROSS JOIN LATERAL"
                f" (SELECT q.published_at FROM {posts} q WHERE q.id = e.need AND q.kind = %s OFFSET 0) p"
                f" WHERE e.first >= %s{among}"
                f" UNION ALL SELECT e.need, e.first, q.published_at FROM first_{alias} e"
                f" JOIN {posts} q ON q.id = e.need WHERE e.first < %s AND q.kind = %s"
                f" AND q.returned_at IS NOT NULL AND q.published_at > e.first{among}) c"
                f" CROSS JOIN LATERAL (SELECT {since_sql} AS first) f WHERE f.first >= %s"
                " GROUP BY ROLLUP (2)",
                [*bucket_params, NEED, adapt(start), adapt(start), NEED, *since_params, adapt(start)],
            )
    return statement.build()


def _needs_figures(figures: _Figures, period: Period, f: Filters, *, full: bool) -> None:
    """Query 7 (`_needs_sql`): the gaps at the period's end and at each month's end, by focus area, support
    type and regional group; the needs published with a strong match; on PostgreSQL, the days to the first
    strong match and to the first connection (on SQLite they come with the matching figures)."""
    months = period.months() if full else []
    durations = full and connection.vendor == "postgresql"
    sql, params = _needs_sql(f, period, full=full, durations=durations)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    last = len(months) - 1 if full else 0
    for part, i, term, a, b, *percentiles in rows:
        month = {"month": months[i].label} if i is not None and full else {}
        if part == "gap":
            if i == last:
                figures.set("needs_unmatched_60d", int(a or 0))
                figures.set("needs_unanswered_60d", int(b or 0))
            if full:
                figures.set("needs_unmatched_60d", int(a or 0), **month)
                figures.set("needs_unanswered_60d", int(b or 0), **month)
        elif part == "with_strong":
            figures.set("needs_with_strong_match", int(a), **month)
            figures.add("needs_with_strong_match", int(a))
        elif part in ("strong", "connection"):
            _timestamp, count_figure, prefix = _DURATIONS[0 if part == "strong" else 1]
            figures.set(count_figure, int(a), **month)
            for name, value in zip(PERCENTILES, percentiles, strict=True):
                figures.set(f"{prefix}_{name}", value, **month)
        elif term:
            figures.set("needs_unmatched_60d", int(a or 0), **{part: term})
            figures.set("needs_unanswered_60d", int(b or 0), **{part: term})
    if full:
        figures.set(
            "needs_with_strong_match_share",
            _ratio(figures.get("needs_with_strong_match"), figures.get("needs_published")),
        )


# --- snapshots ---------------------------------------------------------------------------------------------


def snapshot_list() -> QuerySet[Snapshot]:
    """Every snapshot, newest first, with who froze it (one query)."""
    return Snapshot.objects.select_related("created_by").defer("export")


def snapshot_previous(snapshot: Snapshot) -> Snapshot | None:
    """The snapshot with the same filters frozen just before this one, or None. Its period may differ (the
    last session's report against this one's); figures under other filters cannot be compared."""
    return (
        Snapshot.objects.filter(
            Q(created_at__lt=snapshot.created_at) | Q(created_at=snapshot.created_at, id__lt=snapshot.id)
        )
        .filter(filters=snapshot.filters)
        .order_by("-created_at", "-id")
        .first()
    )
