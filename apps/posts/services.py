"""Every write to a post goes through here: permission, allowed transition, history, matching hand-off.

Views, the API, the admin and the import call these functions and nothing else, so that the audit trail and
the matching queue cannot be bypassed.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.actors import PROVIDER_DEACTIVATED_MESSAGE, TAKE_DOWN_ACTIONS, Actor
from apps.accounts.models import Role, User
from apps.matching.services import connection_ended_queue, matching_enqueue, matching_retire

if TYPE_CHECKING:
    from apps.parties.models import SupportProvider

from .models import FocusAreaTerm, InstrumentTerm, Post, PostEvent, SectorTerm, SupportTypeTerm
from .post_data import DECLARATIONS, FieldError, PostData, has_visible_text
from .selectors import PLATFORM_EXPORT_ID, platform_post_number, post_by_export_id

logger = logging.getLogger(__name__)

Status = Post.Status

# Allowed transitions: action -> statuses it may start from.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submit": (Status.DRAFT, Status.RETURNED),
    # Taking a submission back from the moderation queue, to edit it before the secretariat decides (a typo seen
    # after submitting): the post is a draft again, and leaves the queue until it is submitted again.
    "recall": (Status.SUBMITTED,),
    "publish": (Status.SUBMITTED,),
    # Returning a published post takes the publication back (content the secretariat should not have let
    # through, a wrong Party): it leaves the public list and its matches, and its owner can fix and resubmit it.
    "return": (Status.SUBMITTED, Status.PUBLISHED),
    "close": (Status.PUBLISHED,),
    "withdraw": (Status.DRAFT, Status.SUBMITTED, Status.RETURNED, Status.PUBLISHED),
    "edit": (Status.DRAFT, Status.RETURNED, Status.PUBLISHED),
}
# Statuses in which the matching engine must (re)consider a post, or drop its matches.
MATCHING_STATUSES = (Status.PUBLISHED, Status.CLOSED, Status.WITHDRAWN)

M2M_FIELDS = {
    "support_types": SupportTypeTerm,
    "focus_areas": FocusAreaTerm,
    "sectors": SectorTerm,
    "instruments": InstrumentTerm,
}
SCALAR_FIELDS = (
    "kind",
    "title",
    "description",
    "language",
    "amount_usd",
    "eligible",
    "aims",
    "involves_iplc",
    "contact_name",
    "contact_email",
)


class PostTransitionError(Exception):
    """The post is not in a status that allows the requested action."""

    def __init__(self, action: str, status: str):
        self.action = action
        self.status = status
        message = _REFUSED.get((action, status)) or _("The post's status does not allow this.")
        super().__init__(str(message))


# One whole sentence per action and status, so that a translation can agree its words (and the message is
# translated when it is raised, not when this module was imported). "draft" is no action: it is where the
# import would take a post back to, which no step of the life cycle does.
_REFUSED = {
    ("submit", Status.SUBMITTED): gettext_lazy("A submitted post cannot be submitted again."),
    ("submit", Status.PUBLISHED): gettext_lazy("A published post cannot be submitted."),
    ("submit", Status.CLOSED): gettext_lazy("A closed post cannot be submitted."),
    ("submit", Status.WITHDRAWN): gettext_lazy("A withdrawn post cannot be submitted."),
    ("recall", Status.DRAFT): gettext_lazy("A draft post is not in review: there is nothing to take back."),
    ("recall", Status.RETURNED): gettext_lazy(
        "A returned post is no longer in review: edit it and submit it again."
    ),
    ("recall", Status.PUBLISHED): gettext_lazy(
        "A published post cannot be taken back from review: the secretariat has already published it."
    ),
    ("recall", Status.CLOSED): gettext_lazy("A closed post cannot be taken back from review."),
    ("recall", Status.WITHDRAWN): gettext_lazy("A withdrawn post cannot be taken back from review."),
    ("publish", Status.DRAFT): gettext_lazy("A draft post cannot be published."),
    ("publish", Status.PUBLISHED): gettext_lazy("A published post cannot be published again."),
    ("publish", Status.RETURNED): gettext_lazy("A returned post cannot be published."),
    ("publish", Status.CLOSED): gettext_lazy("A closed post cannot be published."),
    ("publish", Status.WITHDRAWN): gettext_lazy("A withdrawn post cannot be published."),
    ("return", Status.DRAFT): gettext_lazy("A draft post cannot be returned."),
    ("return", Status.RETURNED): gettext_lazy("A returned post cannot be returned again."),
    ("return", Status.CLOSED): gettext_lazy("A closed post cannot be returned."),
    ("return", Status.WITHDRAWN): gettext_lazy("A withdrawn post cannot be returned."),
    ("close", Status.DRAFT): gettext_lazy("A draft post cannot be closed."),
    ("close", Status.SUBMITTED): gettext_lazy("A submitted post cannot be closed."),
    ("close", Status.RETURNED): gettext_lazy("A returned post cannot be closed."),
    ("close", Status.CLOSED): gettext_lazy("A closed post cannot be closed again."),
    ("close", Status.WITHDRAWN): gettext_lazy("A withdrawn post cannot be closed."),
    ("withdraw", Status.CLOSED): gettext_lazy("A closed post cannot be withdrawn."),
    ("withdraw", Status.WITHDRAWN): gettext_lazy("A withdrawn post cannot be withdrawn again."),
    ("edit", Status.SUBMITTED): gettext_lazy(
        "A submitted post cannot be edited: take it back from review first."
    ),
    ("edit", Status.CLOSED): gettext_lazy("A closed post cannot be edited."),
    ("edit", Status.WITHDRAWN): gettext_lazy("A withdrawn post cannot be edited."),
    ("draft", Status.SUBMITTED): gettext_lazy("A submitted post cannot go back to draft."),
    ("draft", Status.PUBLISHED): gettext_lazy("A published post cannot go back to draft."),
    ("draft", Status.RETURNED): gettext_lazy("A returned post cannot go back to draft."),
    ("draft", Status.CLOSED): gettext_lazy("A closed post cannot go back to draft."),
    ("draft", Status.WITHDRAWN): gettext_lazy("A withdrawn post cannot go back to draft."),
}


def post_can_manage(*, actor: Actor, post: Post, action: str | None = None) -> bool:
    """Whether the actor may edit, submit, close or withdraw the post (`action`, or at least one of them when
    None): its own Party or provider, or staff. A deactivated provider may only take its posts down. Taking a
    submission back from review is its poster's alone: the secretariat decides on it, publishing it or returning
    it with a reason (which its poster is told)."""
    if action == "recall":
        return (
            not actor.is_secretariat
            and actor.can_post
            and actor.acts_for(party_id=post.party_id, provider_id=post.provider_id)
        )
    if actor.is_secretariat:
        return True
    if actor.is_deactivated_provider and (action is None or action in TAKE_DOWN_ACTIONS):
        return actor.acts_for(party_id=post.party_id, provider_id=post.provider_id)
    return actor.can_post and actor.acts_for(party_id=post.party_id, provider_id=post.provider_id)


def _require_manage(actor: Actor, post: Post, action: str | None = None) -> None:
    if action == "recall" and actor.is_secretariat:
        raise PermissionDenied(
            _("Only its poster takes a post back from review: publish it, or return it with a reason.")
        )
    if not post_can_manage(actor=actor, post=post, action=action):
        if actor.is_deactivated_provider and post_can_manage(actor=actor, post=post):
            raise PermissionDenied(PROVIDER_DEACTIVATED_MESSAGE)
        raise PermissionDenied(_("You may only act on your own Party's or organisation's posts."))


def _require_transition(action: str, post: Post) -> None:
    if post.status not in TRANSITIONS[action]:
        raise PostTransitionError(action, post.status)


def post_require_poster(*, actor: Actor, data: PostData) -> None:
    """Refuse (PermissionDenied) a post the actor may not make for the data's Party or provider."""
    # Checked for every actor, the secretariat included: the database would refuse the row anyway, and a
    # clear refusal beats an IntegrityError in the middle of an import.
    if data.provider is not None and data.kind != Post.Kind.OFFER:
        raise PermissionDenied(_("Support providers post offers only."))
    if actor.is_secretariat:
        return
    if not actor.can_post:
        raise PermissionDenied(_("Only focal points and support providers can create posts."))
    if not actor.acts_for(
        party_id=data.party.pk if data.party else None,
        provider_id=data.provider.pk if data.provider else None,
    ):
        raise PermissionDenied(_("You may only post for your own Party or organisation."))


