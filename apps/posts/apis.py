"""Posts for partner systems: list (filters, search, incremental sync), detail, create, update, life cycle and
bulk import. Thin views: the selectors decide who sees what, the services decide who may change what.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection
from django.db.models import BooleanField, Exists, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.http import HttpResponse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.http import parse_etags
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers as rest_serializers
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from apps.accounts.apis import (
    MAX_ID,
    ApiError,
    ApiView,
    QueryErrors,
    body_etag,
    field_error,
    if_match_tags,
    json_text_response,
    offset_page_parameters,
    offset_rows,
    page_bounds,
    precondition_failed,
    unsafe_text_problem,
    whole_number_param,
)
from apps.accounts.permissions import CanTakeDownPosts, CanWritePosts
from apps.parties.models import RegionalGroup, SupportProvider

from .filters import PostFilter, ProviderFilter
from .models import Post, PostEvent
from .post_data import FieldError, PostData, PostDataError, ReferenceData, has_visible_text, parse_post_record
from .selectors import PLATFORM_EXPORT_ID, post_by_export_id, post_list_visible
from .serializers import (
    MAX_IMPORT_ITEMS,
    PostCloseSerializer,
    PostImportResultSerializer,
    PostImportSerializer,
    PostJson,
    PostPageSerializer,
    PostSerializer,
    PostWriteSerializer,
    field_errors_to_api,
    page_query,
    page_query_once,
    post_input_record,
    post_json,
    post_json_rows,
    posts_with_facets,
    with_poster_codes,
)
from .services import (
    PUBLISHED_EVENT,
    TRANSITIONS,
    PostEditConflict,
    PostImportError,
    post_can_manage,
    post_close,
    post_create,
    post_import,
    post_import_check,
    post_recall,
    post_submit,
    post_update,
    post_withdraw,
)
from .taxonomies import POST_LANGUAGES, FinanceInstrument, FocusArea, Sector, SupportType

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Dates a partner may sync from: anything outside cannot be a post's time, and would overflow in conversions.
MIN_YEAR, MAX_YEAR = 1970, 9000


# --- filters -----------------------------------------------------------------------------------------------


_ISO_CHARACTERS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ][0-9:.,]+(?:[Zz]|[+-][0-9:]+)?)?", re.ASCII)


class IsoDateTimeField(forms.Field):
    """An ISO 8601 date-time (or date, meaning its midnight UTC); naive values are UTC."""

    default_error_messages = {
        "invalid": gettext_lazy(
            "Enter an ISO 8601 date-time such as 2026-01-31T12:00:00Z (years %(min)d to %(max)d)."
        )
    }

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        # An unencoded '+' of a UTC offset arrives as a space: after a time only ("2026-01-01 12:30" is a date and
        # a time, which was read as a date with an offset, and refused).
        text = re.sub(r"([T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?) (\d\d:?\d\d)$", r"\1+\2", text)
        if not _ISO_CHARACTERS.fullmatch(text):
            # Python's parsers take other scripts' digits (٢٠٢٦) and other ISO forms (2026-W01-1, 20260101);
            # the contract is the extended calendar form, in ASCII digits.
            text = ""
        try:
            parsed = parse_datetime(text)
            if parsed is None:
                day = parse_date(text)
                parsed = datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
            if parsed is None:
                raise ValueError
            if timezone.is_naive(parsed):
                parsed = parsed.replace(tzinfo=UTC)
            parsed = parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"min": MIN_YEAR, "max": MAX_YEAR}
            ) from None
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"min": MIN_YEAR, "max": MAX_YEAR}
            )
        return parsed


class IsoDateTimeFilter(django_filters.Filter):
    field_class = IsoDateTimeField


class PostApiFilter(PostFilter):
    """The web list's facets, plus what a partner system needs: provider, status, language, updated_since."""

    instrument = django_filters.ChoiceFilter(choices=FinanceInstrument.choices, field_name="instruments")
    provider = ProviderFilter(queryset=SupportProvider.objects.all(), field_name="provider")
    status = django_filters.ChoiceFilter(choices=Post.Status.choices)
    language = django_filters.ChoiceFilter(choices=POST_LANGUAGES)
    updated_since = IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta(PostFilter.Meta):
        fields = [*PostFilter.Meta.fields, "instrument", "provider", "status", "language", "updated_since"]


@functools.lru_cache(maxsize=512)
def _filterset_of(names: frozenset[str]) -> type[PostApiFilter]:
    """PostApiFilter with only the named filters.

    A filterset deep-copies every filter, and its form every field, on every request: for the 14 filters,
    several times the cost of the rest of the page. Filters not given filter nothing, so the result is the same.
    """
    subset = type("PostApiFilter", (PostApiFilter,), {})
    # After the class is made: the metaclass would set every filter.
    subset.base_filters = {name: f for name, f in PostApiFilter.base_filters.items() if name in names}
    # django-filter also makes the form class, and a field per filter, for every request; they depend only
    # on the filters. (Fields of copies: a field made on a base filter would be deep-copied with it each time.)
    form = type(
        "PostApiFilterForm",
        (PostApiFilter._meta.form,),
        {name: copy.deepcopy(f).field for name, f in subset.base_filters.items()},
    )
    subset.get_form_class = lambda self: form
    return subset


