"""Posts in the API: the import format of docs/FORMATS.md in and out, plus id, status and timestamps on output.

Input is validated by `post_data.parse_post_record` (the same rules as the import command); the serializers
here describe the format for the OpenAPI schema. Output is defined by `post_api_record`, a plain function
over `post_to_record`; list and detail read the same records as JSON text straight from the database
(`post_json_rows`), because a list page must pay neither for DRF's field machinery nor for model instances.
"""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F
from rest_framework import serializers

from apps.accounts.actors import Actor
from apps.parties.models import Party, SupportProvider
from apps.posts.models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH, Post
from apps.posts.post_data import DECLARATIONS, MAX_AMOUNT, FieldError, post_to_record
from apps.posts.taxonomies import (
    FACETS,
    POST_LANGUAGE_CODES,
    Aim,
    FinanceInstrument,
    FocusArea,
    Sector,
    SupportType,
)

ISO3_PATTERN = r"^[A-Za-z]{3}$"


def _api_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class _Term:
    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key


class _Terms(list):
    """A facet's terms, read like a prefetched relation (`post.sectors.all()`)."""

    def all(self) -> list:
        return self


class _Poster:
    __slots__ = ("iso3", "short_name")

    def __init__(self, iso3: str = "", short_name: str = ""):
        self.iso3, self.short_name = iso3, short_name


def with_poster_codes(queryset):
    """The posts with their Party's ISO3 code and provider's short name as columns, instead of joined models."""
    return queryset.select_related(None).annotate(
        api_party_iso3=F("party__iso3"), api_provider_name=F("provider__short_name")
    )


class PostWithFacets:
    """A post plus its facets and partner Parties, loaded for a whole page in one query.

    `post_to_record` reads it like a Post with prefetched relations, so the import format stays defined in one
    place; but Django's M2M prefetch builds a related manager per post and facet (about 40 µs each), which
    for a page of 100 posts is most of the request.
    """

    def __init__(self, post: Post, facets: dict[str, list[str]]):
        self._post = post
        for name in (*FACETS, "partner_parties"):
            setattr(self, name, _Terms(_Term(key) for key in facets.get(name, ())))
        if hasattr(post, "api_party_iso3"):
            # The poster's code came with the row (see `with_poster_codes`): no Party or provider instances.
            self.party = _Poster(iso3=post.api_party_iso3) if post.party_id else None
            self.provider = _Poster(short_name=post.api_provider_name) if post.provider_id else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._post, name)


def posts_with_facets(posts: list[Post]) -> list[PostWithFacets]:
    """The posts with every facet's keys and the partner Parties' ISO3 codes, in one UNION ALL query."""
    facets = _facet_keys([post.pk for post in posts])
    return [PostWithFacets(post, facets[post.pk]) for post in posts]


