"""What every API endpoint shares (the base view, the one error format, the schema's error responses) and the
platform endpoints that belong to no domain: health and ping.

Error format, everywhere under /api/v1/: `{"errors": [{"field": ..., "code": ..., "message": ...}]}`; bulk
import items add `index`. 400 bad input (every bad field named), 401 missing/invalid/expired/revoked token,
403 not allowed, 404 unknown or invisible, 409 illegal life-cycle transition, 415 not JSON, 429 throttled
(with Retry-After).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import connection
from django.db.models import Model, QuerySet
from django.http import Http404, HttpResponse
from django.template import Context, Template
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.http import parse_etags, quote_etag
from django.utils.translation import gettext as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .actors import Actor
from .authentication import request_actor
from .permissions import ApiRateThrottle
from .serializers import ErrorSerializer, HealthSerializer, PingSerializer

logger = logging.getLogger(__name__)

# Primary keys are bigints: a larger id in a URL can match nothing, and must not reach the database.
MAX_ID = 2**63 - 1

_ERROR_DESCRIPTIONS = {
    400: "Bad input: every field or query parameter at fault is listed.",
    401: "No valid credentials: the token is missing, unknown, expired or revoked.",
    403: "The caller may not do this (e.g. a read token writing, or acting for another Party or provider).",
    404: "No such object, or not visible to the caller.",
    409: "The state of the post (or of the match) does not allow this action.",
    412: "If-Match holds no current ETag of the object: it changed since the caller read it. Nothing was "
    "changed; GET it again and retry with its new ETag.",
    413: "The request body is too large.",
    415: "The request body must be JSON (Content-Type: application/json).",
    429: "Too many requests: wait the number of seconds in the Retry-After header.",
}


# --- errors ------------------------------------------------------------------------------------------------


class ApiError(exceptions.APIException):
    """An error response whose items are already in the API's format (e.g. bulk import errors by index)."""

    def __init__(self, errors: list[dict], *, status_code: int = status.HTTP_400_BAD_REQUEST):
        super().__init__(detail=errors[0]["message"] if errors else "")
        self.errors = errors
        self.status_code = status_code


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "invalid_transition"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def error_items(detail: Any, field: str | None = None) -> list[dict]:
    """Flatten DRF's error detail (dicts of lists of ErrorDetail, nested) into the API's list of errors."""
    if isinstance(detail, dict):
        items = []
        for key, value in detail.items():
            if key in (api_settings.NON_FIELD_ERRORS_KEY, "__all__", "detail"):
                name = field
            else:
                name = f"{field}.{key}" if field else str(key)
            items.extend(error_items(value, name))
        return items
    if isinstance(detail, list):
        items = []
        for position, value in enumerate(detail):
            # A list of messages belongs to the field; a list of objects is a list of nested items.
            name = f"{field}.{position}" if field and isinstance(value, dict | list) else field
            items.extend(error_items(value, name))
        return items
    return [{"field": field, "code": getattr(detail, "code", None) or "invalid", "message": str(detail)}]


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler (status, Retry-After, WWW-Authenticate, rollback), then the body in the one error format."""
    from apps.matching.services import MatchAnswerError
    from apps.posts.services import PostTransitionError

    if isinstance(exc, PostTransitionError):
        exc = Conflict(str(exc))
    elif isinstance(exc, MatchAnswerError):
        exc = Conflict(str(exc), code="invalid_state")
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(
            _("The request body is larger than the limit of %(limit)s bytes: send fewer posts at a time.")
            % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
        )
    elif isinstance(exc, TooManyFieldsSent):
        # More query (or form) parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS: Django's own answer is an HTML 400.
        exc = ApiError([{"field": None, "code": "too_many_parameters", "message": str(
            _("Too many parameters: at most %(limit)s.") % {"limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}
        )}])  # fmt: skip
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(_("Not found."))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or _("You do not have permission to do this."))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        response.data = {"errors": exc.errors}
    else:
        response.data = {"errors": error_items(exc.detail)}
    return response


def field_error(field: str | None, message: str, code: str = "invalid") -> ApiError:
    """A 400 naming one field."""
    return ApiError([{"field": field, "code": code, "message": str(message)}])


def precondition_failed(message: str, code: str = "precondition_failed") -> ApiError:
    """A 412: a condition of the request (If-Match) does not hold, so nothing was done."""
    return ApiError(
        [{"field": None, "code": code, "message": str(message)}],
        status_code=status.HTTP_412_PRECONDITION_FAILED,
    )


# --- conditional requests (RFC 9110 section 13) -------------------------------------------------------------


def body_etag(body: str) -> str:
    """A strong entity tag of a response body: a digest of its bytes. Two different bodies never share one,
    whatever made them differ (the object, what the caller may see of it, a renamed Party it names)."""
    return quote_etag(hashlib.blake2b(body.encode(), digest_size=16).hexdigest())


def if_match_tags(request) -> list[str] | None:
    """The request's If-Match: its entity tags, `["*"]`, or None when it has none.

    A 400 when it is malformed (a tag without its double quotes, an empty list): Django's parser drops what it
    cannot read, and an If-Match read as absent would let through the very write it was sent to stop."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    tags = parse_etags(raw)
    if tags != ["*"] and (not tags or len(tags) != len([m for m in raw.split(",") if m.strip()])):
        raise field_error(
            "If-Match",
            _(
                "If-Match takes ETags as the ETag header gives them, in double quotes (several separated by "
                "commas), or *."
            ),
        )
    return tags


