"""URL configuration: pages, the admin, and the versioned REST API under /api/v1/."""

from django.contrib import admin
from django.http import HttpResponse, JsonResponse
from django.urls import include, path
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.cache import cache_control
from django.views.generic import RedirectView

from apps.accounts import views as account_views


@cache_control(max_age=86400, public=True)
def no_favicon(request):
    """The site has no icon (its pages say so with an empty one); the admin's and the API docs' pages do not,
    and browsers then ask for /favicon.ico: an empty answer, not a logged 404 on every page."""
    return HttpResponse(status=204)


def server_error(request):
    """A 500 in the API's own error format under /api/ (a partner system parses it as every other error), the
    site's page elsewhere."""
    if request.path.startswith("/api/"):
        message = _("Something went wrong on our side. The error has been logged; please try again later.")
        return JsonResponse(
            {"errors": [{"field": None, "code": "server_error", "message": message}]}, status=500
        )
    return defaults.server_error(request)


handler500 = server_error

urlpatterns = [
    # Django's i18n/setlang/, which also remembers a logged-in user's choice for their emails.
    path("i18n/setlang/", account_views.set_language, name="set_language"),
    path("favicon.ico", no_favicon),
    # The admin's login page offers "Forgotten your password?" when this name exists: the site's reset.
    path(
        "admin/password_reset/",
        RedirectView.as_view(pattern_name="accounts:password_reset"),
        name="admin_password_reset",
    ),
    # The admin's password change, with the site's limit on wrong current passwords (before the admin's URLs).
    path(
        "admin/password_change/",
        admin.site.admin_view(account_views.AdminPasswordChangeView.as_view()),
        name="admin_password_change",
    ),
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.accounts.urls")),
    path("matches/", include("apps.matching.urls")),
    path("stocktake/", include("apps.stocktake.urls")),
    path("api/v1/", include("nma_platform.api_urls")),
    path("", include("apps.posts.urls")),
]
