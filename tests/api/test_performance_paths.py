"""The API's fast read path gives exactly what the model path gives, on either database, and stays fast.

List and detail read records as JSON written by the database (PostgreSQL) or built from plain column values
(SQLite) instead of model instances; these tests hold that path to the definition of the representation,
`post_to_record` plus the API's fields, so a change to one without the other fails here. The statements are
compiled once per caller and page shape, prepared, and planned once.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.utils import timezone

from apps.accounts.actors import ANONYMOUS, Actor
from apps.posts.apis import _page
from apps.posts.models import Post
from apps.posts.selectors import post_list_visible
from apps.posts.serializers import _json_sql, _order_sql, page_query, page_query_once, post_api_record
from apps.posts.services import post_can_manage

from ..factories import PostFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db

LIST = "/api/v1/posts/"


def reference(post: Post, actor: Actor) -> dict:
    """The record built from a model instance with every relation prefetched (the slow, defining path)."""
    post = (
        Post.objects.with_related()
        .prefetch_related("partner_parties")
        .select_related("party", "provider")
        .get(pk=post.pk)
    )
    return post_api_record(post, actor=actor, can_manage=post_can_manage(actor=actor, post=post))


@pytest.fixture
def varied():
    """Posts that exercise every column: nulls and values, zero and non-zero microseconds, a provider."""
    full = PostFactory(
        kind="offer",
        party=party("JPN"),
        sectors=["water", "health"],
        instruments=["grant"],
        support_types=["finance", "technology"],
        eligible=["LDC", "KEN"],
        aims=["ambition", "coordination"],
        amount_usd="1234567.89",
        external_id="jica-7",
        contact_name="Aiko",
        contact_email="aiko@example.jp",
        involves_iplc=True,
        declares_voluntary=True,
        declares_rights=True,
        outcome="Funded",
        return_reason="Add a budget",
    )
    full.partner_parties.set([party("KOR"), party("BRA")])
    Post.objects.filter(pk=full.pk).update(
        created_at=datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
        updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        submitted_at=datetime(2026, 1, 3, tzinfo=UTC),
        published_at=datetime(2026, 1, 4, 5, 6, 7, 123456, tzinfo=UTC),
        returned_at=datetime(2026, 1, 3, 12, tzinfo=UTC),
    )
    bare = PostFactory(party=party("KEN"), external_id=None, amount_usd=None)
    provider = SupportProviderFactory(short_name="PROV-FAST")
    by_provider = PostFactory(kind="offer", party=None, provider=provider, amount_usd="0.10")
    return [full, bare, by_provider]


def test_detail_equals_the_model_representation(api, varied, login, focal_point):
    for post in varied:
        url = f"{LIST}{post.pk}/"
        assert api().get(url).json() == reference(post, ANONYMOUS)
        # A Kenyan focal point manages the KEN post (returned_at and return_reason) and reads contacts.
        owner = Actor.for_user(focal_point)
        assert login(focal_point).get(url).json() == reference(post, owner)


def test_list_equals_the_model_representation(api, varied, login, focal_point):
    body = api().get(LIST, {"ordering": "id"}).json()
    assert body["results"] == [reference(post, ANONYMOUS) for post in sorted(varied, key=lambda p: p.pk)]
    owner = Actor.for_user(focal_point)
    mine = login(focal_point).get(LIST, {"ordering": "-id"}).json()["results"]
    assert mine == [reference(post, owner) for post in sorted(varied, key=lambda p: -p.pk)]
    # Key order too: the JSON reads the same as before the fast path.
    assert list(mine[0]) == list(reference(varied[-1], owner))


def test_timestamps_keep_isoformat(api, varied):
    full = api().get(f"{LIST}{varied[0].pk}/").json()
    assert full["created_at"] == "2026-01-02T03:04:05.000600Z"
    assert full["updated_at"] == "2026-01-02T03:04:05Z"
    assert full["published_at"] == "2026-01-04T05:06:07.123456Z"
    assert full["closed_at"] is None


@pytest.mark.parametrize("ordering", ["updated_at", "-created_at", "title", "-id"])
def test_next_cursor_is_the_last_rows_key(api, ordering):
    posts = [PostFactory() for _ in range(3)]
    body = api().get(LIST, {"ordering": ordering, "page_size": 2}).json()
    cursor = body["next"].split("cursor=")[1].split("&")[0]
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    last = next(p for p in posts if p.pk == body["results"][-1]["id"])
    last.refresh_from_db()
    field = ordering.lstrip("-")
    value = getattr(last, field)
    # Exactly what the cursor held before the fast path (isoformat() for times).
    assert payload == {
        "o": ordering,
        "v": value.isoformat() if field.endswith("_at") else value,
        "id": last.pk,
    }


def test_unknown_and_invisible_posts_are_404(api, tokens):
    draft = PostFactory(status="draft")
    assert api().get(f"{LIST}{draft.pk}/").status_code == 404
    assert api().get(f"{LIST}{2**63 - 1}/").status_code == 404
    assert api(tokens["ken"]).get(f"{LIST}{draft.pk}/").json()["status"] == "draft"


def test_read_statements_are_prepared_on_postgresql(api):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    PostFactory()
    client = api()
    for _ in range(6):
        assert client.get(LIST).status_code == 200
        assert client.get(LIST, {"q": "flood"}).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE NOT from_sql"
        )
        statements = cursor.fetchall()
    # The page's records, written by the database: prepared, and planned once (a generic plan), not on every
    # request.
    pages = [(generic, custom) for sql, generic, custom in statements if "json_build_object" in sql]
    assert pages and all(generic >= 1 and custom == 0 for generic, custom in pages)
    # A search is planned for its words every time.
    assert not [sql for sql, _g, _c in statements if "websearch" in sql]
    # psycopg parses a statement longer than 4096 bytes (its MAX_CACHED_STATEMENT_LENGTH) again on every
    # execution, which costs a list page several percent. The longest plain page: a Party's, after a cursor.
    actor = Actor(role="focal_point", label="KEN", party_id=party("KEN").pk)
    page = page_query(_page(post_list_visible(actor=actor), "-updated_at", 100, value=timezone.now(), pk=1))
    assert len(_json_sql().format(page=page.sql, order=_order_sql(page.order)).encode()) <= 4096


@pytest.fixture
def statuses_of_ken():
    """One KEN post in each status, and a published BRA post."""
    posts = {s: PostFactory(status=s, title=f"KEN {s}") for s in Post.Status.values}
    posts["bra"] = PostFactory(party=party("BRA"), title="BRA published")
    return posts


def _walk(client, url: str) -> list[dict]:
    """Every record of every page, following `next`."""
    records = []
    while url:
        body = client.get(url).json()
        records += body["results"]
        url = body["next"]
    return records


def test_page_statements_are_compiled_once_per_caller_and_shape(api, tokens, statuses_of_ken, monkeypatch):
    clients = {"anonymous": api(), "ken": api(tokens["ken"]), "bra": api(tokens["bra"])}
    orderings = ["updated_at", "-created_at", "title", "-id"]
    draft = statuses_of_ken["draft"].pk
    first = {
        (who, ordering): _walk(client, f"{LIST}?ordering={ordering}&page_size=2")
        for who, client in clients.items()
        for ordering in orderings
    }
    details = {who: client.get(f"{LIST}{draft}/").status_code for who, client in clients.items()}
    assert details == {"anonymous": 404, "ken": 200, "bra": 404}

    # Every page and detail again: the same answers, and the ORM compiles nothing (cursor pages included).
    def compiled(queryset):
        raise AssertionError("compiled again")

    monkeypatch.setattr("apps.posts.serializers.page_query", compiled)
    for (who, ordering), records in first.items():
        assert _walk(clients[who], f"{LIST}?ordering={ordering}&page_size=2") == records
    assert {who: client.get(f"{LIST}{draft}/").status_code for who, client in clients.items()} == details
    # Each caller saw what it may see, although the statements are alike.
    assert draft in {r["id"] for r in first["ken", "-id"]}
    assert draft not in {r["id"] for r in first["anonymous", "-id"]} | {r["id"] for r in first["bra", "-id"]}


def test_a_value_that_does_not_reach_the_parameters_as_given_is_compiled_every_time():
    PostFactory(title="Alpha")
    PostFactory(title="Beta")

    # `startswith` turns the value into a LIKE pattern: the stand-in is not among the parameters as given.
    def build(value):
        return Post.objects.filter(title__startswith=value).order_by("id")

    for value in ("Al", "Be", "Al"):
        page = page_query_once("test-startswith", build, value=value)
        assert page == page_query(build(value))
        with connection.cursor() as cursor:
            cursor.execute(page.sql, page.params)
            titles = [Post.objects.get(pk=pk).title for (pk,) in cursor.fetchall()]
        assert titles == ["Alpha" if value == "Al" else "Beta"]
