"""The versioned REST API, mounted under /api/v1/ (each app keeps its endpoints in its own apis.py).

Partners hard-code these paths: never rename one within v1.
"""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from apps.accounts.apis import HealthApi, NotFoundApi, OfflineRedocView, PingApi, SwaggerView
from apps.matching.apis import ConnectionListApi, MatchInterestApi, PostMatchListApi
from apps.parties.apis import PartyListApi, ProviderListApi, TaxonomyListApi
from apps.posts.apis import (
    PostCloseApi,
    PostDetailApi,
    PostImportApi,
    PostListApi,
    PostRecallApi,
    PostRemovedListApi,
    PostSubmitApi,
    PostWithdrawApi,
)
from apps.stocktake.apis import StocktakeApi

app_name = "api"
urlpatterns = [
    path("health/", HealthApi.as_view(), name="health"),
    path("ping/", PingApi.as_view(), name="ping"),
    path("parties/", PartyListApi.as_view(), name="parties"),
    path("providers/", ProviderListApi.as_view(), name="providers"),
    path("taxonomies/", TaxonomyListApi.as_view(), name="taxonomies"),
    path("posts/", PostListApi.as_view(), name="posts"),
    path("posts/import/", PostImportApi.as_view(), name="post-import"),
    path("posts/removed/", PostRemovedListApi.as_view(), name="posts-removed"),
    path("posts/<int:pk>/", PostDetailApi.as_view(), name="post"),
    path("posts/<int:pk>/submit/", PostSubmitApi.as_view(), name="post-submit"),
    path("posts/<int:pk>/recall/", PostRecallApi.as_view(), name="post-recall"),
    path("posts/<int:pk>/withdraw/", PostWithdrawApi.as_view(), name="post-withdraw"),
    path("posts/<int:pk>/close/", PostCloseApi.as_view(), name="post-close"),
    path("posts/<int:pk>/matches/", PostMatchListApi.as_view(), name="post-matches"),
    path("matches/<int:pk>/interest/", MatchInterestApi.as_view(), name="match-interest"),
    path("connections/", ConnectionListApi.as_view(), name="connections"),
    path("stocktake/", StocktakeApi.as_view(), name="stocktake"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Its script from its own URL (?script), not inline: the Content-Security-Policy allows only the site's files.
    path("docs/", SwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", OfflineRedocView.as_view(url_name="api:schema"), name="redoc"),
    # Last: any other address under /api/v1/ is a 404 in the API's error format, not an HTML page.
    re_path(r"^[\s\S]*$", NotFoundApi.as_view(), name="not-found"),  # [\s\S], not ".": a newline too
]
