"""Matching services: the hand-off from posts, running the engine, storing matches, interest and digests."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, When
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
        except Exception as error:
            # Never fail a focal point's request for a broker outage; the sweep will pick these up. One line:
            # through an outage every publication says it.
            logger.warning("Could not queue matching for %d posts; left for the sweep (%s: %s)", len(ids),
                           type(error).__name__, error)  # fmt: skip

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
    # (Not offer__provider: PostgreSQL locks no row on an outer join's nullable side; it is read below if any.)
    match = Match.objects.select_for_update().select_related("need", "offer").get(pk=match.pk)
    side = match_side_for_actor(actor=actor, match=match)
    if side is None:
        raise PermissionDenied(_("Only the Parties or providers of the two posts can answer a match."))
    published = Post.Status.PUBLISHED
    if not match.is_active or match.need.status != published or match.offer.status != published:
        raise MatchAnswerError(
            _(
                "This match is no longer open: one of its posts was withdrawn, closed or returned for changes, or a new ranking left it out."
            )
        )
    match.became_connection = False
    provider = match.offer.provider if match.offer.provider_id and interest == Interest.INTERESTED else None
    if match.connected_at is None and provider is not None and not provider.is_active:
        # Its users and tokens can no longer answer: an interest would wait for ever, and a connection made
        # with an answer given before would send the Party's contacts to an organisation the secretariat stopped.
        raise MatchAnswerError(
            _("%(provider)s was deactivated by the secretariat: it can no longer answer matches.")
            % {"provider": provider.short_name}
        )
    if match.connected_at is not None:
        if interest == Interest.DISMISSED:
            raise MatchAnswerError(
                _("This match is already a connection: you have been sent each other's contacts.")
            )
        return match
    if getattr(match, f"{side}_interest") == interest:
        # The same answer again (a second click, a client's retry): it keeps the time it was first given. A
        # new time moved an interest into a later stocktake period, and could make a need a gap after the fact.
        return match
    now = timezone.now()
    setattr(match, f"{side}_interest", interest)
    setattr(match, f"{side}_interest_at", now)
    became_connection = (
        match.need_interest == Interest.INTERESTED and match.offer_interest == Interest.INTERESTED
    )
    if became_connection:
        match.connected_at = now
        match.need_party_id, match.need_provider_id = match.need.party_id, match.need.provider_id
        match.offer_party_id, match.offer_provider_id = match.offer.party_id, match.offer.provider_id
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
    except Exception as error:
        logger.warning("Could not send or queue the emails of connection %d; left for the sweep (%s: %s)",
                       match_id, type(error).__name__, error)  # fmt: skip


def connection_notice_send(*, match_id: int) -> int:
    """Email both sides of a connection each other's contacts, once: each email is recorded as it goes
    (`send_once`), and the match is marked as notified once all went; a failure leaves it unmarked (the task
    retries, the sweep tries again) and sends only what did not go. Returns the emails sent."""
    from .notifications import connection_notify

    match = (
        Match.objects.select_related("need", "offer")
        .filter(
            pk=match_id,
            connected_at__isnull=False,
            connection_notified_at__isnull=True,
            is_active=True,
            need__status=Post.Status.PUBLISHED,
            offer__status=Post.Status.PUBLISHED,
        )
        # Not the contacts of a Party to a provider the secretariat stopped meanwhile.
        .exclude(offer__provider__is_active=False)
        .first()
    )
    if match is None:
        return 0
    # Each email in a transaction of its own (`send_once`), not all in one: a failure of the last recipient
    # would have undone the record of those already sent, and the retry sent them again.
    sent = connection_notify(match)
    Match.objects.filter(pk=match.pk, connection_notified_at__isnull=True).update(
        connection_notified_at=timezone.now()
    )
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
            # Not while a post left the list (taken back, withdrawn, closed) with its matches: "good news" about
            # a match nobody is shown. Owed again if it comes back.
            is_active=True,
            need__status=Post.Status.PUBLISHED,
            offer__status=Post.Status.PUBLISHED,
        )
        .exclude(offer__provider__is_active=False)
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


# --- the end of a connection ---------------------------------------------------------------------------------

# A post in one of these has left for good: a connection with it has ended, and the other side is told.
ENDED_STATUSES = (Post.Status.WITHDRAWN, Post.Status.CLOSED)


def connection_ended_queue(*, post: Post) -> None:
    """After the commit, have the other side of each of the post's connections told that it was withdrawn or
    closed (`connection_ended_send`). A broker away: the sweep sends it (`connection_ended_sweep`)."""
    ids = list(
        Match.objects.connections()
        .filter(Q(need_id=post.pk) | Q(offer_id=post.pk), end_notified_at__isnull=True)
        .values_list("pk", flat=True)
    )
    if ids:
        transaction.on_commit(lambda: _queue_connection_ended(ids), robust=True)


def _queue_connection_ended(match_ids: list[int]) -> None:
    from .tasks import notify_connection_ended

    try:
        for match_id in match_ids:
            notify_connection_ended.delay(match_id)
    except Exception as error:
        logger.warning("Could not queue the news of ended connections %s; left for the sweep (%s: %s)",
                       match_ids, type(error).__name__, error)  # fmt: skip


def connection_posters_fill(*, match_id: int | None = None) -> int:
    """Record the posters of the connections made without them (or of that one), by a process still on the code
    of before they were recorded (between an upgrade's `migrate` and its restart): each post's poster as it is
    now. The sweep runs it; the connections page lists a connection from then on. Returns the connections
    filled."""
    from django.db.models import OuterRef, Subquery

    def of(side: str, field: str) -> Subquery:
        return Subquery(Post.objects.filter(pk=OuterRef(f"{side}_id")).values(field)[:1])

    missing = Match.objects.connections().filter(need_party__isnull=True, need_provider__isnull=True)
    if match_id is not None:
        missing = missing.filter(pk=match_id)
    return missing.update(
        need_party_id=of("need", "party_id"),
        need_provider_id=of("need", "provider_id"),
        offer_party_id=of("offer", "party_id"),
        offer_provider_id=of("offer", "provider_id"),
    )


def connection_ended_send(*, match_id: int) -> int:
    """Email the side of a connection whose post is still there that the other post was withdrawn or closed,
    once (each email recorded as it goes, the match marked when all went; a failure leaves it for the retry or the
    sweep). When both posts have ended, nobody is left to tell. Returns the emails sent."""
    from .notifications import connection_ended_notify

    connection_posters_fill(match_id=match_id)  # none recorded: nobody would be told
    match = (
        Match.objects.connections()
        .select_related("need", "offer", "need_party", "need_provider", "offer_party", "offer_provider")
        .filter(pk=match_id, end_notified_at__isnull=True)
        .filter(Q(need__status__in=ENDED_STATUSES) | Q(offer__status__in=ENDED_STATUSES))
        .first()
    )
    if match is None:
        return 0
    sent = 0
    gone_side = "need" if match.need.status in ENDED_STATUSES else "offer"
    stays = "offer" if gone_side == "need" else "need"
    if getattr(match, stays).status not in ENDED_STATUSES:
        party, provider = getattr(match, f"{gone_side}_party"), getattr(match, f"{gone_side}_provider")
        sent = connection_ended_notify(
            match,
            gone=getattr(match, gone_side),
            own=getattr(match, stays),
            party_id=getattr(match, f"{stays}_party_id"),
            provider_id=getattr(match, f"{stays}_provider_id"),
            gone_poster=party or provider,
        )
    Match.objects.filter(pk=match.pk, end_notified_at__isnull=True).update(end_notified_at=timezone.now())
    return sent


def connection_ended_sweep(*, batch: int = 100) -> int:
    """Send the news of connections ended that are still waiting for it: a broker or mail server down when the
    post was withdrawn or closed, or a post that left without the post services (an import). Returns the
    connections dealt with; one that fails again is logged and left for the next sweep."""
    cut = timezone.now() - CONNECTION_NOTICE_GRACE
    due = (
        Match.objects.connections()
        .filter(end_notified_at__isnull=True)
        .filter(
            Q(need__status__in=ENDED_STATUSES, need__updated_at__lte=cut)
            | Q(offer__status__in=ENDED_STATUSES, offer__updated_at__lte=cut)
        )
        .order_by("connected_at")
        .values_list("pk", flat=True)[:batch]
    )
    done = 0
    for match_id in list(due):
        try:
            connection_ended_send(match_id=match_id)
            done += 1
        except Exception:
            logger.warning("The news of ended connection %d could not be sent; will try again", match_id,
                           exc_info=True)  # fmt: skip
    return done


# --- the daily digest --------------------------------------------------------------------------------------

# A worker stamps `strong_at` with its own clock before its transaction commits: a digest covers the matches
# that became strong up to this long before it runs, so that none is still invisible to it when it reads (those
# after go in the next digest; a match is never in two).
DIGEST_SETTLE = timedelta(minutes=2)
# What a user's first digest covers.
DIGEST_FIRST_PERIOD = timedelta(days=1)
DIGEST_MAX_MATCHES = 50


class DigestIncomplete(Exception):
    """Some users' digests could not be sent (they are logged); the others' were. A run again for the same
    `now` sends only those."""

    def __init__(self, *, sent: int, failed_user_ids: list[int]) -> None:
        super().__init__(f"{len(failed_user_ids)} digests could not be sent ({sent} emails were)")
        self.sent, self.failed_user_ids = sent, failed_user_ids


def digest_recipients() -> QuerySet[User]:
    """The users who get a digest: active focal points, and active users of an active provider (a deactivated
    one can no longer answer its matches), who opted in and have an email address."""
    return (
        User.objects.filter(is_active=True, digest_opt_in=True)
        .filter(Q(role=Role.FOCAL_POINT) | Q(role=Role.PROVIDER, provider__is_active=True))
        .exclude(email="")
    )


def _own_sides(user: User) -> tuple[Q, Q] | None:
    """(the matches of the user's own needs, those of its own offers) as conditions; None for a user with no
    posts of their own to hear of (inactive, not a poster, a deactivated provider's)."""
    if not user.is_active:
        return None
    if user.role == Role.FOCAL_POINT and user.party_id:
        return Q(need__party_id=user.party_id), Q(offer__party_id=user.party_id)
    if user.role == Role.PROVIDER and user.provider_id and user.provider.is_active:
        return Q(pk__in=[]), Q(offer__provider_id=user.provider_id)
    return None


def _with_own_post(matches: list[Match], user: User) -> list[Match]:
    """The matches, each with `own_post` (the user's) and `other_post`."""
    for match in matches:
        own_is_need = (match.need.party_id == user.party_id) if user.party_id else False
        match.own_post, match.other_post = (
            (match.need, match.offer) if own_is_need else (match.offer, match.need)
        )
    return matches


def digest_collect(
    *, user: User, since: datetime, until: datetime | None = None, limit: int = DIGEST_MAX_MATCHES
) -> list[Match]:
    """The strong matches of the user's own published posts that became strong after `since` (up to `until`,
    inclusive) and that their side has not answered yet (neither dismissed nor already expressed interest
    in), best first, at most `limit`."""
    if (own := _own_sides(user)) is None:
        return []
    own_need, own_offer = own
    period = Q(strong_at__gt=since) if until is None else Q(strong_at__gt=since, strong_at__lte=until)
    matches = list(
        Match.objects.active()
        .filter(period, score__gte=settings.MATCHING_STRONG_SCORE)
        .filter((own_need & Q(need_interest=Interest.NONE)) | (own_offer & Q(offer_interest=Interest.NONE)))
        .filter(need__status=Post.Status.PUBLISHED, offer__status=Post.Status.PUBLISHED)
        # Not an offer of a provider the secretariat deactivated: it can no longer answer.
        .exclude(offer__provider__is_active=False)
        .select_related("need", "offer")
        .order_by("-score", "id")[:limit]
    )
    return _with_own_post(matches, user)


def digest_awaiting(
    *, user: User, since: datetime, until: datetime, limit: int = DIGEST_MAX_MATCHES
) -> list[Match]:
    """The active matches of the user's own published posts whose other side expressed interest after `since`
    (up to `until`, inclusive) and that their side has not answered yet: a connection waits for them alone. Most
    recent interest first, at most `limit`."""
    if (own := _own_sides(user)) is None:
        return []
    own_need, own_offer = own
    need_waits = own_need & Q(
        need_interest=Interest.NONE,
        offer_interest=Interest.INTERESTED,
        offer_interest_at__gt=since,
        offer_interest_at__lte=until,
    )
    offer_waits = own_offer & Q(
        offer_interest=Interest.NONE,
        need_interest=Interest.INTERESTED,
        need_interest_at__gt=since,
        need_interest_at__lte=until,
    )
    matches = list(
        Match.objects.active()
        .filter(need_waits | offer_waits)
        .filter(need__status=Post.Status.PUBLISHED, offer__status=Post.Status.PUBLISHED)
        .exclude(offer__provider__is_active=False)
        .select_related("need__party", "need__provider", "offer__party", "offer__provider")
        # When the other side answered: the offer's for the matches of the user's needs, else the need's.
        .order_by(
            Case(
                When(need_interest=Interest.NONE, then=F("offer_interest_at")), default=F("need_interest_at")
            ).desc(),
            "id",
        )[:limit]
    )
    return _with_own_post(matches, user)


def _digest_since(user: User, until: datetime) -> datetime:
    """Where the user's next digest starts: where their last one ended (the first: a day before `until`)."""
    return user.digest_sent_through or until - DIGEST_FIRST_PERIOD


def digest_send_for_user(*, user_id: int, until: datetime) -> int:
    """Email the user the strong matches new since their last digest, up to `until`, and record that their
    digest covers up to `until`, in one transaction: a failure to send leaves the record as it was (the same
    matches go next time), and a run for an `until` already covered sends nothing. Returns the emails sent."""
    from .notifications import digest_send

    with transaction.atomic():
        # Locked: two runs at once (the beat task and an operator's command) cannot both send the same digest.
        user = (
            digest_recipients()
            .select_for_update(of=("self",))
            .select_related("provider")
            .filter(pk=user_id)
            .first()
        )
        if user is None:
            return 0
        since = _digest_since(user, until)
        if since >= until:
            return 0
        # One more than the email lists, to know whether it must point to the rest.
        matches = digest_collect(user=user, since=since, until=until, limit=DIGEST_MAX_MATCHES + 1)
        more = len(matches) > DIGEST_MAX_MATCHES
        matches = matches[:DIGEST_MAX_MATCHES]
        awaiting = digest_awaiting(user=user, since=since, until=until, limit=DIGEST_MAX_MATCHES + 1)
        more_awaiting = len(awaiting) > DIGEST_MAX_MATCHES
        awaiting = awaiting[:DIGEST_MAX_MATCHES]
        # A match in both lists is told once, among those awaiting an answer.
        matches = [m for m in matches if m.pk not in {a.pk for a in awaiting}]
        sent = (
            digest_send(user, matches, more=more, awaiting=awaiting, more_awaiting=more_awaiting)
            if matches or awaiting
            else 0
        )
        if (matches or awaiting) and not sent:
            return 0  # the backend took nothing: the same matches go next time
        User.objects.filter(pk=user.pk).update(digest_sent_through=until)
    return sent


def digest_plan(*, now: datetime | None = None) -> tuple[datetime, list[tuple[User, int]]]:
    """What a run now would send, without sending or recording anything: the period's end and each recipient
    with how many matches their digest would list (only those with some)."""
    until = (now or timezone.now()) - DIGEST_SETTLE
    plan = []
    for user in digest_recipients().select_related("provider").order_by("pk"):
        since = _digest_since(user, until)
        if since < until:
            strong = {m.pk for m in digest_collect(user=user, since=since, until=until)}
            awaiting = {m.pk for m in digest_awaiting(user=user, since=since, until=until)}
            if strong | awaiting:
                plan.append((user, len(strong | awaiting)))
    return until, plan


def digest_send_all(*, now: datetime | None = None) -> int:
    """Email every recipient the strong matches new since their last digest (the first: of the last day). Each
    user's digest is sent and recorded on its own, so one that fails does not hold up the others; they are
    logged, and DigestIncomplete is raised once the others are sent. Running it again for the same `now`
    sends only what failed. Returns the emails sent."""
    until = (now or timezone.now()) - DIGEST_SETTLE
    sent = 0
    failed = []
    for user_id in list(digest_recipients().order_by("pk").values_list("pk", flat=True)):
        try:
            sent += digest_send_for_user(user_id=user_id, until=until)
        except Exception:
            logger.warning("The digest of user %d could not be sent; will try again", user_id, exc_info=True)
            failed.append(user_id)
    if failed:
        raise DigestIncomplete(sent=sent, failed_user_ids=failed)
    return sent