# Changes after which a post's matches are retired at once, before it is matched again: a need turned offer (or
# back) is on the other side now, and its matches would pair two needs; a post moved to another Party or
# provider (the secretariat) had matches made, and answered, for the old poster (a need moved to the offer's
# Party paired two posts of one Party, which that Party could answer).
REMATCHED_FROM_SCRATCH = frozenset({"kind", "party_id", "provider_id"})


def _record(
    post: Post, *, actor: Actor, action: str, from_status: str = "", changes=None, note: str = ""
) -> None:
    PostEvent.objects.create(
        post=post,
        action=action,
        from_status=from_status,
        to_status=post.status,
        actor=actor.user,
        actor_label=actor.label,
        actor_role=actor.role,
        changes=changes or {},
        note=note,
    )


def _lock(post: Post) -> Post:
    """Re-read the post under a row lock so two concurrent transitions cannot both succeed."""
    return Post.objects.select_for_update().get(pk=post.pk)


def _json_value(value):
    if isinstance(value, Decimal):
        return str(value)
    return value


def _apply_data(post: Post, data: PostData) -> dict:
    """Copy the data's scalar fields onto the post; return {field: [old, new]} for what changed."""
    changes = {}
    new_values = {name: getattr(data, name) for name in SCALAR_FIELDS}
    new_values["party_id"] = data.party.pk if data.party else None
    new_values["provider_id"] = data.provider.pk if data.provider else None
    for key in DECLARATIONS:
        new_values[f"declares_{key}"] = bool(data.declarations.get(key, False))
    for name, value in new_values.items():
        old = getattr(post, name)
        if old != value:
            changes[name] = [_json_value(old), _json_value(value)]
            setattr(post, name, value)
    return changes


def _set_relations(post: Post, data: PostData, *, created: bool) -> dict:
    changes = {}
    for name in M2M_FIELDS:
        new = list(getattr(data, name))
        old = [] if created else sorted(getattr(post, name).values_list("pk", flat=True))
        if sorted(new) != old:
            getattr(post, name).set(new)
            changes[name] = [old, new]
    new_partners = sorted(p.pk for p in data.partner_parties)
    old_partners = [] if created else sorted(post.partner_parties.values_list("pk", flat=True))
    if new_partners != old_partners:
        post.partner_parties.set(new_partners)
        changes["partner_parties"] = [old_partners, new_partners]
    return changes


def post_require_provider_takes_posts(provider: SupportProvider | None, post: Post | None = None) -> None:
    """A deactivated support provider takes no new posts, nor a post moved to it from another Party or provider
    (`post`: the post as stored); its existing ones stay, and may be updated."""
    if provider is None or provider.is_active or (post is not None and post.provider_id == provider.pk):
        return
    raise PermissionDenied(
        _("%(provider)s is deactivated: it takes no new posts. Reactivate it first.")
        % {"provider": provider.short_name}
    )


def _require_provider_publishes(provider: SupportProvider | None) -> None:
    """A deactivated support provider's posts are not published (nor published again) until it is reactivated:
    its posts stay where they are, and may be withdrawn or closed."""
    if provider is not None and not provider.is_active:
        raise PermissionDenied(
            _("%(provider)s is deactivated: its posts are not published. Reactivate it first.")
            % {"provider": provider.short_name}
        )


