"""The Article 6.8 eligibility declarations a post has not made: said to its poster before submitting, and to the
secretariat while moderating (a note on the post's admin page, a filter of the list)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.posts.models import Post

from ..factories import PostFactory, party

pytestmark = pytest.mark.django_db

S = Post.Status
EVERY = {f"declares_{key}": True for key in ("voluntary", "no_transfer", "ndc", "rights", "safeguards")}


def test_missing_declarations_are_named_in_the_models_order():
    post = PostFactory(**{**EVERY, "declares_no_transfer": False, "declares_rights": False})
    assert post.missing_declarations == [
        "involves no transfer of mitigation outcomes",
        "respects human rights, gender equality and the rights of Indigenous Peoples and local communities",
    ]
    assert PostFactory(**EVERY).missing_declarations == []


def test_the_poster_is_told_before_submitting(focal_point, login):
    client = login(focal_point)
    draft = PostFactory(
        party=party("KEN"), status=S.DRAFT, published_at=None, **{**EVERY, "declares_ndc": False}
    )
    html = client.get(reverse("posts:detail", args=[draft.pk])).content.decode()
    assert 'id="missing-declarations"' in html
    assert "Not declared yet: helps the host Party implement its NDC." in html
    complete = PostFactory(party=party("KEN"), status=S.DRAFT, published_at=None, **EVERY)
    assert (
        'id="missing-declarations"'
        not in client.get(reverse("posts:detail", args=[complete.pk])).content.decode()
    )
    # Only where it can be submitted: not on a published post, nor to a reader who cannot submit it.
    published = PostFactory(party=party("KEN"), declares_ndc=False)
    assert (
        'id="missing-declarations"'
        not in client.get(reverse("posts:detail", args=[published.pk])).content.decode()
    )


def test_the_poster_is_told_in_its_language(focal_point, login):
    client = login(focal_point)
    client.cookies["django_language"] = "fr"
    draft = PostFactory(
        party=party("KEN"), status=S.DRAFT, published_at=None, **{**EVERY, "declares_ndc": False}
    )
    html = client.get(reverse("posts:detail", args=[draft.pk])).content.decode()
    assert "Pas encore déclaré" in html


def test_the_secretariat_reads_them_while_moderating(secretariat, login):
    staff = login(secretariat)
    missing = PostFactory(status=S.SUBMITTED, published_at=None, title="Two missing",
                          **{**EVERY, "declares_voluntary": False, "declares_safeguards": False})  # fmt: skip
    complete = PostFactory(status=S.SUBMITTED, published_at=None, title="All made", **EVERY)
    page = staff.get(reverse("admin:posts_post_change", args=[missing.pk])).content.decode()
    assert "Article 6.8 declarations its poster has not made:" in page
    assert "identified voluntarily by the participating Parties; minimises negative" in page
    page = staff.get(reverse("admin:posts_post_change", args=[complete.pk])).content.decode()
    assert "Article 6.8 declarations its poster has not made:" not in page
    changelist = reverse("admin:posts_post_changelist")
    found = staff.get(changelist, {"queue": "submitted", "declarations": "missing"}).context["cl"].result_list
    assert [p.title for p in found] == ["Two missing"]
    found = staff.get(changelist, {"queue": "submitted", "declarations": "all"}).context["cl"].result_list
    assert [p.title for p in found] == ["All made"]


def test_the_note_is_one_sentence_of_the_pages_language(focal_point, login):
    """Its punctuation is the language's: Chinese ends with 。 and puts no space after its colon."""
    client = login(focal_point)
    client.cookies["django_language"] = "zh-hans"
    draft = PostFactory(
        party=party("KEN"), status=S.DRAFT, published_at=None, **{**EVERY, "declares_ndc": False}
    )
    html = client.get(reverse("posts:detail", args=[draft.pk])).content.decode()
    note = html[html.index('id="missing-declarations"') :]
    assert "尚未声明：" in note and "尚未声明： " not in note and "。" in note[: note.index("</p>")]


def test_a_reader_who_cannot_submit_the_post_is_not_told(login):
    """A deactivated provider's users may only withdraw or close its posts: no note asks them to declare."""
    from ..factories import ProviderUserFactory, SupportProviderFactory

    provider = SupportProviderFactory(short_name="OLDFUND")
    user = ProviderUserFactory(username="old_provider_user", provider=provider)
    draft = PostFactory(
        kind=Post.Kind.OFFER, party=None, provider=provider, status=S.DRAFT, published_at=None
    )
    provider.is_active = False
    provider.save()
    page = login(user).get(reverse("posts:detail", args=[draft.pk]))
    assert page.status_code == 200 and "submit" not in page.context["actions"]
    assert 'id="missing-declarations"' not in page.content.decode()
