"""Account services: the password-reset email, sent from a task so that the request answers alike for any
address, and at most a few times an hour per address."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .counters import cache_failed, cache_resting
from .models import User

logger = logging.getLogger(__name__)

# Reset emails per address and hour: enough for a user who lost one, too few to flood a mailbox with them.
RESET_EMAILS_PER_HOUR = 3
RESET_SUBJECT = "registration/password_reset_subject.txt"
RESET_BODY = "registration/password_reset_email.txt"


def password_reset_allowed(*, email: str) -> bool:
    """Count a reset email to this address; False once RESET_EMAILS_PER_HOUR have gone in the hour."""
    if cache_resting():  # it failed a moment ago: a user who lost a password still gets the email
        return True
    key = "password-reset:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()
    try:
        cache.add(key, 0, timeout=3600)
        try:
            return cache.incr(key) <= RESET_EMAILS_PER_HOUR
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=3600)
            return True
    except Exception as error:  # the cache is down: a user who lost a password still gets the email
        cache_failed("the hourly limit of password-reset emails", error)
        return True


def password_reset_send(*, user_id: int) -> int:
    """Email the user a password-reset link (built on SITE_URL, in their language), if they may still reset one
    (an active user with a usable password). The token is made here, not carried through the broker."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_usable_password() or not user.email:
        return 0
    context = {
        "user": user,
        "email": user.email,
        "uid": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user),
        "site_url": settings.SITE_URL,
    }
    with translation.override(user.email_language):
        subject = "".join(render_to_string(RESET_SUBJECT, context).splitlines())
        body = render_to_string(RESET_BODY, context)
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
