"""Account pages: log in (applying the user's preferred language, refused while locked out), the profile, and
changing or resetting a password."""

import ipaddress

from axes.helpers import get_cool_off
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import translation
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import i18n as i18n_views
from django.views.decorators.cache import never_cache

from .forms import (
    AdminPasswordChangeForm,
    LoginForm,
    PasswordChangeForm,
    PasswordResetForm,
    ProfileForm,
    SetPasswordForm,
    password_change_failures_forget,
)
from .limits import reset_rate_limited, writes_rate_limited
from .models import User
from .permissions import ApiRateThrottle


def _remember_language(response: HttpResponse, language: str) -> None:
    """Set the same cookie as Django's set_language view, so LocaleMiddleware serves the pages in it; with no
    language ("Same as the site"), remove it, so the pages follow the browser again."""
    if not language:
        response.delete_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
    else:
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


def _note_site_language(user, language: str) -> None:
    """Keep the site language the user last used (`User.email_language`), written only when it changes."""
    known = {code for code, _name in settings.LANGUAGES}
    if user.is_authenticated and language in known and user.site_language != language:
        User.objects.filter(pk=user.pk).update(site_language=language)
        user.site_language = language


class LoginView(auth_views.LoginView):
    authentication_form = LoginForm

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.get_user()
        # The language the login page was in: emails follow it while the user prefers none.
        _note_site_language(user, translation.get_language() or "")
        # A saved preference wins; with none ("Same as the site"), the language chosen before logging in stays
        # (removing the cookie put every such user, every account by default, back into English).
        if user.preferred_language:
            _remember_language(response, user.preferred_language)
        return response


def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switch, which also notes the choice of a logged-in user (`User.email_language`)."""
    response = i18n_views.set_language(request)
    language = request.POST.get("language", "") if request.method == "POST" else ""
    if response.status_code in (200, 302) and translation.check_for_language(language):
        _note_site_language(request.user, language)
    return response


# The user's own name, address and phone: never kept in a browser's cache (a shared computer's next user).
@never_cache
@login_required
@writes_rate_limited
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


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change one's password, knowing the current one; this session stays logged in, the user's others end."""

    form_class = PasswordChangeForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, _("Your password is changed."))
        return response


class AdminPasswordChangeView(auth_views.PasswordChangeView):
    """The admin's own "Change password" page (Django's admin site fixes its form), with the site's limit on
    wrong current passwords."""

    form_class = AdminPasswordChangeForm
    template_name = "registration/password_change_form.html"  # the admin's
    success_url = reverse_lazy("admin:password_change_done")

    def get_context_data(self, **kwargs):
        return {**admin.site.each_context(self.request), **super().get_context_data(**kwargs)}


@method_decorator(reset_rate_limited, name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link by email. The answer is the same page whether or not the address is registered. One
    client address asks at most SITE_THROTTLE_RESET times (and each mailbox gets at most 3 emails an hour)."""

    form_class = PasswordResetForm  # its email is made by accounts.services.password_reset_send, in a task
    template_name = "registration/password_reset_form.html"
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = SetPasswordForm
    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        # Whoever holds the mailbox may log in again at once: the lockout page offers this way out (and change
        # the password knowing the new one, however many wrong ones were tried before).
        axes_reset(username=form.user.get_username())
        password_change_failures_forget([form.user.pk])
        return response


def login_client_ip(request: HttpRequest) -> str | None:
    """The client address that login lockouts count (AXES_CLIENT_IP_CALLABLE): the one the API's throttle
    counts, X-Forwarded-For's hop per API_NUM_PROXIES, else REMOTE_ADDR.

    A hop that is no address (a proxy count set too high lets the client write it) falls back to REMOTE_ADDR:
    the attempts table stores an IP address, and the lockout must not be escaped by writing nonsense there.
    """
    for candidate in (ApiRateThrottle().get_ident(request), request.META.get("REMOTE_ADDR")):
        try:
            return str(ipaddress.ip_address((candidate or "").strip()))
        except ValueError:
            continue
    return None


def login_locked_out(request: HttpRequest, response=None, credentials=None) -> HttpResponse:
    """What a locked-out login gets (AXES_LOCKOUT_CALLABLE), on the site's and the admin's login alike: the
    site's page with HTTP 429, and Retry-After as the API sends it."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds())
    page = render(
        request,
        "registration/lockout.html",
        {"minutes": max(1, round(seconds / 60))},
        status=429,
    )
    page["Retry-After"] = str(seconds)
    return page
