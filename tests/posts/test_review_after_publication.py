"""A published post stays published when its poster edits it, so the secretariat reviews such changes after the
fact: the post is listed as changed since its review (the admin, the secretariat's dashboard) until the
secretariat marks the changes as reviewed, takes the publication back, or another step of the life cycle."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from apps.accounts.actors import Actor
from apps.posts.models import Post, PostEvent
from apps.posts.services import (
    post_import,
    post_mark_reviewed,
    post_return,
    post_update,
    post_withdraw,
)
from tests.factories import CommitteeFactory, PostFactory, ProviderUserFactory, party

from .test_edit_conflicts import edited
from .test_views import form_data

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:posts_post_changelist")


@pytest.fixture
def published(focal_point):
    return PostFactory(party=party("KEN"), owner=focal_point, title="Mangroves for Lamu", external_id="ke-1")


def test_a_posters_edit_of_a_published_post_waits_for_review(published, focal_point, login):
    response = login(focal_point).post(reverse("posts:edit", args=[published.pk]),
                                       form_data(title="Totally different content now"))  # fmt: skip
    assert response.status_code == 302
    published.refresh_from_db()
    assert published.status == Post.Status.PUBLISHED  # still public: a typo should not take it off
    first = published.changed_since_review_at
    assert first is not None
    # A second change keeps the time of the first one not reviewed: how long it has waited.
    post_update(actor=Actor.for_user(focal_point), post=published, data=edited(published, title="Again"))
    published.refresh_from_db()
    assert published.changed_since_review_at == first


def test_through_the_api_and_the_import_too(published, secretariat, focal_point):
    from rest_framework.test import APIClient

    from apps.accounts.models import ApiToken
    from tests.api.factories import issue_token

    _token, raw = issue_token(
        scope=ApiToken.Scope.WRITE, issuer=secretariat, party=party("KEN"), name="Kenya"
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.patch(f"/api/v1/posts/{published.pk}/", {"title": "Rewritten"}, format="json")
    assert response.status_code == 200, response.json()
    published.refresh_from_db()
    assert published.changed_since_review_at is not None
    other = PostFactory(party=party("KEN"), external_id="ke-2", title="Solar pumps")
    post_import(actor=Actor.for_user(focal_point), items=[edited(other, title="Solar pumps, rewritten")])
    other.refresh_from_db()
    assert other.title == "Solar pumps, rewritten" and other.changed_since_review_at is not None


def test_what_does_not_wait_for_review(published, secretariat, focal_point):
    # The secretariat's own edit; an import by the secretariat; a draft's edit; a save that changes nothing.
    post_update(
        actor=Actor.for_user(secretariat), post=published, data=edited(published, title="Fixed by us")
    )
    post_import(actor=Actor.for_user(secretariat), items=[edited(published, title="Fixed again")])
    draft = PostFactory(party=party("KEN"), status=Post.Status.DRAFT, published_at=None)
    post_update(actor=Actor.for_user(focal_point), post=draft, data=edited(draft, title="Draft, edited"))
    same = PostFactory(party=party("KEN"))
    post_update(actor=Actor.for_user(focal_point), post=same, data=edited(same))
    assert not Post.objects.filter(changed_since_review_at__isnull=False).exists()
    # The edits and imports were made: what they changed is there, in the history too.
    published.refresh_from_db()
    draft.refresh_from_db()
    assert (published.title, draft.title) == ("Fixed again", "Draft, edited")
    assert published.events.filter(action=PostEvent.Action.UPDATED).count() == 2
    assert not same.events.filter(action=PostEvent.Action.UPDATED).exists()


def test_the_secretariat_finds_and_reviews_the_changes_in_the_admin(
    published, focal_point, secretariat, login
):
    post_update(actor=Actor.for_user(focal_point), post=published, data=edited(published, title="Rewritten"))
    PostFactory(party=party("BRA"), title="Untouched")
    client = login(secretariat)
    # The dashboard and the admin's list lead to them.
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert "Review 1 published post changed since its review" in dashboard
    assert 'href="/admin/posts/post/?queue=changed"' in dashboard
    listing = client.get(CHANGELIST).content.decode()
    assert "Changed since review: 1 published post" in listing
    changed = client.get(CHANGELIST + "?queue=changed")
    assert [p.pk for p in changed.context["cl"].result_list] == [published.pk]
    assert "column-changed_since_review_at" in changed.content.decode()  # the time it has waited since
    assert "Changed since review" not in changed.content.decode()  # the link, on the list it leads to
    # Marked as reviewed: off the list, and in the post's history and the admin's.
    shown_at = re.search(r'name="shown_at" value="([^"]+)"', changed.content.decode()).group(1)
    mark = {"action": "mark_reviewed_selected", "_selected_action": [published.pk], "shown_at": shown_at}
    response = client.post(CHANGELIST + "?queue=changed", mark, follow=True)
    assert "Marked the changes of 1 post as reviewed." in response.content.decode()
    published.refresh_from_db()
    assert published.changed_since_review_at is None and published.status == Post.Status.PUBLISHED
    event = published.events.get(action=PostEvent.Action.REVIEWED)
    assert event.actor == secretariat and event.from_status == event.to_status == Post.Status.PUBLISHED
    assert LogEntry.objects.filter(object_id=str(published.pk), change_message="Changes reviewed.").exists()
    assert "Review 1 published post" not in client.get(reverse("dashboard")).content.decode()
    # Again, with nothing left to review: said, not done twice.
    response = client.post(CHANGELIST, mark, follow=True)
    assert "None of the selected posts has changes waiting for review." in response.content.decode()
    assert published.events.filter(action=PostEvent.Action.REVIEWED).count() == 1


def test_a_change_made_after_the_list_was_shown_is_not_marked_reviewed_unseen(published, focal_point, login,
                                                                              secretariat):  # fmt: skip
    """The secretariat reads a harmless edit; meanwhile the poster edits again; "mark reviewed" must not clear
    what nobody has seen."""
    fp = Actor.for_user(focal_point)
    post_update(actor=fp, post=published, data=edited(published, title="Mangroves for Lamu county"))
    client = login(secretariat)
    html = client.get(CHANGELIST + "?queue=changed").content.decode()
    shown_at = re.search(r'name="shown_at" value="([^"]+)"', html).group(1)
    post_update(
        actor=fp, post=Post.objects.get(pk=published.pk), data=edited(published, title="SPAM http://x")
    )
    mark = {"action": "mark_reviewed_selected", "_selected_action": [published.pk], "shown_at": shown_at}
    response = client.post(CHANGELIST + "?queue=changed", mark, follow=True)
    assert (
        "It changed again after the list was shown: open it to see the change." in response.content.decode()
    )
    published.refresh_from_db()
    assert published.changed_since_review_at is not None
    assert not published.events.filter(action=PostEvent.Action.REVIEWED).exists()
    # Without the time the list was shown (a form of another page), or with one that is no time, nothing is.
    for shown in ("", "yesterday", "2026-13-01T00:00:00+00:00", "2026-01-01T00:00:00"):
        response = client.post(CHANGELIST, {**mark, "shown_at": shown}, follow=True)
        assert response.status_code == 200
        assert "Show the list again, then mark the changes." in response.content.decode(), shown
    # Shown again, it can be.
    html = client.get(CHANGELIST + "?queue=changed").content.decode()
    mark["shown_at"] = re.search(r'name="shown_at" value="([^"]+)"', html).group(1)
    client.post(CHANGELIST + "?queue=changed", mark)
    published.refresh_from_db()
    assert published.changed_since_review_at is None


def test_the_secretariats_own_edit_after_the_list_was_shown_does_not_stop_the_review(
    published, focal_point, secretariat, login
):
    """The officer fixes a typo in another tab after the list was shown: that edit is theirs, reviewed by being
    made; only the poster's later changes (as a user, a token or an import) keep the post in the list."""
    from apps.accounts.models import ApiToken
    from tests.api.factories import issue_token

    post_update(actor=Actor.for_user(focal_point), post=published, data=edited(published, title="Rewritten"))
    client = login(secretariat)
    html = client.get(CHANGELIST + "?queue=changed").content.decode()
    shown_at = re.search(r'name="shown_at" value="([^"]+)"', html).group(1)
    current = Post.objects.get(pk=published.pk)
    post_update(
        actor=Actor.for_user(secretariat), post=current, data=edited(current, title="Rewritten, typo fixed")
    )
    event = published.events.filter(action=PostEvent.Action.UPDATED).first()
    assert (event.actor_label, event.actor_role) == (secretariat.username, "secretariat")
    assert (
        "Acting as" in client.get(reverse("admin:posts_postevent_change", args=[event.pk])).content.decode()
    )
    mark = {"action": "mark_reviewed_selected", "_selected_action": [published.pk], "shown_at": shown_at}
    response = client.post(CHANGELIST + "?queue=changed", mark, follow=True)
    assert "Marked the changes of 1 post as reviewed." in response.content.decode()
    published.refresh_from_db()
    assert published.changed_since_review_at is None
    # A token of the Party (whose audit-trail user is the secretariat user who issued it) acts as the Party.
    post_update(actor=Actor.for_user(focal_point), post=published, data=edited(published, title="Third"))
    shown_at = re.search(
        r'name="shown_at" value="([^"]+)"', client.get(CHANGELIST + "?queue=changed").content.decode()
    ).group(1)
    token, _raw = issue_token(
        scope=ApiToken.Scope.WRITE, issuer=secretariat, party=party("KEN"), name="Kenya"
    )
    current = Post.objects.get(pk=published.pk)
    post_update(actor=Actor.for_token(token), post=current, data=edited(current, title="Fourth"))
    assert published.events.filter(action=PostEvent.Action.UPDATED).first().actor == secretariat
    response = client.post(CHANGELIST + "?queue=changed", {**mark, "shown_at": shown_at}, follow=True)
    assert "It changed again after the list was shown" in response.content.decode()
    published.refresh_from_db()
    assert published.changed_since_review_at is not None