T = TypeVar("T")


class QueryErrors:
    """Every bad query parameter of a request, so that its 400 names them all at once (one fix per round trip
    otherwise): `check` runs one validation and keeps its error instead of raising it."""

    def __init__(self) -> None:
        self.errors: list[dict] = []

    def check(self, validate: Callable[[], T], default: T | None = None) -> T | None:
        try:
            return validate()
        except ApiError as error:
            self.errors.extend(error.errors)
            return default

    def add(self, errors: list[dict]) -> None:
        self.errors.extend(errors)

    def raise_any(self) -> None:
        if self.errors:
            raise ApiError(self.errors)


_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def whole_number_param(request, name: str, *, default: int, low: int, high: int) -> int:
    """The query parameter `name` as a whole number from `low` to `high` (ASCII digits only: `str.isdigit`
    accepts "²", which `int` refuses), `default` when absent or empty (as every other empty parameter is
    absent: "page_size=" was a 400 while "ordering=" was the default); a 400 naming it otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise field_error(
            name, _("Give a whole number from %(low)d to %(high)d.") % {"low": low, "high": high}
        )
    return int(raw)


MAX_OFFSET = 10**9


def offset_page_parameters(*, default: int, most: int) -> list[OpenApiParameter]:
    """The schema's `limit` and `offset` of an `offset_page` list, and its answer's `X-Total-Count`."""
    return [
        # Raw schemas: the bounds the server checks are in the contract (a client generator, Schemathesis).
        OpenApiParameter(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": most},
            description=f"1 to {most}; default {default}.",
        ),
        OpenApiParameter(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            description="Rows to skip, in the list's order; default 0.",
        ),
        # The header of the answer (response=[200]), not a parameter of the request.
        OpenApiParameter(
            "X-Total-Count",
            {"type": "integer", "minimum": 0},
            location=OpenApiParameter.HEADER,
            description="How many rows the whole list has.",
            response=[200],
        ),
    ]


def page_bounds(request, *, default: int, most: int, errors: QueryErrors) -> tuple[int, int]:
    """The query's `limit` and `offset` (their defaults where bad: the bad ones are added to `errors`)."""
    limit = errors.check(
        lambda: whole_number_param(request, "limit", default=default, low=1, high=most), default
    )
    offset = errors.check(lambda: whole_number_param(request, "offset", default=0, low=0, high=MAX_OFFSET), 0)
    return limit, offset


def offset_page(
    request, rows: QuerySet, *, default: int, most: int, count: QuerySet | None = None
) -> tuple[list, dict]:
    """The page of `rows` (ordered) that the query's `limit` and `offset` ask for (a 400 naming both when both
    are bad), and the list's `X-Total-Count` header: `offset_rows`."""
    errors = QueryErrors()
    limit, offset = page_bounds(request, default=default, most=most, errors=errors)
    errors.raise_any()
    return offset_rows(rows, limit=limit, offset=offset, count=count)


