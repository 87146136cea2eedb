"""The session engine (SESSION_ENGINE): Django's database sessions, ending after SESSION_COOKIE_AGE seconds
without a request rather than that long after the login."""

from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.utils import timezone


class SessionStore(DatabaseSessionStore):
    """A session that is used is written again, which moves its expiry (row and cookie) SESSION_COOKIE_AGE ahead.

    SESSION_SAVE_EVERY_REQUEST would do the same with a write, in a transaction of its own, on every request;
    this writes only when the last write is SESSION_IDLE_REFRESH_SECONDS old or more, so the idle timeout holds to
    within that and a burst of page views or htmx requests writes nothing.
    """

    def load(self) -> dict:
        return self._load_and_refresh(self._get_session_from_db())

    async def aload(self) -> dict:
        return self._load_and_refresh(await self._aget_session_from_db())

    def _load_and_refresh(self, stored) -> dict:
        if stored is None:
            return {}
        data = self.decode(stored.session_data)
        # Without an expiry of its own (set_expiry), a row expires SESSION_COOKIE_AGE after its last write. One that
        # seems written in the future was written under a longer SESSION_COOKIE_AGE: it is brought down to this one.
        if "_session_expiry" not in data:
            since_written = timezone.now() - (
                stored.expire_date - timedelta(seconds=settings.SESSION_COOKIE_AGE)
            )
            if not timedelta(0) <= since_written < timedelta(seconds=settings.SESSION_IDLE_REFRESH_SECONDS):
                self.modified = True  # SessionMiddleware saves it and sends the cookie again
        return data
