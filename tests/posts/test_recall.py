"""Taking a submission back from review: a submitted post goes back to its owner's drafts, to edit and submit
again, until the secretariat decides (site, API and services; the role matrices are in test_views.py,
test_services.py and tests/api/test_write_permissions.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.actors import Actor
from apps.accounts.models import ApiToken
from apps.posts.models import Post
from apps.posts.services import PostTransitionError, post_publish, post_recall, post_return, post_submit

from ..factories import PostFactory, ProviderUserFactory, SupportProviderFactory, party
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
    assert staff.get(reverse("admin:posts_post_change", args=[post.pk])).status_code == 200
    post_recall(actor=Actor.for_user(focal_point), post=post)
    response = staff.post(reverse("admin:posts_post_publish", args=[post.pk]))
    assert response.status_code == 302
    assert any("A draft post cannot be published." in m for m in messages_of(response))
    post.refresh_from_db()
    assert post.status == S.DRAFT and post.published_at is None


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
