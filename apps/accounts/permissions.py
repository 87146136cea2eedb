"""Who may call which API endpoint, and how often.

These are the coarse gates (is the caller allowed to write at all, to read the stocktake); whether an actor
may act on a particular post or match is decided by the services, which raise PermissionDenied.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .authentication import request_actor
from .models import ApiToken


class CanWritePosts(BasePermission):
    """A focal point, a provider user, a write token, or the secretariat (which moderates and imports)."""

    message = _(
        "Only a focal point, a support provider or the secretariat can write posts; this token reads."
    )

    def has_permission(self, request, view) -> bool:
        actor = request_actor(request)
        return actor.can_post or actor.is_secretariat


class CanAnswerMatches(BasePermission):
    message = _("Only a focal point or a support provider can answer a match.")

    def has_permission(self, request, view) -> bool:
        return request_actor(request).can_post


class CanReadStocktake(BasePermission):
    message = _("The stocktake is for committee members and the secretariat (or a stocktake token).")

    def has_permission(self, request, view) -> bool:
        return request_actor(request).can_read_stocktake


class IsAuthenticatedCaller(BasePermission):
    """Any token or logged-in user (an anonymous caller gets 401)."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)


class _RateThrottle(SimpleRateThrottle):
    """Reads its rate at request time, so settings overrides (tests, env) apply without a restart of DRF."""

    def __init__(self):
        # SimpleRateThrottle binds THROTTLE_RATES at import time; look it up now instead.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class TokenRateThrottle(_RateThrottle):
    """Per token: every request with the same token counts, whichever machine it comes from."""

    scope = "token"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class SessionUserRateThrottle(_RateThrottle):
    """Per logged-in user of a browser session."""

    scope = "user"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiToken) or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonymousRateThrottle(_RateThrottle):
    """Per client IP for callers without credentials (NUM_PROXIES decides which X-Forwarded-For hop counts)."""

    scope = "anon"

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
