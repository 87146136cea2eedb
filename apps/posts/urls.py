"""Post pages under the `posts` namespace, and the dashboard at /dashboard/ under its settings name `dashboard`.

This module has no `app_name` of its own: the post pages get their namespace from the inner include, so that
the dashboard keeps the plain name that LOGIN_REDIRECT_URL uses.
"""

from django.urls import include, path

from . import views

post_patterns = [
    path("", views.post_list, name="home"),
    path("posts/", views.post_list, name="list"),
    path("posts/new/", views.post_create_view, name="create"),
    path("posts/<int:pk>/", views.post_detail, name="detail"),
    path("posts/<int:pk>/edit/", views.post_edit_view, name="edit"),
    path("posts/<int:pk>/submit/", views.post_submit_view, name="submit"),
    path("posts/<int:pk>/recall/", views.post_recall_view, name="recall"),
    path("posts/<int:pk>/withdraw/", views.post_withdraw_view, name="withdraw"),
    path("posts/<int:pk>/close/", views.post_close_view, name="close"),
    path("dashboard/", views.dashboard, name="dashboard"),
]

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("", include((post_patterns, "posts"))),
]
