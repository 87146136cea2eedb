"""Posts in the API: the import format of DOMAIN.md in and out, plus id, status and timestamps on output.

Input is validated by `post_data.parse_post_record` (the same rules as the import command); the serializers
here describe the format for the OpenAPI schema. Output is built by `post_api_record`, a plain function
over `post_to_record`, because a list page of 100 posts must not pay for DRF's field machinery.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F
from rest_framework import serializers

from apps.accounts.actors import Actor
from apps.parties.models import Party, SupportProvider
from apps.posts.models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH, Post
from apps.posts.post_data import DECLARATIONS, FieldError, post_to_record
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


class PostRow:
    """One post read by `post_rows`: its API record, built from plain column values.

    A list page is the API's hottest path; model instances, the ORM's column conversions and the
    `PostWithFacets` wrapper cost several times the two queries that feed them. `post_api_record` turns a row
    into the same record as a post (tests/api/test_performance_paths.py checks it against `post_to_record`).
    """

    __slots__ = ("contact_email", "contact_name", "party_id", "pk", "provider_id", "record", "returned_at")

    def __init__(self, values: tuple, facets: dict[str, list[str]]):
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
            self.contact_name,
            self.contact_email,
            returned_at,
            return_reason,
            self.party_id,
            self.provider_id,
        ) = values
        self.pk = pk
        self.returned_at = (_stamp(returned_at), return_reason)
        self.record = {
            # The order of post_api_record for a post: the import format, then the rest.
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


def _stamp(text: str | None) -> str | None:
    # Both databases give `YYYY-MM-DDTHH:MM:SS.ffffffZ` (see _row_sql); isoformat() omits zero microseconds.
    return text.replace(".000000Z", "Z") if text is not None else None


def post_rows(queryset, *, limit: int | None = None) -> list[PostRow]:
    """The posts of a queryset (filtered, ordered, sliced as the caller likes) as `PostRow`s, in two queries.

    The ORM compiles only `SELECT id` of the queryset (the selectors and filters stay the one definition of
    who sees what); a fixed SQL statement around it reads the columns, formatting timestamps in the database.
    Order: the queryset's (fields of Post, as in `order_by` or the model's default ordering). Rows after
    `limit` (a page's look-ahead row) come without their facets, which nobody reads.
    """
    try:
        page_sql, params = queryset.values_list("id").query.sql_with_params()
    except EmptyResultSet:
        return []
    query = queryset.query
    names = query.order_by or (query.get_meta().ordering if query.default_ordering else ())
    order = ", ".join(
        f"p.{_column(name.lstrip('-'))} {'DESC' if name.startswith('-') else 'ASC'}" for name in names
    )
    sql = _row_sql(connection.vendor).format(page=page_sql, order=f" ORDER BY {order}" if order else "")
    with _read_cursor() as cursor:
        cursor.execute(sql, params)
        values = cursor.fetchall()
    facets = _facet_keys([row[0] for row in values[:limit]])
    return [PostRow(row, facets.get(row[0], {})) for row in values]


def _read_cursor():
    """A cursor for the read path; on PostgreSQL, one whose statements are prepared once they repeat.

    Planning the page's statement costs the database more than running it. Django's own cursors bind
    parameters client-side, which psycopg never prepares; this one binds them server-side, and psycopg
    prepares a statement on its 5th use on a connection (keeping the latest 100): the plain pages, the facets.
    """
    if connection.vendor != "postgresql" or not settings.API_PREPARED_STATEMENTS:
        # Off behind a connection pooler in transaction mode that cannot keep prepared statements.
        return connection.cursor()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns preparing off; only server-side binding cursors (these) are affected.
        raw.prepare_threshold = 5
    with connection.wrap_database_errors:
        # Django's wrapper, so the queries are logged and counted like any other.
        return connection._prepare_cursor(psycopg.Cursor(raw))


def _column(name: str) -> str:
    field = Post._meta.pk if name == "pk" else Post._meta.get_field(name)
    return connection.ops.quote_name(field.column)


@functools.cache
def _row_sql(vendor: str) -> str:
    """The row of `PostRow`, around a page's `SELECT id ...` (`{page}`), followed by `{order}`."""
    if vendor == "postgresql":

        def stamp(column: str) -> str:
            return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

    else:
        # SQLite stores UTC as `YYYY-MM-DD HH:MM:SS[.ffffff]` (Django's adapter); NULL stays NULL.
        def stamp(column: str) -> str:
            return f"replace({column}, ' ', 'T') || 'Z'"

    def col(name: str) -> str:
        return f"p.{_column(name)}"

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
        *(stamp(col(name)) for name in ("created_at", "updated_at", "submitted_at", "published_at")),
        *(stamp(col(name)) for name in ("closed_at", "withdrawn_at")),
        col("contact_name"),
        col("contact_email"),
        stamp(col("returned_at")),
        col("return_reason"),
        col("party"),
        col("provider"),
    ]
    quote = connection.ops.quote_name
    return (
        f"SELECT {', '.join(columns)} FROM ({{page}}) page "
        f"JOIN {quote(Post._meta.db_table)} p ON p.{_column('id')} = page.{_column('id')} "
        f"LEFT JOIN {quote(Party._meta.db_table)} pa ON pa.{_column_of(Party, 'id')} = {col('party')} "
        f"LEFT JOIN {quote(SupportProvider._meta.db_table)} pr "
        f"ON pr.{_column_of(SupportProvider, 'id')} = {col('provider')}{{order}}"
    )


def _column_of(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def post_api_record(
    post: PostRow | Post | PostWithFacets, *, actor: Actor, can_manage: bool
) -> dict[str, Any]:
    """A post as the API returns it: from a `PostRow`, or a `PostWithFacets` (or a fully prefetched post)."""
    if isinstance(post, PostRow):
        record = dict(post.record)
        if actor.is_authenticated:
            record["contact_name"] = post.contact_name
            record["contact_email"] = post.contact_email
        if can_manage:
            record["returned_at"], record["return_reason"] = post.returned_at
        return record
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
    if actor.is_authenticated:
        # The public reads posts without contact details (DOMAIN.md); any token or account sees them.
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
    """A post in the import format of DOMAIN.md (create, replace, or one item of a bulk import)."""

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
        max_digits=16,
        decimal_places=2,
        min_value=0,
        coerce_to_string=False,
        required=False,
        allow_null=True,
        help_text="Amount in USD (a JSON number).",
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
    contact_name = serializers.CharField(required=False, help_text="Omitted for anonymous callers.")
    contact_email = serializers.CharField(required=False, help_text="Omitted for anonymous callers.")
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


class PostImportSerializer(serializers.Serializer):
    items = PostWriteSerializer(many=True, help_text="1 to 1,000 posts in the import format.")


class PostImportItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.IntegerField()
    external_id = serializers.CharField()


class PostImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    items = PostImportItemResultSerializer(many=True)
