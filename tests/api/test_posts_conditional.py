"""Conditional requests on a post (RFC 9110 section 13): its ETag, 304 for If-None-Match, and If-Match on every
change, so that a partner's write never silently undoes a change made since it read the post."""

from __future__ import annotations

import pytest

from apps.accounts.actors import Actor
from apps.accounts.models import ApiToken
from apps.posts import apis, services
from apps.posts.models import Post, PostEvent
from apps.posts.post_data import ReferenceData, parse_post_record, post_to_record
from apps.posts.services import post_update

from ..factories import FocalPointFactory, PostFactory, party
from .factories import issue_token

pytestmark = pytest.mark.django_db

LIST = "/api/v1/posts/"


def url(post: Post, action: str = "") -> str:
    return f"{LIST}{post.pk}/{action + '/' if action else ''}"


def edited(post: Post, **changes):
    return parse_post_record({**post_to_record(post), **changes}, ReferenceData())


def edit_on_the_site(post: Post, **changes) -> None:
    """What a Kenyan focal point's save in the site's edit form does, between the partner's read and its write."""
    post = Post.objects.get(pk=post.pk)
    post_update(
        actor=Actor.for_user(FocalPointFactory(username="fp_site")), post=post, data=edited(post, **changes)
    )


@pytest.fixture
def queued(monkeypatch):
    """The ids of the posts handed to the matcher."""
    calls = []
    monkeypatch.setattr(services, "matching_enqueue", lambda *, post_ids: calls.extend(post_ids))
    return calls


@pytest.fixture
def ken(api, tokens):
    return api(tokens["ken"])


def etag_of(client, post: Post) -> str:
    response = client.get(url(post))
    assert response.status_code == 200
    return response["ETag"]


def error(response) -> tuple[int, str | None, str]:
    (item,) = response.json()["errors"]
    return response.status_code, item["field"], item["code"]


# --- the ETag ----------------------------------------------------------------------------------------------


def test_a_post_has_a_strong_etag_that_changes_with_it_and_only_with_it(ken, api, tokens):
    post = PostFactory(title="Solar pumps")
    first = ken.get(url(post))
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10  # strong: no W/
    assert ken.get(url(post))["ETag"] == etag
    # A PATCH that changes nothing changes no version; its answer carries the same ETag.
    noop = ken.patch(url(post), {"title": "Solar pumps"}, format="json")
    assert noop.status_code == 200 and noop["ETag"] == etag == ken.get(url(post))["ETag"]
    # Changed by someone else, on the site or with another token: a new ETag.
    edit_on_the_site(post, title="Solar pumps for Turkana")
    after_site = ken.get(url(post))["ETag"]
    assert after_site != etag
    _t, other = issue_token(scope=ApiToken.Scope.WRITE, party=party("KEN"), name="Kenya 2")
    assert api(other).patch(url(post), {"title": "Solar pumps, Turkana"}, format="json").status_code == 200
    assert ken.get(url(post))["ETag"] not in (etag, after_site)


def test_the_etag_differs_where_the_body_does_and_not_with_the_language(api, tokens):
    post = PostFactory(contact_name="Amina", contact_email="amina@example.org")
    bodies = {who: api(tokens.get(who)).get(url(post)) for who in ("anonymous", "read", "ken")}
    # Without contact details, with them, and with what only the poster sees (its return reason): three bodies,
    # three ETags; two callers who read the same body share one.
    assert len({r.content for r in bodies.values()}) == len({r["ETag"] for r in bodies.values()}) == 3
    assert api(tokens["bra"]).get(url(post))["ETag"] == bodies["read"]["ETag"]
    french = api(tokens["ken"]).get(url(post), HTTP_ACCEPT_LANGUAGE="fr")
    assert french.content == bodies["ken"].content and french["ETag"] == bodies["ken"]["ETag"]