@transaction.atomic
def post_create(*, actor: Actor, data: PostData) -> Post:
    """Create a draft (or, for the secretariat, a post in the status the data asks for)."""
    post_require_poster(actor=actor, data=data)
    post_require_provider_takes_posts(data.provider)
    status = Status.DRAFT
    if actor.is_secretariat and data.status:
        status = data.status
    post = Post(status=status, owner=actor.user, external_id=data.external_id)
    _apply_data(post, data)
    _stamp(post, status, timezone.now(), fill_skipped=True)
    post.save()
    _set_relations(post, data, created=True)
    _record(post, actor=actor, action=PostEvent.Action.CREATED)
    if status in MATCHING_STATUSES:
        _queue_matching([post])
    return post


_STATUS_TIMESTAMP = {
    Status.SUBMITTED: "submitted_at",
    Status.PUBLISHED: "published_at",
    Status.RETURNED: "returned_at",
    Status.CLOSED: "closed_at",
    Status.WITHDRAWN: "withdrawn_at",
}


def _stamp(post: Post, status: str, now, *, fill_skipped: bool = False) -> None:
    """Set the timestamp of the move into `status`.

    A resubmitted post gets a new `submitted_at`, so it joins the moderation queue (oldest first) at the
    time it came back. With `fill_skipped` (a post created or imported directly in a later status) the
    steps it skipped get the same time, so the stocktake counts an imported published post as published.
    """
    name = _STATUS_TIMESTAMP.get(status)
    if name:
        setattr(post, name, now)
    if fill_skipped:
        if status in (Status.PUBLISHED, Status.RETURNED, Status.CLOSED) and post.submitted_at is None:
            post.submitted_at = now
        if status == Status.CLOSED and post.published_at is None:
            post.published_at = now


class PostEditConflict(Exception):
    """The post changed after the editor opened it: saving their form would silently undo that change."""

    def __init__(self, post: Post, actor: Actor | None = None):
        self.post = post
        # The last change of the post itself (a review of its changes leaves it as it is).
        last = post.events.exclude(action=PostEvent.Action.REVIEWED).order_by("-created_at", "-id").first()
        who = last.actor_label if last is not None else None
        # Their own change: the same account, and not a token it issued (recorded under the issuer's account,
        # with the token's own label).
        if (last is not None and actor is not None and actor.user is not None and last.actor_id == actor.user.pk
                and last.actor_label == actor.label):  # fmt: skip
            # Their own change, from another tab or window: "fp_ken changed this post" named them to themselves.
            message = _(
                "You changed this post in another tab or window after you opened this form. These changes are "
                "not saved yet: check the post as it is now, then save again."
            )
        elif who:
            message = _(
                "%(who)s changed this post after you opened it. Your changes are not saved yet: check the post "
                "as it is now, then save again."
            ) % {"who": who}
        else:
            message = _(
                "This post was changed after you opened it. Your changes are not saved yet: check the post as it "
                "is now, then save again."
            )
        super().__init__(str(message))


@transaction.atomic
def post_update(*, actor: Actor, post: Post, data: PostData, opened_at: datetime | None = None) -> Post:
    """Edit a draft, a returned post or a published one (which stays published and is matched again).

    `opened_at`: the post's `updated_at` when the editor's form was filled; if it has changed since (another
    editor, the secretariat, an import), PostEditConflict rather than overwrite that change with the form's
    older values."""
    post = _lock(post)
    _require_manage(actor, post, "edit")
    _require_transition("edit", post)
    if opened_at is not None and post.updated_at != opened_at:
        raise PostEditConflict(post, actor)
    if not actor.is_secretariat:
        # The poster cannot be moved to another Party or provider by editing.
        data.party, data.provider = post.party, post.provider
    # Also refuses turning a provider's offer into a need, which the database constraint would reject.
    post_require_poster(actor=actor, data=data)
    post_require_provider_takes_posts(data.provider, post)
    changes = _apply_data(post, data)
    changes.update(_set_relations(post, data, created=False))
    if changes:
        _mark_changed_since_review(post, actor)
        post.save()
        _record(post, actor=actor, action=PostEvent.Action.UPDATED, from_status=post.status, changes=changes)
        if changes.keys() & REMATCHED_FROM_SCRATCH:
            matching_retire(post_ids=[post.pk])
        if post.status == Status.PUBLISHED:
            _queue_matching([post])
    return post


def _mark_changed_since_review(post: Post, actor: Actor) -> None:
    """A published post changed by its poster (the web, the API, an import) waits for the secretariat's look;
    the secretariat's own edits are reviewed by being made."""
    if post.status == Status.PUBLISHED and not actor.is_secretariat and post.changed_since_review_at is None:
        post.changed_since_review_at = timezone.now()


@transaction.atomic
def post_mark_reviewed(*, actor: Actor, post: Post, seen_at: datetime | None = None) -> Post:
    """The secretariat has looked at the changes made to a published post since its review (the history shows
    them): the post leaves the list of changed posts, and the history records the review.

    `seen_at`: when the secretariat was shown the post; a change since then is one it has not seen, and the
    post stays in the list."""
    if not actor.is_secretariat:
        raise PermissionDenied(_("Only the secretariat reviews posts."))
    post = _lock(post)
    if post.changed_since_review_at is None:
        raise ValueError(_("It has no change waiting for review."))
    if (
        seen_at is not None
        and post.events.filter(action=PostEvent.Action.UPDATED, created_at__gt=seen_at)
        .exclude(actor_role=Role.SECRETARIAT)  # the secretariat's own edits are reviewed by being made
        .exists()
    ):
        raise ValueError(_("It changed again after the list was shown: open it to see the change."))
    post.changed_since_review_at = None
    post.save(update_fields=["changed_since_review_at"])
    _record(post, actor=actor, action=PostEvent.Action.REVIEWED, from_status=post.status)
    return post