def _filter_errors(filterset: django_filters.FilterSet) -> list[dict]:
    return [
        {"field": name, "code": error.code or "invalid", "message": " ".join(error.messages)}
        for name, errors in filterset.form.errors.as_data().items()
        for error in errors
    ]


# --- keyset pagination -------------------------------------------------------------------------------------

# ordering -> (field, its kind). Every ordering is completed by `id`, so the order is total and a cursor
# (the last row's key) resumes exactly after that row: no item is skipped or repeated because others were
# added or changed. With `updated_at` a post changed during a walk moves behind the cursor and is delivered
# again, with its new content, at the end: what an incremental sync wants.
ORDERINGS = {"updated_at": "datetime", "created_at": "datetime", "title": "text", "id": "int"}
ORDERING_CHOICES = [name for field in ORDERINGS for name in (field, f"-{field}")]
DEFAULT_ORDERING = "updated_at"


# The longest cursor read: the sort value of the longest title (200 letters of 4 bytes), base64-encoded, with room.
MAX_CURSOR_LENGTH = 2000


def _encode_cursor(ordering: str, post: PostJson) -> str:
    field = ordering.lstrip("-")
    # Read from the record: one per page, not worth a column of every row.
    value = post.pk if field == "id" else json.loads(post.record)[field]
    if ORDERINGS[field] == "datetime":
        # The record's `...Z` as isoformat() writes it, the form cursors have always had.
        value = value.removesuffix("Z") + "+00:00"
    # Letters as UTF-8, not JSON \u escapes: a title of 200 Chinese or Arabic letters (or emoji) stays well under
    # the length `_decode_cursor` accepts.
    payload = json.dumps(
        {"o": ordering, "v": value, "id": post.pk}, separators=(",", ":"), ensure_ascii=False
    )
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, ordering: str) -> tuple[Any, int]:
    invalid = field_error("cursor", _("Invalid cursor: use the `next` link of a previous page."))
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # "[[[[..." nests too deep
        raise invalid from None
    if not isinstance(payload, dict) or payload.get("o") != ordering:
        raise invalid
    pk, value = payload.get("id"), payload.get("v")
    if not isinstance(pk, int) or isinstance(pk, bool) or not 0 <= pk <= MAX_ID:
        raise invalid
    kind = ORDERINGS[ordering.lstrip("-")]
    if kind == "datetime":
        try:
            value = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            value = None
        if value is None or timezone.is_naive(value):
            raise invalid
        try:
            value.astimezone(UTC)  # 0001-01-01T00:00+05:00 is before year 1 in UTC: no database date
        except OverflowError:
            raise invalid from None
    elif kind == "text":
        if not isinstance(value, str) or unsafe_text_problem(value):  # NUL, or a lone surrogate (`\ud800`)
            raise invalid
    elif not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        raise invalid
    return value, pk


def _page_size(request) -> int:
    return whole_number_param(request, "page_size", default=PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)


def _page_request(request, errors: QueryErrors) -> tuple[str, int, tuple[Any, int] | None]:
    """The page the request asks for: its ordering, its size, and the cursor's (value, id) if it has one. Bad
    parameters are added to `errors` (the cursor is checked only against an ordering that exists)."""
    ordering = request.query_params.get("ordering") or DEFAULT_ORDERING
    if ordering not in ORDERING_CHOICES:
        errors.add(field_error("ordering", _("Order by one of: %s.") % ", ".join(ORDERING_CHOICES)).errors)
    size = errors.check(lambda: _page_size(request), PAGE_SIZE)
    cursor = request.query_params.get("cursor")
    after = None
    if cursor and ordering in ORDERING_CHOICES:
        after = errors.check(lambda: _decode_cursor(cursor, ordering))
    elif cursor and _cursor_ordering(cursor) is None:
        # No ordering to read it against, but no ordering could: named in the same 400.
        errors.add(field_error("cursor", _("Invalid cursor: use the `next` link of a previous page.")).errors)
    return ordering, size, after


def _cursor_ordering(cursor: str) -> str | None:
    """The ordering a cursor was made for, if it is one of ours at all (None otherwise)."""
    for ordering in ORDERING_CHOICES:
        try:
            _decode_cursor(cursor, ordering)
        except ApiError:
            continue
        return ordering
    return None


def _after_values(ordering: str, after: tuple[Any, int] | None) -> dict[str, Any]:
    """The cursor's values as the database takes them (see `_page`), by name; none without a cursor."""
    if after is None:
        return {}
    value, pk = after
    kind = ORDERINGS[ordering.lstrip("-")]
    if kind == "int":
        return {"pk": pk}
    if kind == "datetime":
        value = connection.ops.adapt_datetimefield_value(value)
    return {"value": value, "pk": pk}