def offset_rows(
    rows: QuerySet, *, limit: int, offset: int, count: QuerySet | None = None
) -> tuple[list, dict]:
    """`limit` rows of `rows` (ordered) from `offset`, and the `X-Total-Count` header of the list (`count`: the
    same rows without what only the page needs, when cheaper to count). A first page that is not full holds them
    all: no COUNT query then (the common case)."""
    page = list(rows[offset : offset + limit])
    total = len(page) if offset == 0 and len(page) < limit else (rows if count is None else count).count()
    return page, {"X-Total-Count": str(total)}


def json_text_response(text: str, *, status: int = 200) -> HttpResponse:
    """A response whose body is JSON already written (the posts' read path has the database write it).

    The same Content-Type as the JSON renderer's; DRF still adds its headers (Allow, Vary) to it.
    """
    return HttpResponse(text, status=status, content_type="application/json")


# --- input hygiene -----------------------------------------------------------------------------------------


def unsafe_text_problem(value: str) -> str | None:
    """Why a string cannot be stored (PostgreSQL refuses NUL, and no database stores a lone surrogate, which a
    JSON `\\ud800` escape decodes to), or None if it can. The API's bodies and the import's lines alike."""
    if "\x00" in value:
        return _("NUL characters are not allowed.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _("Invalid Unicode (unpaired surrogate).")
    return None


def check_json_text(value: Any, path: str | None = None) -> list[dict]:
    """Errors for every string in a parsed JSON body that the database could not store."""
    if isinstance(value, str):
        problem = unsafe_text_problem(value)
        return [{"field": path, "code": "invalid", "message": problem}] if problem else []
    errors = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and unsafe_text_problem(key):
                errors.append({"field": path, "code": "invalid", "message": unsafe_text_problem(key)})
            errors.extend(check_json_text(item, name))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            errors.extend(check_json_text(item, f"{path}.{position}" if path else str(position)))
    return errors


# --- schema ------------------------------------------------------------------------------------------------


class ApiAutoSchema(AutoSchema):
    """Adds the error responses a view can give (its `error_statuses`, plus 401/413/415/429 where they apply)."""

    def get_description(self) -> str:
        # A view's own docstring only: never the base class's, which says nothing about the endpoint.
        method = getattr(self.view, self.method.lower(), None)
        return inspect.getdoc(method) or (inspect.cleandoc(type(self.view).__doc__ or ""))

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = set(getattr(self.view, "error_statuses", {}).get(self.method.lower(), ()))
        if self.view.authentication_classes:
            codes.add(401)
        if self.view.throttle_classes:
            codes.add(429)
        if self.method in ("POST", "PUT", "PATCH"):
            # 413: every body has a size limit (`RequestSizeMiddleware`; the import's is larger).
            codes.update((400, 413, 415))
        for code in sorted(codes):
            if str(code) not in responses:
                response = OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[code])
                responses[str(code)] = self._get_response_for_code(response, str(code), direction=direction)
        return responses


# --- the base view -----------------------------------------------------------------------------------------


