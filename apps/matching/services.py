"""Matching services: the hand-off from posts, running the engine, storing matches, interest and digests."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.actors import Actor
from apps.accounts.models import Role, User
from apps.posts.models import Post

from .models import Interest, Match

logger = logging.getLogger(__name__)


def matching_enqueue(*, post_ids: Sequence[int]) -> None:
    """Hand the posts to a worker once the caller's transaction commits.

    The caller has already flagged the posts `matching_pending` in that transaction, so if the broker is
    down the hand-off is not lost: the request still succeeds and the periodic sweep matches them later.
    """
    ids = list(post_ids)
    if not ids or not settings.MATCHING_AUTORUN:
        # With autorun off (most unit tests) the posts stay flagged and the sweep matches them.
        return

    def send() -> None:
        from .tasks import match_posts

        try:
            match_posts.delay(ids)
        except Exception:
            # Never fail a focal point's request for a broker outage; the sweep will pick these up.
            logger.warning(
                "Could not queue matching for %d posts; left for the sweep", len(ids), exc_info=True
            )

    transaction.on_commit(send)


def matching_retire(*, post_ids: Sequence[int]) -> int:
    """The posts left the published list (closed, withdrawn, back in moderation): their matches disappear from
    every view and can no longer be answered, now, in the caller's transaction; the worker that the change
    also queues would do the same, but only once it runs. Returns the matches retired."""
    ids = list(post_ids)
    if not ids:
        return 0
    return Match.objects.active().filter(Q(need_id__in=ids) | Q(offer_id__in=ids)).update(is_active=False)


def matching_party_groups_changed(*, party_id: int) -> int:
    """A Party's eligibility groups changed (its regional group, LDC or SIDS status: the secretariat's admin):
    the offers its needs may meet are not the same. Its published needs are matched again, flagged and queued
    as an edited post is, in the caller's transaction; the match of a need no longer eligible for an offer is
    retired when the need is matched again, and each worker rebuilds its index (which holds every need's
    groups) at its next task. Its offers are unaffected: their `eligible` list is their own. Returns how many
    needs were queued."""
    needs = Post.objects.published().filter(kind=Post.Kind.NEED, party_id=party_id)
    ids = list(needs.values_list("id", flat=True))
    Post.objects.filter(pk__in=ids).update(matching_pending=True)
    matching_enqueue(post_ids=ids)
    return len(ids)


# --- interest and connections ------------------------------------------------------------------------------


class MatchAnswerError(Exception):
    """The match cannot take this answer in its present state (the API's 409)."""


class InvalidInterest(ValueError):
    """An answer that is neither 'interested' nor 'dismissed' (the API's 400 on `interest`)."""


def match_check_interest(interest: object) -> None:
    """Raise InvalidInterest unless `interest` is an answer a side can give."""
    if interest not in (Interest.INTERESTED, Interest.DISMISSED):
        raise InvalidInterest(_("Choose 'interested' or 'dismissed'."))


@transaction.atomic
def match_set_interest(*, actor: Actor, match: Match, interest: str) -> Match:
    """Record that the actor's side is interested in the match, or dismisses it.

    When both sides are interested the match becomes a connection (the returned match's `became_connection`
    is then true) and both are emailed each other's contacts. A connection is not undone: dismissing one is
    refused.
    """
    from .selectors import match_side_for_actor

    match_check_interest(interest)
    match = Match.objects.select_for_update().select_related("need", "offer").get(pk=match.pk)
    side = match_side_for_actor(actor=actor, match=match)
    if side is None:
        raise PermissionDenied(_("Only the Parties or providers of the two posts can answer a match."))
    published = Post.Status.PUBLISHED
    if not match.is_active or match.need.status != published or match.offer.status != published:
        raise MatchAnswerError(_("This match is no longer open."))
    match.became_connection = False
    if match.connected_at is not None:
        if interest == Interest.DISMISSED:
            raise MatchAnswerError(
                _("This match is already a connection: you have been sent each other's contacts.")
            )
        return match
    now = timezone.now()
    setattr(match, f"{side}_interest", interest)
    setattr(match, f"{side}_interest_at", now)
    became_connection = (
        match.need_interest == Interest.INTERESTED and match.offer_interest == Interest.INTERESTED
    )
    if became_connection:
        match.connected_at = now
    match.save()
    match.became_connection = became_connection
    if became_connection:
        match_id = match.pk
        # `robust`: an error here is logged, never the focal point's; the sweep sends what did not go.
        transaction.on_commit(lambda: _queue_connection_notice(match_id), robust=True)
    return match


def _queue_connection_notice(match_id: int) -> None:
    from .tasks import notify_connection

    try:
        notify_connection.delay(match_id)
    except Exception:
        logger.warning("Could not send or queue the emails of connection %d; left for the sweep", match_id,
                       exc_info=True)  # fmt: skip


def connection_notice_send(*, match_id: int) -> int:
    """Email both sides of a connection each other's contacts, once: the match is marked as notified in the same
    transaction, and a failure to send leaves it unmarked (the task retries, the sweep tries again). Returns the
    emails sent."""
    from .notifications import connection_notify

    with transaction.atomic():
        match = (
            Match.objects.select_for_update(of=("self",))
            .select_related("need", "offer")
            .filter(pk=match_id, connected_at__isnull=False, connection_notified_at__isnull=True)
            .first()
        )
        if match is None:
            return 0
        sent = connection_notify(match)
        Match.objects.filter(pk=match.pk).update(connection_notified_at=timezone.now())
    return sent


# A task normally sends a connection's emails within seconds; the sweep leaves it that long before stepping in.
CONNECTION_NOTICE_GRACE = timedelta(minutes=2)


def connection_notice_sweep(*, batch: int = 100) -> int:
    """Send the emails of connections that are still waiting for them (mail server or broker down when they were
    made). Returns the connections notified; one that fails again is logged and left for the next sweep."""
    due = (
        Match.objects.filter(
            connected_at__isnull=False,
            connection_notified_at__isnull=True,
            connected_at__lte=timezone.now() - CONNECTION_NOTICE_GRACE,
        )
        .order_by("connected_at")
        .values_list("pk", flat=True)[:batch]
    )
    notified = 0
    for match_id in list(due):
        try:
            notified += connection_notice_send(match_id=match_id) > 0
        except Exception:
            logger.warning("The emails of connection %d could not be sent; will try again", match_id,
                           exc_info=True)  # fmt: skip
    return notified


def digest_collect(*, user: User, since) -> list[Match]:
    """New strong matches of the user's own published posts since `since` that their side has not answered yet
    (neither dismissed nor already expressed interest in)."""
    threshold = settings.MATCHING_STRONG_SCORE
    if user.role == Role.FOCAL_POINT and user.party_id:
        own_need = Q(need__party_id=user.party_id)
        own_offer = Q(offer__party_id=user.party_id)
    elif user.role == Role.PROVIDER and user.provider_id:
        own_need = Q(pk__in=[])
        own_offer = Q(offer__provider_id=user.provider_id)
    else:
        return []
    matches = list(
        Match.objects.active()
        .filter(score__gte=threshold, strong_at__gte=since)
        .filter((own_need & Q(need_interest=Interest.NONE)) | (own_offer & Q(offer_interest=Interest.NONE)))
        .filter(need__status="published", offer__status="published")
        .select_related("need", "offer")
        .order_by("-score")[:50]
    )
    for match in matches:
        own_is_need = (match.need.party_id == user.party_id) if user.party_id else False
        match.own_post = match.need if own_is_need else match.offer
    return matches


def digest_send_all(*, now=None) -> int:
    """Email every opted-in poster their new strong matches of the last day. Returns emails sent."""
    from .notifications import digest_send

    now = now or timezone.now()
    since = now - timedelta(days=1)
    sent = 0
    users = User.objects.filter(
        is_active=True, digest_opt_in=True, role__in=[Role.FOCAL_POINT, Role.PROVIDER]
    ).exclude(email="")
    for user in users.iterator():
        matches = digest_collect(user=user, since=since)
        if matches:
            sent += digest_send(user, matches)
    return sent