def test_a_renamed_party_changes_the_etag_though_the_post_did_not_change(ken):
    """The record names its Party by code: a code corrected in the admin changes the body, so the ETag."""
    post = PostFactory()
    etag = etag_of(ken, post)
    kenya = party("KEN")
    kenya.iso3 = "KEX"
    kenya.save()
    assert ken.get(url(post)).json()["party"] == "KEX"
    assert etag_of(ken, post) != etag
    stale = ken.patch(url(post), {"title": "Changed"}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412 and Post.objects.get(pk=post.pk).title != "Changed"


def test_every_write_answers_with_the_new_etag(ken):
    created = ken.post(
        LIST,
        {
            "kind": "need",
            "title": "Solar pumps",
            "description": "Pumps.",
            "support_types": ["finance"],
            "focus_areas": ["clean_energy"],
        },
        format="json",
    )
    assert created.status_code == 201
    post = Post.objects.get(pk=created.json()["id"])
    assert created["ETag"] == etag_of(ken, post)
    # Without If-Match a write goes through as before, and says what the post's version is now.
    edit_on_the_site(post, title="Changed on the site")
    put = ken.patch(url(post), {"title": "Solar pumps 2"}, format="json")
    assert put.status_code == 200 and put["ETag"] == etag_of(ken, post) != created["ETag"]
    submitted = ken.post(url(post, "submit"))
    assert submitted.status_code == 200 and submitted["ETag"] == etag_of(ken, post) != put["ETag"]


# --- If-None-Match -----------------------------------------------------------------------------------------


def test_if_none_match_gives_304_while_the_post_is_unchanged(ken):
    post = PostFactory()
    etag = etag_of(ken, post)
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):  # weak comparison, any tag of a list, or any
        response = ken.get(url(post), HTTP_IF_NONE_MATCH=value)
        assert response.status_code == 304, value
        assert response.content == b"" and response["ETag"] == etag
        assert "Authorization" in response["Vary"]
    head = ken.head(url(post), HTTP_IF_NONE_MATCH=etag)
    assert head.status_code == 304 and head["ETag"] == etag
    assert ken.get(url(post), HTTP_IF_NONE_MATCH='"other"').status_code == 200
    edit_on_the_site(post, title="Changed on the site")
    changed = ken.get(url(post), HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed.json()["title"] == "Changed on the site"
    assert changed["ETag"] != etag


def test_a_get_whose_if_match_does_not_hold_is_412_in_the_api_format(ken):
    post = PostFactory()
    assert ken.get(url(post), HTTP_IF_MATCH=etag_of(ken, post)).status_code == 200
    assert error(ken.get(url(post), HTTP_IF_MATCH='"stale"')) == (412, None, "precondition_failed")


# --- If-Match on PUT and PATCH -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_write_from_a_stale_read_is_412_and_changes_nothing(ken, queued, method):
    post = PostFactory(title="Solar pumps", amount_usd=1000)
    etag = etag_of(ken, post)
    edit_on_the_site(post, amount_usd=999999)
    events = PostEvent.objects.filter(post=post).count()
    queued.clear()
    record = {**ken.get(url(post)).json(), "title": "Mine", "amount_usd": 5}
    for name in ("id", "status", "created_at", "updated_at", "submitted_at", "published_at", "closed_at",
                 "withdrawn_at", "returned_at", "return_reason", "outcome"):  # fmt: skip
        record.pop(name, None)
    response = getattr(ken, method)(url(post), record, format="json", HTTP_IF_MATCH=etag)
    assert error(response) == (412, None, "precondition_failed")
    assert "changed since you read it" in response.json()["errors"][0]["message"]
    post.refresh_from_db()
    assert (post.title, post.amount_usd) == ("Solar pumps", 999999)
    assert PostEvent.objects.filter(post=post).count() == events and queued == []
    # Read again, the same change goes through, and the answer carries the next ETag.
    fresh = etag_of(ken, post)
    done = getattr(ken, method)(url(post), record, format="json", HTTP_IF_MATCH=fresh)
    assert done.status_code == 200 and done.json()["title"] == "Mine"
    assert done["ETag"] not in (etag, fresh) and done["ETag"] == etag_of(ken, post)
    assert queued == [post.pk]


def test_a_stale_write_is_412_before_its_body_is_read(ken):
    """The condition before the content (RFC 9110 section 13.2.1): nothing to fix in a body that must be redone."""
    post = PostFactory()
    etag = etag_of(ken, post)
    edit_on_the_site(post, title="Changed on the site")
    assert ken.patch(url(post), {"title": ""}, format="json", HTTP_IF_MATCH=etag).status_code == 412


def test_if_match_star_or_any_tag_of_a_list_matches(ken):
    post = PostFactory(title="Solar pumps")
    stale = etag_of(ken, post)
    edit_on_the_site(post, title="Changed on the site")
    star = ken.patch(url(post), {"title": "Star"}, format="json", HTTP_IF_MATCH="*")
    assert star.status_code == 200 and star.json()["title"] == "Star"
    current = etag_of(ken, post)
    listed = ken.patch(
        url(post), {"title": "Listed"}, format="json", HTTP_IF_MATCH=f'{stale}, "x", {current}'
    )
    assert listed.status_code == 200 and listed.json()["title"] == "Listed"
    none = ken.patch(url(post), {"title": "None"}, format="json", HTTP_IF_MATCH=f'{stale}, {current}, "x"')
    assert none.status_code == 412 and Post.objects.get(pk=post.pk).title == "Listed"


@pytest.mark.parametrize("action", ["", "withdraw"])
def test_if_none_match_on_a_write_is_412_when_it_holds_the_post_as_it_is(ken, queued, action):
    """RFC 9110 section 13.1.2: "change it unless it is as I have it" (or, with *, unless it exists). It was
    ignored: the write went ahead."""
    post = PostFactory(title="Solar pumps")

    def write(**headers):
        if action:
            return ken.post(url(post, action), format="json", **headers)
        return ken.patch(url(post), {"title": "Changed"}, format="json", **headers)

    current = etag_of(ken, post)
    for value in ("*", current, f"W/{current}", f'"x", {current}'):
        response = write(HTTP_IF_NONE_MATCH=value)
        assert error(response) == (412, None, "precondition_failed"), value
        post.refresh_from_db()
        assert (post.title, post.status) == ("Solar pumps", "published") and not queued
    response = write(HTTP_IF_NONE_MATCH='"an-older-etag"')
    assert response.status_code == 200
    post.refresh_from_db()
    assert post.title == "Changed" if not action else post.status == "withdrawn"


def test_if_match_compares_strongly_a_weak_tag_never_matches(ken):
    post = PostFactory(title="Solar pumps")
    etag = etag_of(ken, post)
    response = ken.patch(url(post), {"title": "Mine"}, format="json", HTTP_IF_MATCH=f"W/{etag}")
    assert error(response) == (412, None, "weak_etag")
    assert "without W/" in response.json()["errors"][0]["message"]
    assert Post.objects.get(pk=post.pk).title == "Solar pumps"


@pytest.mark.parametrize("value", [" ", "abc", '"a", b', '*, "a"', "W/abc", ","])
def test_a_malformed_if_match_is_400_not_ignored(ken, value):
    post = PostFactory(title="Solar pumps")
    response = ken.patch(url(post), {"title": "Mine"}, format="json", HTTP_IF_MATCH=value)
    assert error(response) == (400, "If-Match", "invalid")
    assert Post.objects.get(pk=post.pk).title == "Solar pumps"


def test_the_service_checks_the_version_again_under_its_lock(ken, monkeypatch, queued):
    """A change committed after the API compared the ETags, before the service locked the row, is not
    overwritten: the service compares the version read with the row it locks for the write."""
    post = PostFactory(title="Solar pumps")
    etag = etag_of(ken, post)
    update = apis.post_update

    def changed_just_before(**kwargs) -> Post:
        edit_on_the_site(post, title="Changed meanwhile")
        return update(**kwargs)

    monkeypatch.setattr(apis, "post_update", changed_just_before)
    queued.clear()
    response = ken.patch(url(post), {"title": "Mine"}, format="json", HTTP_IF_MATCH=etag)
    assert error(response) == (412, None, "precondition_failed")
    assert Post.objects.get(pk=post.pk).title == "Changed meanwhile"
    assert queued == [post.pk]  # the site's change only


def test_the_412_is_in_the_callers_language(ken):
    post = PostFactory()
    response = ken.patch(
        url(post), {"title": "x"}, format="json", HTTP_IF_MATCH='"stale"', HTTP_ACCEPT_LANGUAGE="fr"
    )
    assert response.status_code == 412
    assert "L’annonce a changé depuis que vous l’avez lue" in response.json()["errors"][0]["message"]


# --- If-Match on the life cycle ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "body", "to"),
    [
        ("submit", "draft", None, "submitted"),
        ("withdraw", "published", None, "withdrawn"),
        ("close", "published", {"outcome": "Funded by the GCF."}, "closed"),
    ],
)
def test_a_life_cycle_step_from_a_stale_read_is_412(ken, queued, action, status, body, to):
    post = PostFactory(status=status, title="Solar pumps")
    etag = etag_of(ken, post)
    edit_on_the_site(post, title="Changed on the site")
    queued.clear()
    stale = ken.post(url(post, action), body, format="json", HTTP_IF_MATCH=etag)
    assert error(stale) == (412, None, "precondition_failed")
    post.refresh_from_db()
    assert post.status == status and not post.outcome and queued == []
    done = ken.post(url(post, action), body, format="json", HTTP_IF_MATCH=etag_of(ken, post))
    assert done.status_code == 200 and done.json()["status"] == to
    assert done["ETag"] == etag_of(ken, post)