class ApiView(APIView):
    """Base of every /api/v1/ endpoint: JSON in and out, the shared error handling, the caller as an Actor."""

    schema = ApiAutoSchema()
    # method -> error statuses (besides 401/429/415, added automatically) for the schema.
    error_statuses: dict[str, tuple[int, ...]] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Query strings reach SQL as parameters: refuse what the database would choke on, with a 400.
        errors = []
        for key, values in request.query_params.lists():
            for value in [key, *values]:
                problem = unsafe_text_problem(value)
                if problem:
                    errors.append({"field": key, "code": "invalid", "message": problem})
            if len(values) > 1:
                # Every parameter takes one value: `?kind=need&kind=offer` silently meant the last one.
                message = _("Give %(name)s once (it takes one value).") % {"name": key}
                errors.append({"field": key, "code": "repeated", "message": message})
        if errors:
            raise ApiError(errors)

    # DRF checks the caller, then its permissions, then its budget: a refused caller (a bad token, a read token
    # writing, anyone anonymous writing) was never counted, and could retry without end. Here the budget is
    # spent first, and a caller whose credentials fail spends one too (`ApiRateThrottle.allow_refused`).
    def perform_authentication(self, request):
        # Django's user of the session, as loaded (lazily) before DRF replaces it by an anonymous one on failure.
        session_user = getattr(request._request, "user", None)
        try:
            super().perform_authentication(request)
        except exceptions.APIException:
            for throttle in self.get_throttles():
                if isinstance(throttle, ApiRateThrottle) and not throttle.allow_refused(
                    request, session_user
                ):
                    self.throttled(request, throttle.wait())
            raise

    def check_permissions(self, request):
        super().check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request):
        """Done before the permissions (`check_permissions`)."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        # What a caller sees depends on its token (drafts, contact details): a shared cache must not hand one
        # caller's answer to another.
        patch_vary_headers(response, ["Authorization"])
        if not response.has_header("Cache-Control") and self.actor.is_authenticated:
            # Nor a browser's keep it: a logged-in user's answers hold contact details, as the post's page does.
            add_never_cache_headers(response)
        return response

    @property
    def actor(self) -> Actor:
        if not hasattr(self, "_actor"):
            self._actor = request_actor(self.request)
        return self._actor

    def json_body(self) -> Any:
        data = self.request.data
        errors = check_json_text(data)
        if errors:
            raise ApiError(errors)
        return data

    @staticmethod
    def get_or_404(queryset: QuerySet, pk: int) -> Model:
        if not 0 < pk <= MAX_ID:
            raise exceptions.NotFound(_("Not found."))
        obj = queryset.filter(pk=pk).first()
        if obj is None:
            raise exceptions.NotFound(_("Not found."))
        return obj


# --- platform endpoints ------------------------------------------------------------------------------------


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # one line: a monitor probes every few seconds through an outage
        logger.warning("Health check: the database does not answer (%s: %s)", type(error).__name__, error)
        return "error"
    return "ok"


BrokerStatus = tuple[str, int | None, str | None]


def _broker_status() -> BrokerStatus:
    """'eager' when tasks run in-process; otherwise whether the broker answers, how many workers do, and whether
    the queue moves, as checked in the last `HEALTH_BROKER_CACHE_SECONDS` by this process (`_broker_memo`)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager", None, None
    return _broker_memo.get(settings.CELERY_BROKER_URL, settings.HEALTH_BROKER_CACHE_SECONDS, _broker_check)