def _transition(
    *,
    actor: Actor,
    post: Post,
    action: str,
    to_status: str,
    event: str,
    staff_only: bool = False,
    opened_at: datetime | None = None,
    seen_at: datetime | None = None,
    **fields,
) -> Post:
    """`opened_at`: as `post_update`'s, the post's `updated_at` when the caller read it (the API's If-Match).
    `seen_at`: when the secretariat was shown the submitted post it decides on; a submission since then (its
    poster took it back, changed it and submitted it again) is one it has not read, and the decision is refused."""
    post = _lock(post)
    if staff_only:
        if not actor.is_secretariat:
            raise PermissionDenied(_("Only the secretariat moderates posts."))
    else:
        _require_manage(actor, post, action)
    _require_transition(action, post)
    if opened_at is not None and post.updated_at != opened_at:
        raise PostEditConflict(post, actor)
    if (
        seen_at is not None
        and post.status == Status.SUBMITTED
        and post.submitted_at is not None
        and post.submitted_at > seen_at
    ):
        raise ValueError(
            _(
                "Its poster took it back and submitted it again after this page was shown: read it again first."
            )
        )
    if to_status == Status.PUBLISHED:
        _require_provider_publishes(post.provider)
    from_status = post.status
    post.status = to_status
    for name, value in fields.items():
        setattr(post, name, value)
    if from_status == Status.PUBLISHED and to_status == Status.RETURNED:
        post.published_at = None  # taken back: see post_return
    # Published again after a review, or off the platform: nothing is left to review after the fact.
    post.changed_since_review_at = None
    _stamp(post, to_status, timezone.now())
    post.save()
    _record(post, actor=actor, action=event, from_status=from_status, note=next(iter(fields.values()), ""))
    if from_status == Status.PUBLISHED and to_status != Status.PUBLISHED:
        matching_retire(post_ids=[post.pk])
    if to_status in (Status.WITHDRAWN, Status.CLOSED):
        connection_ended_queue(post=post)  # the other side of each of its connections is told
    if to_status in MATCHING_STATUSES or from_status == Status.PUBLISHED:
        # Also a post taken back to its owner: the workers drop it from their indexes when they match it.
        _queue_matching([post])
    return post


@transaction.atomic
def post_submit(*, actor: Actor, post: Post, opened_at: datetime | None = None) -> Post:
    return _transition(
        actor=actor,
        post=post,
        action="submit",
        to_status=Status.SUBMITTED,
        event="submitted",
        opened_at=opened_at,
    )


@transaction.atomic
def post_recall(*, actor: Actor, post: Post, opened_at: datetime | None = None) -> Post:
    """Take a submitted post back from the moderation queue: it is a draft again, to edit and submit again. Under
    the post's row lock, so that of the owner's recall and the secretariat's decision made at the same moment,
    the second finds the post moved on (`PostTransitionError`)."""
    return _transition(
        actor=actor,
        post=post,
        action="recall",
        to_status=Status.DRAFT,
        event="recalled",
        opened_at=opened_at,
    )


@transaction.atomic
def post_publish(*, actor: Actor, post: Post, seen_at: datetime | None = None) -> Post:
    """`seen_at`: when the secretariat was shown the post (`_transition`): a submission since is refused."""
    post = _transition(
        actor=actor,
        post=post,
        action="publish",
        to_status=Status.PUBLISHED,
        event="published",
        staff_only=True,
        seen_at=seen_at,
    )
    _notify_posters(post.pk, "published")
    return post


@transaction.atomic
def post_return(*, actor: Actor, post: Post, reason: str, seen_at: datetime | None = None) -> Post:
    """Return a submitted post to its owner with the reason, or take back a published one the same way.

    A post taken back leaves the public list, and its matches are retired (as a withdrawal's are); its
    `published_at` is cleared, so the stocktake counts it from its next publication, if any, and never as open
    meanwhile (its history keeps the first). Partners' syncs learn of it from the removed-posts feed
    (`post_was_published`)."""
    if not has_visible_text(reason):
        raise ValueError(_("Give the reason for returning the post, so the owner knows what to change."))
    post = _transition(
        actor=actor,
        post=post,
        action="return",
        to_status=Status.RETURNED,
        event="returned",
        staff_only=True,
        seen_at=seen_at,
        return_reason=reason.strip(),
    )
    _notify_posters(post.pk, "returned")
    return post


# A history entry out of the published list: a post that is not published now was published if it has one (its
# publication time is cleared when the secretariat takes the publication back). Few entries: the removed-posts
# feed reads them all (into the list as well, it read the whole history: 0.25 s a page at 130k entries).
PUBLISHED_EVENT = Q(from_status=Status.PUBLISHED)


def post_was_published(post: Post) -> bool:
    """Whether the post has ever been published (it may have been taken back since: `post_return`). For a post
    that is published now: True (its `published_at`)."""
    return post.published_at is not None or post.events.filter(PUBLISHED_EVENT).exists()


def _notify_posters(post_id: int, event: str) -> None:
    """After the commit, the email of a moderation decision, by a task; while the broker is down, sent at once
    (`robust`: a failure is logged, never the secretariat's)."""

    def send() -> None:
        from .notifications import moderation_notify
        from .tasks import notify_moderation

        try:
            notify_moderation.delay(post_id, event)
        except Exception as error:
            logger.warning("Could not queue the %s email of post %d (%s: %s); sending it now",
                           event, post_id, type(error).__name__, error)  # fmt: skip
            moderation_notify(post_id=post_id, event=event)

    transaction.on_commit(send, robust=True)


@transaction.atomic
def post_close(*, actor: Actor, post: Post, outcome: str, opened_at: datetime | None = None) -> Post:
    if not has_visible_text(outcome):
        raise ValueError(_("Describe the outcome: how was the need met or the offer taken up?"))
    return _transition(
        actor=actor,
        post=post,
        action="close",
        to_status=Status.CLOSED,
        event="closed",
        opened_at=opened_at,
        outcome=outcome.strip(),
    )


