"""URL configuration: pages, the admin, and the versioned REST API under /api/v1/."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.accounts.urls")),
    path("", include("apps.posts.urls")),
]

if settings.DEBUG:
    pass
