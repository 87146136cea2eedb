"""Who may call which API endpoint, and how often.

These are the coarse gates (is the caller allowed to write at all, to read the stocktake); whether an actor
may act on a particular post or match is decided by the services, which raise PermissionDenied.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time

from django.core.cache import cache as default_cache
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from .actors import PROVIDER_DEACTIVATED_MESSAGE
from .authentication import request_actor
from .counters import cache_failed, cache_resting
from .models import ApiToken
from .rates import parse_rate


def _refusal(request, actor, *, token_reads: str, session_reads: str) -> str:
    """Why a caller that may not write is refused: its provider is deactivated, its token reads, or its
    account (a browser session of a committee member, an observer...) reads."""
    if actor.is_deactivated_provider:
        return PROVIDER_DEACTIVATED_MESSAGE
    if isinstance(request.auth, ApiToken):
        return token_reads
    return session_reads


class CanWritePosts(BasePermission):
    """A focal point, a provider user, a write token, or the secretariat (which moderates and imports).

    A deactivated provider's users and write tokens may still withdraw or close its posts, nothing else.
    """

    message = _(
        "Only a focal point, a support provider or the secretariat can write posts; this token reads."
    )

    admits_deactivated_provider = False

    def has_permission(self, request, view) -> bool:
        actor = request_actor(request)
        if actor.can_post or actor.is_secretariat:
            return True
        if self.admits_deactivated_provider and actor.is_deactivated_provider:
            return True
        # Instances are made per request (get_permissions), so the message can fit the caller.
        self.message = _refusal(
            request,
            actor,
            token_reads=self.message,
            session_reads=_(
                "Only a focal point, a support provider or the secretariat can write posts; your account "
                "reads them."
            ),
        )
        return False


class CanTakeDownPosts(CanWritePosts):
    """For the endpoints that take a post down (withdraw, close): CanWritePosts, and a deactivated provider's
    users and write tokens too (the service checks that the post is its own)."""

    admits_deactivated_provider = True


class CanAnswerMatches(BasePermission):
    message = _("Only a focal point or a support provider can answer a match.")

    def has_permission(self, request, view) -> bool:
        actor = request_actor(request)
        if actor.can_post:
            return True
        self.message = _refusal(
            request,
            actor,
            token_reads=_("Only a focal point or a support provider can answer a match; this token reads."),
            session_reads=self.message,
        )
        return False


class CanReadStocktake(BasePermission):
    message = _("The stocktake is for committee members and the secretariat (or a stocktake token).")

    def has_permission(self, request, view) -> bool:
        return request_actor(request).can_read_stocktake


class IsAuthenticatedCaller(BasePermission):
    """Any token or logged-in user (an anonymous caller gets 401)."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)


# The rate is read at each request (settings overrides apply at once); parsed once per distinct rate.
_parse_rate = functools.lru_cache(maxsize=32)(parse_rate)


def rate_spend(key: str, rate: str | None, *, cache, now: float, what: str) -> float | None:
    """Spend one request of the budget `rate` (`<n>/<period>`, None: no limit) kept under `key`: None when it
    is allowed, else the seconds until the next one is. The generic cell rate algorithm: the cache keeps one
    number, the time at which the budget is full again. When the cache fails, allowed (`what` is logged)."""
    if rate is None:
        return None
    count, period = _parse_rate(rate)
    if cache_resting():  # it failed a moment ago: no limit for a while rather than a slow site
        return None
    try:
        held = cache.get(key)
    except Exception as error:  # the cache is down: no limit for a while rather than no site
        cache_failed(what, error)
        return None
    full_at = max(held or now, now) + period / count
    if full_at - now > period:
        return full_at - now - period
    try:
        cache.set(key, full_at, timeout=math.ceil(full_at - now))
    except Exception as error:
        cache_failed(what, error)
    return None


class ApiRateThrottle(BaseThrottle):
    """One budget per token, per logged-in user of a browser session, and per anonymous client IP.

    The cache keeps one number per caller: the time at which its budget is full again (the generic cell rate
    algorithm). A request costs one cache read and one write whatever the rate, where DRF's SimpleRateThrottle
    reads and writes the list of every request in the window. A caller may spend the whole budget at once,
    then has one request every period / n. The rate is read at request time, so settings overrides (tests, env)
    apply without a restart of DRF.
    """

    cache = default_cache
    timer = time.time

    def allow_request(self, request, view) -> bool:
        if isinstance(request.auth, ApiToken):
            # Every request with the same token counts, whichever machine it comes from.
            scope, ident = "token", request.auth.pk
        elif request.user and request.user.is_authenticated:
            scope, ident = "user", request.user.pk
        else:
            # NUM_PROXIES decides which X-Forwarded-For hop is the client.
            scope, ident = "anon", self.get_ident(request)
        return self._spend(scope, ident)

    def allow_refused(self, request, session_user) -> bool:
        """A request whose credentials were refused spends a budget too, or a caller could retry without end. A
        token that fails (unknown, revoked, expired) spends one of its own, kept under a hash of what was sent,
        at the tokens' rate: a partner looping with a revoked token is slowed without taking the budget of the
        others at its address (a ministry behind one NAT). A browser session refused (its CSRF check) spends its
        user's (`session_user`: Django's, which DRF has replaced by an anonymous one); the rest, their address's."""
        header = request.META.get("HTTP_AUTHORIZATION")
        if header:
            return self._spend("token", "refused-" + hashlib.sha256(header.encode()).hexdigest()[:32])
        if session_user is not None and session_user.is_authenticated:
            return self._spend("user", session_user.pk)
        return self._spend("anon", self.get_ident(request))

    def _spend(self, scope: str, ident) -> bool:
        wait = rate_spend(
            f"api-throttle:{scope}:{ident}",
            api_settings.DEFAULT_THROTTLE_RATES.get(scope),
            cache=self.cache,
            now=self.timer(),
            what="the API's rate limit",
        )
        if wait is None:
            return True
        self._wait = wait
        return False

    def wait(self) -> float:
        return self._wait

    def get_ident(self, request) -> str:
        """DRF's client address (X-Forwarded-For per NUM_PROXIES, else REMOTE_ADDR), read from META: building
        `request.headers` for it cost more than the rest of the throttle."""
        xff = request.META.get("HTTP_X_FORWARDED_FOR")
        remote_addr = request.META.get("REMOTE_ADDR")
        num_proxies = api_settings.NUM_PROXIES
        if num_proxies is not None:
            if num_proxies == 0 or xff is None:
                return remote_addr
            addrs = xff.split(",")
            return addrs[-min(num_proxies, len(addrs))].strip()
        return "".join(xff.split()) if xff else remote_addr