def _page(queryset, ordering: str, size: int, *, value: Any = None, pk: int | None = None):
    """The queryset ordered by `ordering` and id, after the post whose (ordering field, id) is (value, pk) if
    given, up to one post more than the page (to know whether there is a next one)."""
    field = ordering.lstrip("-")
    descending = ordering.startswith("-")
    queryset = queryset.order_by(
        *([ordering] if field == "id" else [ordering, "-id" if descending else "id"])
    )
    if pk is not None:
        # One row comparison, which the database starts from in the (field, id) index; as SQL, the values
        # are the parameters as given (see `page_query_once`).
        table, quote = Post._meta.db_table, connection.ops.quote_name
        id_column = f"{quote(table)}.{quote(Post._meta.pk.column)}"
        after = "<" if descending else ">"
        if field == "id":
            condition = RawSQL(f"{id_column} {after} %s", (pk,), output_field=BooleanField())
        else:
            column = f"{quote(table)}.{quote(Post._meta.get_field(field).column)}"
            condition = RawSQL(
                f"({column}, {id_column}) {after} (%s, %s)", (value, pk), output_field=BooleanField()
            )
        queryset = queryset.filter(condition)
    return queryset[: size + 1]


# --- schema parameters -------------------------------------------------------------------------------------


def _choice_param(name: str, choices, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, enum=list(choices), description=description)


LIST_PARAMETERS = [
    OpenApiParameter(
        "q",
        OpenApiTypes.STR,
        description='Full-text search in title and description: web-search syntax ("a phrase", or, -word), '
        "with English stemming (mangroves finds mangrove).",
    ),
    _choice_param("kind", Post.Kind.values, "need or offer."),
    _choice_param("support_type", SupportType.values, "Posts asking for or offering this type of support."),
    _choice_param("focus_area", FocusArea.values, "Focus area of the work programme."),
    _choice_param("sector", Sector.values, "Sector."),
    _choice_param("instrument", FinanceInstrument.values, "Finance instrument (offers)."),
    _choice_param("regional_group", RegionalGroup.values, "UN regional group of the posting Party."),
    OpenApiParameter(
        "party", OpenApiTypes.STR, pattern=r"^[A-Za-z]{3}$", description="ISO3 code of the Party (any case)."
    ),
    OpenApiParameter("provider", OpenApiTypes.STR, description="Short name of the support provider."),
    OpenApiParameter(
        "open_to",
        OpenApiTypes.STR,
        pattern=r"^[A-Za-z]{3}$",
        description="Offers this Party (ISO3 code, any case) may take up: open to all (`eligible` empty), or "
        "naming it or one of its groups (regional group, LDC, SIDS); not its own.",
    ),
    OpenApiParameter("ldc", OpenApiTypes.BOOL, description="Posted by a least developed country (or not)."),
    OpenApiParameter("sids", OpenApiTypes.BOOL, description="Posted by a small island developing State."),
    _choice_param("status", Post.Status.values, "Status; others' posts are only visible when published."),
    _choice_param("language", [code for code, _label in POST_LANGUAGES], "Language of the text."),
    OpenApiParameter(
        "updated_since",
        OpenApiTypes.DATETIME,
        description="Only posts changed at or after this time (ISO 8601; naive means UTC; years 1970 to 9000): "
        "incremental sync.",
    ),
    _choice_param(
        "ordering",
        ORDERING_CHOICES,
        "Sort key (default updated_at, oldest change first, the order for syncing); ties broken by id.",
    ),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque; follow the `next` link."),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        description=f"1 to {MAX_PAGE_SIZE}; default {PAGE_SIZE}.",
    ),
]


# Conditional requests: a post's ETag is a digest of its record as the caller reads it (`body_etag`).
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    description="ETags of the post as you have it (or `*`): 304 Not Modified, without a body, if one is still "
    "its ETag (weak comparison).",
)
IF_NONE_MATCH_WRITE = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    description="`*`, or ETags: 412 Precondition Failed, with nothing changed, if the post exists (`*`) or one of "
    "them is its current ETag (weak comparison).",
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    description="The post's ETag as you read it (several separated by commas, or `*` for any): the change is "
    "made only if the post has not changed since, 412 Precondition Failed otherwise, with nothing changed. "
    "Strong comparison: a weak `W/` tag never matches. 400 when malformed. Without it the change is made "
    "whatever happened to the post since you read it.",
)


def _etag_header(*codes: int) -> OpenApiParameter:
    """The ETag the answer carries (a header of the response, not a parameter of the request)."""
    return OpenApiParameter(
        "ETag",
        OpenApiTypes.STR,
        location=OpenApiParameter.HEADER,
        description="The post's version as this caller reads it: send it in If-Match to change the post only if "
        "nobody else has since, or in If-None-Match to read it again only if it changed.",
        response=list(codes),
    )