@transaction.atomic
def post_withdraw(*, actor: Actor, post: Post, opened_at: datetime | None = None) -> Post:
    return _transition(
        actor=actor,
        post=post,
        action="withdraw",
        to_status=Status.WITHDRAWN,
        event="withdrawn",
        opened_at=opened_at,
    )


# What a person's erased name or address reads as in the posts' history: the entry still says that the contact was
# changed then, without saying to whom (stored data, like the history's other values: not translated).
ERASED_VALUE = "[erased]"
CONTACT_FIELDS = ("contact_name", "contact_email")


@transaction.atomic
def post_person_erase(*, actor: Actor, person: User, label: str) -> int:
    """Erase a person from the posts, at their request (`accounts.services.user_anonymise`): their address, and
    the name given with it, from every post's contact; their name from the contact of the posts of their Party or
    provider and of those they made; both from the history's changes of these fields (their name also from the
    history of a post that gave their address); and their user name, which
    the history names them by, becomes `label`. Call it before the user's own row is changed (it reads the
    person's email, name and user name). The posts keep everything else: status, matches and the stocktake's
    figures are as before, and each one's history records the erasure, without the values.

    Returns the posts whose contact was erased."""
    if not actor.is_secretariat:
        raise PermissionDenied(_("Only the secretariat erases a person's data."))
    email = person.email.strip().lower()
    name = " ".join(person.get_full_name().split()).lower()
    own = Q(owner_id=person.pk)
    if person.party_id:
        own |= Q(party_id=person.party_id)
    if person.provider_id:
        own |= Q(provider_id=person.provider_id)

    def same(value, wanted: str) -> bool:
        return bool(wanted) and isinstance(value, str) and " ".join(value.split()).lower() == wanted

    candidates = Q(pk__in=[])
    if email:
        candidates |= Q(contact_email__iexact=email)
    if name:
        candidates |= own & ~Q(contact_name="")
    erased = 0
    gave_address = set()  # the posts whose contact was her address
    for post in Post.objects.select_for_update().filter(candidates).order_by("pk"):
        changes = {}
        if same(post.contact_email, email):
            gave_address.add(post.pk)
            # The name given with the person's own address is theirs too.
            changes = {field: [ERASED_VALUE, ""] for field in CONTACT_FIELDS if getattr(post, field)}
        elif same(post.contact_name, name):
            changes = {"contact_name": [ERASED_VALUE, ""]}
        if not changes:
            continue
        for field in changes:
            setattr(post, field, "")
        # updated_at moves: an API mirror syncing with `updated_since` takes the erasure too, and an edit form
        # opened before it is refused (`post_update`'s conflict) rather than putting the contact back.
        post.save(update_fields=[*changes, "updated_at"])
        _record(
            post,
            actor=actor,
            action=PostEvent.Action.UPDATED,
            from_status=post.status,
            changes=changes,
            note=_("Contact details erased at the person's request."),
        )
        erased += 1

    # The history: the values the person's contact had (their address, with the name beside it in the same
    # entry; their name alone on the posts of their own Party or provider, and on those that gave their address),
    # and the user name their entries show.
    history = list(
        PostEvent.objects.select_for_update()
        .filter(Q(changes__has_key="contact_email") | Q(changes__has_key="contact_name"))
        .only("pk", "post_id", "changes")
    )
    own_posts = (
        set(
            Post.objects.filter(own, pk__in={event.post_id for event in history}).values_list("pk", flat=True)
        )
        if name
        else set()
    )

    def values(event, field: str) -> list:
        value = event.changes.get(field)
        return value if isinstance(value, list) else []

    # Her name is hers too on a post that gave her address, in an entry that changed the name alone (another
    # Party's post, whose history its own people read).
    if name and email:
        own_posts |= {e.post_id for e in history if any(same(v, email) for v in values(e, "contact_email"))}
        own_posts |= gave_address
    for event in history:
        emails, names = values(event, "contact_email"), values(event, "contact_name")
        touched = False
        for i, value in enumerate(emails):
            if same(value, email):
                emails[i], touched = ERASED_VALUE, True
                if i < len(names) and names[i]:
                    names[i] = ERASED_VALUE
        for i, value in enumerate(names):
            if event.post_id in own_posts and same(value, name):
                names[i], touched = ERASED_VALUE, True
        if touched:
            PostEvent.objects.filter(pk=event.pk).update(changes=event.changes)
    PostEvent.objects.filter(actor_id=person.pk, actor_label=person.get_username()).update(actor_label=label)
    return erased


def _queue_matching(posts: Iterable[Post]) -> None:
    posts = list(posts)
    ids = [p.pk for p in posts]
    Post.objects.filter(pk__in=ids).update(matching_pending=True)
    # Keep the caller's objects in step with the row, so the returned post does not say "not pending".
    for post in posts:
        post.matching_pending = True
    matching_enqueue(post_ids=ids)


# --- bulk import -------------------------------------------------------------------------------------------

IMPORT_CHUNK_SIZE = 500


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


class PostImportError(ValueError):
    """Items an import refuses, each as (its position in the items from 0, FieldError); nothing was written.

    Each error's `code` says what kind of refusal it is: `permission_denied`, `invalid_transition` (a step the
    life cycle does not allow), or bad input (`invalid`, `unknown`, `duplicate`).
    """

    def __init__(self, errors: list[tuple[int, FieldError]]):
        super().__init__(
            "; ".join(f"item {index}: {error.field}: {error.message}" for index, error in errors)
        )
        self.errors = errors


