"""Taking a submission back from review: a submitted post goes back to its owner's drafts, to edit and submit
again, until the secretariat decides (site, API and services; the role matrices are in test_views.py,
test_services.py and tests/api/test_write_permissions.py)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.actors import Actor
from apps.accounts.models import ApiToken
from apps.posts.models import Post
from apps.posts.services import (
    PostTransitionError,
    post_publish,
    post_recall,
    post_return,
    post_submit,
    post_update,
)

from ..factories import PostFactory, ProviderUserFactory, SupportProviderFactory, party
from .test_services import need_data
from .test_views import form_data, messages_of

pytestmark = pytest.mark.django_db

S = Post.Status
QUEUE = reverse("admin:posts_post_changelist")


def submitted(**fields) -> Post:
    return PostFactory(
        party=party("KEN"),
        status=S.SUBMITTED,
        published_at=None,
        submitted_at=timezone.now() - timedelta(days=2),
        **fields,
    )


def test_a_recalled_post_leaves_the_queue_is_edited_and_comes_back_at_its_new_submission(
    focal_point, secretariat, login
):
    post = submitted(title="Typo in the titel")
    first_submission = post.submitted_at
    fp, staff = login(focal_point), login(secretariat)
    assert list(staff.get(QUEUE, {"queue": "submitted"}).context["cl"].result_list) == [post]

    response = fp.post(reverse("posts:recall", args=[post.pk]))
    assert "The post is back in your drafts: edit it, then submit it again." in messages_of(response)
    post.refresh_from_db()
    assert post.status == S.DRAFT
    assert list(staff.get(QUEUE, {"queue": "submitted"}).context["cl"].result_list) == []

    response = fp.post(reverse("posts:edit", args=[post.pk]), form_data(title="No typo in the title"))
    assert response.status_code == 302
    fp.post(reverse("posts:submit", args=[post.pk]))
    post.refresh_from_db()
    assert (post.status, post.title) == (S.SUBMITTED, "No typo in the title")
    assert post.submitted_at > first_submission  # back in the queue at the time it came back
    assert list(post.events.order_by("pk").values_list("action", "from_status", "to_status")) == [
        ("recalled", S.SUBMITTED, S.DRAFT),
        ("updated", S.DRAFT, S.DRAFT),
        ("submitted", S.DRAFT, S.SUBMITTED),
    ]
    # The secretariat's history names the step.
    history = staff.get(reverse("admin:posts_postevent_changelist")).content.decode()
    assert "Taken back from review" in history


def test_the_post_page_offers_it_only_while_in_review(focal_point, login):
    client = login(focal_point)
    button = "Take it back to edit"
    in_review = submitted()
    html = client.get(reverse("posts:detail", args=[in_review.pk])).content.decode()
    assert button in html and reverse("posts:recall", args=[in_review.pk]) in html
    for status in (S.DRAFT, S.RETURNED, S.PUBLISHED, S.CLOSED, S.WITHDRAWN):
        post = PostFactory(party=party("KEN"), status=status)
        assert button not in client.get(reverse("posts:detail", args=[post.pk])).content.decode(), status


def test_a_submitted_posts_edit_page_says_how_to_edit_it(focal_point, login):
    post = submitted()
    response = login(focal_point).get(reverse("posts:edit", args=[post.pk]), follow=True)
    html = response.content.decode()
    assert "take it back from review first" in html and "Take it back to edit" in html


def test_the_secretariat_deciding_first_wins_and_the_owner_is_told(focal_point, login, secretariat):
    """The owner's page was opened while the post was in review; the secretariat published it meanwhile."""
    post = submitted()
    client = login(focal_point)
    post_publish(actor=Actor.for_user(secretariat), post=post)
    response = client.post(reverse("posts:recall", args=[post.pk]))
    assert response.status_code == 302
    assert messages_of(response) == [
        "A published post cannot be taken back from review: the secretariat has already published it."
    ]
    post.refresh_from_db()
    assert post.status == S.PUBLISHED


def test_the_owner_recalling_first_leaves_nothing_to_publish_or_return(focal_point, secretariat):
    post = submitted()
    post_recall(actor=Actor.for_user(focal_point), post=post)
    staff = Actor.for_user(secretariat)
    with pytest.raises(PostTransitionError, match=r"A draft post cannot be published\."):
        post_publish(actor=staff, post=Post.objects.get(pk=post.pk))
    with pytest.raises(PostTransitionError, match=r"A draft post cannot be returned\."):
        post_return(actor=staff, post=Post.objects.get(pk=post.pk), reason="Budget missing.")
    assert Post.objects.get(pk=post.pk).status == S.DRAFT