def _facet_keys(ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """Post id -> facet (and `partner_parties`) -> keys in the taxonomy's order, in one UNION ALL query."""
    facets: dict[int, dict[str, list[str]]] = {pk: {} for pk in ids}
    if ids:
        if connection.vendor == "postgresql":
            # One array parameter, as an array literal: psycopg would otherwise parse a hundred placeholders,
            # or dump the list element by element in Python, on every page. The statement stays the same.
            condition, params = "= ANY(%s::bigint[])", ["{" + ",".join(map(str, ids)) + "}"]
        else:
            condition, params = f"IN ({', '.join(['%s'] * len(ids))})", ids
        with _read_cursor() as cursor:
            cursor.execute(_facets_sql().format(ids=condition), params * (len(FACETS) + 1))
            for post_id, name, key in cursor.fetchall():
                facets[post_id].setdefault(name, []).append(key)
    for by_name in facets.values():
        for name, keys in by_name.items():
            if len(keys) > 1:
                # The taxonomies' own order (their `position`), as post_to_record gives it.
                order = _FACET_ORDER.get(name)
                keys.sort(key=(lambda k, order=order: order.get(k, len(order))) if order else None)
    return facets


_FACET_ORDER = {name: {key: i for i, key in enumerate(choices.values)} for name, choices in FACETS.items()}


@functools.cache
def _facets_sql() -> str:
    """Plain SQL, built once from the models: the ORM spent longer composing this UNION than running it."""
    parts = []
    for name in FACETS:
        through = getattr(Post, name).through._meta
        column = through.get_field(getattr(Post, name).field.related_model._meta.model_name).column
        parts.append(f"SELECT post_id, '{name}', {column} FROM {through.db_table} WHERE post_id {{ids}}")
    through = Post.partner_parties.through._meta
    party = Party._meta
    parts.append(
        f"SELECT t.post_id, 'partner_parties', p.iso3 FROM {through.db_table} t "
        f"JOIN {party.db_table} p ON p.id = t.party_id WHERE t.post_id {{ids}}"
    )
    return " UNION ALL ".join(parts)


# --- the read path: posts as API records straight from database rows -------------------------------------


class PostJson(NamedTuple):
    """One post read by `post_json_rows`: its API record as JSON text, and what the caller-dependent fields and
    a page's cursor need.

    A list page is the API's hottest path. On PostgreSQL the database writes each record's JSON (facets,
    timestamps and all) in C, for less than Python spends turning the columns into dicts and encoding them;
    `post_json` adds the fields that depend on the caller. tests/api/test_performance_paths.py holds the
    text to `post_api_record` of a fully loaded post, on either database.
    """

    pk: int
    party_id: int | None
    provider_id: int | None
    # The record without the caller-dependent fields below: a JSON object.
    record: str
    contact_name: str
    contact_email: str
    returned_at: str | None
    return_reason: str


def post_json(post: PostJson, *, actor: Actor, can_manage: bool) -> str:
    """The post's API record as JSON text: what `post_api_record` gives, for this caller."""
    extra = {}
    if actor.reads_contacts(own=can_manage):
        # The public reads posts without contact details (README: who uses it); users see them, and tokens
        # issued with them, or for their own posts.
        extra["contact_name"] = post.contact_name
        extra["contact_email"] = post.contact_email
    if can_manage:
        extra["returned_at"] = post.returned_at
        extra["return_reason"] = post.return_reason
    if not extra:
        return post.record
    # The extra keys come last in the record: open the object again and append them.
    return f"{post.record[:-1]}, {json.dumps(extra, ensure_ascii=False)[1:]}"


class PageQuery(NamedTuple):
    """A page's `SELECT id ...` of posts: its SQL and parameters, and the fields of Post it is ordered by."""

    sql: str
    params: tuple
    order: tuple[str, ...]


def page_query(queryset) -> PageQuery | None:
    """The `SELECT id ...` of a queryset of posts (filtered, ordered, sliced); None when it can match nothing.

    Only the ids are compiled, so neither select_related nor prefetches of the queryset run: the selectors and
    filters stay the one definition of who sees what, and `post_json_rows` reads the rest.
    """
    try:
        sql, params = queryset.values_list("id").query.sql_with_params()
    except EmptyResultSet:
        return None
    query = queryset.query
    order = query.order_by or (query.get_meta().ordering if query.default_ordering else ())
    return PageQuery(sql, tuple(params), tuple(order))


class _Slot(NamedTuple):
    """Where a compiled page query takes one of the values of `page_query_once`."""

    name: str


# Compiled page queries: key -> (sql, params with _Slot placeholders, order), or _UNCACHEABLE. Emptied when
# full: the keys are per caller and page shape, a few per partner system.
_PAGE_QUERIES: dict[Hashable, tuple[str, tuple, tuple[str, ...]] | object] = {}
_PAGE_QUERIES_MAX = 2000
_UNCACHEABLE, _MISSING = object(), object()


def page_query_once(key: Hashable, build: Callable[..., Any], **values: Any) -> PageQuery | None:
    """`page_query(build(**values))`, with the ORM's work done once per `key` and the names of `values`.

    Composing and compiling a page's queryset costs the API more than the database's whole answer. The first
    call builds it with a stand-in for each value and remembers where the stand-ins land among the SQL
    parameters; later calls put their values there. So `key` must decide everything else the queryset depends
    on (the caller, the ordering, the page size), and each value must reach the parameters as it is given: an
    int, or a str or datetime already in the form the database takes (`connection.ops.adapt_*`), passed to a
    lookup on an integer field or to RawSQL. A value that does not is noticed, and that key is compiled every
    time.
    """
    cache_key = (connection.alias, connection.vendor, key, tuple(sorted(values)))
    compiled = _PAGE_QUERIES.get(cache_key, _MISSING)
    if compiled is _MISSING:
        compiled = _compile_with_stand_ins(build, values)
        if len(_PAGE_QUERIES) >= _PAGE_QUERIES_MAX:
            _PAGE_QUERIES.clear()
        _PAGE_QUERIES[cache_key] = compiled
    if compiled is _UNCACHEABLE:
        return page_query(build(**values))
    sql, params, order = compiled
    return PageQuery(sql, tuple(values[p.name] if type(p) is _Slot else p for p in params), order)


def _compile_with_stand_ins(build: Callable[..., Any], values: dict[str, Any]):
    stand_ins = {name: _stand_in(index, value) for index, (name, value) in enumerate(values.items())}
    page = page_query(build(**stand_ins))
    if page is None:
        # Nothing could match these stand-ins; the real values might.
        return _UNCACHEABLE
    params, found = [], set()
    for param in page.params:
        name = next((n for n, s in stand_ins.items() if type(param) is type(s) and param == s), None)
        params.append(param if name is None else _Slot(name))
        found.add(name)
    inlined = any(isinstance(s, str) and s in page.sql for s in stand_ins.values())
    if found.issuperset(stand_ins) and not inlined:
        return page.sql, tuple(params), page.order
    return _UNCACHEABLE


def _stand_in(index: int, value: Any) -> Any:
    """A value of the same type as `value` that no query holds on its own."""
    if type(value) is int:
        return -(2**62) - index
    if type(value) is str:
        return f"\x01stand-in {index}\x01"
    if type(value) is datetime:
        return datetime(1, 1, 1, 0, 0, 0, index + 1, tzinfo=UTC)
    raise TypeError(f"No stand-in for a {type(value).__name__} parameter")


def post_json_rows(
    page: PageQuery | None, *, limit: int | None = None, plan_page_each_time: bool = False
) -> list[PostJson]:
    """The posts of a page query as `PostJson`s, in its order.

    A fixed SQL statement around the page's `SELECT id ...` reads the posts. With `plan_page_each_time`, the
    page's query runs first on its own, planned for its parameters (PostgreSQL), and the statement reads the
    ids it found: for filters whose best plan depends on the value, such as a search (how many posts match).
    On SQLite, rows after `limit` (a page's look-ahead row) come without their facets, which nobody reads.
    """
    if page is None:
        return []
    order = _order_sql(page.order)
    if connection.vendor == "postgresql":
        if plan_page_each_time:
            with connection.cursor() as cursor:
                cursor.execute(page.sql, page.params)
                ids = [pk for (pk,) in cursor.fetchall()]
            if not ids:
                return []
            # An array literal, so the statement stays the same whatever the number of ids.
            page = PageQuery(_IDS_PAGE, ("{" + ",".join(map(str, ids)) + "}",), page.order)
        with _read_cursor() as cursor:
            cursor.execute(_json_sql().format(page=page.sql, order=order), page.params)
            return [PostJson._make(row) for row in cursor.fetchall()]
    with connection.cursor() as cursor:
        cursor.execute(_row_sql().format(page=page.sql, order=order), page.params)
        values = cursor.fetchall()
    facets = _facet_keys([row[0] for row in values[:limit]])
    return [_python_json_row(row, facets.get(row[0], {})) for row in values]


_IDS_PAGE = "SELECT unnest(%s::bigint[]) AS id"


@functools.cache
def _order_sql(names: tuple[str, ...]) -> str:
    order = ", ".join(
        f"p.{_column(name.lstrip('-'))} {'DESC' if name.startswith('-') else 'ASC'}" for name in names
    )
    return f" ORDER BY {order}" if order else ""


def _read_cursor():
    """A cursor for the read path; on PostgreSQL, one whose statements are prepared once they repeat.

    Planning the page's statement costs the database more than running it. Django's own cursors bind
    parameters client-side, which psycopg never prepares; this one binds them server-side, and psycopg
    prepares a statement on its 5th use on a connection (keeping the latest 100): the plain pages, the details.
    """
    if connection.vendor != "postgresql" or not settings.API_PREPARED_STATEMENTS:
        # Off behind a connection pooler in transaction mode that cannot keep prepared statements.
        return connection.cursor()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns preparing off; only server-side binding cursors (these) are affected.
        raw.prepare_threshold = 5
    if raw not in _GENERIC_PLAN_SESSIONS:
        # A prepared statement is otherwise planned again on every execution: its custom plan for the
        # parameters looks cheaper than the generic one (LIMIT 21 of 90% published rows), so PostgreSQL
        # never settles on the generic plan, and planning costs more than the execution. The generic plans
        # of these statements are the same plans. Only server-side bound statements (this cursor's) are
        # affected: Django's own cursors bind on the client and have no plan cache.
        raw.execute("SET plan_cache_mode = force_generic_plan")
        if not connection.in_atomic_block:
            # Said outside a transaction, it holds for the session; inside, a rollback would undo it.
            _GENERIC_PLAN_SESSIONS.add(raw)
    with connection.wrap_database_errors:
        # Django's wrapper, so the queries are logged and counted like any other.
        return connection._prepare_cursor(psycopg.Cursor(raw))


# Database connections (psycopg's) whose session plans prepared statements generically.
_GENERIC_PLAN_SESSIONS: weakref.WeakSet = weakref.WeakSet()


def _column(name: str) -> str:
    field = Post._meta.pk if name == "pk" else Post._meta.get_field(name)
    return connection.ops.quote_name(field.column)


def _column_of(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _from_page(page: str = "({page})") -> str:
    """The posts of a page's `SELECT id ...` (`{page}`, or the named query), with their Party and provider."""
    quote = connection.ops.quote_name
    return (
        f"FROM {page} page "
        f"JOIN {quote(Post._meta.db_table)} p ON p.{_column('id')} = page.{_column('id')} "
        f"LEFT JOIN {quote(Party._meta.db_table)} pa ON pa.{_column_of(Party, 'id')} = p.{_column('party')} "
        f"LEFT JOIN {quote(SupportProvider._meta.db_table)} pr "
        f"ON pr.{_column_of(SupportProvider, 'id')} = p.{_column('provider')}"
    )


def _pg_stamp(column: str) -> str:
    # isoformat() of a UTC time with `Z`: microseconds only when there are some.
    return (
        f"""replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '.000000Z', 'Z')"""
    )


@functools.cache
def _json_sql() -> str:
    """PostgreSQL: the columns of `PostJson` for a page's `SELECT id ...` (`{page}`), followed by `{order}`.

    The record's keys in the order of `post_api_record`; facets in the taxonomy's order, partner Parties in
    Party's (their name), as the prefetches of the model path give them.
    """

    def col(name: str) -> str:
        return f"p.{_column(name)}"

    # Every facet of the page's posts in one pass: one index scan per facet table for the whole page, sorted
    # once, then aggregated in that order (an aggregate takes its rows in the order of a sorted subquery).
    # A subquery per post and facet, each aggregate sorting its own few keys, cost the database twice this.
    # Keys in their term's position, partner Parties by name: the orderings of the model path's prefetches.
    ids = "ANY(ARRAY(SELECT id FROM page))"
    parts = []
    for number, name in enumerate(FACETS):
        through = getattr(Post, name).through._meta
        term = getattr(Post, name).field.related_model._meta
        key = through.get_field(term.model_name).column
        # The union's column names are the first SELECT's.
        named = " AS facet" if number == 0 else ""
        parts.append(
            f"SELECT t.post_id, {number}{named}, t.{key}{' AS key' if named else ''}, "
            f"o.{term.get_field('position').column}, t.{key} "
            f"FROM {through.db_table} t JOIN {term.db_table} o ON o.{term.pk.column} = t.{key} "
            f"WHERE t.post_id = {ids}"
        )
    through = Post.partner_parties.through._meta
    parts.append(
        f"SELECT t.post_id, {len(FACETS)}, x.{_column_of(Party, 'iso3')}, NULL, x.{_column_of(Party, 'name')} "
        f"FROM {through.db_table} t JOIN {Party._meta.db_table} x ON x.{_column_of(Party, 'id')} = t.party_id "
        f"WHERE t.post_id = {ids}"
    )
    names = [*FACETS, "partner_parties"]
    aggregates = ", ".join(
        f"json_agg(key) FILTER (WHERE facet = {number}) AS {name}" for number, name in enumerate(names)
    )
    facets = (
        f"SELECT post_id, {aggregates} FROM ({' UNION ALL '.join(parts)} ORDER BY 1, 2, 4, 5) keys "
        "GROUP BY post_id"
    )

    def facet(name: str) -> str:
        return f"coalesce(f.{name}, '[]')"

    record = {
        "id": col("id"),
        "external_id": f"coalesce(nullif({col('external_id')}, ''), 'post-' || {col('id')})",
        "kind": col("kind"),
        "party": f"pa.{_column_of(Party, 'iso3')}",
        "provider": f"pr.{_column_of(SupportProvider, 'short_name')}",
        "title": col("title"),
        "description": col("description"),
        "support_types": facet("support_types"),
        "focus_areas": facet("focus_areas"),
        "sectors": facet("sectors"),
        "language": col("language"),
        # numeric(16, 2) as it is: a JSON number that reads back as the float the model path gives.
        "amount_usd": col("amount_usd"),
        "instruments": facet("instruments"),
        "eligible": col("eligible"),
        "status": col("status"),
        "aims": col("aims"),
        "partner_parties": facet("partner_parties"),
        "involves_iplc": col("involves_iplc"),
        "declarations": "json_build_object({})".format(
            ", ".join(f"'{name}', {col(f'declares_{name}')}" for name in DECLARATIONS)
        ),
        "outcome": col("outcome"),
        **{name: _pg_stamp(col(name)) for name in _STAMPS},
    }
    record_sql = "json_build_object({})::text".format(", ".join(f"'{k}', {v}" for k, v in record.items()))
    columns = [
        col("id"),
        col("party"),
        col("provider"),
        record_sql,
        col("contact_name"),
        col("contact_email"),
        _pg_stamp(col("returned_at")),
        col("return_reason"),
    ]
    return (
        f"WITH page AS MATERIALIZED ({{page}}), f AS ({facets}) "
        f"SELECT {', '.join(columns)} {_from_page('page')} LEFT JOIN f ON f.post_id = {col('id')}{{order}}"
    )


_STAMPS = ("created_at", "updated_at", "submitted_at", "published_at", "closed_at", "withdrawn_at")


@functools.cache
def _row_sql() -> str:
    """SQLite: the columns of `_python_json_row` for a page's `SELECT id ...` (`{page}`), then `{order}`."""

    def col(name: str) -> str:
        return f"p.{_column(name)}"

    def stamp(column: str) -> str:
        # SQLite stores UTC as `YYYY-MM-DD HH:MM:SS[.ffffff]` (Django's adapter); NULL stays NULL.
        return f"replace({column}, ' ', 'T') || 'Z'"

    columns = [
        col("id"),
        col("external_id"),
        col("kind"),
        f"pa.{_column_of(Party, 'iso3')}",
        f"pr.{_column_of(SupportProvider, 'short_name')}",
        col("title"),
        col("description"),
        col("language"),
        col("amount_usd"),
        col("eligible"),
        col("status"),
        col("aims"),
        col("involves_iplc"),
        *(col(f"declares_{key}") for key in DECLARATIONS),
        col("outcome"),
        *(stamp(col(name)) for name in _STAMPS),
        col("contact_name"),
        col("contact_email"),
        stamp(col("returned_at")),
        col("return_reason"),
        col("party"),
        col("provider"),
    ]
    return f"SELECT {', '.join(columns)} {_from_page()}{{order}}"


def _python_json_row(values: tuple, facets: dict[str, list[str]]) -> PostJson:
    """SQLite: a `PostJson` from the columns of `_row_sql` and the facets of `_facet_keys`."""
    (
        pk,
        external_id,
        kind,
        party_iso3,
        provider_name,
        title,
        description,
        language,
        amount,
        eligible,
        status,
        aims,
        involves_iplc,
        voluntary,
        no_transfer,
        ndc,
        rights,
        safeguards,
        outcome,
        created_at,
        updated_at,
        submitted_at,
        published_at,
        closed_at,
        withdrawn_at,
        contact_name,
        contact_email,
        returned_at,
        return_reason,
        party_id,
        provider_id,
    ) = values
    record = {
        "id": pk,
        "external_id": external_id or f"post-{pk}",
        "kind": kind,
        "party": party_iso3,
        "provider": provider_name,
        "title": title,
        "description": description,
        "support_types": facets.get("support_types", []),
        "focus_areas": facets.get("focus_areas", []),
        "sectors": facets.get("sectors", []),
        "language": language,
        "amount_usd": float(amount) if amount is not None else None,
        "instruments": facets.get("instruments", []),
        "eligible": json.loads(eligible),
        "status": status,
        "aims": json.loads(aims),
        "partner_parties": facets.get("partner_parties", []),
        "involves_iplc": bool(involves_iplc),
        "declarations": {
            "voluntary": bool(voluntary),
            "no_transfer": bool(no_transfer),
            "ndc": bool(ndc),
            "rights": bool(rights),
            "safeguards": bool(safeguards),
        },
        "outcome": outcome,
        "created_at": _stamp(created_at),
        "updated_at": _stamp(updated_at),
        "submitted_at": _stamp(submitted_at),
        "published_at": _stamp(published_at),
        "closed_at": _stamp(closed_at),
        "withdrawn_at": _stamp(withdrawn_at),
    }
    return PostJson(
        pk=pk,
        party_id=party_id,
        provider_id=provider_id,
        record=json.dumps(record, ensure_ascii=False, separators=(",", ":")),
        contact_name=contact_name,
        contact_email=contact_email,
        returned_at=_stamp(returned_at),
        return_reason=return_reason,
    )


def _stamp(text: str | None) -> str | None:
    # isoformat() omits zero microseconds.
    return text.replace(".000000Z", "Z") if text is not None else None


def post_api_record(post: Post | PostWithFacets, *, actor: Actor, can_manage: bool) -> dict[str, Any]:
    """A post as the API returns it, from a `PostWithFacets` or a fully prefetched post (the definition that
    `post_json_rows` and `post_json` follow)."""
    record = {"id": post.pk, **post_to_record(post)}
    record.update(
        aims=list(post.aims),
        partner_parties=[_code(party) for party in post.partner_parties.all()],
        involves_iplc=post.involves_iplc,
        declarations={key: getattr(post, f"declares_{key}") for key in DECLARATIONS},
        outcome=post.outcome,
        created_at=_api_time(post.created_at),
        updated_at=_api_time(post.updated_at),
        submitted_at=_api_time(post.submitted_at),
        published_at=_api_time(post.published_at),
        closed_at=_api_time(post.closed_at),
        withdrawn_at=_api_time(post.withdrawn_at),
    )
    if actor.reads_contacts(own=can_manage):
        # As `post_json`: users, and tokens issued with contact details or for their own posts.
        record["contact_name"] = post.contact_name
        record["contact_email"] = post.contact_email
    if can_manage:
        record["returned_at"] = _api_time(post.returned_at)
        record["return_reason"] = post.return_reason
    return record


def _code(party) -> str:
    return party.key if isinstance(party, _Term) else party.iso3


def post_input_record(post: Post | PostWithFacets) -> dict[str, Any]:
    """The post in the import format with every writable field: the base a PATCH is merged into."""
    record = post_to_record(post)
    record.pop("status")
    if not post.external_id:
        record.pop("external_id")
    record.update(
        aims=list(post.aims),
        partner_parties=[_code(party) for party in post.partner_parties.all()],
        involves_iplc=post.involves_iplc,
        declarations={key: getattr(post, f"declares_{key}") for key in DECLARATIONS},
        contact_name=post.contact_name,
        contact_email=post.contact_email,
    )
    if post.amount_usd is not None:
        # Its digits, not a float: 99999999999999.99 came back as ...98, and a PATCH of the title saved that.
        record["amount_usd"] = str(post.amount_usd)
    return record


def field_errors_to_api(errors: list[FieldError], *, index: int | None = None) -> list[dict]:
    items = []
    for error in errors:
        item = {
            "field": None if error.field == "(line)" else error.field,
            "code": error.code,
            "message": error.message,
        }
        if index is not None:
            item["index"] = index
        items.append(item)
    return items


# --- schema descriptions -----------------------------------------------------------------------------------


class DeclarationsSerializer(serializers.Serializer):
    voluntary = serializers.BooleanField(required=False, help_text="Identified voluntarily by the Parties.")
    no_transfer = serializers.BooleanField(required=False, help_text="No transfer of mitigation outcomes.")
    ndc = serializers.BooleanField(required=False, help_text="Helps the host Party implement its NDC.")
    rights = serializers.BooleanField(required=False, help_text="Respects human rights and IPLC rights.")
    safeguards = serializers.BooleanField(required=False, help_text="Minimises negative impacts.")


def _keys(choices) -> serializers.ListField:
    return serializers.ListField(child=serializers.ChoiceField(choices=choices.values))


class PostWriteSerializer(serializers.Serializer):
    """A post in the import format of docs/FORMATS.md (create, replace, or one item of a bulk import).

    A key this format does not have is refused (a 400 naming it: a misspelt field is not silently dropped); the
    keys of a post as the API returns it (id, status, its times, outcome, return reason...) are taken and
    ignored, so that a record read can be sent back as it is."""

    external_id = serializers.CharField(
        max_length=100,
        required=False,
        allow_null=True,
        help_text="The post's id in your system; required in a bulk import, which is idempotent on it.",
    )
    kind = serializers.ChoiceField(choices=Post.Kind.choices)
    party = serializers.RegexField(
        ISO3_PATTERN,
        required=False,
        allow_null=True,
        help_text="ISO3 code of the posting Party. Omit both party and provider to post for your own.",
    )
    provider = serializers.CharField(
        max_length=40, required=False, allow_null=True, help_text="Short name of a support provider (offers)."
    )
    title = serializers.CharField(max_length=TITLE_MAX_LENGTH)
    description = serializers.CharField(max_length=DESCRIPTION_MAX_LENGTH)
    support_types = serializers.ListField(
        child=serializers.ChoiceField(choices=SupportType.values), min_length=1
    )
    focus_areas = serializers.ListField(child=serializers.ChoiceField(choices=FocusArea.values), min_length=1)
    sectors = serializers.ListField(
        child=serializers.ChoiceField(choices=Sector.values), required=False, allow_null=True
    )
    language = serializers.ChoiceField(choices=sorted(POST_LANGUAGE_CODES), required=False)
    amount_usd = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=0,
        max_value=MAX_AMOUNT,
        coerce_to_string=False,
        required=False,
        allow_null=True,
        help_text="Amount in USD (a JSON number), under a trillion.",
    )
    instruments = serializers.ListField(
        child=serializers.ChoiceField(choices=FinanceInstrument.values),
        required=False,
        allow_null=True,
        help_text="Offers only.",
    )
    eligible = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text="Offers only: ISO3 codes and groups (LDC, SIDS, a UN regional group); empty means every Party.",
    )
    status = serializers.ChoiceField(
        choices=Post.Status.choices,
        required=False,
        allow_null=True,
        help_text="Only the secretariat sets a status; others create drafts and use the life-cycle actions.",
    )
    aims = serializers.ListField(
        child=serializers.ChoiceField(choices=Aim.values), required=False, allow_null=True
    )
    partner_parties = serializers.ListField(
        child=serializers.RegexField(ISO3_PATTERN), required=False, allow_null=True
    )
    involves_iplc = serializers.BooleanField(required=False, allow_null=True)
    declarations = DeclarationsSerializer(required=False, allow_null=True)
    contact_name = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    contact_email = serializers.EmailField(required=False, allow_blank=True, allow_null=True)


