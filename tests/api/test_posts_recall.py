"""Taking a submission back from review through the API (`POST /api/v1/posts/<id>/recall/`); the site and the
services in tests/posts/test_recall.py, who may in test_write_permissions.py."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.actors import Actor
from apps.posts.models import Post
from apps.posts.services import post_recall, post_submit

from ..factories import FocalPointFactory, PostFactory, party
from ..posts.test_recall import submitted

pytestmark = pytest.mark.django_db

S = Post.Status


@pytest.fixture
def ken(api, tokens) -> APIClient:
    return api(tokens["ken"])


def test_api_recall_with_a_current_etag(ken):
    post = submitted()
    etag = ken.get(f"/api/v1/posts/{post.pk}/")["ETag"]
    response = ken.post(f"/api/v1/posts/{post.pk}/recall/", HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "draft" and response["ETag"] != etag


def test_api_recall_from_a_stale_read_is_412(ken):
    post = submitted()
    etag = ken.get(f"/api/v1/posts/{post.pk}/")["ETag"]
    colleague = Actor.for_user(FocalPointFactory(username="fp_ken_2", party=party("KEN")))
    post_recall(actor=colleague, post=post)  # another focal point of Kenya took it back, and resubmitted it
    post_submit(actor=colleague, post=Post.objects.get(pk=post.pk))
    response = ken.post(f"/api/v1/posts/{post.pk}/recall/", HTTP_IF_MATCH=etag)
    assert response.status_code == 412
    assert Post.objects.get(pk=post.pk).status == S.SUBMITTED


@pytest.mark.parametrize("status", [S.DRAFT, S.RETURNED, S.PUBLISHED, S.CLOSED, S.WITHDRAWN])
def test_api_recall_from_another_status_is_409_saying_why(ken, status):
    post = PostFactory(party=party("KEN"), status=status)
    response = ken.post(f"/api/v1/posts/{post.pk}/recall/")
    assert response.status_code == 409
    (error,) = response.json()["errors"]
    assert "review" in error["message"] and error["code"] == "invalid_transition"
    post.refresh_from_db()
    assert post.status == status


def test_the_schema_documents_it(api):
    schema = api().get("/api/v1/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/posts/{id}/recall/"]["post"]
    assert {"200", "403", "404", "409", "412"} <= set(operation["responses"])


def test_a_submission_taken_back_after_a_publication_is_listed_as_removed_with_its_status(ken, secretariat):
    """Published, taken back by the secretariat, resubmitted, then taken back by its owner: the removed-posts
    feed says where it is (a draft), as its schema and the README now list."""
    from apps.posts.services import post_return

    post = PostFactory(party=party("KEN"))
    before = ken.get(f"/api/v1/posts/{post.pk}/").json()["updated_at"]
    post = post_return(actor=Actor.for_user(secretariat), post=post, reason="Wrong Party.")
    owner = Actor.for_user(FocalPointFactory(username="fp_ken_3", party=party("KEN")))
    post = post_recall(actor=owner, post=post_submit(actor=owner, post=post))
    rows = ken.get("/api/v1/posts/removed/", {"since": before}).json()
    assert [(row["id"], row["status"]) for row in rows] == [(post.pk, "draft")]
