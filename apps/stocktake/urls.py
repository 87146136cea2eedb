from django.urls import path

from . import views

app_name = "stocktake"
urlpatterns = [
    path("", views.report, name="report"),
    path("export.<str:fmt>", views.report_download, name="download"),
    path("summary/", views.summary, name="summary"),
    path("definitions/", views.definitions, name="definitions"),
    path("snapshots/", views.snapshots, name="snapshots"),
    path("snapshots/new/", views.snapshot_create, name="snapshot_create"),
    path("snapshots/<slug:slug>/", views.snapshot_detail, name="snapshot"),
    path("snapshots/<slug:slug>/export.<str:fmt>", views.snapshot_download, name="snapshot_download"),
]