CONTACT_HELP = (
    "Omitted for anonymous callers, and for a token issued without contact details (except on the posts it may "
    "manage)."
)


class PostSerializer(serializers.Serializer):
    """A post as returned by the API (the import format plus id, status and timestamps)."""

    id = serializers.IntegerField()
    external_id = serializers.CharField(help_text="Your external id, or `post-<id>` for posts made here.")
    kind = serializers.ChoiceField(choices=Post.Kind.choices)
    status = serializers.ChoiceField(choices=Post.Status.choices)
    party = serializers.CharField(allow_null=True)
    provider = serializers.CharField(allow_null=True)
    title = serializers.CharField()
    description = serializers.CharField()
    support_types = _keys(SupportType)
    focus_areas = _keys(FocusArea)
    sectors = _keys(Sector)
    language = serializers.CharField()
    amount_usd = serializers.FloatField(allow_null=True)
    instruments = _keys(FinanceInstrument)
    eligible = serializers.ListField(child=serializers.CharField())
    aims = _keys(Aim)
    partner_parties = serializers.ListField(child=serializers.CharField())
    involves_iplc = serializers.BooleanField()
    declarations = DeclarationsSerializer()
    outcome = serializers.CharField(allow_blank=True, help_text="How a closed post was fulfilled.")
    contact_name = serializers.CharField(required=False, help_text=CONTACT_HELP)
    contact_email = serializers.CharField(required=False, help_text=CONTACT_HELP)
    return_reason = serializers.CharField(required=False, help_text="Only for the post's owner and staff.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    published_at = serializers.DateTimeField(allow_null=True)
    returned_at = serializers.DateTimeField(
        allow_null=True, required=False, help_text="Only for the post's owner and staff."
    )
    closed_at = serializers.DateTimeField(allow_null=True)
    withdrawn_at = serializers.DateTimeField(allow_null=True)


class PostPageSerializer(serializers.Serializer):
    next = serializers.URLField(
        allow_null=True, help_text="The next page (same filters and ordering), or null on the last page."
    )
    results = PostSerializer(many=True)


class PostCloseSerializer(serializers.Serializer):
    outcome = serializers.CharField(help_text="How the need was met or the offer taken up.")


MAX_IMPORT_ITEMS = 1000


class PostImportItemSerializer(PostWriteSerializer):
    """An import item: a post in the import format whose `external_id` is required (the import is idempotent on
    it). Keys as in a single write: one the format does not have is refused, a post's keys as read are ignored."""

    external_id = serializers.CharField(
        max_length=100,
        help_text="The post's id in your system: the import creates or updates the post by it.",
    )


class PostImportSerializer(serializers.Serializer):
    # The bounds the view checks, for the schema's minItems and maxItems.
    items = serializers.ListField(
        child=PostImportItemSerializer(),
        min_length=1,
        max_length=MAX_IMPORT_ITEMS,
        help_text="1 to 1,000 posts in the import format.",
    )


class PostImportItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.IntegerField()
    external_id = serializers.CharField()


class PostImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    items = PostImportItemResultSerializer(many=True)
