"""Taking back a publication: the secretariat returns a published post to its owner with a reason. It leaves the
public list and its matches at once, its owner hears why, edits and resubmits it, and the stocktake, the import
and the partners' sync all see it as no longer published."""

import datetime as dt
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.matching.models import Match
from apps.posts import services
from apps.posts.models import Post
from apps.posts.post_data import PostData
from apps.posts.services import (
    PostImportError,
    post_import,
    post_publish,
    post_return,
    post_submit,
    post_update,
    post_was_published,
)
from apps.stocktake.selectors import export_lookup, stocktake_export
from tests.factories import CommitteeFactory, FocalPointFactory, PostFactory, party
from tests.stocktake.factories import MatchFactory

pytestmark = pytest.mark.django_db

S = Post.Status
REASON = "The budget names a private company's bank account."


@pytest.fixture
def queued(monkeypatch):
    calls: list[list[int]] = []
    monkeypatch.setattr(services, "matching_enqueue", lambda *, post_ids: calls.append(list(post_ids)))
    return calls


@pytest.fixture
def live(focal_point):
    """A published need of Kenya's with an active match (and a connection) to an offer."""
    post = PostFactory(party=party("KEN"), owner=focal_point, title="Mangroves for Lamu", external_id="ke-1")
    offer = PostFactory(kind=Post.Kind.OFFER, party=party("BRA"), title="Blue carbon help")
    MatchFactory(need=post, offer=offer, score=0.8, need_interest="interested", offer_interest="interested")
    return post


def data_of(post: Post) -> PostData:
    return PostData(
        kind=post.kind,
        title=post.title,
        description=post.description,
        support_types=list(post.support_types.values_list("pk", flat=True)),
        focus_areas=list(post.focus_areas.values_list("pk", flat=True)),
        party=post.party,
        language=post.language,
        external_id=post.external_id,
    )


def take_back(secretariat, post, reason=REASON) -> Post:
    return post_return(actor=Actor.for_user(secretariat), post=post, reason=reason)


def test_taking_back_a_publication(live, secretariat, queued):
    post = take_back(secretariat, live)
    post.refresh_from_db()
    assert post.status == S.RETURNED
    assert post.return_reason == REASON
    assert post.published_at is None and post.returned_at is not None
    event = post.events.get()
    assert (event.action, event.from_status, event.to_status, event.note) == ("returned", S.PUBLISHED,
                                                                              S.RETURNED, REASON)  # fmt: skip
    # Its matches leave every view at once, the connection with them; the workers are told too.
    assert not Match.objects.active().filter(need=post).exists()
    assert Match.objects.filter(need=post).count() == 1  # retired, not deleted
    assert post.matching_pending and queued == [[post.pk]]
    assert post_was_published(post)
    assert not post_was_published(PostFactory(status=S.RETURNED, published_at=None))


def test_the_owner_hears_why_the_post_is_no_longer_public(live, secretariat, focal_point, mailoutbox,
                                                         django_capture_on_commit_callbacks):  # fmt: skip
    FocalPointFactory(username="fp_ken_fr", party=party("KEN"), preferred_language="fr")
    with django_capture_on_commit_callbacks(execute=True):
        take_back(secretariat, live)
    by_subject = {m.subject: m for m in mailoutbox}
    assert set(by_subject) == {
        "Your post is no longer public: Mangroves for Lamu",
        "Votre annonce n’est plus publique\u00a0: Mangroves for Lamu",
    }
    english = by_subject["Your post is no longer public: Mangroves for Lamu"]
    assert english.to == [focal_point.email]
    assert "has taken back the publication" in english.body and REASON in english.body
    assert f"/posts/{live.pk}/edit/" in english.body
    assert (
        "n’est plus publique"
        in by_subject["Votre annonce n’est plus publique\u00a0: Mangroves for Lamu"].body
    )


def test_a_plain_return_still_says_returned(secretariat, mailoutbox, django_capture_on_commit_callbacks):
    FocalPointFactory(username="fp_ken2", party=party("KEN"))
    post = PostFactory(party=party("KEN"), status=S.SUBMITTED, published_at=None, title="Solar pumps")
    with django_capture_on_commit_callbacks(execute=True):
        take_back(secretariat, post, "Add the sites.")
    assert [m.subject for m in mailoutbox] == ["Your post was returned to you: Solar pumps"]


def test_public_pages_no_longer_show_it(live, secretariat, client, queued):
    assert client.get(reverse("posts:detail", args=[live.pk])).status_code == 200
    take_back(secretariat, live)
    assert client.get(reverse("posts:detail", args=[live.pk])).status_code == 404
    assert live.title not in client.get(reverse("posts:list")).content.decode()


