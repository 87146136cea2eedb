"""Request bodies: large ones for the API's bulk import only. And a page for the site's 405."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.formats import number_format
from django.utils.translation import gettext as _

# The one endpoint that takes a large body: up to 1,000 posts (`DATA_UPLOAD_MAX_MEMORY_SIZE`, 32 MiB).
LARGE_BODY_PATHS = frozenset({"/api/v1/posts/import/"})


class RequestSizeMiddleware:
    """Every other request's body is refused above `REQUEST_MAX_BYTES` (2.5 MB, Django's own default) before
    anything reads it: with the import's 32 MiB for all, an anonymous login form of 31 MiB was parsed (a
    gigabyte of memory), its username stored and sent back. A body without a Content-Length still meets the
    import's limit when it is read."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.REQUEST_MAX_BYTES
        if length > limit and request.path not in LARGE_BODY_PATHS:
            # Refused before LocaleMiddleware runs: in the language it would choose, not in whichever the thread
            # served last (a Spanish page's 413 was English, or the previous visitor's language).
            language = translation.get_language_from_request(request)
            with translation.override(language):
                message = _("The request body is larger than the limit of %(limit)s bytes.") % {
                    "limit": number_format(limit, force_grouping=True)
                }
                if request.path.startswith("/api/"):
                    response = JsonResponse(
                        {"errors": [{"field": None, "code": "too_large", "message": message}]}, status=413
                    )
                else:
                    response = HttpResponse(
                        render_to_string("413.html", {"message": message}, request=request), status=413
                    )
            response.headers["Content-Language"] = language
            patch_vary_headers(response, ["Accept-Language", "Cookie"])  # the language came from them
            return response
        return self.get_response(request)


class MethodNotAllowedPageMiddleware:
    """A page for a 405 of the site: a visit (GET) to an address that only a form's button posts to (submit,
    withdraw, an answer to a match) answered an empty body, which browsers show as their own error page. The
    status and its Allow header stay; the API, htmx and answers that have a body are left as they are."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code != 405
            or response.content
            or request.path.startswith("/api/")
            or request.headers.get("HX-Request")
        ):
            return response
        page = render(request, "405.html", status=405)
        page["Allow"] = response.get("Allow", "")
        return page
