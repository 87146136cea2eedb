"""Reading posts: who sees what, every filter, search, ordering, incremental sync and keyset pages."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.posts.models import Post

from ..factories import PostFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db

LIST = "/api/v1/posts/"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [post["id"] for post in response.json()["results"]]


def walk(client, url: str) -> list[int]:
    """Every id of every page, following `next`."""
    seen = []
    while url:
        response = client.get(url)
        seen += ids(response)
        url = response.json()["next"]
    return seen


@pytest.fixture
def statuses():
    """One KEN post in each status, and a published BRA post."""
    posts = {s: PostFactory(status=s, title=f"KEN {s}") for s in Post.Status.values}
    posts["bra"] = PostFactory(party=party("BRA"), title="BRA published")
    return posts


def test_visibility_by_caller(api, tokens, statuses, session_api, secretariat):
    published = {statuses["published"].pk, statuses["bra"].pk}
    assert set(ids(api().get(LIST))) == published
    assert set(ids(api(tokens["read"]).get(LIST))) == published
    assert set(ids(api(tokens["bra"]).get(LIST))) == published
    # KEN's token sees every KEN post, whatever its status.
    assert set(ids(api(tokens["ken"]).get(LIST))) == {p.pk for p in statuses.values()}
    assert set(ids(session_api(secretariat).get(LIST))) == {p.pk for p in statuses.values()}


def test_detail_hides_what_the_caller_may_not_see(api, tokens, statuses):
    draft = statuses["draft"]
    assert api().get(f"{LIST}{draft.pk}/").status_code == 404
    assert api(tokens["bra"]).get(f"{LIST}{draft.pk}/").status_code == 404
    assert api(tokens["ken"]).get(f"{LIST}{draft.pk}/").status_code == 200


def test_contact_details_and_return_reason(api, tokens):
    post = PostFactory(contact_name="Wanjiru", contact_email="w@example.go.ke", return_reason="Old reason")
    anonymous = api().get(f"{LIST}{post.pk}/").json()
    assert "contact_email" not in anonymous and "contact_name" not in anonymous
    assert "return_reason" not in anonymous
    reader = api(tokens["read"]).get(f"{LIST}{post.pk}/").json()
    assert reader["contact_email"] == "w@example.go.ke"
    assert "return_reason" not in reader
    owner = api(tokens["ken"]).get(f"{LIST}{post.pk}/").json()
    assert owner["return_reason"] == "Old reason"


def test_representation_is_the_import_format_plus_id_status_and_times(api):
    post = PostFactory(
        kind="offer",
        party=party("JPN"),
        sectors=["water"],
        instruments=["grant"],
        eligible=["LDC", "KEN"],
        amount_usd="250000.00",
        external_id="jica-7",
    )
    post.partner_parties.set([party("KOR")])
    body = api().get(f"{LIST}{post.pk}/").json()
    assert body["id"] == post.pk
    assert body["external_id"] == "jica-7"
    assert (body["kind"], body["party"], body["provider"], body["status"]) == (
        "offer",
        "JPN",
        None,
        "published",
    )
    assert body["support_types"] == ["technology"] and body["sectors"] == ["water"]
    assert body["instruments"] == ["grant"] and body["eligible"] == ["LDC", "KEN"]
    assert body["amount_usd"] == 250000.0
    assert body["partner_parties"] == ["KOR"]
    assert body["published_at"].endswith("Z") and body["closed_at"] is None


@pytest.mark.parametrize(
    ("query", "matching", "other"),
    [
        ("kind=offer", {"kind": "offer"}, {}),
        ("support_type=finance", {"support_types": ["finance"]}, {}),
        ("focus_area=mitigation", {"focus_areas": ["mitigation"]}, {}),
        ("sector=water", {"sectors": ["water"]}, {"sectors": ["health"]}),
        ("instrument=grant", {"kind": "offer", "instruments": ["grant"]}, {"kind": "offer"}),
        ("regional_group=Latin American and Caribbean States", {"party": "BRA"}, {}),
        ("party=BRA", {"party": "BRA"}, {}),
        ("party=bra", {"party": "BRA"}, {}),  # any case, as creating a post takes it (it was a 400)
        ("ldc=true", {"party": "NPL"}, {"party": "BRA"}),
        ("ldc=false", {"party": "BRA"}, {"party": "NPL"}),
        (
            "ldc=1",
            {"party": "NPL"},
            {"party": "BRA"},
        ),  # a client's 1/0 used to be ignored: every post came back
        ("ldc=0", {"party": "BRA"}, {"party": "NPL"}),
        ("sids=yes", {"party": "FJI"}, {}),
        ("sids=true", {"party": "FJI"}, {}),
        ("language=fr", {"language": "fr"}, {}),
        ("q=mangrove", {"title": "Mangrove restoration"}, {}),
        ("q=mangrove", {"description": "Restoring mangrove belts on the coast."}, {}),
        ("provider=prov-api", {"provider": "PROV-API"}, {}),
        ("status=draft", {"status": "draft"}, {}),
    ],
)
def test_every_filter(api, tokens, query, matching, other):
    def make(fields):
        fields = dict(fields)
        if "party" in fields:
            fields["party"] = party(fields["party"])
        if "provider" in fields:
            fields.update(
                provider=SupportProviderFactory(short_name=fields["provider"]), party=None, kind="offer"
            )
        return PostFactory(**fields)

    wanted = make(matching)
    make(other)
    assert ids(api(tokens["ken"]).get(LIST, {"page_size": 100, **dict([query.split("=", 1)])})) == [wanted.pk]


@pytest.mark.parametrize(
    ("q", "found"), [("-" * 33, True), ("- " * 40, True), ("-&" * 40, True), ("---mangrove", False)]
)
def test_search_of_stray_minus_signs_is_answered(api, q, found):
    """A run of '-' was a 500 (an HTML page, not the API's error format) on PostgreSQL. A query with no word
    searches nothing, as an empty one."""
    post = PostFactory(title="Mangrove restoration")
    response = api().get(LIST, {"q": q})
    assert response.status_code == 200
    assert ids(response) == ([post.pk] if found else [])


@pytest.mark.parametrize("q", ["precoce", "PRÉCOCE", "alerte précoce"])
def test_search_ignores_accents_and_case(api, q):
    """French and Spanish users often type without accents: the API finds what the site's search finds."""
    post = PostFactory(title="Alerte précoce aux inondations", language="fr")
    PostFactory(title="Solar pumps")
    assert ids(api().get(LIST, {"q": q})) == [post.pk]


def test_updated_since_and_ordering_for_incremental_sync(api):
    old, recent = PostFactory(), PostFactory()
    Post.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(api().get(LIST, {"updated_since": since})) == [recent.pk]
    assert ids(api().get(LIST, {"updated_since": "2000-01-01"})) == [old.pk, recent.pk]
    assert ids(api().get(LIST, {"ordering": "-updated_at"})) == [recent.pk, old.pk]
    # An unencoded '+' of an offset arrives as a space, and still parses.
    assert ids(api().get(f"{LIST}?updated_since=2000-01-01T00:00:00 00:00")) == [old.pk, recent.pk]
    # A date and a time with a space between them is no date with an offset (it was refused).
    moment = (timezone.now() - timedelta(days=1)).astimezone(UTC)
    response = api().get(LIST, {"updated_since": moment.strftime("%Y-%m-%d %H:%M")})
    assert response.status_code == 200 and ids(response) == [recent.pk]


def test_the_format_parameter_is_ignored_as_any_unknown_one(api):
    """DRF's ?format= override answered a bare 404 "Not found." on every endpoint."""
    post = PostFactory()
    for url in (f"{LIST}?format=csv", f"{LIST}{post.pk}/?format=xml", "/api/v1/health/?format=api"):
        response = api().get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "ordering", ["updated_at", "-updated_at", "created_at", "-created_at", "title", "-title", "id", "-id"]
)
def test_pages_cover_everything_once_in_every_ordering(api, ordering):
    posts = [PostFactory(title=f"Post {i % 4}") for i in range(13)]  # duplicate titles: ties broken by id
    seen = walk(api(), f"{LIST}?ordering={ordering}&page_size=4")
    assert sorted(seen) == sorted(p.pk for p in posts)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("ordering", ["updated_at", "-title", "-id"])
