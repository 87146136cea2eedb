"""Account services: the password-reset email, sent from a task so that the request answers alike for any
address, and at most a few times an hour per address; and erasing a person's personal data at their request."""

from __future__ import annotations

import hashlib
import logging
import re
from importlib import import_module

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from .actors import Actor
from .counters import cache_failed, cache_resting
from .emails import sender
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
    return send_mail(subject, body, sender(user.email_language), [user.email])


def user_sessions_end(*, user: User) -> int:
    """Delete the user's open sessions (a person deactivated: a session of theirs stops working at once, but
    reactivating them would have brought it back, on whatever computer it was left open). Database sessions are
    not indexed by user: the unexpired ones are read, a few hundred rows (8 hours' worth of logins). Returns how
    many were ended."""
    from django.contrib.auth import SESSION_KEY
    from django.contrib.sessions.models import Session

    store = import_module(settings.SESSION_ENGINE).SessionStore
    theirs = [
        key
        for key, data in Session.objects.filter(expire_date__gt=timezone.now())
        .values_list("session_key", "session_data")
        .iterator(chunk_size=500)
        if store().decode(data).get(SESSION_KEY) == str(user.pk)
    ]
    Session.objects.filter(session_key__in=theirs).delete()
    return len(theirs)


# --- erasure ------------------------------------------------------------------------------------------------

ANONYMISED_USERNAME = "anonymised-{pk}"


class AnonymiseRefused(ValueError):
    """A person the actor may not anonymise in this way (their own account; one anonymised already)."""


@transaction.atomic
def user_anonymise(*, actor: Actor, user: User) -> User:
    """Erase a person's personal data at their request, keeping what the platform's records need.

    The account stays, under a pseudonym (`anonymised-<id>`): deactivated, without name, email, phone,
    organisation, preferences, password or sessions, its role, Party or provider and date joined kept, so the
    stocktake counts them as a deactivated user. Their Party's or
    provider's posts stay, with their matches; their address and name leave the posts' contacts and history
    (`posts.services.post_person_erase`), and the history, the admin's and the stocktake snapshots name them by
    the pseudonym. Their failed logins are forgotten. Only the secretariat may do it, never to its own account,
    and only a superuser to a superuser. Irreversible."""
    from apps.posts.services import post_person_erase

    from .forms import password_change_failures_forget

    if not actor.is_secretariat:
        raise PermissionDenied(_("Only the secretariat anonymises users."))
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_superuser and not (actor.user is not None and actor.user.is_superuser):
        raise PermissionDenied(_("Only a superuser anonymises a superuser."))
    if actor.user is not None and actor.user.pk == user.pk:
        raise AnonymiseRefused(
            _("You cannot anonymise your own account: ask another member of the secretariat.")
        )
    if user.anonymised_at is not None:
        raise AnonymiseRefused(_("This account is anonymised already."))
    old_username, old_email = user.get_username(), user.email
    label = ANONYMISED_USERNAME.format(pk=user.pk)
    if User.objects.filter(username=label).exclude(pk=user.pk).exists():
        label = f"{label}-{hashlib.sha256(old_username.encode()).hexdigest()[:6]}"
    post_person_erase(actor=actor, person=user, label=label)

    # The admin's history: entries about this account, and the lockouts it unlocked, which name the person.
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
    ).update(object_repr=label)
    for typed in filter(None, (old_username, old_email)):  # as typed at the login
        named = re.compile(rf"(?<![\w.@+-]){re.escape(typed)}(?![\w.@+-])", re.IGNORECASE)
        for entry in LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(AccessAttempt), object_repr__icontains=typed
        ).only("pk", "object_repr"):
            repr_ = named.sub(label, entry.object_repr)
            if repr_ != entry.object_repr:
                LogEntry.objects.filter(pk=entry.pk).update(object_repr=repr_)
    # Failed logins under their user name or address (as typed at the login).
    theirs = Q(username__iexact=old_username) | (Q(username__iexact=old_email) if old_email else Q(pk__in=[]))
    for model in (AccessAttempt, AccessFailureLog, AccessLog):
        model.objects.filter(theirs).delete()

    user.username = label
    user.first_name = user.last_name = user.email = user.phone = user.organisation = ""
    user.preferred_language = user.site_language = ""
    user.digest_opt_in = False
    user.is_active = user.is_staff = user.is_superuser = False
    user.last_login = None
    # A new password hash: Django ends every session that was opened under the old one.
    user.set_unusable_password()
    user.anonymised_at = timezone.now()
    user.save()
    # Their session rows go now, not when they expire: they hold the account's id and what the person kept in
    # them; and no session of theirs is left for a next request to end.
    user_sessions_end(user=user)
    password_change_failures_forget([user.pk])
    return user