def _post_changed() -> ApiError:
    return precondition_failed(
        _(
            "The post has changed since you read it: If-Match does not hold its current ETag, and nothing was "
            "changed. GET it again, check it, and retry with its new ETag."
        )
    )


# --- views -------------------------------------------------------------------------------------------------


class PostApiMixin:
    def visible_posts(self):
        # The facets are loaded by posts_with_facets, in one query for the whole page.
        return with_poster_codes(post_list_visible(actor=self.actor).prefetch_related(None))

    def visible_ids(self):
        """What the caller may see, for `post_json_rows` (which compiles only its `SELECT id`, so neither the
        selector's select_related nor its prefetches run)."""
        return post_list_visible(actor=self.actor)

    def represent_all(self, posts: list[PostJson]) -> list[str]:
        """The posts' records for this caller, as JSON text."""
        actor = self.actor
        if not actor.is_authenticated:
            # No contact details, manages nothing: the records as read.
            return [post.record for post in posts]
        return [
            post_json(post, actor=actor, can_manage=post_can_manage(actor=actor, post=post)) for post in posts
        ]

    def represent_one(self, pk: int) -> str:
        """One visible post's record as JSON text (404 when it is not visible)."""
        page = None
        if 0 < pk <= MAX_ID:
            page = page_query_once(
                ("post", self.actor), lambda pk: self.visible_ids().filter(pk=pk).order_by(), pk=pk
            )
        rows = post_json_rows(page)
        if not rows:
            raise NotFound(_("Not found."))
        return self.represent_all(rows)[0]

    def with_etag(self, body: str, *, status: int = 200) -> HttpResponse:
        """One post's record (`represent_one`) as the response, with its ETag."""
        response = json_text_response(body, status=status)
        response["ETag"] = body_etag(body)
        return response

    def fresh(self, post: Post, *, status: int = 200) -> HttpResponse:
        """The response to a write: the post read again, with everything the representation needs."""
        return self.with_etag(self.represent_one(post.pk), status=status)

    def if_match_version(self, post: Post, action: str) -> datetime | None:
        """The version of the post (its `updated_at`) whose ETag the request's If-Match holds, for the service
        to check again under its row lock with the write (`opened_at`); None without If-Match, or with `*` (the
        post exists). A 412 when no tag in it is the post's ETag for this caller now (strong comparison, RFC 9110
        section 13.1.1), or when If-None-Match holds it; a 400 when If-Match is malformed. The post is read
        once for both."""
        # Only where the request would otherwise go ahead (RFC 9110 section 13.2.1): a caller who may not act on
        # the post, or not from its status, gets the service's 403 or 409 as without If-Match, never a 412 that
        # would tell whether the post changed.
        if not post_can_manage(actor=self.actor, post=post, action=action):
            return None
        if post.status not in TRANSITIONS[action]:
            return None
        if_none_match, tags = self.request.headers.get("If-None-Match"), if_match_tags(self.request)
        if if_none_match is None and tags in (None, ["*"]):
            return None
        # Compared with the record as the caller would read it (Party and provider codes, contact details,
        # included), not only its version; the version is what the service compares again, under its lock.
        body = self.represent_one(post.pk)
        etag = body_etag(body)
        if if_none_match is not None:
            # RFC 9110 section 13.1.2, "change it unless it is as I have it": a 412 when it holds `*` (the post
            # exists) or the post's ETag (weak comparison).
            held = parse_etags(if_none_match)
            if held == ["*"] or etag in {tag.removeprefix("W/") for tag in held}:
                raise precondition_failed(
                    _("If-None-Match holds * or the post's current ETag: nothing was changed, as it asks.")
                )
        if tags in (None, ["*"]):
            return None
        if etag not in tags:
            if f"W/{etag}" in tags:
                raise precondition_failed(
                    _(
                        "If-Match needs the ETag as the API gave it, without W/: a weak ETag never matches "
                        "(RFC 9110). A proxy that compresses responses may have added it."
                    ),
                    "weak_etag",
                )
            raise _post_changed()
        return datetime.fromisoformat(json.loads(body)["updated_at"])

    def parse(self, record: Any, refs: ReferenceData) -> PostData:
        try:
            return parse_post_record(record, refs)
        except PostDataError as error:
            raise ApiError(field_errors_to_api(error.errors)) from None

    def own_poster(self, record: Any, refs: ReferenceData) -> Any:
        """Fill in the caller's own Party or provider when the record names neither."""
        if (
            not isinstance(record, dict)
            or record.get("party") is not None
            or record.get("provider") is not None
        ):
            return record
        record = dict(record)
        if self.actor.party_id is not None:
            record["party"] = next(
                (p.iso3 for p in refs.parties.values() if p.pk == self.actor.party_id), None
            )
        elif self.actor.provider_id is not None:
            record["provider"] = next(
                (p.short_name for p in refs.providers.values() if p.pk == self.actor.provider_id), None
            )
        return record


WRITE_ERRORS = {"post": (400, 403), "put": (400, 403, 404, 409, 412), "patch": (400, 403, 404, 409, 412)}