def test_the_secretariat_publishing_a_post_its_owner_took_back_is_told_in_the_admin(
    focal_point, secretariat, login
):
    """The secretariat opened the post in the queue; its owner took it back before the secretariat's click."""
    post = submitted()
    staff = login(secretariat)
    seen_at = seen_at_of(staff.get(reverse("admin:posts_post_change", args=[post.pk])))
    post_recall(actor=Actor.for_user(focal_point), post=post)
    response = staff.post(reverse("admin:posts_post_publish", args=[post.pk]), {"seen_at": seen_at})
    assert response.status_code == 302
    assert any("A draft post cannot be published." in m for m in messages_of(response))
    post.refresh_from_db()
    assert post.status == S.DRAFT and post.published_at is None


def seen_at_of(page) -> str:
    """The time the admin's page of a submitted post says it was shown, as its Publish form sends it."""
    return re.search(r'name="seen_at" value="([^"]+)"', page.content.decode()).group(1)


def queue_shown_at(staff) -> str:
    """The time the moderation queue says it was shown, as its actions send it."""
    page = staff.get(QUEUE, {"queue": "submitted"}).content.decode()
    return re.search(r'name="shown_at" value="([^"]+)"', page).group(1)


def rewritten_and_resubmitted(post: Post, owner) -> Post:
    """What its owner can do while the secretariat reads the post: take it back, change it, submit it again."""
    actor = Actor.for_user(owner)
    post = post_recall(actor=actor, post=post)
    post = post_update(actor=actor, post=post, data=need_data(title="Never read by the secretariat"))
    return post_submit(actor=actor, post=post)


def test_the_secretariat_never_publishes_a_text_it_was_not_shown(focal_point, secretariat, login):
    """The page was opened on one text; its poster took the post back, rewrote it and submitted it again before
    the click: the Publish of that page publishes nothing, and says why (a reviewer published the new text)."""
    post = submitted(title="Read by the secretariat")
    staff = login(secretariat)
    page = staff.get(reverse("admin:posts_post_change", args=[post.pk]))
    seen_at = seen_at_of(page)
    return_link = re.search(r'href="([^"]*/return/\?seen_at=[^"]+)"', page.content.decode()).group(1)
    rewritten_and_resubmitted(post, focal_point)

    response = staff.post(reverse("admin:posts_post_publish", args=[post.pk]), {"seen_at": seen_at})
    assert response.status_code == 302
    (message,) = messages_of(response)
    assert "submitted it again after this page was shown: read it again first." in message
    post.refresh_from_db()
    assert (post.status, post.title) == (S.SUBMITTED, "Never read by the secretariat")
    # Returning it from the same page's link is refused alike: the reason's page carries the page's time.
    confirm = staff.get(return_link)
    response = staff.post(return_link, {"reason": "Budget missing.", "seen_at": seen_at_of(confirm)})
    assert "read it again first." in " ".join(messages_of(response))
    assert Post.objects.get(pk=post.pk).status == S.SUBMITTED
    # Shown again, it is published.
    fresh = seen_at_of(staff.get(reverse("admin:posts_post_change", args=[post.pk])))
    staff.post(reverse("admin:posts_post_publish", args=[post.pk]), {"seen_at": fresh})
    assert Post.objects.get(pk=post.pk).status == S.PUBLISHED


def test_the_queues_actions_never_decide_on_a_text_submitted_after_the_list_was_shown(
    focal_point, secretariat, login
):
    changed, unchanged = submitted(title="Changed meanwhile"), submitted(title="As listed")
    staff = login(secretariat)
    shown_at = queue_shown_at(staff)
    rewritten_and_resubmitted(changed, focal_point)
    chosen = {
        "action": "publish_selected",
        "_selected_action": [changed.pk, unchanged.pk],
        "shown_at": shown_at,
    }
    response = staff.post(QUEUE, chosen)
    assert any("read it again first." in m for m in messages_of(response))
    statuses = dict(Post.objects.values_list("pk", "status"))
    assert (statuses[changed.pk], statuses[unchanged.pk]) == (S.SUBMITTED, S.PUBLISHED)
    # The return action's page carries the list's time to its confirmation.
    chosen = {"action": "return_selected", "_selected_action": [changed.pk], "shown_at": shown_at}
    confirm = staff.post(QUEUE, chosen).content.decode()
    assert f'name="shown_at" value="{shown_at}"' in confirm
    staff.post(QUEUE, {**chosen, "apply": "1", "reason": "Budget missing."})
    assert Post.objects.get(pk=changed.pk).status == S.SUBMITTED


