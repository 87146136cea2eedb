"""The post life-cycle services: transitions, who may do what, history, timestamps, the matching hand-off,
and the bulk import service."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.actors import ANONYMOUS, Actor
from apps.accounts.models import Role
from apps.posts import services
from apps.posts.models import Post, PostEvent
from apps.posts.post_data import PostData
from apps.posts.services import (
    PostImportError,
    PostTransitionError,
    post_can_manage,
    post_close,
    post_create,
    post_import,
    post_publish,
    post_recall,
    post_return,
    post_submit,
    post_update,
    post_withdraw,
)
from tests.factories import PostFactory, ProviderUserFactory, party

S = Post.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """Every matching hand-off, as the list of post ids of each call."""
    calls: list[list[int]] = []
    monkeypatch.setattr(services, "matching_enqueue", lambda *, post_ids: calls.append(list(post_ids)))
    return calls


def need_data(iso3="KEN", **overrides) -> PostData:
    values = {
        "kind": Post.Kind.NEED,
        "title": "Flood early warning for the lower Tana basin",
        "description": "River gauges, forecasts and community alerts for forty villages.",
        "support_types": ["technology", "capacity_building"],
        "focus_areas": ["adaptation"],
        "sectors": ["disaster_risk"],
        "party": party(iso3),
        "amount_usd": Decimal("250000.00"),
    }
    values.update(overrides)
    return PostData(**values)


def offer_data(provider, **overrides) -> PostData:
    values = {
        "kind": Post.Kind.OFFER,
        "title": "Technical assistance for climate services",
        "description": "Experts design hydromet networks and train forecasters.",
        "support_types": ["technology"],
        "focus_areas": ["adaptation"],
        "provider": provider,
        "instruments": ["in_kind"],
    }
    values.update(overrides)
    return PostData(**values)


def ken_post(status=S.DRAFT, **kwargs) -> Post:
    return PostFactory(party=party("KEN"), status=status, **kwargs)


# --- transitions --------------------------------------------------------------------------------------------


def act(action: str, actor: Actor, post: Post) -> Post:
    if action == "submit":
        return post_submit(actor=actor, post=post)
    if action == "publish":
        return post_publish(actor=actor, post=post)
    if action == "return":
        return post_return(actor=actor, post=post, reason="Please add the budget breakdown.")
    if action == "close":
        return post_close(actor=actor, post=post, outcome="Funded by a bilateral partner in 2025.")
    if action == "withdraw":
        return post_withdraw(actor=actor, post=post)
    if action == "recall":
        return post_recall(actor=actor, post=post)
    if action == "edit":
        return post_update(actor=actor, post=post, data=need_data(title="A new title"))
    raise AssertionError(action)


# Moderation is the secretariat's; everything else is done by the owning focal point.
def actor_for(action, focal_point, secretariat):
    return Actor.for_user(secretariat if action in ("publish", "return") else focal_point)


ALLOWED = [
    (S.DRAFT, "submit", S.SUBMITTED),
    (S.RETURNED, "submit", S.SUBMITTED),
    (S.SUBMITTED, "publish", S.PUBLISHED),
    (S.SUBMITTED, "return", S.RETURNED),
    (S.PUBLISHED, "return", S.RETURNED),
    (S.PUBLISHED, "close", S.CLOSED),
    (S.PUBLISHED, "withdraw", S.WITHDRAWN),
    (S.DRAFT, "withdraw", S.WITHDRAWN),
    (S.SUBMITTED, "withdraw", S.WITHDRAWN),
    (S.RETURNED, "withdraw", S.WITHDRAWN),
    (S.SUBMITTED, "recall", S.DRAFT),
    (S.DRAFT, "edit", S.DRAFT),
    (S.RETURNED, "edit", S.RETURNED),
    (S.PUBLISHED, "edit", S.PUBLISHED),
]


@pytest.mark.parametrize(("start", "action", "end"), ALLOWED)
def test_allowed_transition(start, action, end, focal_point, secretariat, queued):
    post = ken_post(start)
    act(action, actor_for(action, focal_point, secretariat), post)
    post.refresh_from_db()
    assert post.status == end
    event = post.events.get()
    assert (event.from_status, event.to_status) == (start, end)


REFUSED = [
    (S.DRAFT, "publish"),
    (S.DRAFT, "return"),
    (S.DRAFT, "close"),
    (S.RETURNED, "publish"),
    (S.RETURNED, "close"),
    (S.SUBMITTED, "submit"),
    (S.SUBMITTED, "close"),
    (S.SUBMITTED, "edit"),
    (S.PUBLISHED, "submit"),
    (S.PUBLISHED, "publish"),
    (S.RETURNED, "return"),
    (S.CLOSED, "return"),
    (S.WITHDRAWN, "return"),
    (S.CLOSED, "submit"),
    (S.CLOSED, "publish"),
    (S.CLOSED, "close"),
    (S.CLOSED, "withdraw"),
    (S.CLOSED, "edit"),
    (S.WITHDRAWN, "submit"),
    (S.WITHDRAWN, "publish"),
    (S.WITHDRAWN, "close"),
    (S.WITHDRAWN, "withdraw"),
    (S.WITHDRAWN, "edit"),
    (S.DRAFT, "recall"),
    (S.RETURNED, "recall"),
    (S.PUBLISHED, "recall"),
    (S.CLOSED, "recall"),
    (S.WITHDRAWN, "recall"),
]


@pytest.mark.parametrize(("start", "action"), REFUSED)
def test_refused_transition(start, action, focal_point, secretariat, queued):
    post = ken_post(start)
    with pytest.raises(PostTransitionError) as error:
        act(action, actor_for(action, focal_point, secretariat), post)
    assert error.value.status == start
    post.refresh_from_db()
    assert post.status == start
    assert not post.events.exists()
    assert queued == []


def test_transition_error_message_is_readable(secretariat):
    with pytest.raises(PostTransitionError, match="A draft post cannot be published"):
        post_publish(actor=Actor.for_user(secretariat), post=ken_post(S.DRAFT))


# --- who may do what: every role against every write --------------------------------------------------------

ROLES = [
    "fp_own",
    "fp_other",
    "provider_own",
    "provider_other",
    "secretariat",
    "committee",
    "observer",
    "anonymous",
]


@pytest.fixture
def actors(focal_point, other_focal_point, provider_user, secretariat, committee, observer):
    return {
        "fp_own": Actor.for_user(focal_point),
        "fp_other": Actor.for_user(other_focal_point),
        "provider_own": Actor.for_user(provider_user),
        "provider_other": Actor.for_user(ProviderUserFactory(username="other_provider_user")),
        "secretariat": Actor.for_user(secretariat),
        "committee": Actor.for_user(committee),
        "observer": Actor.for_user(observer),
        "anonymous": ANONYMOUS,
    }


# (action, starting status, roles allowed on a KEN need, roles allowed on the provider's offer)
WRITES = [
    ("edit", S.DRAFT, {"fp_own", "secretariat"}, {"provider_own", "secretariat"}),
    ("submit", S.DRAFT, {"fp_own", "secretariat"}, {"provider_own", "secretariat"}),
    ("publish", S.SUBMITTED, {"secretariat"}, {"secretariat"}),
    ("return", S.SUBMITTED, {"secretariat"}, {"secretariat"}),
    ("return", S.PUBLISHED, {"secretariat"}, {"secretariat"}),
    ("close", S.PUBLISHED, {"fp_own", "secretariat"}, {"provider_own", "secretariat"}),
    ("withdraw", S.PUBLISHED, {"fp_own", "secretariat"}, {"provider_own", "secretariat"}),
    # The poster's alone: the secretariat publishes or returns with a reason.
    ("recall", S.SUBMITTED, {"fp_own"}, {"provider_own"}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("action", "start", "need_roles", "offer_roles"), WRITES)
@pytest.mark.parametrize("kind", ["need", "offer"])
def test_role_against_write(
    kind, action, start, need_roles, offer_roles, role, actors, provider_user, queued
):
    if kind == "need":
        post, allowed = ken_post(start), role in need_roles
    else:
        post = PostFactory(kind=Post.Kind.OFFER, party=None, provider=provider_user.provider, status=start)
        allowed = role in offer_roles
    data = need_data() if kind == "need" else offer_data(provider_user.provider)
    actor = actors[role]
    if allowed:
        if action == "edit":
            post_update(actor=actor, post=post, data=data)
        else:
            act(action, actor, post)
        assert post.events.get().actor_label == actor.label
    else:
        with pytest.raises(PermissionDenied):
            if action == "edit":
                post_update(actor=actor, post=post, data=data)
            else:
                act(action, actor, post)
        post.refresh_from_db()
        assert post.status == start
        assert not post.events.exists()
    owners = {"fp_own", "secretariat"} if kind == "need" else {"provider_own", "secretariat"}
    assert post_can_manage(actor=actor, post=post) == (role in owners)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["need", "offer"])
def test_role_against_create(kind, role, actors, provider_user):
    data = need_data() if kind == "need" else offer_data(provider_user.provider)
    allowed = role in ({"fp_own", "secretariat"} if kind == "need" else {"provider_own", "secretariat"})
    if allowed:
        post = post_create(actor=actors[role], data=data)
        assert post.status == S.DRAFT
        assert post.events.get().action == PostEvent.Action.CREATED
    else:
        with pytest.raises(PermissionDenied):
            post_create(actor=actors[role], data=data)
        assert not Post.objects.exists()


def test_provider_cannot_post_a_need(provider_user):
    data = offer_data(provider_user.provider, kind=Post.Kind.NEED, instruments=[])
    with pytest.raises(PermissionDenied, match="offers only"):
        post_create(actor=Actor.for_user(provider_user), data=data)
    # Not even the secretariat: the database would refuse the row.
    with pytest.raises(PermissionDenied, match="offers only"):
        post_create(actor=Actor(role=Role.SECRETARIAT, label="ops"), data=data)


def test_provider_cannot_turn_an_offer_into_a_need(provider_user):
    post = PostFactory(kind=Post.Kind.OFFER, party=None, provider=provider_user.provider, status=S.DRAFT)
    data = offer_data(provider_user.provider, kind=Post.Kind.NEED, instruments=[])
    with pytest.raises(PermissionDenied):
        post_update(actor=Actor.for_user(provider_user), post=post, data=data)
    post.refresh_from_db()
    assert post.kind == Post.Kind.OFFER


def test_read_only_token_cannot_write(focal_point):
    token = Actor(role=Role.FOCAL_POINT, label="read token", party_id=focal_point.party_id, can_write=False)
    with pytest.raises(PermissionDenied):
        post_create(actor=token, data=need_data())
    with pytest.raises(PermissionDenied):
        post_submit(actor=token, post=ken_post(S.DRAFT))


def test_inactive_user_acts_as_anonymous(focal_point):
    focal_point.is_active = False
    focal_point.save()
    with pytest.raises(PermissionDenied):
        post_submit(actor=Actor.for_user(focal_point), post=ken_post(S.DRAFT))


def test_focal_point_cannot_move_a_post_to_another_party(focal_point):
    post = ken_post(S.DRAFT)
    post_update(actor=Actor.for_user(focal_point), post=post, data=need_data("BRA", title="Moved?"))
    post.refresh_from_db()
    assert post.party.iso3 == "KEN"
    assert post.title == "Moved?"


# --- history, timestamps, reasons and outcomes --------------------------------------------------------------


def test_history_records_actor_action_and_changes(focal_point, secretariat, queued):
    fp, staff = Actor.for_user(focal_point), Actor.for_user(secretariat)
    post = post_create(actor=fp, data=need_data())
    post_update(actor=fp, post=post, data=need_data(title="Flood early warning, revised", sectors=["water"]))
    post_submit(actor=fp, post=post)
    post_return(actor=staff, post=post, reason="  Add the counties covered.  ")
    post_submit(actor=fp, post=post)
    post_publish(actor=staff, post=post)

    events = list(post.events.order_by("created_at", "id"))
    assert [e.action for e in events] == [
        "created",
        "updated",
        "submitted",
        "returned",
        "submitted",
        "published",
    ]
    assert [e.actor for e in events] == [
        focal_point,
        focal_point,
        focal_point,
        secretariat,
        focal_point,
        secretariat,
    ]
    assert [e.actor_label for e in events] == [
        "fp_ken",
        "fp_ken",
        "fp_ken",
        "secretariat",
        "fp_ken",
        "secretariat",
    ]
    assert events[1].changes == {
        "title": ["Flood early warning for the lower Tana basin", "Flood early warning, revised"],
        "sectors": [["disaster_risk"], ["water"]],
    }
    assert events[3].note == "Add the counties covered."
    assert [(e.from_status, e.to_status) for e in events[2:]] == [
        (S.DRAFT, S.SUBMITTED),
        (S.SUBMITTED, S.RETURNED),
        (S.RETURNED, S.SUBMITTED),
        (S.SUBMITTED, S.PUBLISHED),
    ]


def test_update_without_changes_writes_no_history(focal_point, queued):
    fp = Actor.for_user(focal_point)
    post = post_create(actor=fp, data=need_data())
    post_update(actor=fp, post=post, data=need_data())
    assert post.events.count() == 1


def test_amount_change_is_recorded_as_text(focal_point):
    fp = Actor.for_user(focal_point)
    post = post_create(actor=fp, data=need_data())
    post_update(actor=fp, post=post, data=need_data(amount_usd=Decimal("300000.00")))
    assert post.events.get(action="updated").changes == {"amount_usd": ["250000.00", "300000.00"]}


def test_timestamps_follow_the_life_cycle(focal_point, secretariat, queued):
    fp, staff = Actor.for_user(focal_point), Actor.for_user(secretariat)
    post = post_create(actor=fp, data=need_data())
    assert (post.submitted_at, post.published_at) == (None, None)

    post = post_submit(actor=fp, post=post)
    first_submission = post.submitted_at
    assert first_submission is not None
    post = post_return(actor=staff, post=post, reason="Budget missing.")
    assert post.returned_at is not None and post.return_reason == "Budget missing."
    post = post_submit(actor=fp, post=post)
    # Back in the moderation queue at the time it came back, not at its first submission.
    assert post.submitted_at > first_submission
    post = post_publish(actor=staff, post=post)
    assert post.published_at is not None
    post = post_close(actor=fp, post=post, outcome=" Funded by the Adaptation Fund. ")
    assert post.closed_at is not None and post.outcome == "Funded by the Adaptation Fund."
    assert post.withdrawn_at is None


def test_withdrawing_a_draft_sets_only_withdrawn_at(focal_point):
    post = post_withdraw(actor=Actor.for_user(focal_point), post=ken_post(S.DRAFT, published_at=None))
    assert post.withdrawn_at is not None
    assert (post.submitted_at, post.published_at) == (None, None)


@pytest.mark.parametrize("reason", ["", "   ", "\u200b\ufeff"])
def test_return_needs_a_reason(reason, secretariat):
    post = ken_post(S.SUBMITTED)
    with pytest.raises(ValueError, match="reason"):
        post_return(actor=Actor.for_user(secretariat), post=post, reason=reason)
    post.refresh_from_db()
    assert post.status == S.SUBMITTED
    assert not post.events.exists()


@pytest.mark.parametrize("outcome", ["", "  \n ", "\u0301\u200b"])
def test_close_needs_an_outcome(outcome, focal_point):
    post = ken_post(S.PUBLISHED)
    with pytest.raises(ValueError, match="outcome"):
        post_close(actor=Actor.for_user(focal_point), post=post, outcome=outcome)
    post.refresh_from_db()
    assert post.status == S.PUBLISHED


def test_secretariat_creates_in_the_status_it_asks_for(secretariat, queued):
    post = post_create(actor=Actor.for_user(secretariat), data=need_data(status=S.PUBLISHED))
    assert post.status == S.PUBLISHED
    assert post.submitted_at is not None and post.published_at is not None
    assert post.matching_pending
    assert queued == [[post.pk]]


def test_focal_point_cannot_create_published(focal_point, queued):
    post = post_create(actor=Actor.for_user(focal_point), data=need_data(status=S.PUBLISHED))
    assert post.status == S.DRAFT
    assert queued == []


# --- the matching hand-off ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "action", "queues"),
    [
        (S.DRAFT, "submit", False),
        (S.SUBMITTED, "return", False),
        (S.PUBLISHED, "return", True),
        (S.SUBMITTED, "publish", True),
        (S.PUBLISHED, "close", True),
        (S.PUBLISHED, "withdraw", True),
        (S.SUBMITTED, "withdraw", True),
        (S.PUBLISHED, "edit", True),
        (S.DRAFT, "edit", False),
    ],
)
def test_matching_flag(start, action, queues, focal_point, secretariat, queued):
    post = ken_post(start, matching_pending=False)
    act(action, actor_for(action, focal_point, secretariat), post)
    post.refresh_from_db()
    assert post.matching_pending is queues
    assert queued == ([[post.pk]] if queues else [])


def test_matching_is_queued_only_after_commit(
    secretariat, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.MATCHING_AUTORUN = True
    sent = []
    monkeypatch.setattr("apps.matching.tasks.match_posts.delay", lambda ids: sent.append(ids))
    post = ken_post(S.SUBMITTED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post_publish(actor=Actor.for_user(secretariat), post=post)
    assert sent == []
    for callback in callbacks:
        callback()
    assert sent == [[post.pk]]


# --- bulk import service ------------------------------------------------------------------------------------


def import_items(n, prefix="imp", **overrides):
    return [
        need_data(**{"external_id": f"{prefix}-{i}", "title": f"Need number {i}", **overrides})
        for i in range(n)
    ]


def test_import_creates_published_posts_with_history(queued):
    staff = Actor(role=Role.SECRETARIAT, label="import_posts")
    result = post_import(actor=staff, items=import_items(5), chunk_size=2)
    assert (result.created, result.updated, result.unchanged) == (5, 0, 0)
    posts = Post.objects.order_by("external_id")
    assert [p.status for p in posts] == [S.PUBLISHED] * 5
    assert all(p.published_at and p.submitted_at and p.matching_pending for p in posts)
    assert sorted(posts[0].support_types.values_list("key", flat=True)) == ["capacity_building", "technology"]
    assert list(posts[0].sectors.values_list("key", flat=True)) == ["disaster_risk"]
    assert PostEvent.objects.filter(action="imported", actor_label="import_posts").count() == 5
    # One hand-off per chunk of 2: no task ever carries the whole import.
    assert [len(ids) for ids in queued] == [2, 2, 1]
    assert sorted(i for ids in queued for i in ids) == sorted(p.pk for p in posts)


def test_reimport_updates_and_counts_unchanged(queued):
    staff = Actor(role=Role.SECRETARIAT, label="import_posts")
    post_import(actor=staff, items=import_items(3))
    queued.clear()
    items = import_items(3)
    items[1].title = "Need number 1, revised"
    items[2].sectors = ["water", "health"]
    items[2].status = S.WITHDRAWN
    result = post_import(actor=staff, items=items)
    assert (result.created, result.updated, result.unchanged) == (0, 2, 1)
    assert Post.objects.count() == 3
    revised = Post.objects.get(external_id="imp-1")
    assert revised.title == "Need number 1, revised"
    assert revised.events.get(action="updated").changes == {
        "title": ["Need number 1", "Need number 1, revised"]
    }
    withdrawn = Post.objects.get(external_id="imp-2")
    assert withdrawn.status == S.WITHDRAWN and withdrawn.withdrawn_at is not None
    assert sorted(withdrawn.sectors.values_list("key", flat=True)) == ["health", "water"]
    # Recorded as the step it is, as the web and the API record it (it was an "updated" event).
    assert withdrawn.events.get(action="withdrawn").changes["status"] == [S.PUBLISHED, S.WITHDRAWN]
    assert sorted(queued[0]) == sorted([revised.pk, withdrawn.pk])


# Withdrawing is the only step off the published list an import may take (closing needs an outcome).
@pytest.mark.parametrize("status", [S.WITHDRAWN])
def test_an_import_that_takes_a_post_off_the_list_closes_its_matches_at_once(status, queued):
    from apps.matching.models import Match

    staff = Actor(role=Role.SECRETARIAT, label="import_posts")
    post_import(actor=staff, items=import_items(2))
    need, other = Post.objects.order_by("external_id")
    offer = PostFactory(kind="offer", party=party("JPN"))
    gone = Match.objects.create(need=need, offer=offer, score=0.8)
    kept = Match.objects.create(need=other, offer=offer, score=0.7)
    items = import_items(2)
    items[0].status = status
    post_import(actor=staff, items=items)
    # Before any worker runs: the post left the published list, so its match is gone from every view.
    gone.refresh_from_db()
    kept.refresh_from_db()
    assert (gone.is_active, kept.is_active) == (False, True)


def test_import_duplicate_external_id_writes_nothing():
    items = [*import_items(2), need_data(external_id="imp-0")]
    with pytest.raises(ValueError, match="imp-0"):
        post_import(actor=Actor(role=Role.SECRETARIAT, label="ops"), items=items, chunk_size=2)
    assert not Post.objects.exists()


def test_import_by_a_focal_point_makes_drafts_of_its_own_posts(focal_point, queued):
    fp = Actor.for_user(focal_point)
    result = post_import(actor=fp, items=import_items(2))
    assert result.created == 2
    assert set(Post.objects.values_list("status", flat=True)) == {S.DRAFT}
    assert queued == []
    # ... may send them to moderation ...
    post_import(actor=fp, items=import_items(2, status=S.SUBMITTED))
    assert set(Post.objects.values_list("status", flat=True)) == {S.SUBMITTED}
    # ... but never publish them,
    with pytest.raises(PostImportError) as refused:
        post_import(actor=fp, items=import_items(1, status=S.PUBLISHED))
    assert [(i, e.field, e.code) for i, e in refused.value.errors] == [(0, "status", "permission_denied")]
    # nor post for another Party,
    with pytest.raises(PostImportError) as refused:
        post_import(actor=fp, items=import_items(1, prefix="bra", iso3="BRA"))
    assert [(i, e.field, e.code) for i, e in refused.value.errors] == [(0, "party", "permission_denied")]
    # nor edit while the post is in moderation.
    with pytest.raises(PostImportError) as refused:
        post_import(actor=fp, items=import_items(1, title="Changed in moderation", status=S.SUBMITTED))
    assert [(i, e.field, e.code) for i, e in refused.value.errors] == [(0, "title", "invalid_transition")]
    assert Post.objects.count() == 2


def test_import_cannot_take_over_another_partys_post(focal_point):
    PostFactory(party=party("BRA"), external_id="shared-1", status=S.DRAFT)
    with pytest.raises(PostImportError) as refused:
        post_import(actor=Actor.for_user(focal_point), items=[need_data(external_id="shared-1")])
    # Brazil's draft is not shown to Kenya: the id is said to be in use, not whose it is.
    assert [(i, e.field, e.code) for i, e in refused.value.errors] == [(0, "external_id", "unique")]
    assert Post.objects.get(external_id="shared-1").party.iso3 == "BRA"
    Post.objects.filter(external_id="shared-1").update(status=S.PUBLISHED)
    with pytest.raises(PostImportError) as refused:
        post_import(actor=Actor.for_user(focal_point), items=[need_data(external_id="shared-1")])
    # Published, it is anyone's to see: whose it is may be said.
    assert [(i, e.field, e.code) for i, e in refused.value.errors] == [
        (0, "external_id", "permission_denied")
    ]
    assert Post.objects.get(external_id="shared-1").party.iso3 == "BRA"


def test_import_queries_do_not_grow_with_the_chunk(queued):
    """A chunk costs a fixed number of queries, however many posts it holds."""
    staff = Actor(role=Role.SECRETARIAT, label="ops")

    def count(items):
        with CaptureQueriesContext(connection) as ctx:
            post_import(actor=staff, items=items, chunk_size=1000)
        return len(ctx.captured_queries)

    # 25 rows stay within one INSERT on SQLite (999 parameters); larger chunks add one INSERT per ~30 rows.
    assert count(import_items(5, prefix="a")) == count(import_items(25, prefix="b"))
    # Updates too (every post changed).
    assert count(import_items(5, prefix="a", title="x")) == count(import_items(25, prefix="b", title="x"))


def test_a_deactivated_provider_can_no_longer_post(db):
    from apps.accounts.actors import Actor
    from apps.posts.post_data import ReferenceData, parse_post_record
    from apps.posts.services import post_create

    from ..factories import ProviderUserFactory, SupportProviderFactory

    provider = SupportProviderFactory(short_name="OLDFUND")
    user = ProviderUserFactory(username="old", provider=provider)
    record = {
        "kind": "offer",
        "provider": "OLDFUND",
        "title": "Grants",
        "description": "Grants for adaptation.",
        "support_types": ["finance"],
        "focus_areas": ["adaptation"],
    }
    first, second = (parse_post_record(record, ReferenceData()) for _ in range(2))
    assert post_create(actor=Actor.for_user(user), data=first).provider == provider
    provider.is_active = False
    provider.save()
    user.refresh_from_db()
    with pytest.raises(PermissionDenied):
        post_create(actor=Actor.for_user(user), data=second)