class PostListApi(PostApiMixin, ApiView):
    error_statuses = {"get": (400,), "post": (400, 403)}

    def get_permissions(self):
        if self.request.method == "POST":
            return [CanWritePosts()]
        return super().get_permissions()

    @extend_schema(
        tags=["posts"],
        operation_id="posts_list",
        summary="List posts",
        description=(
            "Published posts, plus every post of the caller's own Party or provider (the secretariat sees "
            "all). Filter by any facet, search with `q`, and sync incrementally with `updated_since` and "
            "`ordering=updated_at`. Pages are keyset cursors: follow `next` until it is null."
        ),
        parameters=LIST_PARAMETERS,
        responses=PostPageSerializer,
    )
    def get(self, request):
        names = frozenset(request.query_params).intersection(PostApiFilter.base_filters)
        filterset = None
        errors = QueryErrors()  # every bad parameter in one 400
        if names:
            # Building the filter form costs more than the rest of a plain page: only when a filter is
            # given, and only the filters given.
            filterset = _filterset_of(names)(
                request.query_params, queryset=self.visible_ids(), request=request
            )
            if not filterset.is_valid():
                errors.add(_filter_errors(filterset))
        ordering, size, after = _page_request(request, errors)
        errors.raise_any()
        values = _after_values(ordering, after)
        if filterset is not None:
            page = page_query(_page(filterset.qs, ordering, size, **values))
        else:
            # The caller's plain pages are all the same statement: compose and compile it once.
            page = page_query_once(
                ("posts", self.actor, ordering, size),
                lambda **v: _page(self.visible_ids(), ordering, size, **v),
                **values,
            )
        # A search is planned for its words each time: how many posts match decides the best plan.
        rows = post_json_rows(page, limit=size, plan_page_each_time=bool(request.query_params.get("q")))
        next_url = None
        if len(rows) > size:
            rows = rows[:size]
            next_url = replace_query_param(
                request.build_absolute_uri(), "cursor", _encode_cursor(ordering, rows[-1])
            )
        # The records come as JSON text (see `post_json_rows`): the page is written around them.
        results = ",".join(self.represent_all(rows))
        return json_text_response(f'{{"next":{json.dumps(next_url)},"results":[{results}]}}')

    @extend_schema(
        tags=["posts"],
        summary="Create a post",
        description=(
            "A draft of the caller's own Party or provider (omit `party` and `provider` to post for your own). "
            "Submit it for moderation with `POST /api/v1/posts/{id}/submit/`."
        ),
        request=PostWriteSerializer,
        parameters=[_etag_header(201)],
        responses={201: PostSerializer},
    )
    def post(self, request):
        refs = ReferenceData()
        record = self.own_poster(self.json_body(), refs)
        data = self.parse(record, refs)
        if not self.actor.is_secretariat and data.status not in (None, Post.Status.DRAFT):
            raise field_error(
                "status",
                _("A new post is a draft; submit it with POST /api/v1/posts/{id}/submit/."),
                "not_allowed",
            )
        if data.status == Post.Status.CLOSED:
            # As the import: closing needs an outcome, returning a reason, which a new record does not carry.
            raise field_error(
                "status",
                _("A post cannot be created closed: create it, then close it with its outcome."),
                "invalid",
            )
        if data.status == Post.Status.RETURNED:
            raise field_error(
                "status",
                _("A post cannot be created returned: return it from the moderation queue, with a reason."),
                "invalid",
            )
        if data.external_id and PLATFORM_EXPORT_ID.fullmatch(data.external_id):
            raise field_error(
                "external_id",
                _("post-<id> names a post made in the platform; give your system's own id."),
                "reserved",
            )
        if data.external_id and Post.objects.filter(external_id=data.external_id).exists():
            raise _external_id_taken()
        try:
            post = post_create(actor=self.actor, data=data)
        except IntegrityError:
            raise _external_id_taken() from None
        response = self.fresh(post, status=status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"{post.pk}/")
        return response


def _external_id_taken() -> ApiError:
    return field_error(
        "external_id",
        _("A post with this external_id exists: update it (PUT) or use posts/import/, which is idempotent."),
        "unique",
    )


