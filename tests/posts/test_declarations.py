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