class _BrokerMemo:
    """The last broker check of this process, by broker URL. A check takes at least half a second (the
    workers' ping waits that long for their answers) and more while the broker is down: unauthenticated and
    unthrottled, the health check would otherwise let a few requests a second keep every web worker busy.

    Only a process's first check runs in a request. Once the result is older than `seconds`, a request answers
    it still and starts a check in a thread of its own (one at a time): a request checking would hold its web
    worker half a second, and the processes, started together, would all do so at the same moment."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, tuple[float, BrokerStatus]] = {}

    def get(self, url: str, seconds: float, check: Callable[[], BrokerStatus]) -> BrokerStatus:
        held = self.values.get(url)
        if held is None:
            with self.lock:  # this process's first check: nothing to answer meanwhile
                if url not in self.values:
                    self._store(url, check)
                return self.values[url][1]
        if time.monotonic() - held[0] >= seconds and self.lock.acquire(blocking=False):
            threading.Thread(
                target=self._refresh, args=(url, check), name="health-check", daemon=True
            ).start()
        return held[1]

    def _store(self, url: str, check: Callable[[], BrokerStatus]) -> None:
        value = check()
        self.values[url] = (time.monotonic(), value)

    def _refresh(self, url: str, check: Callable[[], BrokerStatus]) -> None:
        try:
            self._store(url, check)
        except Exception:  # the check itself reports what failed; never let the thread die holding the lock
            logger.exception("Health check: checking the broker failed")
        finally:
            self.lock.release()

    def wait(self) -> None:
        """For tests: until no check is under way."""
        with self.lock:
            pass

    def clear(self) -> None:
        self.values.clear()


_broker_memo = _BrokerMemo()


def _broker_check() -> BrokerStatus:
    from kombu import Connection

    from nma_platform.celery import app as celery_app

    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=1,
            transport_options={"socket_connect_timeout": 1, "socket_timeout": 1, "max_retries": 0},
        ) as broker:
            broker.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, interval_max=0, timeout=1
            )
    except Exception as error:
        logger.warning("Health check: the broker does not answer (%s: %s)", type(error).__name__, error)
        return "error", None, None
    try:
        workers = len(celery_app.control.ping(timeout=0.5) or [])
    except Exception as error:
        logger.warning("Health check: pinging the workers failed (%s: %s)", type(error).__name__, error)
        workers = 0
    return "ok", workers, _queue_check(settings.CELERY_BROKER_URL, celery_app.conf.task_default_queue)


# By broker URL: the task that was next in line at this process's last check (a digest of its message) and when
# this process first saw it there.
_queue_heads: dict[str, tuple[bytes, float]] = {}


def _queue_check(url: str, queue: str) -> str | None:
    """'stalled' when the task next in line is the one this process saw there `HEALTH_QUEUE_STALL_SECONDS` ago
    or earlier: no worker took a task since, though they may answer pings (a worker that stopped consuming did,
    and the health check said ok). 'ok' when it moves or is empty; None when the queue cannot be read (the
    broker's status says why, or it is not Redis)."""
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        try:
            head = client.lindex(queue, -1)  # kombu pushes on the left and workers pop on the right
        finally:
            client.close()
    except Exception as error:
        logger.warning("Health check: reading the task queue failed (%s: %s)", type(error).__name__, error)
        return None
    now = time.monotonic()
    if head is None:
        _queue_heads.pop(url, None)
        return "ok"
    digest = hashlib.blake2b(head, digest_size=16).digest()
    seen = _queue_heads.get(url)
    if seen is None or seen[0] != digest:
        _queue_heads[url] = (digest, now)
        return "ok"
    return "stalled" if now - seen[1] >= settings.HEALTH_QUEUE_STALL_SECONDS else "ok"


class HealthApi(ApiView):
    """For load balancers and monitoring: no authentication, no throttling, no secrets in the answer. The
    database is checked on every call; the broker and workers at most every `HEALTH_BROKER_CACHE_SECONDS` per
    process."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        tags=["platform"],
        summary="Database, broker and worker status",
        description="HTTP 200 while the database answers (status `degraded` if the broker or workers do not, or if the task next in line has waited `HEALTH_QUEUE_STALL_SECONDS`, 900 by default), 503 when it does not. The broker, workers and queue are checked at most every few seconds (`HEALTH_BROKER_CACHE_SECONDS`, 10 by default).",
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request):
        database = _database_status()
        broker, workers, queue = _broker_status()
        if database != "ok":
            overall = "down"
        elif broker == "error" or workers == 0 or queue == "stalled":
            overall = "degraded"
        else:
            overall = "ok"
        body = {"status": overall, "database": database, "broker": broker, "workers": workers, "queue": queue}
        return Response(body, status=200 if database == "ok" else 503, headers={"Cache-Control": "no-store"})


class PingApi(ApiView):
    """Liveness without touching the database; also the baseline of tests/benchmarks/api_throughput.py."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(tags=["platform"], summary="Liveness (no database query)", responses={200: PingSerializer})
    def get(self, request):
        return Response({"ok": True})


class NotFoundApi(ApiView):
    """Any other path under /api/v1/: a 404 in the API's error format instead of an HTML page."""

    schema = None  # not an endpoint
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def initial(self, request, *args, **kwargs):
        path = request.path
        hint = ""
        if not path.endswith("/"):
            from django.urls import Resolver404, resolve

            try:
                match = resolve(path + "/")
            except Resolver404:
                match = None
            if match is not None and getattr(match.func, "view_class", None) is not NotFoundApi:
                hint = " " + _("Did you mean %(path)s/ ?") % {"path": path}
        raise exceptions.NotFound(_("There is no API endpoint at this address.") + hint)


# drf-spectacular's Redoc page loads Google Fonts; the platform must work on a closed network, so the page is
# the same without them (Redoc falls back to the system fonts). No inline script (the site's
# Content-Security-Policy allows only its own files): Redoc starts itself from the <redoc> element.
_REDOC_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
  <head>
    <title>{{ title }}</title>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <redoc spec-url="{{ schema_url }}"></redoc>
    <script src="{{ redoc_standalone }}"></script>
  </body>
</html>
"""
)


class SwaggerView(SpectacularSwaggerSplitView):
    """The Swagger UI page, and its script (?script). Only GET and HEAD: its HTML renderer has a template for
    those alone, and an OPTIONS request (a browser's preflight, a scanner) was a 500 logged as an error."""

    http_method_names = ["get", "head"]


class OfflineRedocView(SpectacularRedocView):
    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        context = {
            "title": self.title,
            "redoc_standalone": self._redoc_standalone(),
            "schema_url": self._get_schema_url(request),
        }
        return HttpResponse(_REDOC_PAGE.render(Context(context)))
