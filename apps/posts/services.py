"""Every write to a post goes through here: permission, allowed transition, history, matching hand-off.

Views, the API, the admin and the import call these functions and nothing else, so that the audit trail and
the matching queue cannot be bypassed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.actors import Actor
from apps.matching.services import matching_enqueue

from .models import FocusAreaTerm, InstrumentTerm, Post, PostEvent, SectorTerm, SupportTypeTerm
from .post_data import DECLARATIONS, PostData

Status = Post.Status

# Allowed transitions: action -> statuses it may start from.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submit": (Status.DRAFT, Status.RETURNED),
    "publish": (Status.SUBMITTED,),
    "return": (Status.SUBMITTED,),
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
        super().__init__(
            _("A post that is %(status)s cannot be %(action)s.")
            % {"status": Status(status).label.lower(), "action": _ACTION_PAST[action]}
        )


_ACTION_PAST = {
    "submit": _("submitted"),
    "publish": _("published"),
    "return": _("returned"),
    "close": _("closed"),
    "withdraw": _("withdrawn"),
    "edit": _("edited"),
}


def post_can_manage(*, actor: Actor, post: Post) -> bool:
    """Whether the actor may edit, submit, close or withdraw the post: its own Party or provider, or staff."""
    if actor.is_secretariat:
        return True
    return actor.can_post and actor.acts_for(party_id=post.party_id, provider_id=post.provider_id)


def _require_manage(actor: Actor, post: Post) -> None:
    if not post_can_manage(actor=actor, post=post):
        raise PermissionDenied(_("You may only act on your own Party's or organisation's posts."))


def _require_transition(action: str, post: Post) -> None:
    if post.status not in TRANSITIONS[action]:
        raise PostTransitionError(action, post.status)


def _require_poster(actor: Actor, data: PostData) -> None:
    if actor.is_secretariat:
        return
    if not actor.can_post:
        raise PermissionDenied(_("Only focal points and support providers can create posts."))
    if not actor.acts_for(
        party_id=data.party.pk if data.party else None,
        provider_id=data.provider.pk if data.provider else None,
    ):
        raise PermissionDenied(_("You may only post for your own Party or organisation."))
    if data.provider is not None and data.kind != Post.Kind.OFFER:
        raise PermissionDenied(_("Support providers post offers only."))


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


@transaction.atomic
def post_create(*, actor: Actor, data: PostData) -> Post:
    """Create a draft (or, for the secretariat, a post in the status the data asks for)."""
    _require_poster(actor, data)
    status = Status.DRAFT
    if actor.is_secretariat and data.status:
        status = data.status
    post = Post(status=status, owner=actor.user, external_id=data.external_id)
    _apply_data(post, data)
    now = timezone.now()
    _stamp(post, status, now)
    post.save()
    _set_relations(post, data, created=True)
    _record(post, actor=actor, action=PostEvent.Action.CREATED)
    if status in MATCHING_STATUSES:
        _queue_matching([post])
    return post


def _stamp(post: Post, status: str, now) -> None:
    """Set the timestamp of the transition into `status` (and of the steps a direct import skips)."""
    if (
        status in (Status.SUBMITTED, Status.PUBLISHED, Status.CLOSED, Status.WITHDRAWN)
        and post.submitted_at is None
    ):
        post.submitted_at = now
    if status in (Status.PUBLISHED, Status.CLOSED) and post.published_at is None:
        post.published_at = now
    if status == Status.RETURNED:
        post.returned_at = now
    if status == Status.CLOSED:
        post.closed_at = now
    if status == Status.WITHDRAWN:
        post.withdrawn_at = now


@transaction.atomic
def post_update(*, actor: Actor, post: Post, data: PostData) -> Post:
    """Edit a draft, a returned post or a published one (which stays published and is matched again)."""
    post = _lock(post)
    _require_manage(actor, post)
    _require_transition("edit", post)
    if not actor.is_secretariat:
        # The poster cannot be moved to another Party or provider by editing.
        data.party, data.provider = post.party, post.provider
    changes = _apply_data(post, data)
    changes.update(_set_relations(post, data, created=False))
    if changes:
        post.save()
        _record(post, actor=actor, action=PostEvent.Action.UPDATED, from_status=post.status, changes=changes)
        if post.status == Status.PUBLISHED:
            _queue_matching([post])
    return post


def _transition(
    *, actor: Actor, post: Post, action: str, to_status: str, event: str, staff_only: bool = False, **fields
) -> Post:
    post = _lock(post)
    if staff_only:
        if not actor.is_secretariat:
            raise PermissionDenied(_("Only the secretariat moderates posts."))
    else:
        _require_manage(actor, post)
    _require_transition(action, post)
    from_status = post.status
    post.status = to_status
    for name, value in fields.items():
        setattr(post, name, value)
    _stamp(post, to_status, timezone.now())
    post.save()
    _record(post, actor=actor, action=event, from_status=from_status, note=next(iter(fields.values()), ""))
    if to_status in MATCHING_STATUSES:
        _queue_matching([post])
    return post


@transaction.atomic
def post_submit(*, actor: Actor, post: Post) -> Post:
    return _transition(actor=actor, post=post, action="submit", to_status=Status.SUBMITTED, event="submitted")


@transaction.atomic
def post_publish(*, actor: Actor, post: Post) -> Post:
    return _transition(
        actor=actor,
        post=post,
        action="publish",
        to_status=Status.PUBLISHED,
        event="published",
        staff_only=True,
    )


@transaction.atomic
def post_return(*, actor: Actor, post: Post, reason: str) -> Post:
    if not reason.strip():
        raise ValueError(_("Give the reason for returning the post, so the owner knows what to change."))
    return _transition(
        actor=actor,
        post=post,
        action="return",
        to_status=Status.RETURNED,
        event="returned",
        staff_only=True,
        return_reason=reason.strip(),
    )


@transaction.atomic
def post_close(*, actor: Actor, post: Post, outcome: str) -> Post:
    if not outcome.strip():
        raise ValueError(_("Describe the outcome: how was the need met or the offer taken up?"))
    return _transition(
        actor=actor,
        post=post,
        action="close",
        to_status=Status.CLOSED,
        event="closed",
        outcome=outcome.strip(),
    )


@transaction.atomic
def post_withdraw(*, actor: Actor, post: Post) -> Post:
    return _transition(
        actor=actor, post=post, action="withdraw", to_status=Status.WITHDRAWN, event="withdrawn"
    )


def _queue_matching(posts: Iterable[Post]) -> None:
    ids = [p.pk for p in posts]
    Post.objects.filter(pk__in=ids).update(matching_pending=True)
    matching_enqueue(post_ids=ids)


# --- bulk import -------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def post_import(
    *, actor: Actor, items: Iterable[PostData], chunk_size: int = 500, progress=None
) -> ImportResult:
    """Create or update posts by external_id, all in one transaction (the caller validated every item first).

    Works in chunks with bulk queries so that 100,000 posts import in minutes, not hours; `items` may be a
    generator, so the whole file is never held in memory.
    """
    result = ImportResult()
    with transaction.atomic():
        for chunk in _chunks(items, chunk_size):
            for data in chunk:
                _require_poster(actor, data)
            _import_chunk(actor, chunk, result)
            if progress:
                progress(result.created + result.updated + result.unchanged)
    return result


def _chunks(items: Iterable[PostData], size: int) -> Iterator[list[PostData]]:
    chunk: list[PostData] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _import_chunk(actor: Actor, chunk: Sequence[PostData], result: ImportResult) -> None:
    now = timezone.now()
    existing = {
        p.external_id: p
        for p in Post.objects.filter(external_id__in=[d.external_id for d in chunk if d.external_id])
        .select_for_update()
        .prefetch_related(*M2M_FIELDS, "partner_parties")
    }
    to_create: list[tuple[Post, PostData]] = []
    events: list[PostEvent] = []
    to_match: list[Post] = []
    for data in chunk:
        post = existing.get(data.external_id) if data.external_id else None
        status = data.status or Status.PUBLISHED
        if post is None:
            post = Post(status=status, owner=actor.user, external_id=data.external_id)
            _apply_data(post, data)
            _stamp(post, status, now)
            to_create.append((post, data))
            continue
        from_status = post.status
        changes = _apply_data(post, data)
        if post.status != status:
            changes["status"] = [post.status, status]
            post.status = status
            _stamp(post, status, now)
        rel_changes = _diff_relations_prefetched(post, data)
        if rel_changes:
            changes.update(rel_changes)
            for name in M2M_FIELDS:
                if name in rel_changes:
                    getattr(post, name).set(getattr(data, name))
            if "partner_parties" in rel_changes:
                post.partner_parties.set(data.partner_parties)
        if changes:
            post.save()
            events.append(_event(post, actor, from_status, changes))
            result.updated += 1
            if post.status in MATCHING_STATUSES:
                to_match.append(post)
        else:
            result.unchanged += 1

    created = Post.objects.bulk_create([p for p, _d in to_create])
    for post, _data in to_create:
        events.append(_event(post, actor, "", {}, action=PostEvent.Action.IMPORTED))
        if post.status in MATCHING_STATUSES:
            to_match.append(post)
    _bulk_set_relations(to_create)
    PostEvent.objects.bulk_create(events)
    result.created += len(created)
    if to_match:
        _queue_matching(to_match)


def _event(post: Post, actor: Actor, from_status: str, changes: dict, action: str = PostEvent.Action.UPDATED):
    return PostEvent(
        post=post,
        action=action,
        from_status=from_status,
        to_status=post.status,
        actor=actor.user,
        actor_label=actor.label,
        changes=changes,
        note=_("Imported") if action != PostEvent.Action.IMPORTED else "",
    )


def _diff_relations_prefetched(post: Post, data: PostData) -> dict:
    changes = {}
    for name in M2M_FIELDS:
        old = sorted(t.pk for t in getattr(post, name).all())
        if old != sorted(getattr(data, name)):
            changes[name] = [old, list(getattr(data, name))]
    old_partners = sorted(p.pk for p in post.partner_parties.all())
    if old_partners != sorted(p.pk for p in data.partner_parties):
        changes["partner_parties"] = [old_partners, sorted(p.pk for p in data.partner_parties)]
    return changes


def _bulk_set_relations(pairs: Sequence[tuple[Post, PostData]]) -> None:
    for name, term_model in M2M_FIELDS.items():
        through = getattr(Post, name).through
        column = f"{term_model._meta.model_name}_id"
        rows = [
            through(post_id=post.pk, **{column: key}) for post, data in pairs for key in getattr(data, name)
        ]
        through.objects.bulk_create(rows)
    through = Post.partner_parties.through
    through.objects.bulk_create(
        [through(post_id=post.pk, party_id=p.pk) for post, data in pairs for p in data.partner_parties]
    )
