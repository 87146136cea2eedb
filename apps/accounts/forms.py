"""The profile form: what a user may change about themselves (role, Party and provider are the secretariat's)."""

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .models import User


class ProfileForm(forms.ModelForm):
    preferred_language = forms.ChoiceField(
        label=_("Preferred language"),
        choices=[("", _("Same as the site")), *settings.LANGUAGES],
        required=False,
        help_text=_("The language of the pages and of the emails we send you."),
    )

    class Meta:
        model = User
        fields = ["first_name", "last_name", "organisation", "phone", "preferred_language", "digest_opt_in"]