def test_a_decision_without_the_time_its_page_was_shown_is_asked_again(secretariat, login):
    """A form of another page, or of the version before this one: nothing is decided."""
    post = submitted()
    staff = login(secretariat)
    for data in ({}, {"seen_at": "2026-13-01T00:00:00+00:00"}, {"seen_at": "2026-01-01T00:00:00"}):
        response = staff.post(reverse("admin:posts_post_publish", args=[post.pk]), data, follow=True)
        assert [str(m) for m in response.context["messages"]] == ["Show the page again, then decide."]
    response = staff.post(QUEUE, {"action": "publish_selected", "_selected_action": [post.pk]}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Show the list again, then decide."]
    assert Post.objects.get(pk=post.pk).status == S.SUBMITTED


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (S.DRAFT, "A draft post is not in review: there is nothing to take back."),
        (S.RETURNED, "A returned post is no longer in review: edit it and submit it again."),
        (S.CLOSED, "A closed post cannot be taken back from review."),
        (S.WITHDRAWN, "A withdrawn post cannot be taken back from review."),
    ],
)
def test_refusals_say_why(status, message, focal_point, login):
    post = PostFactory(party=party("KEN"), status=status)
    response = login(focal_point).post(reverse("posts:recall", args=[post.pk]))
    assert response.status_code == 302 and messages_of(response) == [message]
    post.refresh_from_db()
    assert post.status == status and not post.events.exists()


def test_a_resubmission_is_recalled_again(focal_point):
    """Returned, fixed and submitted again: still the owner's to take back until the secretariat decides."""
    post = PostFactory(party=party("KEN"), status=S.RETURNED, published_at=None)
    actor = Actor.for_user(focal_point)
    post = post_submit(actor=actor, post=post)
    assert post_recall(actor=actor, post=post).status == S.DRAFT


# --- a deactivated provider may only take its posts down, not back to edit ----------------------------------


def test_a_deactivated_provider_cannot_recall(secretariat, login):
    provider = SupportProviderFactory(short_name="OLDFUND")
    user = ProviderUserFactory(username="old", provider=provider)
    _token, raw = ApiToken.objects.issue(name="Old", scope="write", provider=provider, created_by=secretariat)
    post = PostFactory(
        kind=Post.Kind.OFFER, party=None, provider=provider, status=S.SUBMITTED, published_at=None
    )
    provider.is_active = False
    provider.save()
    with pytest.raises(PermissionDenied):
        post_recall(actor=Actor.for_user(user), post=post)
    assert login(user).post(reverse("posts:recall", args=[post.pk])).status_code == 403
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.post(f"/api/v1/posts/{post.pk}/recall/")
    assert response.status_code == 403
    assert "deactivated this support provider" in response.json()["errors"][0]["message"]
    post.refresh_from_db()
    assert post.status == S.SUBMITTED


def test_a_post_taken_back_while_the_queue_was_shown_is_said_to_have_left_it(focal_point, secretariat, login):
    """Selected in the queue, then taken back by its poster before the click: the queue's action no longer sees
    it (the list's filter), and said nothing; the post just vanished from the list."""
    gone, kept = submitted(title="Taken back meanwhile"), submitted(title="Still queued")
    staff = login(secretariat)
    shown_at = queue_shown_at(staff)
    post_recall(actor=Actor.for_user(focal_point), post=gone)
    chosen = {"action": "publish_selected", "_selected_action": [gone.pk, kept.pk], "shown_at": shown_at}
    response = staff.post(QUEUE + "?queue=submitted", chosen, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert (
        "1 of the selected posts is no longer in this list (taken back by its poster, or decided meanwhile): "
        "nothing was done to it. Show the list again." in shown
    )
    assert "Published 1 post." in shown
    statuses = dict(Post.objects.values_list("title", "status"))
    assert statuses == {"Taken back meanwhile": S.DRAFT, "Still queued": S.PUBLISHED}


def test_the_return_action_says_which_selected_posts_left_the_queue(focal_point, secretariat, login):
    """The reason's page is built from the posts still in the list: one taken back before the click vanished
    from it unsaid, and with all of them gone the page offered to return "the 0 posts below"."""
    gone, kept = submitted(title="Taken back meanwhile"), submitted(title="Still queued")
    staff = login(secretariat)
    shown_at = queue_shown_at(staff)
    post_recall(actor=Actor.for_user(focal_point), post=gone)
    chosen = {"action": "return_selected", "_selected_action": [gone.pk, kept.pk], "shown_at": shown_at}
    confirm = staff.post(QUEUE + "?queue=submitted", chosen)
    html = confirm.content.decode()
    assert "Still queued" in html and "Taken back meanwhile" not in html
    assert any("1 of the selected posts is no longer in this list" in m for m in messages_of(confirm))
    # Every selected post gone: back to the list with the warning, no empty reason page.
    post_recall(actor=Actor.for_user(focal_point), post=kept)
    response = staff.post(QUEUE + "?queue=submitted", chosen, follow=True)
    assert response.templates[0].name != "admin/posts/post/return_reason.html"
    shown = [str(m) for m in response.context["messages"]]
    assert any("2 of the selected posts are no longer in this list" in m for m in shown)
