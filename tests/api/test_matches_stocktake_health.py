"""Matches of a post, the stocktake export, and the health check."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from apps.matching.models import Match
from apps.posts.models import Post

from ..factories import PostFactory, party
from .conftest import csrf_headers
from .factories import MatchFactory

pytestmark = pytest.mark.django_db


# --- matches -----------------------------------------------------------------------------------------------


@pytest.fixture
def need_with_matches():
    need = PostFactory(kind="need")
    for score in (0.5, 0.9, 0.7):
        MatchFactory(need=need, offer=PostFactory(kind="offer", party=party("JPN")), score=score)
    MatchFactory(need=need, is_active=False, score=0.99)
    return need


def test_matches_ranked_with_score_and_explanation(api, tokens, need_with_matches):
    response = api(tokens["ken"]).get(f"/api/v1/posts/{need_with_matches.pk}/matches/")
    assert response.status_code == 200
    matches = response.json()
    assert [m["score"] for m in matches] == [0.9, 0.7, 0.5]  # the inactive one is gone
    first = matches[0]
    assert first["need"]["id"] == need_with_matches.pk and first["offer"]["party"] == "JPN"
    assert first["explanation"]["top_terms"] == ["flood", "warning"]
    assert (first["need_interest"], first["connected_at"]) == ("", None)


def test_match_words_in_common_are_given_as_the_need_writes_them(api, tokens, need_with_matches):
    """The word model stores its terms folded, a Russian or Arabic word as its stem: the API gives the need's
    words, as the page shows them ("indigenas" and "засух" were given as stored)."""
    Post.objects.filter(pk=need_with_matches.pk).update(
        title="Guardias indígenas y засухе", description="Formación; الجفاف"
    )
    match = need_with_matches.matches_as_need.filter(is_active=True).order_by("-score").first()
    match.explanation = {
        **match.explanation,
        "top_terms": ["indigenas", "засух", "جفاف", "formacion", "gone"],
    }
    match.save()
    first = api(tokens["ken"]).get(f"/api/v1/posts/{need_with_matches.pk}/matches/").json()[0]
    assert first["explanation"]["top_terms"] == ["indígenas", "засухе", "الجفاف", "formación", "gone"]
    match.refresh_from_db()
    assert match.explanation["top_terms"][:2] == ["indigenas", "засух"]  # stored as the model reads them


def test_matches_only_for_the_posts_own_party(api, tokens, need_with_matches, session_api, secretariat):
    url = f"/api/v1/posts/{need_with_matches.pk}/matches/"
    assert api().get(url).status_code == 401
    assert api(tokens["read"]).get(url).status_code == 403
    assert api(tokens["bra"]).get(url).status_code == 403
    assert api(tokens["provider"]).get(url).status_code == 403
    assert session_api(secretariat).get(url).status_code == 200
    draft = PostFactory(status="draft", published_at=None)
    assert api(tokens["bra"]).get(f"/api/v1/posts/{draft.pk}/matches/").status_code == 404


@pytest.mark.parametrize("count", [1, 8])
def test_match_list_queries_are_constant(api, tokens, django_assert_num_queries, count):
    need = PostFactory(kind="need")
    for _ in range(count):
        MatchFactory(need=need)
    api(tokens["ken"]).get("/api/v1/taxonomies/")  # records last_used_at, so no UPDATE below
    # token; the post (visibility); the matches with both posts and their Parties and providers
    with django_assert_num_queries(3):
        assert len(api(tokens["ken"]).get(f"/api/v1/posts/{need.pk}/matches/").json()) == count


def test_both_sides_interested_make_a_connection(api, tokens, session_api):
    from ..factories import FocalPointFactory

    match = MatchFactory()
    assert (
        api(tokens["ken"])
        .post(f"/api/v1/matches/{match.pk}/interest/", {"interest": "interested"}, format="json")
        .status_code
        == 200
    )
    japan = FocalPointFactory(username="fp_jpn", party=party("JPN"))
    client = session_api(japan)
    response = client.post(
        f"/api/v1/matches/{match.pk}/interest/",
        {"interest": "interested"},
        format="json",
        **csrf_headers(client),
    )
    assert response.status_code == 200
    assert response.json()["connected_at"] is not None
    assert Match.objects.get(pk=match.pk).connected_at is not None


@pytest.mark.parametrize("body", [{}, {"interest": "maybe"}, {"interest": ""}, ["interested"]])
def test_bad_interest_is_400(api, tokens, body):
    match = MatchFactory()
    response = api(tokens["ken"]).post(f"/api/v1/matches/{match.pk}/interest/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "interest"


def test_interest_in_an_unknown_match_is_404(api, tokens):
    assert (
        api(tokens["ken"])
        .post("/api/v1/matches/999999/interest/", {"interest": "dismissed"}, format="json")
        .status_code
        == 404
    )


# --- stocktake ---------------------------------------------------------------------------------------------

STOCKTAKE = "/api/v1/stocktake/"


def test_stocktake_for_committee_and_secretariat_only(
    api, tokens, session_api, committee, secretariat, focal_point
):
    query = {"from": "2025-01-01", "to": "2025-12-31"}
    PostFactory()
    for client in (api(tokens["stocktake"]), session_api(committee), session_api(secretariat)):
        response = client.get(STOCKTAKE, query)
        assert response.status_code == 200, response.json()
        assert response.json()["period"] == {"from": "2025-01-01", "to": "2025-12-31"}
        assert isinstance(response.json()["figures"], list)
    assert api().get(STOCKTAKE, query).status_code == 401
    for client in (api(tokens["read"]), api(tokens["ken"]), session_api(focal_point)):
        assert client.get(STOCKTAKE, query).status_code == 403


def test_stocktake_filters_reach_the_export(api, tokens, monkeypatch):
    calls = []

    def fake_export(*, date_from, date_to, filters):
        calls.append((date_from.isoformat(), date_to.isoformat(), filters))
        return {"period": {"from": date_from.isoformat(), "to": date_to.isoformat()}, "figures": []}

    monkeypatch.setattr("apps.stocktake.apis.stocktake_export", fake_export)
    query = {
        "from": "2025-01-01",
        "to": "2025-06-30",
        "ldc": "true",
        "focus_area": "adaptation",
        "regional_group": "African States",
    }
    assert api(tokens["stocktake"]).get(STOCKTAKE, query).status_code == 200
    assert calls == [
        (
            "2025-01-01",
            "2025-06-30",
            {"regional_group": "African States", "ldc": True, "focus_area": "adaptation"},
        )
    ]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ({}, {"from", "to"}),
        ({"from": "2025-13-01", "to": "yesterday"}, {"from", "to"}),
        ({"from": "2025-06-01", "to": "2025-01-01"}, {"from"}),
        ({"from": "1900-01-01", "to": "2025-01-01"}, {"from"}),
        ({"from": "2016-01-01", "to": "2099-01-01"}, {"to"}),
        ({"from": "2025-01-01", "to": "2025-02-01", "focus_area": "space"}, {"focus_area"}),
        ({"from": "2025-01-01", "to": "2025-02-01", "ldc": "perhaps"}, {"ldc"}),
        # Other scripts' digits and other ISO forms, which Python's parser takes.
        ({"from": "٢٠٢٥-01-01", "to": "2025-W05-1"}, {"from", "to"}),
        ({"from": "20250101", "to": "2025-02-01"}, {"from"}),
    ],
)
def test_stocktake_bad_dates_and_filters_are_400(api, tokens, query, fields):
    response = api(tokens["stocktake"]).get(STOCKTAKE, query)
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == fields


# --- health ------------------------------------------------------------------------------------------------


def test_health_without_a_broker_is_eager(api):
    response = api().get("/api/v1/health/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "eager",
        "workers": None,
        "queue": None,
    }


def test_health_needs_no_token_and_ignores_a_bad_one(api):
    assert api("nma_bad_token").get("/api/v1/health/").status_code == 200


def test_health_with_an_unreachable_broker_is_degraded(api, settings, caplog):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    with caplog.at_level("WARNING", logger="apps.accounts.apis"):
        response = api().get("/api/v1/health/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "broker": "error",
        "workers": None,
        "queue": None,
    }
    assert "127.0.0.1" not in response.content.decode()  # no connection details leak
    # One line a probe, not a traceback of 80 (monitors probe every few seconds through an outage).
    [record] = [r for r in caplog.records if r.name == "apps.accounts.apis"]
    assert "the broker does not answer" in record.getMessage() and record.exc_info is None


def test_health_with_a_real_broker(api, settings):
    import os

    from ..conftest import skip_or_fail

    if not os.environ.get("REDIS_URL"):
        skip_or_fail("REDIS_URL is not set")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = os.environ["REDIS_URL"]
    body = api().get("/api/v1/health/").json()
    assert body["broker"] == "ok"
    assert isinstance(body["workers"], int)


def test_health_says_degraded_when_the_task_next_in_line_does_not_move(api, settings, monkeypatch):
    """Workers that answer pings but take no task (one stopped consuming after a broker stall, and the health
    check said ok while the queue filled): the task next in line has waited HEALTH_QUEUE_STALL_SECONDS."""
    import os

    import redis

    from apps.accounts import apis
    from nma_platform.celery import app as celery_app

    from ..conftest import skip_or_fail

    if not os.environ.get("REDIS_URL"):
        skip_or_fail("REDIS_URL is not set")
    url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/11"  # a database of its own: no worker takes from it
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = url
    settings.HEALTH_BROKER_CACHE_SECONDS = 0
    monkeypatch.setattr(celery_app.control, "ping", lambda timeout: [{"w1": "pong"}, {"w2": "pong"}])
    queue = redis.Redis.from_url(url)
    queue.delete("celery")

    def health():
        apis._broker_memo.clear()
        return api().get("/api/v1/health/").json()

    try:
        assert health() == {"status": "ok", "database": "ok", "broker": "ok", "workers": 2, "queue": "ok"}
        queue.lpush("celery", b"first task")
        settings.HEALTH_QUEUE_STALL_SECONDS = 3600
        assert health()["queue"] == "ok"  # first seen next in line now
        assert health()["queue"] == "ok"  # not for an hour yet
        settings.HEALTH_QUEUE_STALL_SECONDS = 0
        body = health()
        assert (body["status"], body["queue"], body["workers"]) == ("degraded", "stalled", 2)
        queue.lpush("celery", b"second task")  # more arrive behind it: still stalled
        assert health()["queue"] == "stalled"
        queue.rpop(
            "celery"
        )  # a worker took the first: the second is next in line, seen now for the first time
        assert health() == {"status": "ok", "database": "ok", "broker": "ok", "workers": 2, "queue": "ok"}
        queue.rpop("celery")
        assert health()["queue"] == "ok"
    finally:
        queue.delete("celery")
        apis._queue_heads.clear()


def test_health_checks_the_broker_at_most_every_few_seconds(api, settings, monkeypatch):
    """A check waits 0.5 s for the workers' answers: without a memo, a few anonymous requests a second kept
    every web worker busy. The database is still checked on every call."""
    from apps.accounts import apis

    checks = []

    def check():
        checks.append(1)
        return ("ok", 2, "ok")

    monkeypatch.setattr(apis, "_broker_check", check)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HEALTH_BROKER_CACHE_SECONDS = 60
    for _ in range(3):
        assert api().get("/api/v1/health/").json() == {
            "status": "ok",
            "database": "ok",
            "broker": "ok",
            "workers": 2,
            "queue": "ok",
        }
    assert len(checks) == 1
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # another broker is checked afresh
    api().get("/api/v1/health/")
    assert len(checks) == 2
    settings.HEALTH_BROKER_CACHE_SECONDS = 0  # every answer is stale: each call starts one check, at most
    api().get("/api/v1/health/")
    apis._broker_memo.wait()
    api().get("/api/v1/health/")
    apis._broker_memo.wait()
    assert len(checks) == 4


def test_a_stale_status_is_answered_at_once_and_checked_again_in_the_background(api, settings, monkeypatch):
    """A request that checked held its web worker half a second, and every process did so at the same moment:
    a stale status is answered while a thread checks again (one at a time)."""
    import threading

    from apps.accounts import apis

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HEALTH_BROKER_CACHE_SECONDS = 0
    monkeypatch.setattr(apis, "_broker_check", lambda: ("error", None, None))
    assert api().get("/api/v1/health/").json()["broker"] == "error"  # the first check is in the request
    started, release = threading.Event(), threading.Event()
    checks = []

    def slow_check():
        checks.append(threading.current_thread().name)
        started.set()
        release.wait(5)
        return ("ok", 1, "ok")

    monkeypatch.setattr(apis, "_broker_check", slow_check)
    try:
        body = api().get("/api/v1/health/").json()  # stale: answered at once, checked in a thread
        assert (body["broker"], body["status"]) == ("error", "degraded")
        assert started.wait(5)
        body = api().get("/api/v1/health/").json()  # a check under way: no second one
        assert (body["broker"], body["status"]) == ("error", "degraded")
    finally:
        release.set()
        apis._broker_memo.wait()
    assert checks == ["health-check"]
    settings.HEALTH_BROKER_CACHE_SECONDS = 60
    assert api().get("/api/v1/health/").json()["broker"] == "ok"


def test_health_is_503_when_the_database_is_down(api, monkeypatch):
    from django.db import connection

    def broken(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken)
    response = api().get("/api/v1/health/")
    assert response.status_code == 503
    assert response.json()["database"] == "error"
    assert response.json()["status"] == "down"


def test_matches_page_with_offset_and_limit_and_say_how_many(api, tokens):
    need = PostFactory(kind="need")
    for i in range(25):
        MatchFactory(need=need, offer=PostFactory(kind="offer", party=party("JPN")), score=0.9 - i / 100)
    url = f"/api/v1/posts/{need.pk}/matches/"
    first = api(tokens["ken"]).get(url)
    assert len(first.json()) == 20 and first["X-Total-Count"] == "25"
    rest = api(tokens["ken"]).get(url, {"offset": 20, "limit": 10})
    assert len(rest.json()) == 5 and rest["X-Total-Count"] == "25"
    scores = [m["score"] for m in first.json() + rest.json()]
    assert (
        scores == sorted(scores, reverse=True) and len(set(m["id"] for m in first.json() + rest.json())) == 25
    )
    assert [m["rank_for_need"] for m in rest.json()] == [21, 22, 23, 24, 25]
    assert api(tokens["ken"]).get(url, {"limit": 200})["X-Total-Count"] == "25"
    assert api(tokens["ken"]).get(url, {"offset": 100}).json() == []
    assert api(tokens["ken"]).get(url, {"offset": 100})["X-Total-Count"] == "25"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "x"},
        {"limit": "²"},
        {"limit": "٣"},
        {"offset": -1},
        {"offset": "1e3"},
        {"offset": "²"},
    ],
)
def test_bad_match_paging_is_400(api, tokens, params):
    need = PostFactory(kind="need")
    response = api(tokens["ken"]).get(f"/api/v1/posts/{need.pk}/matches/", params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == next(iter(params))


def test_bad_limit_and_offset_are_named_together(api, tokens):
    need = PostFactory(kind="need")
    response = api(tokens["ken"]).get(f"/api/v1/posts/{need.pk}/matches/", {"limit": 0, "offset": "x"})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["limit", "offset"]


def test_answering_a_closed_match_or_dismissing_a_connection_is_409(api, tokens, session_api):
    from ..factories import FocalPointFactory

    closed = MatchFactory(is_active=False)
    response = api(tokens["ken"]).post(
        f"/api/v1/matches/{closed.pk}/interest/", {"interest": "interested"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "invalid_state"
    withdrawn = MatchFactory()
    Post.objects.filter(pk=withdrawn.offer_id).update(status="withdrawn")
    response = api(tokens["ken"]).post(
        f"/api/v1/matches/{withdrawn.pk}/interest/", {"interest": "interested"}, format="json"
    )
    assert response.status_code == 409
    assert Match.objects.get(pk=withdrawn.pk).need_interest == ""

    match = MatchFactory()
    api(tokens["ken"]).post(
        f"/api/v1/matches/{match.pk}/interest/", {"interest": "interested"}, format="json"
    )
    client = session_api(FocalPointFactory(username="fp_jpn409", party=party("JPN")))
    client.post(
        f"/api/v1/matches/{match.pk}/interest/",
        {"interest": "interested"},
        format="json",
        **csrf_headers(client),
    )
    response = api(tokens["ken"]).post(
        f"/api/v1/matches/{match.pk}/interest/", {"interest": "dismissed"}, format="json"
    )
    assert response.status_code == 409
    assert "already a connection" in response.json()["errors"][0]["message"]
    assert Match.objects.get(pk=match.pk).need_interest == "interested"


def test_a_side_is_not_told_that_the_other_dismissed_it(api, tokens, session_api, secretariat):
    from ..factories import FocalPointFactory

    match = MatchFactory(need=PostFactory(kind="need", party=party("BRA")))
    Match.objects.filter(pk=match.pk).update(need_interest="dismissed")
    japan = session_api(FocalPointFactory(username="fp_jpn_dismissed", party=party("JPN")))
    seen_by_offer = japan.get(f"/api/v1/posts/{match.offer_id}/matches/").json()[0]
    assert (seen_by_offer["need_interest"], seen_by_offer["offer_interest"]) == ("", "")
    answered = japan.post(
        f"/api/v1/matches/{match.pk}/interest/",
        {"interest": "interested"},
        format="json",
        **csrf_headers(japan),
    ).json()
    assert (answered["need_interest"], answered["offer_interest"]) == ("", "interested")
    # The side that dismissed sees its own answer; the secretariat sees both.
    seen_by_need = api(tokens["bra"]).get(f"/api/v1/posts/{match.need_id}/matches/").json()[0]
    assert (seen_by_need["need_interest"], seen_by_need["offer_interest"]) == ("dismissed", "interested")
    staff = session_api(secretariat).get(f"/api/v1/posts/{match.offer_id}/matches/").json()[0]
    assert (staff["need_interest"], staff["offer_interest"]) == ("dismissed", "interested")
