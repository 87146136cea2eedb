"""Emails about matches: a connection between two posters, and the daily digest of new strong matches."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import formataddr

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from apps.accounts.emails import send_once, sender
from apps.accounts.models import User
from apps.posts.models import Post
from apps.posts.post_data import single_line, subject_title
from apps.posts.selectors import post_poster_users, poster_users

from .models import Match
from .selectors import connection_contacts


def _address(name: str, email: str) -> str:
    name = single_line(name).strip()
    return f"{name} <{email}>" if name else email


def _contact(post: Post) -> dict:
    """Whom to write to about the post, one address each: the contact given on the post (its name with its
    own email), else (none given, or the address of a person who has left) the people who speak for its Party
    or provider. A name and an email of different people were never put together, nor several emails in one
    address."""
    people = connection_contacts([(post, post.party_id, post.provider_id)])[post.pk]
    return {
        "post": post,
        "contacts": [_address(name, email) for name, email in people],
        # As header addresses: a name with a comma ("Ministry of Environment, Climate Directorate") is quoted,
        # or a mail client reads two addresses, the first one invalid.
        "reply_to": [formataddr((single_line(name).strip(), email)) for name, email in people],
    }


def connection_notify(match: Match) -> int:
    """Tell both sides of a new connection who the other is and how to reach them, each recipient in their own
    language, once (`send_once`: a retry after one recipient's failure sends only what did not go). Returns
    emails sent."""
    sent = 0
    for own, other in ((match.need, match.offer), (match.offer, match.need)):
        contact = _contact(other)
        for user in post_poster_users(own):
            with translation.override(user.email_language):
                body = render_to_string(
                    "matching/email/connection.txt",
                    {"own": own, "other": contact, "match": match, "site_url": settings.SITE_URL},
                )
                subject = _("New connection: %(title)s") % {"title": subject_title(other.title)}
            sent += send_once(key=f"connection:{match.pk}:{user.pk}", subject=subject, body=body,
                              recipient=user.email, language=user.email_language,
                              reply_to=contact["reply_to"])  # fmt: skip
    return sent


def connection_ended_notify(
    match: Match, *, gone: Post, own: Post, gone_poster, party_id, provider_id
) -> int:
    """Tell the side that stays (the users who speak for the Party or provider that made the connection, each in
    their language, once each: `send_once`) that `gone`, the post of `gone_poster` (the Party or provider that made
    the connection on the other side), was withdrawn or closed: by whom is not said (its poster, the secretariat,
    an import), nor its title (it may have been taken back and revised since). Returns emails sent."""
    poster = (party_id, provider_id)
    sent = 0
    for user in poster_users([poster])[poster]:
        with translation.override(user.email_language):
            gone_name = getattr(gone_poster, "local_name", None) or getattr(gone_poster, "name", "")
            body = render_to_string(
                "matching/email/connection_ended.txt",
                {
                    "gone": gone,
                    "gone_name": gone_name,
                    "own": own,
                    "match": match,
                    "site_url": settings.SITE_URL,
                },
            )
            subject = _("Connection ended: %(title)s") % {"title": subject_title(own.title)}
        sent += send_once(key=f"connection-ended:{match.pk}:{user.pk}", subject=subject, body=body,
                          recipient=user.email, language=user.email_language)  # fmt: skip
    return sent


def digest_send(
    user: User,
    matches: Sequence[Match],
    *,
    more: bool = False,
    awaiting: Sequence[Match] = (),
    more_awaiting: bool = False,
) -> int:
    """`more`: there are more new strong matches than the email lists (it points to the dashboard);
    `awaiting`: matches whose other side expressed interest since the last digest, listed first (the subject
    names them: a connection waits for this user's answer alone); `more_awaiting`: more of those than it lists."""
    with translation.override(user.email_language):
        body = render_to_string(
            "matching/email/digest.txt",
            {
                "user": user,
                "matches": matches,
                "more": more,
                "awaiting": awaiting,
                "more_awaiting": more_awaiting,
                "site_url": settings.SITE_URL,
            },
        )
        if more_awaiting:
            subject = _("More than %(n)d matches await your answer on the NMA Platform") % {
                "n": len(awaiting)
            }
        elif awaiting:
            subject = ngettext(
                "%(n)d match awaits your answer on the NMA Platform",
                "%(n)d matches await your answer on the NMA Platform",
                len(awaiting),
            ) % {"n": len(awaiting)}
        elif more:  # the list is cut: not "50 new strong matches" for 80
            subject = _("More than %(n)d new strong matches on the NMA Platform") % {"n": len(matches)}
        else:
            subject = ngettext(
                "%(n)d new strong match on the NMA Platform",
                "%(n)d new strong matches on the NMA Platform",
                len(matches),
            ) % {"n": len(matches)}
    return send_mail(subject, body, sender(user.email_language), [user.email])
