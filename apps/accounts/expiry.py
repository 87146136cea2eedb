"""An action clicked after the session ended (submit, withdraw, close a post; answer a match): nothing was done,
the login page says so, and the page the user comes back to after logging in says it again (the login page's
message is gone by then, and the page shows the action as not done)."""

from __future__ import annotations

import time

from django.contrib import messages
from django.http import HttpRequest
from django.utils.translation import gettext as _

ACTION_LOST_KEY = "accounts:action-lost"
ACTION_LOST_SECONDS = 2 * 60 * 60


def note_action_lost(request: HttpRequest, back_to: str) -> None:
    """Record, in the (new, anonymous) session that logging in keeps, that an action was not done; `back_to`: the
    path of the page the user returns to."""
    request.session[ACTION_LOST_KEY] = {"path": back_to, "at": time.time()}
    messages.warning(request, _("Your session had ended, so nothing was done. Log in again, then repeat it."))


def action_lost_notice(request: HttpRequest) -> None:
    """On the page the user came back to, once: say again that the action was not done."""
    lost = request.session.get(ACTION_LOST_KEY)
    if not isinstance(lost, dict) or lost.get("path") != request.path:
        return
    del request.session[ACTION_LOST_KEY]
    if time.time() - float(lost.get("at") or 0) <= ACTION_LOST_SECONDS:
        messages.warning(
            request,
            _("What you clicked before your session ended was not done: repeat it if you still want to."),
        )