def test_search_pages_in_order(api, ordering):
    """A search reads its page's ids first, then their records: pages still come whole and in order."""
    wanted = [PostFactory(title=f"Mangrove {i % 3}") for i in range(7)]
    PostFactory(title="Solar")
    whole = ids(api().get(LIST, {"q": "mangrove", "ordering": ordering, "page_size": 100}))
    assert sorted(whole) == sorted(p.pk for p in wanted)
    assert walk(api(), f"{LIST}?q=mangrove&ordering={ordering}&page_size=3") == whole


def test_pages_neither_skip_nor_repeat_while_posts_change(api):
    """A sync walk by updated_at: a post changed before the walk reaches it is seen once, with its change; one
    changed after it was seen comes again at the end; a post created during the walk is included."""
    posts = [PostFactory() for _ in range(12)]
    client = api()
    first = client.get(LIST, {"ordering": "updated_at", "page_size": 4}).json()
    seen = [p["id"] for p in first["results"]]
    already_seen, not_yet_seen = Post.objects.get(pk=seen[0]), posts[-1]
    for post in (already_seen, not_yet_seen):
        post.title = "Changed during the walk"
        post.save()
    created = PostFactory()
    rest = walk(client, first["next"])
    everything = seen + rest
    assert set(everything) == {p.pk for p in posts} | {created.pk}
    assert everything.count(not_yet_seen.pk) == 1
    assert everything.count(already_seen.pk) == 2  # again, with the new title
    assert len(everything) == len(posts) + 2


