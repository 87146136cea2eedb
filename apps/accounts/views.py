"""Account pages: log in (applying the user's preferred language) and the profile."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _

from .forms import ProfileForm


def _remember_language(response: HttpResponse, language: str) -> None:
    """Set the same cookie as Django's set_language view, so LocaleMiddleware serves the pages in it."""
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )


class LoginView(auth_views.LoginView):
    def form_valid(self, form):
        response = super().form_valid(form)
        _remember_language(response, form.get_user().preferred_language)
        return response


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        if user.preferred_language:
            translation.activate(user.preferred_language)
        messages.success(request, _("Your profile is saved."))
        response = redirect("accounts:profile")
        _remember_language(response, user.preferred_language)
        return response
    return render(request, "accounts/profile.html", {"form": form})
