"""The profile form: what a user may change about themselves (role, Party and provider are the secretariat's)."""

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .models import User


def language_choices() -> list[tuple[str, str]]:
    """The languages a user may prefer: the site's (settings.LANGUAGES, the UI languages with a catalogue).

    The profile form and the admin offer the same list; read when a form is built, so a change of
    LANGUAGES (or a test's override) applies at once.
    """
    return [("", _("Same as the site")), *settings.LANGUAGES]


def preferred_language_field(
    *, help_text: str = _("The language of the pages and of the emails we send you.")
) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=_("Preferred language"), choices=language_choices, required=False, help_text=help_text
    )


class ProfileForm(forms.ModelForm):
    preferred_language = preferred_language_field()

    class Meta:
        model = User
        fields = ["first_name", "last_name", "organisation", "phone", "preferred_language", "digest_opt_in"]