class PostDetailApi(PostApiMixin, ApiView):
    error_statuses = {"get": (404,), **WRITE_ERRORS}

    def get_permissions(self):
        if self.request.method in ("PUT", "PATCH"):
            return [CanWritePosts()]
        return super().get_permissions()

    @extend_schema(
        tags=["posts"],
        summary="One post",
        description=(
            "With its `ETag`: send it back in `If-None-Match` to have a 304 if the post has not changed, or in "
            "`If-Match` with a change (PUT, PATCH, submit, recall, withdraw, close) so that it is made only if nobody "
            "changed the post since."
        ),
        parameters=[IF_NONE_MATCH, _etag_header(200, 304)],
        responses={
            200: PostSerializer,
            304: OpenApiResponse(description="Not Modified: If-None-Match holds the post's current ETag."),
        },
    )
    def get(self, request, pk: int):
        response = self.with_etag(self.represent_one(pk))
        # 304 for a matching If-None-Match; 412 for an If-Match that does not hold (RFC 9110 section 13.2.2).
        conditional = get_conditional_response(request, etag=response["ETag"], response=response)
        if conditional.status_code == status.HTTP_412_PRECONDITION_FAILED:
            raise _post_changed()
        return conditional

    @extend_schema(
        tags=["posts"],
        summary="Replace a post",
        description=(
            "The whole post in the import format. Drafts, returned and published posts can be edited; "
            "`status` and `external_id` cannot change here (use the life-cycle actions). Send the `ETag` you "
            "read in `If-Match` so as not to overwrite a change made since (412 then)."
        ),
        request=PostWriteSerializer,
        parameters=[IF_MATCH, IF_NONE_MATCH_WRITE, _etag_header(200)],
        responses=PostSerializer,
    )
    def put(self, request, pk: int):
        return self._update(pk, partial=False)

    @extend_schema(
        tags=["posts"],
        summary="Change some fields of a post",
        request=PostWriteSerializer(partial=True),
        parameters=[IF_MATCH, IF_NONE_MATCH_WRITE, _etag_header(200)],
        responses=PostSerializer,
    )
    def patch(self, request, pk: int):
        return self._update(pk, partial=True)

    def _update(self, pk: int, *, partial: bool) -> Response:
        post = self.get_or_404(self.visible_posts(), pk)
        if not post_can_manage(actor=self.actor, post=post):  # who may, before what they sent (was a 400)
            raise PermissionDenied(_("You may only act on your own Party's or organisation's posts."))
        # The condition before the content (RFC 9110 section 13.2.1): a stale write is a 412, however bad its body.
        opened_at = self.if_match_version(post, "edit")
        body = self.json_body()
        if not isinstance(body, dict):
            raise field_error(None, _("Expected a JSON object."))
        refs = ReferenceData()
        if partial:
            record = {**post_input_record(posts_with_facets([post])[0]), **body}
            # A post has one poster: naming a Party replaces the provider and the other way round (else a
            # provider's {"party": ...} read "not both" instead of "cannot move").
            for named, other in (("party", "provider"), ("provider", "party")):
                if body.get(named) is not None and other not in body:
                    record[other] = None
        else:
            record = self.own_poster(body, refs)
        data = self.parse(record, refs)
        errors = []
        if data.status is not None and data.status != post.status:
            errors.append(
                {
                    "field": "status",
                    "code": "not_allowed",
                    "message": _(
                        "Change the status with the life-cycle actions (submit, recall, withdraw, close)."
                    ),
                }
            )
        if "external_id" in body and data.external_id != post.export_id:
            errors.append(
                {"field": "external_id", "code": "immutable", "message": _("The external_id cannot change.")}
            )
        if not self.actor.is_secretariat and (data.party, data.provider) != (post.party, post.provider):
            errors.append(
                {
                    "field": "party" if data.party else "provider",
                    "code": "immutable",
                    "message": _("A post cannot move to another Party or provider."),
                }
            )
        if errors:
            raise ApiError(errors)
        try:
            post = post_update(actor=self.actor, post=post, data=data, opened_at=opened_at)
        except PostEditConflict:  # changed after `if_match_version` read it
            raise _post_changed() from None
        return self.fresh(post)


class _TransitionApi(PostApiMixin, ApiView):
    permission_classes = [CanWritePosts]
    error_statuses = {"post": (403, 404, 409, 412)}
    # The life-cycle service the endpoint runs (close overrides `transition` to read its outcome first), and its
    # action in `TRANSITIONS`.
    service = None
    action = ""

    def transition(self, post: Post, opened_at: datetime | None) -> Post:
        return type(self).service(actor=self.actor, post=post, opened_at=opened_at)

    def post(self, request, pk: int):
        post = self.get_or_404(self.visible_posts(), pk)
        opened_at = self.if_match_version(post, self.action)
        try:
            post = self.transition(post, opened_at)
        except PostEditConflict:  # changed after `if_match_version` read it
            raise _post_changed() from None
        return self.fresh(post)


_TRANSITION_DOC = (
    "For the post's own Party or provider (or the secretariat). 409 when its status does not allow it; with "
    "`If-Match`, 412 when the post changed since you read it."
)