def test_the_owner_fixes_and_resubmits_then_it_is_published_again(live, secretariat, focal_point, queued):
    first_published = live.published_at
    take_back(secretariat, live)
    owner = Actor.for_user(focal_point)
    post = Post.objects.get(pk=live.pk)
    data = data_of(post)
    data.description = "Mangrove nurseries and community monitoring along the Lamu coast."
    post_update(actor=owner, post=post, data=data)
    post_submit(actor=owner, post=Post.objects.get(pk=live.pk))
    post = post_publish(actor=Actor.for_user(secretariat), post=Post.objects.get(pk=live.pk))
    post.refresh_from_db()
    assert post.status == S.PUBLISHED and post.published_at > first_published
    assert [e.action for e in post.events.order_by("created_at", "id")] == [
        "returned", "updated", "submitted", "published"]  # fmt: skip
    assert queued[-1] == [post.pk]  # matched again


@pytest.mark.parametrize("role", ["focal_point", "committee", "provider_user", "observer"])
def test_only_the_secretariat_takes_back(role, request, live, queued):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        take_back(request.getfixturevalue(role), live)
    live.refresh_from_db()
    assert live.status == S.PUBLISHED and live.published_at is not None
    assert Match.objects.active().filter(need=live).count() == 1
    assert queued == []


# --- what else sees it -------------------------------------------------------------------------------------


def test_the_stocktake_counts_it_from_its_next_publication(live, secretariat, focal_point, queued):
    today = timezone.now().date()
    period = {"date_from": today - dt.timedelta(days=30), "date_to": today}

    def value(figure):
        return export_lookup(stocktake_export(**period, filters={}))[(figure, ())]

    Match.objects.filter(need=live).update(
        strong_at=timezone.now()
    )  # its strong match, as the worker notes it
    assert (value("needs_published"), value("needs_open")) == (1, 1)
    assert (value("needs_with_strong_match"), value("needs_first_strong_match")) == (1, 1)
    take_back(secretariat, live)
    # Neither published in the period nor open at its end: it was not public when the figures are read.
    assert (value("needs_published"), value("needs_open")) == (0, 0)
    assert (value("needs_with_strong_match"), value("needs_first_strong_match")) == (0, 0)
    assert value("strong_matches") == 1  # the event stands
    post_submit(actor=Actor.for_user(focal_point), post=Post.objects.get(pk=live.pk))
    post_publish(actor=Actor.for_user(secretariat), post=Post.objects.get(pk=live.pk))
    assert (value("needs_published"), value("needs_open")) == (1, 1)
    # Its strong match came before this publication: from it, the need has none yet.
    assert (value("needs_with_strong_match"), value("needs_first_strong_match")) == (0, 0)
    MatchFactory(need=live, offer=PostFactory(kind=Post.Kind.OFFER, party=party("JPN")), score=0.9,
                 strong_at=timezone.now())  # fmt: skip
    assert (value("needs_with_strong_match"), value("needs_first_strong_match")) == (1, 1)
    assert value("days_to_first_strong_match_median") >= 0


def record(post: Post, **overrides) -> PostData:
    data = data_of(post)
    data.status = S.PUBLISHED
    for name, value in overrides.items():
        setattr(data, name, value)
    return data


def test_a_resync_that_still_says_published_leaves_it_returned(live, secretariat, focal_point, queued):
    take_back(secretariat, live)
    stale = record(Post.objects.get(pk=live.pk))
    # The Party's own sync, and the secretariat's: the file is behind the decision, not asking to publish.
    for actor in (Actor.for_user(focal_point), Actor.for_user(secretariat)):
        result = post_import(actor=actor, items=[stale])
        assert result.total == 1
        post = Post.objects.get(pk=live.pk)
        assert post.status == S.RETURNED and post.return_reason == REASON and post.published_at is None
    # Nor once its owner has resubmitted it: publishing it again is moderation's.
    post_submit(actor=Actor.for_user(focal_point), post=Post.objects.get(pk=live.pk))
    for actor in (Actor.for_user(focal_point), Actor.for_user(secretariat)):
        post_import(actor=actor, items=[record(Post.objects.get(pk=live.pk))])
        assert Post.objects.get(pk=live.pk).status == S.SUBMITTED
    # A post returned before it was ever published cannot be published by an import either.
    never = PostFactory(party=party("KEN"), status=S.RETURNED, published_at=None, external_id="ke-2")
    with pytest.raises(PostImportError) as error:
        post_import(actor=Actor.for_user(secretariat), items=[record(never)])
    assert [(e.field, e.code) for _i, e in error.value.errors] == [("status", "invalid_transition")]
    assert Post.objects.get(pk=never.pk).status == S.RETURNED


