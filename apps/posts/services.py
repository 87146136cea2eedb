"""Every write to a post goes through here: permission, allowed transition, history, matching hand-off.

Views, the API, the admin and the import call these functions and nothing else, so that the audit trail and
the matching queue cannot be bypassed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.actors import Actor
from apps.matching.services import matching_enqueue, matching_retire

from .models import FocusAreaTerm, InstrumentTerm, Post, PostEvent, SectorTerm, SupportTypeTerm
from .post_data import DECLARATIONS, PostData
from .selectors import PLATFORM_EXPORT_ID, post_by_export_id

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
        super().__init__(_REFUSED[action] % {"status": Status(status).label.lower()})


# One whole sentence per action, so that a translation can agree its words (and the message is translated when
# it is raised, not when this module was imported).
_REFUSED = {
    "submit": gettext_lazy("A post that is %(status)s cannot be submitted."),
    "publish": gettext_lazy("A post that is %(status)s cannot be published."),
    "return": gettext_lazy("A post that is %(status)s cannot be returned."),
    "close": gettext_lazy("A post that is %(status)s cannot be closed."),
    "withdraw": gettext_lazy("A post that is %(status)s cannot be withdrawn."),
    "edit": gettext_lazy("A post that is %(status)s cannot be edited."),
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
    post_require_poster(actor=actor, data=data)
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


@transaction.atomic
def post_update(*, actor: Actor, post: Post, data: PostData) -> Post:
    """Edit a draft, a returned post or a published one (which stays published and is matched again)."""
    post = _lock(post)
    _require_manage(actor, post)
    _require_transition("edit", post)
    if not actor.is_secretariat:
        # The poster cannot be moved to another Party or provider by editing.
        data.party, data.provider = post.party, post.provider
    # Also refuses turning a provider's offer into a need, which the database constraint would reject.
    post_require_poster(actor=actor, data=data)
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
    if from_status == Status.PUBLISHED and to_status != Status.PUBLISHED:
        matching_retire(post_ids=[post.pk])
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

    The secretariat imports in any status (published by default, DOMAIN.md). Anyone else imports as they
    create: drafts, or submitted for moderation, and only their own posts; a status change follows the life
    cycle. Raises PermissionDenied, PostTransitionError or ValueError (a duplicate external_id), and then
    nothing is written.
    """
    result = ImportResult()
    seen: set[str] = set()
    with transaction.atomic():
        for chunk in _chunks(items, chunk_size):
            for data in chunk:
                post_require_poster(actor=actor, data=data)
                if data.external_id:
                    if data.external_id in seen:
                        raise ValueError(
                            _("The external_id %r appears more than once in this import.") % data.external_id
                        )
                    seen.add(data.external_id)
            _import_chunk(actor, chunk, result)
            if progress:
                progress(result.total)
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


def _import_status(actor: Actor, data: PostData, post: Post | None) -> str:
    """The status an imported line puts its post in, or an exception if the actor may not move it there."""
    if actor.is_secretariat:
        return data.status or Status.PUBLISHED
    current = post.status if post is not None else None
    wanted = data.status or current or Status.DRAFT
    if wanted == current:
        return wanted
    if current is None and wanted in (Status.DRAFT, Status.SUBMITTED):
        return wanted
    if wanted == Status.SUBMITTED and current in TRANSITIONS["submit"]:
        return wanted
    if wanted == Status.WITHDRAWN and current in TRANSITIONS["withdraw"]:
        return wanted
    if wanted in (Status.PUBLISHED, Status.RETURNED):
        raise PermissionDenied(_("Only the secretariat moderates posts."))
    if wanted == Status.CLOSED:
        raise ValueError(_("A post is closed with its outcome in the platform, not by import."))
    raise PostTransitionError("edit", current or Status.DRAFT)


# Every column an import may change, for bulk_update (which, unlike save(), does not touch auto_now fields).
_IMPORT_UPDATE_FIELDS = [
    *SCALAR_FIELDS,
    "party",
    "provider",
    *(f"declares_{key}" for key in DECLARATIONS),
    "status",
    *_STATUS_TIMESTAMP.values(),
    "matching_pending",
    "updated_at",
]


def _import_chunk(actor: Actor, chunk: Sequence[PostData], result: ImportResult) -> None:
    """One chunk in a fixed number of queries: read the existing posts, bulk update, bulk create, history."""
    now = timezone.now()
    existing = post_by_export_id([d.external_id for d in chunk if d.external_id], lock=True)
    current = _current_relations([p.pk for p in existing.values()])
    to_create: list[tuple[Post, PostData]] = []
    to_update: list[tuple[Post, PostData, dict]] = []
    unpublished: list[int] = []  # their matches are retired at once (`matching_retire`)
    events: list[PostEvent] = []
    for data in chunk:
        post = existing.get(data.external_id) if data.external_id else None
        if post is None:
            status = _import_status(actor, data, None)
            if PLATFORM_EXPORT_ID.fullmatch(data.external_id or ""):
                raise ValueError(
                    _("%(id)s names a post made in the platform, and there is none by that number.")
                    % {"id": data.external_id}
                )
            post = Post(status=status, owner=actor.user, external_id=data.external_id)
            _apply_data(post, data)
            _stamp(post, status, now, fill_skipped=True)
            post.matching_pending = status in MATCHING_STATUSES
            to_create.append((post, data))
            continue
        if not post_can_manage(actor=actor, post=post):
            raise PermissionDenied(
                _("%(id)s: you may only act on your own Party's or organisation's posts.")
                % {"id": data.external_id}
            )
        from_status = post.status
        status = _import_status(actor, data, post)
        changes = _apply_data(post, data)
        relation_changes = _diff_relations(post, data, current)
        if (changes or relation_changes) and not actor.is_secretariat:
            _require_transition("edit", post)
        changes.update(relation_changes)
        if status != from_status:
            changes["status"] = [from_status, status]
            post.status = status
            _stamp(post, status, now)
            if from_status == Status.PUBLISHED:
                unpublished.append(post.pk)
        if not changes:
            result.unchanged += 1
            continue
        post.updated_at = now
        if post.status in MATCHING_STATUSES:
            post.matching_pending = True
        to_update.append((post, data, relation_changes))
        events.append(_event(post, actor, from_status, changes))

    if to_update:
        Post.objects.bulk_update([post for post, _d, _r in to_update], _IMPORT_UPDATE_FIELDS)
        matching_retire(post_ids=unpublished)
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
