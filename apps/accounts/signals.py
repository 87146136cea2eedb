"""What the accounts app does when Django signals something."""

from django.contrib import messages
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.utils.translation import gettext as _


@receiver(user_logged_out)
def say_logged_out(sender, request, user, **kwargs) -> None:
    """Logging out, from the site or the admin, lands on the list of posts: it says it is done."""
    if request is not None and hasattr(request, "_messages"):
        messages.success(request, _("You are logged out."))
