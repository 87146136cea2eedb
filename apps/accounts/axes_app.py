"""django-axes under a name its admin section shows in the page's language ("AXES" was shown untranslated)."""

from axes.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AxesConfig(AppConfig):
    verbose_name = _("Login lockouts")