@pytest.mark.parametrize("role", ["focal_point", "provider", "committee"])
def test_only_the_secretariat_marks_changes_as_reviewed(published, focal_point, role, login):
    post_update(actor=Actor.for_user(focal_point), post=published, data=edited(published, title="Rewritten"))
    user = {
        "focal_point": lambda: focal_point,
        "provider": ProviderUserFactory,
        "committee": CommitteeFactory,
    }[role]()
    with pytest.raises(PermissionDenied):
        post_mark_reviewed(actor=Actor.for_user(user), post=published)
    # The admin's action is the secretariat's: anyone else is sent to the admin's login.
    response = login(user).post(
        CHANGELIST, {"action": "mark_reviewed_selected", "_selected_action": [published.pk]}
    )
    assert response.status_code == 302 and "/admin/login/" in response.url
    published.refresh_from_db()
    assert published.changed_since_review_at is not None
    assert not published.events.filter(action=PostEvent.Action.REVIEWED).exists()


@pytest.mark.parametrize("step", ["take_back", "withdraw"])
def test_a_step_of_the_life_cycle_leaves_nothing_to_review(published, focal_point, secretariat, step):
    post_update(actor=Actor.for_user(focal_point), post=published, data=edited(published, title="Rewritten"))
    if step == "take_back":
        post_return(actor=Actor.for_user(secretariat), post=published, reason="Not what was reviewed.")
    else:
        post_withdraw(actor=Actor.for_user(focal_point), post=published)
    published.refresh_from_db()
    assert published.changed_since_review_at is None
