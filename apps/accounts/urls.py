"""Log in and out under the plain names LOGIN_URL uses; the profile under the `accounts` namespace."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

account_patterns = [
    path("profile/", views.profile, name="profile"),
]

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include((account_patterns, "accounts"))),
]
