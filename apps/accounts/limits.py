"""A rate limit for anonymous visitors of the site's expensive public pages (the search of the posts, the
stocktake summary): the same budget algorithm and cache as the API's throttle (`rate_spend`), per client address
as the API reads it. Logged-in users are not limited here."""

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


def anonymous_rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 429 (with Retry-After) when an anonymous client has spent `SITE_THROTTLE_ANON` on such pages."""

    @functools.wraps(view)
    def limited(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            wait = rate_spend(
                f"site-throttle:anon:{ApiRateThrottle().get_ident(request)}",
                settings.SITE_THROTTLE_ANON,
                cache=cache,
                now=time.time(),
                what="the site's rate limit",
            )
            if wait is not None:
                seconds = max(1, math.ceil(wait))
                response = render(request, "429.html", {"seconds": seconds}, status=429)
                response["Retry-After"] = str(seconds)
                return response
        return view(request, *args, **kwargs)

    return limited