class PostSubmitApi(_TransitionApi):
    @extend_schema(
        tags=["posts"],
        summary="Submit a draft or returned post for moderation",
        description=_TRANSITION_DOC,
        request=None,
        parameters=[IF_MATCH, IF_NONE_MATCH_WRITE, _etag_header(200)],
        responses=PostSerializer,
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    service = staticmethod(post_submit)
    action = "submit"


class PostRecallApi(_TransitionApi):
    @extend_schema(
        tags=["posts"],
        summary="Take a submitted post back from moderation, as a draft to edit",
        description=_TRANSITION_DOC
        + " Only while the secretariat has not decided (`submitted`); submit it again when it is ready.",
        request=None,
        parameters=[IF_MATCH, IF_NONE_MATCH_WRITE, _etag_header(200)],
        responses=PostSerializer,
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    service = staticmethod(post_recall)
    action = "recall"


class PostWithdrawApi(_TransitionApi):
    permission_classes = [CanTakeDownPosts]

    @extend_schema(
        tags=["posts"],
        summary="Withdraw a post",
        description=_TRANSITION_DOC,
        request=None,
        parameters=[IF_MATCH, IF_NONE_MATCH_WRITE, _etag_header(200)],
        responses=PostSerializer,
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    service = staticmethod(post_withdraw)
    action = "withdraw"


class PostCloseApi(_TransitionApi):
    permission_classes = [CanTakeDownPosts]

    error_statuses = {"post": (400, 403, 404, 409, 412)}
    action = "close"

    @extend_schema(
        tags=["posts"],
        summary="Close a published post as fulfilled",
        description=_TRANSITION_DOC,
        request=PostCloseSerializer,
        parameters=[IF_MATCH, IF_NONE_MATCH_WRITE, _etag_header(200)],
        responses=PostSerializer,
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def transition(self, post: Post, opened_at: datetime | None) -> Post:
        if not post_can_manage(actor=self.actor, post=post):  # who may, before what they sent
            raise PermissionDenied(_("You may only act on your own Party's or organisation's posts."))
        body = self.json_body()
        outcome = body.get("outcome") if isinstance(body, dict) else None
        if not isinstance(outcome, str) or not has_visible_text(outcome):
            raise field_error(
                "outcome", _("Describe the outcome: how was the need met or the offer taken up?"), "required"
            )
        if len(outcome) > 20_000:
            raise field_error("outcome", _("At most 20,000 characters."), "max_length")
        try:
            return post_close(actor=self.actor, post=post, outcome=outcome, opened_at=opened_at)
        except ValueError as error:
            raise field_error("outcome", str(error)) from None


class PostRemovedSerializer(rest_serializers.Serializer):
    id = rest_serializers.IntegerField()
    external_id = rest_serializers.CharField(
        help_text="As in the list: the post's external id, or post-<id>."
    )
    status = rest_serializers.ChoiceField(
        choices=Post.Status.choices,
        help_text="Where it went: closed, withdrawn, or back to its owner (returned, then submitted again, or a "
        "draft once its owner takes that submission back from review).",
    )
    updated_at = rest_serializers.DateTimeField(
        help_text="When it last changed (it left the list then or before)."
    )


REMOVED_PAGE_SIZE = 100
MAX_REMOVED_PAGE_SIZE = 1000


def _since(raw: str | None) -> datetime:
    if not raw:  # absent or empty (`?since=`)
        raise field_error("since", _("Give the time of your last sync (ISO 8601)."), "required")
    try:
        return IsoDateTimeField().clean(raw)
    except forms.ValidationError as error:
        raise field_error("since", error.messages[0]) from None


class PostRemovedListApi(ApiView):
    error_statuses = {"get": (400,)}

    @extend_schema(
        tags=["posts"],
        summary="Posts that left the published list (for incremental sync)",
        description=(
            "The list's `updated_since` shows what is published; a post that is closed, withdrawn or taken "
            "back into moderation is no longer in it. This lists those, once published, changed at or after "
            "`since` (oldest change first), so a partner mirroring the published posts can drop them. Only "
            "their id, external id, status and time: their content is no longer public. Page with `offset` "
            "and `limit`; `X-Total-Count` says how many there are."
        ),
        parameters=[
            OpenApiParameter(
                "since",
                OpenApiTypes.DATETIME,
                required=True,
                description="ISO 8601; naive is UTC; years 1970 to 9000.",
            ),
            *offset_page_parameters(default=REMOVED_PAGE_SIZE, most=MAX_REMOVED_PAGE_SIZE),
        ],
        responses=PostRemovedSerializer(many=True),
    )
    def get(self, request):
        errors = QueryErrors()  # `since`, `limit` and `offset` in one 400
        since = errors.check(lambda: _since(request.query_params.get("since")))
        limit, offset = page_bounds(
            request, default=REMOVED_PAGE_SIZE, most=MAX_REMOVED_PAGE_SIZE, errors=errors
        )
        errors.raise_any()
        # Once published: a post the secretariat took back has no publication time any more (nor after its owner
        # resubmits or withdraws it), but its history has the publication (`post_was_published`).
        was_published = Q(published_at__isnull=False) | Exists(
            PostEvent.objects.filter(PUBLISHED_EVENT, post=OuterRef("pk"))
        )
        removed = (
            Post.objects.exclude(status=Post.Status.PUBLISHED)
            .filter(was_published, updated_at__gte=since)
            .order_by("updated_at", "id")
            .values("id", "external_id", "status", "updated_at")
        )
        rows, headers = offset_rows(removed, limit=limit, offset=offset)
        body = [
            {
                "id": row["id"],
                "external_id": row["external_id"] or f"post-{row['id']}",
                "status": row["status"],
                "updated_at": row["updated_at"],
            }
            for row in rows
        ]
        return Response(PostRemovedSerializer(body, many=True).data, headers=headers)


class PostImportApi(PostApiMixin, ApiView):
    permission_classes = [CanWritePosts]
    error_statuses = {"post": (400, 403, 409, 413)}

    @extend_schema(
        tags=["posts"],
        summary="Import a batch of posts (all or nothing)",
        description=(
            f"Up to {MAX_IMPORT_ITEMS} posts in the import format, each with an `external_id`. A post whose "
            "external_id exists is updated, otherwise created; sending the same batch twice changes nothing. "
            "Nothing is written unless every item is valid; every error names the item (`index`) and the "
            "field. A new post without `status` is published when the secretariat imports it, a draft "
            "otherwise; an existing post without `status` keeps its own. A Party or provider imports only "
            "its own posts, as drafts or `status: submitted` (or `withdrawn`, for a post that exists); a "
            "change of status must be a step of the life cycle (409 otherwise), and an import never closes "
            "or returns a post (that needs an outcome or a reason). 403 when an item acts for another Party "
            "or provider; 413 when the body is too large (split the batch)."
        ),
        request=PostImportSerializer,
        responses=PostImportResultSerializer,
    )
    def post(self, request):
        # Not json_body(): text the database cannot store is reported per item and field, with the rest.
        body = request.data
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise field_error("items", _("Give a non-empty list of posts in `items`."), "required")
        if len(items) > MAX_IMPORT_ITEMS:
            raise field_error(
                "items", _("At most %d posts per request; split the batch.") % MAX_IMPORT_ITEMS, "max_length"
            )
        datas = self._validate(items)
        try:
            result = post_import(actor=self.actor, items=datas)
        except PostImportError as error:
            # The database changed since _validate (a concurrent request): the same errors, found again.
            raise _import_errors([(index, e) for index, e in error.errors]) from None
        except IntegrityError:
            raise ApiError(
                [_item_error(None, None, _("The batch conflicts with concurrent changes; retry it."))],
                status_code=status.HTTP_409_CONFLICT,
            ) from None
        ids = {
            export_id: post.pk for export_id, post in post_by_export_id(d.external_id for d in datas).items()
        }
        return Response(
            {
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "items": [
                    {"index": index, "id": ids[d.external_id], "external_id": d.external_id}
                    for index, d in enumerate(datas)
                ],
            }
        )

    def _validate(self, items: list) -> list[PostData]:
        """Every item parsed and checked against the database, or an ApiError listing every problem by item
        and field (403 if any item acts for another Party or provider, else 409 if any is a step the life
        cycle does not allow, else 400)."""
        refs = ReferenceData()
        errors: list[tuple[int, FieldError]] = []
        parsed: list[tuple[int, PostData]] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            try:
                data = parse_post_record(self.own_poster(item, refs), refs)
            except PostDataError as error:
                errors.extend((index, e) for e in error.errors)
                # With the item's other errors, not once they are fixed.
                if (
                    isinstance(item, dict)
                    and not item.get("external_id")
                    and not any(e.field == "external_id" for e in error.errors)
                ):
                    errors.append(
                        (index, FieldError("external_id", _("An import needs an external_id."), "required"))
                    )
                continue
            if not data.external_id:
                errors.append(
                    (index, FieldError("external_id", _("An import needs an external_id."), "required"))
                )
            elif data.external_id in seen:
                message = _("Same external_id as item %d.") % seen[data.external_id]
                errors.append((index, FieldError("external_id", message, "duplicate")))
            else:
                seen[data.external_id] = index
            parsed.append((index, data))
        checked = post_import_check(actor=self.actor, items=[data for _index, data in parsed])
        errors.extend((parsed[position][0], error) for position, error in checked)
        if errors:
            # Stable: an item's own errors keep their order (format first, then rights and life cycle).
            raise _import_errors(sorted(errors, key=lambda pair: pair[0]))
        return [data for _index, data in parsed]


def _import_errors(errors: list[tuple[int, FieldError]]) -> ApiError:
    """The import's errors in the API's format, with the status of the worst: a refusal to act for another
    Party or provider (403), then a step the life cycle does not allow (409), then bad input (400)."""
    codes = {error.code for _index, error in errors}
    worst = status.HTTP_400_BAD_REQUEST
    if "permission_denied" in codes:
        worst = status.HTTP_403_FORBIDDEN
    elif "invalid_transition" in codes:
        worst = status.HTTP_409_CONFLICT
    items = [item for index, error in errors for item in field_errors_to_api([error], index=index)]
    return ApiError(items, status_code=worst)


def _item_error(index: int | None, field: str | None, message: str, code: str = "invalid") -> dict:
    item = {"field": field, "code": code, "message": str(message)}
    if index is not None:
        item["index"] = index
    return item
