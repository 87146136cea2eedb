"""The emails of moderation: a Party's focal points hear that the secretariat published their post, or returned
it with a reason, each in their own language, once the decision is committed."""

import pytest

from apps.accounts.actors import Actor
from apps.posts import tasks
from apps.posts.models import Post
from apps.posts.notifications import moderation_notify
from apps.posts.services import post_publish, post_return, post_submit
from tests.factories import FocalPointFactory, PostFactory, SecretariatFactory, party

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(focal_point):
    return PostFactory(status=Post.Status.SUBMITTED, party=party("KEN"), title="Mangroves for Lamu",
                       owner=focal_point, published_at=None)  # fmt: skip


def test_publishing_tells_the_partys_focal_points(
    submitted, focal_point, mailoutbox, django_capture_on_commit_callbacks
):
    FocalPointFactory(username="fp_uga", party=party("UGA"))  # another Party's: not told
    with django_capture_on_commit_callbacks(execute=True):
        post_publish(actor=Actor.for_user(SecretariatFactory()), post=submitted)
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [focal_point.email]
    assert mail.subject == "Your post is published: Mangroves for Lamu"
    assert f"/posts/{submitted.pk}/" in mail.body


def test_returning_gives_the_reason_in_each_recipients_language(submitted, focal_point, mailoutbox,
                                                                django_capture_on_commit_callbacks):  # fmt: skip
    FocalPointFactory(username="fp_ken_fr", party=party("KEN"), preferred_language="fr")
    with django_capture_on_commit_callbacks(execute=True):
        post_return(
            actor=Actor.for_user(SecretariatFactory()), post=submitted, reason="Please add the budget."
        )
    by_subject = {m.subject: m for m in mailoutbox}
    assert set(by_subject) == {
        "Your post was returned to you: Mangroves for Lamu",
        "Votre annonce vous a été renvoyée\u00a0: Mangroves for Lamu",
    }
    english = by_subject["Your post was returned to you: Mangroves for Lamu"]
    assert english.to == [focal_point.email]
    assert "Please add the budget." in english.body and f"/posts/{submitted.pk}/edit/" in english.body


def test_nothing_is_sent_before_the_commit_nor_for_a_decision_overtaken(submitted, focal_point, mailoutbox):
    post_return(actor=Actor.for_user(SecretariatFactory()), post=submitted, reason="Add the budget.")
    assert mailoutbox == []  # the transaction of the test never commits
    post_submit(actor=Actor.for_user(focal_point), post=Post.objects.get(pk=submitted.pk))
    # The task runs late, after the focal point has resubmitted: the post is no longer returned.
    assert moderation_notify(post_id=submitted.pk, event="returned") == 0
    assert mailoutbox == []


def test_with_the_broker_down_the_email_is_sent_at_once(submitted, focal_point, mailoutbox, monkeypatch,
                                                        django_capture_on_commit_callbacks):  # fmt: skip
    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.notify_moderation, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        post_publish(actor=Actor.for_user(SecretariatFactory()), post=submitted)
    assert [m.to for m in mailoutbox] == [[focal_point.email]]
