"""URL configuration: pages, the admin, and the versioned REST API under /api/v1/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.accounts.urls")),
    path("matches/", include("apps.matching.urls")),
    path("stocktake/", include("apps.stocktake.urls")),
    path("api/v1/", include("nma_platform.api_urls")),
    path("", include("apps.posts.urls")),
]