def test_stable_pages_by_id_while_posts_change(api):
    posts = [PostFactory() for _ in range(10)]
    client = api()
    first = client.get(LIST, {"ordering": "id", "page_size": 3}).json()
    for post in posts:
        post.title = "Edited"
        post.save()
    assert [p["id"] for p in first["results"]] + walk(client, first["next"]) == [p.pk for p in posts]


def _touch(raw_token: str) -> None:
    ApiToken.objects.filter(prefix=raw_token.split("_")[1]).update(last_used_at=timezone.now())


@pytest.mark.parametrize("page_size", [2, 25])
def test_list_queries_do_not_grow_with_the_page(api, tokens, django_assert_num_queries, page_size):
    for i in range(60):
        post = PostFactory(sectors=["water"], kind="offer" if i % 2 else "need")
        post.partner_parties.set([party("BRA")])
    _touch(tokens["ken"])
    client = api(tokens["ken"])
    # The page's posts with their party and provider, and on PostgreSQL their facets and partner Parties too
    # (the database writes the records); on SQLite the facets and partner Parties are one more query (a
    # UNION ALL).
    page = 1 if connection.vendor == "postgresql" else 2
    # The token, then the page.
    with django_assert_num_queries(1 + page):
        response = client.get(LIST, {"page_size": page_size, "sector": "water", "ordering": "-created_at"})
    assert len(response.json()["results"]) == page_size
    # Anonymous: the same without the token lookup.
    with django_assert_num_queries(page):
        response = api().get(LIST, {"page_size": page_size})
    assert len(response.json()["results"]) == page_size
    with django_assert_num_queries(page):
        # The next page costs the same.
        assert len(api().get(response.json()["next"]).json()["results"]) == page_size


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("kind=both", "kind"),
        ("support_type=money", "support_type"),
        ("party=XXX", "party"),
        ("provider=nope", "provider"),  # an unknown provider, as an unknown Party (it was an empty list)
        ("party=" + "A" * 300, "party"),
        ("updated_since=yesterday", "updated_since"),
        ("updated_since=9999-12-31T23:59:59-14:00", "updated_since"),
        ("updated_since=0001-01-01T00:00:00%2B14:00", "updated_since"),
        ("updated_since=2025-02-30", "updated_since"),
        ("ordering=amount_usd", "ordering"),
        ("ldc=maybe", "ldc"),
        ("sids=2", "sids"),
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=99999999999999999999999", "page_size"),
        ("page_size=-1", "page_size"),
        ("page_size=%C2%B2", "page_size"),  # "²": a digit to str.isdigit, not to int
        ("page_size=%D9%A3", "page_size"),  # Arabic-Indic three
        ("cursor=notacursor", "cursor"),
        ("cursor=eyJvIjoiaWQiLCJ2IjoxLCJpZCI6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTl9", "cursor"),
        # {"o":"title","v":"\ud800","id":1}: a lone surrogate, which the database cannot compare (was a 500)
        ("ordering=title&cursor=eyJvIjoidGl0bGUiLCJ2IjoiXHVkODAwIiwiaWQiOjF9", "cursor"),
        (
            "cursor=W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1s",
            "cursor",
        ),  # 1,400 "[": JSON nested too deep to read (was a 500)
        # {"o":"updated_at","v":"0001-01-01T00:00:00+05:00","id":1}: before year 1 in UTC (was a 500)
        (
            "ordering=updated_at&cursor=eyJvIjogInVwZGF0ZWRfYXQiLCAidiI6ICIwMDAxLTAxLTAxVDAwOjAwOjAwKzA1OjAwIiwgImlkIjogMX0",
            "cursor",
        ),
        ("q=%00", "q"),
        ("status=%00", "status"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(api, query, field):
    response = api().get(f"{LIST}?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field


def test_every_bad_query_parameter_is_named_in_one_400(api, tokens):
    response = api().get(LIST, {"kind": "both", "ldc": "maybe", "ordering": "amount_usd", "page_size": "0",
                                "cursor": "notacursor"})  # fmt: skip
    assert response.status_code == 400
    # No ordering could read that cursor: it is named too.
    assert [e["field"] for e in response.json()["errors"]] == [
        "kind",
        "ldc",
        "ordering",
        "page_size",
        "cursor",
    ]
    response = api().get(LIST, {"page_size": "101", "cursor": "notacursor"})
    assert [e["field"] for e in response.json()["errors"]] == ["page_size", "cursor"]
    response = api(tokens["read"]).get(REMOVED, {"limit": "0", "offset": "-1"})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["since", "limit", "offset"]


def test_a_parameter_given_twice_is_a_400_not_its_last_value(api, tokens):
    response = api().get(f"{LIST}?kind=bogus&kind=need&page_size=1&page_size=2")
    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("kind", "repeated"),
                                                                           ("page_size", "repeated")]  # fmt: skip
    response = api(tokens["read"]).get(f"{REMOVED}?since=2026-01-01&limit=1&limit=x")
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("limit", "repeated")]