def post_import(
    *,
    actor: Actor,
    items: Iterable[PostData],
    chunk_size: int = IMPORT_CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Create or update posts by external_id, all in one transaction (the caller validated every item first).

    Works in chunks with bulk queries so that 100,000 posts import in minutes, not hours; `items` may be a
    generator, so the whole file is never held in memory (only the set of external ids seen, to refuse a
    duplicate). Matching is queued once per chunk, so no task ever carries 100,000 ids.

    Each item is checked as `post_import_check` does, again under the rows' locks: the database may have
    changed since the caller checked. Once an item is refused nothing more is written, but the remaining items
    are still checked, and PostImportError lists every refusal; then nothing is written at all.
    """
    result = ImportResult()
    seen: set[str] = set()
    errors: list[tuple[int, FieldError]] = []
    start = 0
    with transaction.atomic():
        for chunk in _chunks(items, chunk_size):
            for position, data in enumerate(chunk, start):
                if not data.external_id:
                    continue
                if data.external_id in seen:
                    message = (
                        _("The external_id %r appears more than once in this import.") % data.external_id
                    )
                    errors.append((position, FieldError("external_id", message, "duplicate")))
                seen.add(data.external_id)
            existing = post_by_export_id([d.external_id for d in chunk if d.external_id], lock=True)
            current = _current_relations([p.pk for p in existing.values()])
            errors.extend(_import_problems(actor, chunk, existing, current, start=start))
            if not errors:
                _import_chunk(actor, chunk, existing, current, result)
                if progress:
                    progress(result.total)
            start += len(chunk)
        if errors:
            raise PostImportError(sorted(errors, key=lambda item: item[0]))
    return result


def post_import_check(*, actor: Actor, items: Sequence[PostData]) -> list[tuple[int, FieldError]]:
    """What `post_import` would refuse in these items (a chunk of them) from the database as it is now: the
    actor's rights on the poster and on the posts their external ids name, and each status against the life
    cycle. As (position in `items`, FieldError), in order. Duplicates within an import are the caller's to
    find (it knows its lines or indexes). Two queries, plus a few for the rare item that needs them."""
    existing = post_by_export_id(d.external_id for d in items if d.external_id)
    current = None
    if not actor.is_secretariat:
        # Whether an item edits its post matters only where the post's status forbids editing.
        current = _current_relations([p.pk for p in existing.values() if p.status not in TRANSITIONS["edit"]])
    return _import_problems(actor, items, existing, current)


# The life-cycle action that moves a post into each status (none takes it back to draft).
_ACTION_INTO = {
    Status.SUBMITTED: "submit",
    Status.PUBLISHED: "publish",
    Status.RETURNED: "return",
    Status.CLOSED: "close",
    Status.WITHDRAWN: "withdraw",
}


def _import_status(actor: Actor, wanted: str | None, post: Post | None) -> str:
    """The status an imported item puts its post in, or an exception if the life cycle does not allow it.

    An item without a status leaves an existing post's status as it is, and so does a status the post has moved
    past (`_STAGE`); a new post is published when the secretariat imports it, a draft otherwise
    (docs/FORMATS.md). A change of status is a step of the life cycle,
    as the services above take it (TRANSITIONS); closing and returning need an outcome or a reason, which the
    import format does not carry, so an import never closes or returns a post. Raises PermissionDenied,
    PostTransitionError or ValueError.
    """
    current = post.status if post is not None else None
    if wanted is None:
        return current or (Status.PUBLISHED if actor.is_secretariat else Status.DRAFT)
    if wanted == current:
        return wanted
    if wanted == Status.RETURNED:
        raise ValueError(
            _("An import cannot return a post: return it from the moderation queue, with a reason.")
        )
    if current is not None and _STAGE[wanted] < _STAGE[current]:
        # A status the post has moved past in the platform (submitted, and the secretariat has published it;
        # published, and it was withdrawn): the partner's file is behind, not asking to go back, which no step
        # of the life cycle allows anyway. Refusing it made an unchanged re-sync fail whole after one decision.
        return current
    if (
        wanted == Status.PUBLISHED
        and current in (Status.RETURNED, Status.SUBMITTED)
        and post_was_published(post)
    ):
        # Published, then taken back by the secretariat (and perhaps resubmitted since): the file is behind that
        # decision too. Publishing it again is the secretariat's, in moderation, not an import's.
        return current
    if wanted == Status.PUBLISHED and not actor.is_secretariat:
        raise PermissionDenied(_("Only the secretariat imports posts as published."))
    if current is not None:
        action = _ACTION_INTO.get(wanted, "draft")
        if current not in TRANSITIONS.get(action, ()):
            raise PostTransitionError(action, current)
    if wanted == Status.CLOSED:
        raise ValueError(_("An import cannot close a post: close it in the platform, with its outcome."))
    if current is None and wanted == Status.WITHDRAWN and not actor.is_secretariat:
        raise ValueError(_("A new post cannot be imported as withdrawn: import it first, then withdraw it."))
    return wanted


# How far along the life cycle each status is: an import leaves a post that is further along than its file says
# where it is (`_import_status`). Returned is a turn of moderation, as far along as submitted.
_STAGE = {
    Status.DRAFT: 0,
    Status.SUBMITTED: 1,
    Status.RETURNED: 1,
    Status.PUBLISHED: 2,
    Status.CLOSED: 3,
    Status.WITHDRAWN: 3,
}

_REFUSAL_CODES = (
    (PermissionDenied, "permission_denied"),
    (PostTransitionError, "invalid_transition"),
    (ValueError, "invalid"),
)


def _refusal(field: str, error: Exception) -> FieldError:
    code = next(code for kind, code in _REFUSAL_CODES if isinstance(error, kind))
    return FieldError(field, str(error), code)


def _import_problems(
    actor: Actor,
    items: Sequence[PostData],
    existing: dict[str, Post],
    current: dict[str, dict[int, list]] | None,
    *,
    start: int = 0,
) -> list[tuple[int, FieldError]]:
    """Every refusal of these items, as (position from `start`, FieldError). `current`: the posts' relations
    (`_current_relations`), at least of those whose status forbids editing; None for the secretariat."""
    owned_elsewhere = _platform_ids_taken(items, existing)
    problems = []
    for position, data in enumerate(items, start):
        post = existing.get(data.external_id) if data.external_id else None
        try:
            post_require_poster(actor=actor, data=data)
        except PermissionDenied as error:
            problems.append((position, _refusal("provider" if data.provider else "party", error)))
        try:
            post_require_provider_takes_posts(data.provider, post)
        except PermissionDenied as error:
            problems.append((position, _refusal("provider", error)))
        if post is None and data.external_id in owned_elsewhere:
            named = owned_elsewhere[data.external_id]
            if named.status == Status.PUBLISHED or post_can_manage(actor=actor, post=named):
                problems.append((position, _platform_id_error(actor, data.external_id, owned_elsewhere)))
                continue
            # Another Party's unpublished post: answered as a number with no post (below), as its pages are.
        platform_name = PLATFORM_EXPORT_ID.fullmatch(data.external_id or "")
        if platform_name and (
            post is None or (post.status != Status.PUBLISHED and not post_can_manage(actor=actor, post=post))
        ):
            # Another Party's unpublished post answers as a number with no post: the refusal must not tell
            # that it exists (as its page and its write addresses do not).
            message = _("%(id)s names a post made in the platform, and there is none by that number.") % {
                "id": data.external_id
            }
            problems.append((position, FieldError("external_id", message, "unknown")))
            continue
        if post is not None and not post_can_manage(actor=actor, post=post):
            if post.status == Status.PUBLISHED:  # a post anyone may see: say whose it is
                message = _("This external_id belongs to a post of another Party or provider.")
                problems.append((position, FieldError("external_id", message, "permission_denied")))
            else:
                # Not shown to the caller: the refusal says no more than that the id is in use (external ids are
                # one namespace), as creating a post with it does.
                message = _("This external_id is in use: external ids are shared by every Party and provider, so "
                            "prefix yours with your code.")  # fmt: skip
                problems.append((position, FieldError("external_id", message, "unique")))
            continue
        try:
            status = _import_status(actor, data.status, post)
            if status == Status.PUBLISHED and post is not None and post.status != Status.PUBLISHED:
                # (A new post of a deactivated provider is refused on its provider already.)
                _require_provider_publishes(data.provider)
        except (PermissionDenied, PostTransitionError, ValueError) as error:
            problems.append((position, _refusal("status", error)))
        if post is not None and not actor.is_secretariat and post.status not in TRANSITIONS["edit"]:
            edited = _edited_field(post, data, current)
            if edited:
                problems.append((position, _refusal(edited, PostTransitionError("edit", post.status))))
    return problems


def _platform_ids_taken(items: Sequence[PostData], existing: dict[str, Post]) -> dict[str, Post]:
    """The `post-<id>` names among the items that no post answers to because post <id> has an external id of
    its own (one query, and only when an item has such a name)."""
    wanted = {}
    for data in items:
        match = PLATFORM_EXPORT_ID.fullmatch(data.external_id or "")
        if match and data.external_id not in existing and (number := platform_post_number(match)) is not None:
            wanted[number] = data.external_id
    if not wanted:
        return {}
    posts = Post.objects.filter(pk__in=list(wanted), external_id__isnull=False)
    return {wanted[post.pk]: post for post in posts}


def _platform_id_error(actor: Actor, export_id: str, owned_elsewhere: dict[str, Post]) -> FieldError:
    post = owned_elsewhere[export_id]
    values = {"id": export_id, "pk": post.pk, "external_id": post.external_id}
    if post_can_manage(actor=actor, post=post):
        message = _(
            "%(id)s cannot name post %(pk)s: it has an external_id of its own, %(external_id)r; "
            "import it under that one."
        )
    else:
        # Another Party's post: its external id is not the caller's to learn.
        message = _("%(id)s cannot name post %(pk)s: it has an external_id of its own.")
    return FieldError("external_id", message % values)


def _edited_field(post: Post, data: PostData, current: dict[str, dict[int, list]] | None) -> str | None:
    """The first field of the import format that the item changes on the post, or None."""
    changes = _apply_data(copy.copy(post), data)
    changes.update(_diff_relations(post, data, current or _current_relations([post.pk])))
    name = next(iter(changes), None)
    if name is None:
        return None
    if name.startswith("declares_"):
        return "declarations"
    return name.removesuffix("_id")


def _chunks(items: Iterable[PostData], size: int) -> Iterator[list[PostData]]:
    chunk: list[PostData] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# Every column an import may change, for bulk_update (which, unlike save(), does not touch auto_now fields).
_IMPORT_UPDATE_FIELDS = [
    *SCALAR_FIELDS,
    "party",
    "provider",
    *(f"declares_{key}" for key in DECLARATIONS),
    "status",
    *_STATUS_TIMESTAMP.values(),
    "matching_pending",
    "changed_since_review_at",
    "updated_at",
]


def _import_chunk(
    actor: Actor,
    chunk: Sequence[PostData],
    existing: dict[str, Post],
    current: dict[str, dict[int, list]],
    result: ImportResult,
) -> None:
    """Write one chunk, already checked (`_import_problems`), in a fixed number of queries: bulk update, bulk
    create, history. `existing`: its posts, locked; `current`: their relations."""
    now = timezone.now()
    to_create: list[tuple[Post, PostData]] = []
    to_update: list[tuple[Post, PostData, dict]] = []
    # Posts whose matches are retired at once (`matching_retire`): those that left the published list, and those
    # whose kind or poster changed (`REMATCHED_FROM_SCRATCH`).
    retired: list[int] = []
    events: list[PostEvent] = []
    for data in chunk:
        post = existing.get(data.external_id) if data.external_id else None
        status = _import_status(actor, data.status, post)
        if post is None:
            post = Post(status=status, owner=actor.user, external_id=data.external_id)
            _apply_data(post, data)
            _stamp(post, status, now, fill_skipped=True)
            post.matching_pending = status in MATCHING_STATUSES
            to_create.append((post, data))
            continue
        from_status = post.status
        changes = _apply_data(post, data)
        relation_changes = _diff_relations(post, data, current)
        changes.update(relation_changes)
        if from_status == Status.RETURNED and status == Status.SUBMITTED and not changes:
            # The file still says "submitted" for a post the secretariat returned since, and changes nothing:
            # a sync that is behind, not a resubmission (which would put it back in the queue unchanged).
            status = from_status
        if status != from_status:
            changes["status"] = [from_status, status]
            post.status = status
            _stamp(post, status, now)
            if from_status == Status.PUBLISHED:
                retired.append(post.pk)
        if changes.keys() & REMATCHED_FROM_SCRATCH and post.pk not in retired:
            retired.append(post.pk)
        if not changes:
            result.unchanged += 1
            continue
        post.updated_at = now
        if status != from_status:
            post.changed_since_review_at = None  # as a step of the life cycle does (`_transition`)
        else:
            _mark_changed_since_review(post, actor)
        if post.status in MATCHING_STATUSES:
            post.matching_pending = True
        to_update.append((post, data, relation_changes))
        # A change of status is recorded as that step (withdrawn, submitted...), as the web and the API record
        # it, with whatever else the line changed: the history reads the same whichever way it came.
        action = _IMPORT_STEP.get(post.status, PostEvent.Action.UPDATED) if "status" in changes else None
        events.append(_event(post, actor, from_status, changes, action=action or PostEvent.Action.UPDATED))

    if to_update:
        Post.objects.bulk_update([post for post, _d, _r in to_update], _IMPORT_UPDATE_FIELDS)
        matching_retire(post_ids=retired)
        _replace_relations(to_update)
        result.updated += len(to_update)
    if to_create:
        Post.objects.bulk_create([post for post, _d in to_create])
        _add_relations(to_create, names=RELATIONS)
        events.extend(_event(post, actor, "", {}, action=PostEvent.Action.IMPORTED) for post, _d in to_create)
        result.created += len(to_create)
    PostEvent.objects.bulk_create(events)
    to_match = [post.pk for post, *_rest in (*to_update, *to_create) if post.matching_pending]
    if to_match:
        # The posts were saved with matching_pending set, so a lost hand-off is picked up by the sweep.
        matching_enqueue(post_ids=to_match)


_IMPORT_STEP = {
    Status.SUBMITTED: PostEvent.Action.SUBMITTED,
    Status.PUBLISHED: PostEvent.Action.PUBLISHED,
    Status.WITHDRAWN: PostEvent.Action.WITHDRAWN,
}


def _event(post: Post, actor: Actor, from_status: str, changes: dict, action: str = PostEvent.Action.UPDATED):
    return PostEvent(
        post=post,
        action=action,
        from_status=from_status,
        to_status=post.status,
        actor=actor.user,
        actor_label=actor.label,
        actor_role=actor.role,
        changes=changes,
        note=_("Imported") if action != PostEvent.Action.IMPORTED else "",
    )


RELATIONS = (*M2M_FIELDS, "partner_parties")


def _through_column(name: str) -> str:
    return "party_id" if name == "partner_parties" else f"{M2M_FIELDS[name]._meta.model_name}_id"


def _current_relations(post_ids: Sequence[int]) -> dict[str, dict[int, list]]:
    """{relation: {post id: [keys]}} read straight from the join tables: one small query per relation.

    prefetch_related would do the same in as many queries, but builds a related manager per post and per
    relation, which made re-importing 10,000 unchanged posts three times slower than importing them.
    """
    relations: dict[str, dict[int, list]] = {}
    for name in RELATIONS:
        by_post: dict[int, list] = defaultdict(list)
        if post_ids:
            through = getattr(Post, name).through
            rows = through.objects.filter(post_id__in=post_ids).values_list("post_id", _through_column(name))
            for post_id, key in rows:
                by_post[post_id].append(key)
        relations[name] = by_post
    return relations


def _diff_relations(post: Post, data: PostData, current: dict[str, dict[int, list]]) -> dict:
    changes = {}
    for name in M2M_FIELDS:
        old = sorted(current[name].get(post.pk, []))
        if old != sorted(getattr(data, name)):
            changes[name] = [old, list(getattr(data, name))]
    old_partners = sorted(current["partner_parties"].get(post.pk, []))
    new_partners = sorted(p.pk for p in data.partner_parties)
    if old_partners != new_partners:
        changes["partner_parties"] = [old_partners, new_partners]
    return changes


def _insert_relations(name: str, pairs: Sequence[tuple[Post, PostData]]) -> None:
    """Insert the join rows of one relation for many posts with a single executemany.

    Plain (post id, key) tuples rather than bulk_create: building and compiling a model instance per join
    row was a third of the time of a large import, and a join row has nothing to validate.
    """
    if name == "partner_parties":
        rows = [(post.pk, partner.pk) for post, data in pairs for partner in data.partner_parties]
    else:
        rows = [(post.pk, key) for post, data in pairs for key in getattr(data, name)]
    if not rows:
        return
    through = getattr(Post, name).through
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}, {}) VALUES (%s, %s)".format(
        quote(through._meta.db_table), quote("post_id"), quote(_through_column(name))
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _add_relations(pairs: Sequence[tuple[Post, PostData]], *, names: Sequence[str]) -> None:
    for name in names:
        _insert_relations(name, pairs)


def _replace_relations(updated: Sequence[tuple[Post, PostData, dict]]) -> None:
    """Rewrite only the relations that changed, one delete and one insert per relation for the chunk."""
    for name in RELATIONS:
        pairs = [(post, data) for post, data, changes in updated if name in changes]
        if pairs:
            through = getattr(Post, name).through
            through.objects.filter(post_id__in=[post.pk for post, _d in pairs]).delete()
            _insert_relations(name, pairs)