# --- the admin -----------------------------------------------------------------------------------------------


def change_url(post: Post) -> str:
    return reverse("admin:posts_post_change", args=[post.pk])


def test_the_admin_takes_back_a_publication_from_its_page(live, secretariat, login, queued):
    staff = login(secretariat)
    return_url = reverse("admin:posts_post_return", args=[live.pk])
    page = staff.get(change_url(live)).content.decode()
    assert "Take back the publication…" in page and return_url in page
    confirm = staff.get(return_url).content.decode()
    assert "<h1>Take back the publication of “Mangroves for Lamu”</h1>" in confirm
    assert 'value="Take back and return to owner"' in confirm
    assert "This post is published: returning it takes it off the public list" in confirm
    assert change_url(live) in confirm  # Cancel goes back to the post
    assert '<div class="breadcrumbs">' in confirm  # styled as the admin's own

    # The page says when it was shown, as its form sends it (`seen_at`).
    seen_at = re.search(r'name="seen_at" value="([^"]+)"', confirm).group(1)
    response = staff.post(return_url, {"reason": "", "seen_at": seen_at})
    assert response.status_code == 200 and Post.objects.get(pk=live.pk).status == S.PUBLISHED
    response = staff.post(return_url, {"reason": REASON, "seen_at": seen_at}, follow=True)
    assert response.redirect_chain[-1][0] == change_url(live)
    assert [str(m) for m in response.context["messages"]] == [
        "Took back the publication of “Mangroves for Lamu” and returned it to its owner."
    ]
    post = Post.objects.get(pk=live.pk)
    assert post.status == S.RETURNED and post.return_reason == REASON
    entry = LogEntry.objects.get(object_id=str(live.pk))
    assert entry.get_change_message() == f"Publication taken back; returned to its owner: {REASON}"
    # A returned post's page offers no moderation button.
    page = staff.get(change_url(post)).content.decode()
    assert "Take back the publication…" not in page and return_url not in page


def test_the_list_action_returns_submitted_and_published_posts(secretariat, login, queued):
    staff = login(secretariat)
    submitted = PostFactory(status=S.SUBMITTED, published_at=None, title="In the queue")
    published = PostFactory(title="On the list")
    draft = PostFactory(status=S.DRAFT, published_at=None, title="A draft")
    chosen = {
        "action": "return_selected",
        "_selected_action": [submitted.pk, published.pk, draft.pk],
        "shown_at": timezone.now().isoformat(),  # as the list sends it
    }
    page = staff.post(reverse("admin:posts_post_changelist"), chosen).content.decode()
    assert "<h1>Return posts to their owners</h1>" in page and 'value="Return to owner"' in page
    assert "1 of these posts is published" in page
    # Cancel goes back to the list they were chosen from, not to the moderation queue.
    assert f'href="{reverse("admin:posts_post_changelist")}" class="button cancel-link"' in page
    assert "1 of these posts is neither submitted nor published and will not be returned." in page
    staff.post(reverse("admin:posts_post_changelist"), {**chosen, "apply": "1", "reason": REASON})
    statuses = dict(Post.objects.values_list("title", "status"))
    assert statuses == {"In the queue": S.RETURNED, "On the list": S.RETURNED, "A draft": S.DRAFT}


def test_staff_without_the_secretariat_role_cannot_take_back(live, login, focal_point, queued):
    for user in (CommitteeFactory(username="staff_committee", is_staff=True), focal_point):
        user.is_staff = True
        user.save()
        client = login(user)
        url = reverse("admin:posts_post_return", args=[live.pk])
        assert client.get(url).status_code == 403
        assert client.post(url, {"reason": REASON, "seen_at": timezone.now().isoformat()}).status_code == 403
    live.refresh_from_db()
    assert live.status == S.PUBLISHED and not live.events.exists()


def test_the_site_page_of_a_published_post_links_the_secretariat_to_take_back(live, login, secretariat,
                                                                              focal_point):  # fmt: skip
    link = reverse("admin:posts_post_return", args=[live.pk])
    url = reverse("posts:detail", args=[live.pk])
    assert link in login(secretariat).get(url).content.decode()
    assert link not in login(focal_point).get(url).content.decode()