def test_a_malformed_cursor_is_named_beside_a_bad_ordering(api):
    response = api().get(LIST, {"ordering": "bogus", "cursor": "xyz"})
    assert [e["field"] for e in response.json()["errors"]] == ["ordering", "cursor"]
    # A cursor that some ordering made is not judged against an ordering that does not exist.
    PostFactory.create_batch(2)
    next_url = api().get(LIST, {"page_size": 1, "ordering": "title"}).json()["next"]
    response = api().get(next_url.replace("ordering=title", "ordering=bogus"))
    assert [e["field"] for e in response.json()["errors"]] == ["ordering"]


def test_too_many_parameters_or_a_newline_in_the_address_answer_in_the_apis_format(api):
    many = "&".join(f"x{i}=1" for i in range(1500))
    for url in (LIST, REMOVED):
        response = api().get(f"{url}?{many}")
        assert response.status_code == 400 and response["Content-Type"] == "application/json"
        assert response.json()["errors"][0]["code"] == "too_many_parameters"
    response = api().get("/api/v1/posts/1%0A/matches/")
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "not_found"


@pytest.mark.parametrize(
    "value", ["٢٠٢٦-01-01", "２０２６-01-01", "2026-W01-1", "20260101", "2026-01-01T12:00:00\u200bZ"]
)
def test_dates_are_the_iso_calendar_form_in_ascii_digits(api, value):
    response = api().get(LIST, {"updated_since": value})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "updated_since"
    response = api().get(REMOVED, {"since": value})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "since"


