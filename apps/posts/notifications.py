"""Emails to a post's posters when the secretariat publishes it or returns it with a reason: without them a focal
point learnt of either only by logging in."""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from apps.accounts.emails import send_once

from .models import Post
from .post_data import subject_title
from .selectors import post_poster_users

SUBJECTS = {
    "published": lambda title: _("Your post is published: %(title)s") % {"title": title},
    "returned": lambda title: _("Your post was returned to you: %(title)s") % {"title": title},
    "taken_back": lambda title: _("Your post is no longer public: %(title)s") % {"title": title},
}


def moderation_notify(*, post_id: int, event: str) -> int:
    """Email the post's focal points (or provider users), each in their own language, that the secretariat
    published it or returned it (with the reason). Nothing when the post has moved on since (a return followed
    by a resubmission before the task ran). Returns the emails sent."""
    post = Post.objects.select_related("party", "provider").filter(pk=post_id).first()
    if (
        post is None
        or post.status != {"published": Post.Status.PUBLISHED, "returned": Post.Status.RETURNED}[event]
    ):
        return 0
    # A return from the published list takes the publication back: the email says so.
    taken_back = (
        event == "returned"
        and post.events.filter(action="returned").values_list("from_status", flat=True).first()
        == Post.Status.PUBLISHED
    )
    # Once per person and decision (`send_once`): a retry after one recipient's failure sends only what did not
    # go. The decision is the history entry that made it (a post published, taken back, published again).
    decision = (
        post.events.filter(action=event).order_by("-created_at", "-id").values_list("pk", flat=True).first()
    )
    sent = 0
    for user in post_poster_users(post):
        with translation.override(user.email_language):
            body = render_to_string(
                f"posts/email/{event}.txt",
                {
                    "post": post,
                    "site_url": settings.SITE_URL,
                    "taken_back": taken_back,
                    # Its users may only withdraw or close its posts: not asked to edit and resubmit.
                    "provider_deactivated": post.provider_id is not None and not post.provider.is_active,
                },
            )
            subject = SUBJECTS["taken_back" if taken_back else event](subject_title(post.title))
        sent += send_once(key=f"moderation:{post.pk}:{event}:{decision}:{user.pk}", subject=subject, body=body,
                          recipient=user.email, language=user.email_language)  # fmt: skip
    return sent