def test_the_service_refuses_a_step_from_a_stale_version(focal_point):
    post = PostFactory(party=party("KEN"))
    read_at = post.updated_at
    edit_on_the_site(post, title="Changed on the site")
    with pytest.raises(services.PostEditConflict):
        services.post_withdraw(actor=Actor.for_user(focal_point), post=post, opened_at=read_at)
    assert Post.objects.get(pk=post.pk).status == "published"
    current = Post.objects.get(pk=post.pk).updated_at
    assert services.post_withdraw(actor=Actor.for_user(focal_point), post=post, opened_at=current).status == (
        "withdrawn"
    )


# --- refusals come first -----------------------------------------------------------------------------------


@pytest.mark.parametrize("if_match", ['"stale"', "malformed"])
def test_who_may_not_write_is_refused_as_before_whatever_if_match_says(api, tokens, if_match):
    """403 and 404 before any 412 (or 400 for the header): a refusal never tells whether the post changed."""
    published = PostFactory(party=party("KEN"), title="Solar pumps")
    draft = PostFactory(party=party("KEN"), status="draft", published_at=None, title="Draft")
    etag = etag_of(api(tokens["ken"]), published)
    edit_on_the_site(published, title="Changed on the site")
    header = {"HTTP_IF_MATCH": etag if if_match == '"stale"' else if_match}
    read, other = api(tokens["read"]), api(tokens["bra"])
    assert read.patch(url(published), {"title": "x"}, format="json", **header).status_code == 403
    assert read.post(url(published, "withdraw"), **header).status_code == 403
    assert other.patch(url(published), {"title": "x"}, format="json", **header).status_code == 403
    for action, body in (("withdraw", None), ("close", {"outcome": "Done."})):
        assert other.post(url(published, action), body, format="json", **header).status_code == 403
    assert other.patch(url(draft), {"title": "x"}, format="json", **header).status_code == 404
    assert other.post(url(draft, "submit"), **header).status_code == 404
    # A step the status does not allow is the 409 it was.
    assert api(tokens["ken"]).post(url(published, "submit"), **header).status_code == 409
    assert Post.objects.get(pk=published.pk).title == "Changed on the site"
    assert Post.objects.get(pk=draft.pk).status == "draft"


# --- the contract ------------------------------------------------------------------------------------------


def test_the_schema_documents_the_conditional_headers(api):
    paths = api().get("/api/v1/schema/?format=json").json()["paths"]

    def names(operation: dict) -> set[str]:
        return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}

    detail = paths["/api/v1/posts/{id}/"]
    assert "If-None-Match" in names(detail["get"])
    assert "304" in detail["get"]["responses"] and "content" not in detail["get"]["responses"]["304"]
    assert "ETag" in detail["get"]["responses"]["200"]["headers"]
    assert "ETag" in detail["get"]["responses"]["304"]["headers"]
    assert "ETag" in paths["/api/v1/posts/"]["post"]["responses"]["201"]["headers"]
    writes = [detail["put"], detail["patch"]] + [
        paths[f"/api/v1/posts/{{id}}/{action}/"]["post"] for action in ("submit", "withdraw", "close")
    ]
    for operation in writes:
        assert "If-Match" in names(operation)
        assert "ETag" in operation["responses"]["200"]["headers"]
        assert operation["responses"]["412"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
