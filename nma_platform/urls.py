"""URL configuration: pages, the admin, and the versioned REST API under /api/v1/."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    # The admin's login page offers "Forgotten your password?" when this name exists: the site's reset.
    path(
        "admin/password_reset/",
        RedirectView.as_view(pattern_name="accounts:password_reset"),
        name="admin_password_reset",
    ),
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.accounts.urls")),
    path("matches/", include("apps.matching.urls")),
    path("stocktake/", include("apps.stocktake.urls")),
    path("api/v1/", include("nma_platform.api_urls")),
    path("", include("apps.posts.urls")),
]