@pytest.mark.parametrize(
    "value", ["2026-01-31", "2026-01-31T12:00:00Z", "2026-01-31T12:00:00.123456+03:00", "2026-01-31 12:00:00"]
)
def test_dates_in_the_forms_the_contract_gives_are_taken(api, value):
    assert api().get(LIST, {"updated_since": value}).status_code == 200


def test_an_empty_since_is_a_missing_since(api):
    (error,) = api().get(REMOVED, {"since": ""}).json()["errors"]
    assert (error["field"], error["code"]) == ("since", "required")


def test_a_cursor_belongs_to_its_ordering(api):
    PostFactory.create_batch(3)
    next_url = api().get(LIST, {"page_size": 1, "ordering": "title"}).json()["next"]
    response = api().get(next_url.replace("ordering=title", "ordering=id"))
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("letter", ["Ж", "ع", "洪", "🌊"])
def test_next_links_of_the_longest_titles_in_any_script_are_followed_to_the_end(api, letter):
    """A cursor carries the last title: written as \\uXXXX escapes, 150 Cyrillic letters made it too long to be
    read back, and the walk stopped there."""
    titles = [letter * 200, "A" * 200, "B"]
    for title in titles:
        PostFactory(title=title)
    seen, url = [], f"{LIST}?ordering=title&page_size=1"
    while url:
        response = api().get(url)
        assert response.status_code == 200, response.content
        seen += [p["title"] for p in response.json()["results"]]
        url = response.json()["next"]
    assert sorted(seen) == sorted(titles)


def test_unknown_parameters_are_ignored(api):
    post = PostFactory()
    assert ids(api().get(LIST, {"colour": "green"})) == [post.pk]


@pytest.mark.parametrize("pk", ["0", "99999999999999999999999999", str(2**63)])
def test_huge_or_zero_ids_are_404(api, pk):
    for url in (f"{LIST}{pk}/", f"{LIST}{pk}/matches/"):
        response = api().get(url)
        assert response.status_code in (401, 404)
        assert "errors" in response.json()


def test_list_representation_matches_the_export_format(api, tokens):
    """The page's one-query facets give exactly what post_to_record gives with Django's prefetch."""
    from apps.posts.post_data import post_to_record

    post = PostFactory(
        kind="offer",
        support_types=["capacity_building", "finance"],
        focus_areas=["clean_energy", "adaptation"],
        sectors=["waste", "water", "health"],
        instruments=["in_kind", "grant"],
    )
    post.partner_parties.set([party("BRA"), party("FJI")])
    body = api(tokens["ken"]).get(LIST).json()["results"][0]
    expected = post_to_record(Post.objects.with_related().get(pk=post.pk))
    assert {key: body[key] for key in expected} == expected
    assert body["support_types"] == ["finance", "capacity_building"]
    assert sorted(body["partner_parties"]) == ["BRA", "FJI"]


REMOVED = "/api/v1/posts/removed/"


