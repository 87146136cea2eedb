"""Rate limits of the site (the API's are its throttle): the same budget algorithm and cache as the API's
(`rate_spend`), per client address as the API reads it, or per user.

- Anonymous visitors of the expensive public pages (the search of the posts, the stocktake summary):
  `SITE_THROTTLE_ANON` per address. Logged-in users are not limited there.
- Logged-in users' changes on the site (a post's form and steps, an answer to a match, a snapshot, the profile):
  `SITE_THROTTLE_WRITES` per user, far above what a person does by hand.
- Requests for a password-reset email: `SITE_THROTTLE_RESET` per address, beside the hourly limit per mailbox
  (`accounts.services.password_reset_allowed`), so that one client cannot send one to every address.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .permissions import ApiRateThrottle, rate_spend


def _rate_limited(rate_setting: str, key: Callable[[HttpRequest], str | None], kind: str):
    """A view decorator: 429 (with Retry-After, and the page saying why) once the budget named `rate_setting`
    is spent by `key(request)`; a request whose key is None is not limited."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def limited(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            seconds = _spend(rate_setting, key(request))
            if seconds is not None:
                response = render(request, "429.html", {"seconds": seconds, "kind": kind}, status=429)
                response["Retry-After"] = str(seconds)
                return response
            return view(request, *args, **kwargs)

        return limited

    return decorate


def _spend(rate_setting: str, who: str | None) -> int | None:
    """Spend one request of `who`'s budget: None when allowed (or `who` is None), else the whole seconds to wait."""
    if who is None:
        return None
    wait = rate_spend(
        f"site-throttle:{who}", getattr(settings, rate_setting), cache=cache, now=time.time(),
        what="the site's rate limit",
    )  # fmt: skip
    return None if wait is None else max(1, math.ceil(wait))


def _client(request: HttpRequest) -> str:
    return ApiRateThrottle().get_ident(request)


# The search of the posts and the stocktake summary, for anonymous visitors.
anonymous_rate_limited = _rate_limited(
    "SITE_THROTTLE_ANON",
    lambda request: None if request.user.is_authenticated else f"anon:{_client(request)}",
    "pages",
)


def _writer(request: HttpRequest) -> str | None:
    return f"writes:{request.user.pk}" if request.method == "POST" and request.user.is_authenticated else None


# A logged-in user's POSTs (an anonymous one is sent to log in by the view).
writes_rate_limited = _rate_limited("SITE_THROTTLE_WRITES", _writer, "writes")


def writes_wait(request: HttpRequest) -> int | None:
    """For a view that answers a spent budget itself (the post's form, shown again as typed): spend one of the
    user's changes; None when allowed, else the seconds to wait."""
    return _spend("SITE_THROTTLE_WRITES", _writer(request))


# Requests for a password-reset email, per client address.
reset_rate_limited = _rate_limited(
    "SITE_THROTTLE_RESET",
    lambda request: f"reset:{_client(request)}" if request.method == "POST" else None,
    "reset",
)
