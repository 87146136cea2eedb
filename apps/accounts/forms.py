"""The profile form (what a user may change about themselves: role, Party and provider are the secretariat's),
and the password reset request."""

import logging

from django import forms
from django.conf import settings
from django.contrib.admin import forms as admin_forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import password_validation
from django.core.cache import cache
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _
from kombu.exceptions import OperationalError as BrokerError

from .counters import cache_failed, cache_resting
from .models import User
from .services import password_reset_allowed, password_reset_send

logger = logging.getLogger(__name__)


def language_choices() -> list[tuple[str, str]]:
    """The languages a user may prefer: the site's (settings.LANGUAGES, the UI languages with a catalogue), each
    in its own name, as the footer's switcher has them: a user who landed on a page in a language they do not read
    finds theirs ("Arabe" on a French page was no help to an Arabic reader).

    The profile form and the admin offer the same list; read when a form is built, so a change of
    LANGUAGES (or a test's override) applies at once.
    """
    return [
        ("", _("Same as the site")),
        *((code, get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES),
    ]


class LanguageSelect(forms.Select):
    """Each language's option says which language its name is in (`lang`), for screen readers and fonts."""

    def create_option(self, name, value, *args, **kwargs):
        option = super().create_option(name, value, *args, **kwargs)
        if value:
            option["attrs"]["lang"] = value
        return option


def preferred_language_field(
    *, help_text: str = _("The language of the pages and of the emails we send you.")
) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=_("Preferred language"),
        choices=language_choices,
        required=False,
        help_text=help_text,
        widget=LanguageSelect(attrs={"autocomplete": "language"}),
    )


class ProfileForm(forms.ModelForm):
    preferred_language = preferred_language_field()

    class Meta:
        model = User
        fields = ["first_name", "last_name", "organisation", "phone", "preferred_language", "digest_opt_in"]
        # What each field holds, so that browsers and assistive technologies can fill it in (WCAG 1.3.5). Names
        # run in their own script's direction (a Latin name on an Arabic page starts at the left); a phone number
        # always runs left to right ("+254 20" would otherwise show as "20 254+").
        widgets = {
            "first_name": forms.TextInput(attrs={"autocomplete": "given-name", "dir": "auto"}),
            "last_name": forms.TextInput(attrs={"autocomplete": "family-name", "dir": "auto"}),
            "organisation": forms.TextInput(attrs={"autocomplete": "organization", "dir": "auto"}),
            "phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "dir": "ltr"}),
        }

    def save(self, commit: bool = True) -> User:
        """Writes only the profile's own fields: a full save of the user loaded at the request's start would
        put back what a worker wrote meanwhile (the digest's `digest_sent_through`, and the digest resent)."""
        user = super().save(commit=False)
        if commit:
            user.save(update_fields=self._meta.fields)
        return user


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's reset request (active users with a usable password only, the same answer for any address). The
    email (`accounts.services.password_reset_send`: in the user's preferred language, its link built on SITE_URL
    rather than the request's Host header) is sent by a task, so that the answer takes as long whether or not the
    address has an account, and at most RESET_EMAILS_PER_HOUR times an hour to one address."""

    def send_mail(
        self, subject_template_name, email_template_name, context, from_email, to_email, *args, **kwargs
    ):
        from .tasks import send_password_reset

        if not password_reset_allowed(email=to_email):
            logger.warning("Password reset for user %s not sent: too many this hour", context["user"].pk)
            return
        try:
            send_password_reset.delay(context["user"].pk)
        except BrokerError as error:
            # No broker: send it now rather than lose it (the answer then takes longer for a known address).
            logger.warning("Could not queue a password reset; sending it in the request (%s: %s)",
                           type(error).__name__, error)  # fmt: skip
            password_reset_send(user_id=context["user"].pk)


class PlainPasswordHelpMixin:
    """The new password's rules as one paragraph: Django gives them as an HTML list, which cannot sit in the
    help text's <span> that the field's aria-describedby points at."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].help_text = " ".join(
            password_validation.password_validators_help_texts()
        )


def _password_change_failures_key(user_pk) -> str:
    return f"password-change-failures:{user_pk}"


def password_change_failures_forget(user_ids) -> None:
    """Forget the wrong current passwords counted for these users (a password reset, the admin's Unlock)."""
    keys = [_password_change_failures_key(pk) for pk in user_ids]
    if not keys or cache_resting():
        return
    try:
        cache.delete_many(keys)
    except Exception as error:
        cache_failed("the limit of wrong current passwords", error)


class LimitedOldPasswordMixin:
    """At most LOGIN_FAILURE_LIMIT wrong current passwords per user, then none is checked for
    LOGIN_LOCKOUT_MINUTES: whoever holds a session (a computer left logged in) could guess the password without
    limit on this form, which django-axes never sees, and then lock its owner out. Counted in the cache; when
    the cache does not answer, the check goes on without the limit (as the other counters do)."""

    def clean_old_password(self):
        key = _password_change_failures_key(self.user.pk)
        failures = self._failures(key)
        if failures >= settings.AXES_FAILURE_LIMIT:
            raise forms.ValidationError(
                _("Too many wrong passwords: try again in %(minutes)d minutes.")
                % {"minutes": settings.LOGIN_LOCKOUT_MINUTES},
                code="too_many_attempts",
            )
        try:
            password = super().clean_old_password()
        except forms.ValidationError:
            self._count(key)
            raise
        self._reset(key)
        return password

    @staticmethod
    def _failures(key: str) -> int:
        if cache_resting():
            return 0
        try:
            return int(cache.get(key) or 0)
        except Exception as error:
            cache_failed("the limit of wrong current passwords", error)
            return 0

    @staticmethod
    def _count(key: str) -> None:
        if cache_resting():
            return
        timeout = settings.LOGIN_LOCKOUT_MINUTES * 60
        try:
            if not cache.add(key, 1, timeout=timeout):
                cache.incr(key)
                cache.touch(key, timeout)  # the wait starts again at each failure, as the login's does
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=timeout)
        except Exception as error:
            cache_failed("the limit of wrong current passwords", error)

    @staticmethod
    def _reset(key: str) -> None:
        if cache_resting():
            return
        try:
            cache.delete(key)
        except Exception as error:
            cache_failed("the limit of wrong current passwords", error)


class PasswordChangeForm(LimitedOldPasswordMixin, PlainPasswordHelpMixin, auth_forms.PasswordChangeForm):
    pass


class AdminPasswordChangeForm(LimitedOldPasswordMixin, admin_forms.AdminPasswordChangeForm):
    """The admin's "Change password" page, limited as the site's."""


class SetPasswordForm(PlainPasswordHelpMixin, auth_forms.SetPasswordForm):
    pass


class LoginForm(auth_forms.AuthenticationForm):
    """Django's login form with its username length enforced: Django sets the field's max_length after the
    field is made, which adds no validator, so a username of megabytes reached authenticate() and was stored in
    the lockout records (django-axes) and sent back in the page."""

    def clean_username(self) -> str:
        username = self.cleaned_data.get("username") or ""
        if len(username) > (self.fields["username"].max_length or 254):
            raise forms.ValidationError(_("No account has a username this long."), code="max_length")
        return username