def test_posts_that_left_the_list_are_listed_for_incremental_sync(api, tokens, focal_point):
    from apps.accounts.actors import Actor
    from apps.posts.services import post_close, post_withdraw

    before = timezone.now()
    kept = PostFactory(title="Still published")
    withdrawn = PostFactory(title="Withdrawn", external_id="ke-77")
    closed = PostFactory(title="Closed")
    never = PostFactory(status="draft", published_at=None)
    kenya = Actor.for_user(focal_point)
    post_withdraw(actor=kenya, post=withdrawn)
    post_close(actor=kenya, post=closed, outcome="Met.")
    post_withdraw(actor=kenya, post=never)  # never published: nothing to drop from a mirror
    # A mirror synced by updated_since sees neither any more...
    listed = ids(api(tokens["read"]).get(LIST, {"updated_since": before.isoformat(), "page_size": 100}))
    assert listed == [kept.pk]
    # ...and learns here what to drop: id, external id, status and time only.
    response = api(tokens["read"]).get(REMOVED, {"since": before.isoformat()})
    assert response.status_code == 200 and response["X-Total-Count"] == "2"
    body = response.json()
    assert [(r["id"], r["external_id"], r["status"]) for r in body] == [
        (withdrawn.pk, "ke-77", "withdrawn"),
        (closed.pk, f"post-{closed.pk}", "closed"),
    ]
    assert set(body[0]) == {"id", "external_id", "status", "updated_at"}
    later = api().get(REMOVED, {"since": timezone.now().isoformat()})
    assert later.status_code == 200 and later.json() == []
    page = api().get(REMOVED, {"since": before.isoformat(), "limit": 1, "offset": 1})
    assert [r["id"] for r in page.json()] == [closed.pk] and page["X-Total-Count"] == "2"


def test_a_publication_taken_back_is_listed_as_removed(api, tokens, secretariat):
    from apps.accounts.actors import Actor
    from apps.posts.services import post_return, post_submit, post_withdraw

    before = timezone.now()
    taken_back = PostFactory(title="Taken back", external_id="ke-78")
    resubmitted = PostFactory(title="Taken back, then resubmitted")
    withdrawn = PostFactory(title="Taken back, then withdrawn")
    never = PostFactory(status="submitted", published_at=None)
    secretariat_actor = Actor.for_user(secretariat)
    for post in (taken_back, resubmitted, withdrawn, never):
        post_return(actor=secretariat_actor, post=post, reason="Not for publication.")
    # Whatever its owner does next, a mirror that has not synced meanwhile must still learn it left the list.
    post_submit(actor=secretariat_actor, post=resubmitted)
    post_withdraw(actor=secretariat_actor, post=withdrawn)
    body = api(tokens["read"]).get(REMOVED, {"since": before.isoformat()}).json()
    # The mirror drops the ones it had; the last it never saw.
    assert [(r["id"], r["status"]) for r in body] == [
        (taken_back.pk, "returned"), (resubmitted.pk, "submitted"), (withdrawn.pk, "withdrawn")]  # fmt: skip
    assert body[0]["external_id"] == "ke-78"


@pytest.mark.parametrize(
    ("query", "field"), [("", "since"), ("since=yesterday", "since"), ("since=2026-01-01&limit=0", "limit")]
)
def test_removed_posts_bad_query_is_400(api, query, field):
    response = api().get(f"{REMOVED}?{query}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_an_empty_page_size_or_limit_is_the_default_as_every_empty_parameter(api, tokens):
    post = PostFactory()
    assert ids(api().get(f"{LIST}?page_size=&ordering=")) == [post.pk]
    response = api(tokens["ken"]).get(f"/api/v1/posts/{post.pk}/matches/?limit=&offset=")
    assert response.status_code == 200 and response.json() == []
    assert api().get(f"{LIST}?page_size=0").status_code == 400  # a value is still checked


def test_providers_lists_the_deactivated_ones_its_posts_still_name(api):
    from ..factories import SupportProviderFactory

    active = SupportProviderFactory(short_name="AAA")
    stopped = SupportProviderFactory(short_name="BBB", is_active=False)
    offer = PostFactory(kind="offer", party=None, provider=stopped)
    listed = {p["short_name"]: p["is_active"] for p in api().get("/api/v1/providers/").json()}
    assert listed == {active.short_name: True, stopped.short_name: False}
    assert api().get(f"{LIST}{offer.pk}/").json()["provider"] == "BBB"  # a name the list resolves
