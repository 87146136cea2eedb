"""How the API knows who is calling: a partner system's bearer token, or a browser session (with CSRF).

Views never look at `request.user` directly; they ask `request_actor(request)` for the Actor that every
service takes, so a token and a logged-in user go through the same permission rules.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header
from rest_framework.request import Request

from .actors import Actor
from .models import ApiToken

# Both spellings are common in client libraries; `Bearer` is the one the documentation shows.
TOKEN_KEYWORDS = (b"bearer", b"token")


class ApiClient:
    """The `request.user` of a token request: authenticated, but no platform user (it has no rights of its own).

    Deliberately not the secretariat user who issued the token: a view that looked at `request.user` by mistake
    must not hand a partner system the issuer's powers.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: ApiToken):
        self.token = token

    def __str__(self) -> str:
        return str(self.token)

    def get_username(self) -> str:
        return str(self.token)


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer nma_<prefix>_<secret>` (or `Token ...`): one indexed lookup by prefix."""

    def authenticate(self, request: Request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in TOKEN_KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Give the token after 'Bearer ', with no spaces in it."))
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        token = self._lookup(raw)
        if token is None or not token.matches(raw):
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if token.is_revoked:
            raise exceptions.AuthenticationFailed(_("This token has been revoked."))
        if token.is_expired:
            raise exceptions.AuthenticationFailed(_("This token has expired."))
        token.touch()
        return ApiClient(token), token

    @staticmethod
    def _lookup(raw: str) -> ApiToken | None:
        pieces = raw.split("_", 2)
        if len(pieces) != 3 or pieces[0] != "nma" or not pieces[1] or len(pieces[1]) > 16:
            return None
        return ApiToken.objects.select_related("created_by").filter(prefix=pieces[1]).first()

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials, as HTTP means it.
        return 'Bearer realm="api"'


class ApiSessionAuthentication(SessionAuthentication):
    """A logged-in browser session, with CSRF checks, as DRF's; without a session cookie (a partner system, a
    script) there is no session user to load, so the request does not load its session to find that out."""

    def authenticate(self, request: Request):
        if settings.SESSION_COOKIE_NAME not in request._request.COOKIES:
            return None
        return super().authenticate(request)


def request_actor(request: Request) -> Actor:
    """The Actor behind an API request: the token's, the session user's, or anonymous."""
    if isinstance(request.auth, ApiToken):
        return Actor.for_token(request.auth)
    return Actor.for_user(request.user)


class ApiSessionScheme(SessionScheme):
    """Documents the session as DRF's SessionAuthentication is (drf-spectacular matches classes exactly)."""

    target_class = "apps.accounts.authentication.ApiSessionAuthentication"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token as an HTTP bearer scheme in the OpenAPI schema."""

    target_class = "apps.accounts.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "nma_<prefix>_<secret>",
            "description": (
                "A token issued by the secretariat in the admin. Send `Authorization: Bearer <token>` "
                "(`Token <token>` is accepted too)."
            ),
        }
