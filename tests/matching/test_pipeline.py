"""The matching pipeline against the database: hand-off, stored matches, hard rules, life cycle, rebuild."""

import dataclasses
import json
import pickle

import numpy as np
import pytest
from django.core.management import call_command
from django.db.models import Q

from apps.matching import engine, pipeline
from apps.matching.models import Match, PostEmbedding, TextModelVersion
from apps.posts import services
from apps.posts.models import Post

from .conftest import SECRETARIAT_ACTOR, make_post

pytestmark = pytest.mark.django_db


def active_pairs():
    return set(Match.objects.active().values_list("need__external_id", "offer__external_id"))


def test_publishing_matches_each_need_to_the_offer_that_meets_it(corpus):
    best = {}
    for need in ("n-flood", "n-solar", "n-foret"):
        top = Match.objects.active().filter(need=corpus[need]).order_by("-score").first()
        best[need] = top.offer.external_id
    assert best == {"n-flood": "o-warn", "n-solar": "o-grid", "n-foret": "o-forest"}
    assert not Post.objects.filter(matching_pending=True).exists()


def test_hard_rules_hold_for_every_stored_match(corpus):
    pairs = (
        Match.objects.active()
        .select_related("need__party", "offer__party")
        .prefetch_related("need__support_types", "offer__support_types")
    )
    assert pairs
    for match in pairs:
        assert match.need.kind == "need" and match.offer.kind == "offer"
        assert match.need.party_id != match.offer.party_id
        assert {t.key for t in match.need.support_types.all()} & {
            t.key for t in match.offer.support_types.all()
        }
        assert 0 <= match.score <= 1
    # Kenya's own offer never meets Kenya's need; the forest need (finance) never meets the technology offers.
    assert ("n-flood", "o-kenya") not in active_pairs()
    assert ("n-foret", "o-warn") not in active_pairs()


def test_explanation_names_shared_tags_terms_and_language(corpus):
    flood = Match.objects.get(need=corpus["n-flood"], offer=corpus["o-warn"])
    assert flood.explanation["shared_support_types"] == ["technology"]
    assert flood.explanation["shared_focus_areas"] == ["adaptation"]
    assert "flood" in " ".join(flood.explanation["top_terms"])
    assert flood.explanation["cross_lingual"] is False
    forest = Match.objects.get(need=corpus["n-foret"], offer=corpus["o-forest"])
    assert forest.explanation["cross_lingual"] is True
    assert (forest.explanation["need_language"], forest.explanation["offer_language"]) == ("fr", "en")


def test_eligibility_restricts_an_offer_to_its_groups(corpus, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sids_only = make_post(
            "o-sids", "offer", "AUS", ["technology"], ["adaptation"], ["disaster_risk"], "en",
            "Flood early warning for small islands", "River gauges and flood forecasting for islands.",
            eligible=["SIDS"],
        )  # fmt: skip
    # Kenya is neither a SIDS nor named: no match, however similar the text.
    assert not Match.objects.filter(offer=sids_only).exists()
    with django_capture_on_commit_callbacks(execute=True):
        for_kenya = make_post(
            "o-ken", "offer", "AUS", ["technology"], ["adaptation"], ["disaster_risk"], "en",
            "Flood early warning for Kenya", "River gauges and flood forecasting for the Tana basin.",
            eligible=["KEN", "SIDS"],
        )  # fmt: skip
    assert Match.objects.active().filter(offer=for_kenya, need=corpus["n-flood"]).exists()


def _ldc_offer(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return make_post(
            "o-ldc", "offer", "AUS", ["finance"], ["clean_energy"], ["renewable_energy"], "en",
            "Solar mini-grids for the least developed countries",
            "Grants for solar mini-grids with battery storage in off-grid villages, and technician training.",
            eligible=["LDC"],
        )  # fmt: skip


def test_a_party_that_leaves_a_group_loses_the_matches_that_needed_it(
    corpus, django_capture_on_commit_callbacks
):
    from apps.matching.services import matching_party_groups_changed
    from apps.parties.models import Party

    offer, need = _ldc_offer(django_capture_on_commit_callbacks), corpus["n-solar"]  # Nepal: an LDC
    assert Match.objects.active().filter(need=need, offer=offer).exists()
    nepal = Party.objects.get(iso3="NPL")
    Party.objects.filter(pk=nepal.pk).update(is_ldc=False)  # graduated
    with django_capture_on_commit_callbacks(execute=True):
        assert matching_party_groups_changed(party_id=nepal.pk) == 1  # its one published need
    assert not Match.objects.active().filter(need=need, offer=offer).exists()
    assert not Post.objects.filter(matching_pending=True).exists()
    # The worker's index held Nepal's need as an LDC's: matching the offer again must not bring the pair back.
    pipeline.matching_run_for_posts(post_ids=[offer.pk])
    assert not Match.objects.active().filter(need=need, offer=offer).exists()
    # And back in the group, the pair is found again, from either side.
    Party.objects.filter(pk=nepal.pk).update(is_ldc=True)
    pipeline.matching_run_for_posts(post_ids=[offer.pk])
    assert Match.objects.active().filter(need=need, offer=offer).exists()


def test_the_secretariat_changing_a_partys_groups_in_the_admin_rematches_its_needs(
    corpus, secretariat, login, django_capture_on_commit_callbacks
):
    from apps.parties.models import Party

    offer, need = _ldc_offer(django_capture_on_commit_callbacks), corpus["n-solar"]
    nepal = Party.objects.get(iso3="NPL")
    form = {"iso3": "NPL", "name": nepal.name, "regional_group": nepal.regional_group, "is_sids": "",
            "paris_agreement_party": "on"}  # is_ldc unticked  # fmt: skip
    client = login(secretariat)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/parties/party/{nepal.pk}/change/", form, follow=True)
    assert response.status_code == 200
    assert "being matched again" in response.content.decode()
    nepal.refresh_from_db()
    assert nepal.is_ldc is False
    assert not Match.objects.active().filter(need=need, offer=offer).exists()
    # A change that leaves the groups alone queues nothing.
    form["name"] = "Nepal (Federal Democratic Republic)"
    response = client.post(f"/admin/parties/party/{nepal.pk}/change/", form, follow=True)
    assert "being matched again" not in response.content.decode()


def test_withdrawing_a_post_removes_its_matches_from_every_view(corpus, django_capture_on_commit_callbacks):
    offer = corpus["o-warn"]
    assert Match.objects.active().filter(offer=offer).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.post_withdraw(actor=SECRETARIAT_ACTOR, post=offer)
    assert not Match.objects.active().filter(offer=offer).exists()
    # The rows stay for the stocktake's history, inactive.
    assert Match.objects.filter(offer=offer, is_active=False).exists()


def test_editing_a_published_post_rematches_it(corpus, django_capture_on_commit_callbacks):
    from apps.posts.post_data import ReferenceData, parse_post_record

    need = corpus["n-solar"]
    before = Match.objects.get(need=need, offer=corpus["o-grid"]).score
    record = {
        "kind": "need",
        "party": "NPL",
        "title": "Hospital cooling",
        "description": "Efficient cooling for district hospitals and vaccine cold chains.",
        "support_types": ["finance", "capacity_building"],
        "focus_areas": ["clean_energy"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        services.post_update(
            actor=SECRETARIAT_ACTOR, post=need, data=parse_post_record(record, ReferenceData())
        )
    after = Match.objects.filter(need=need, offer=corpus["o-grid"], is_active=True).values_list(
        "score", flat=True
    )
    assert not after or after[0] < before


def _sides_hold() -> bool:
    """Every active match pairs a need with an offer."""
    wrong = Match.objects.active().exclude(need__kind="need", offer__kind="offer")
    return not wrong.exists()


def test_changing_a_posts_kind_retires_the_matches_of_its_old_side(
    corpus, django_capture_on_commit_callbacks
):
    from apps.posts.post_data import ReferenceData, parse_post_record

    need = corpus["n-flood"]
    assert Match.objects.active().filter(need=need).exists()
    record = {
        "kind": "offer",
        "party": "KEN",
        "title": need.title,
        "description": need.description,
        "support_types": ["technology", "finance", "capacity_building"],
        "focus_areas": ["adaptation"],
        "sectors": ["disaster_risk", "water"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        services.post_update(
            actor=SECRETARIAT_ACTOR, post=need, data=parse_post_record(record, ReferenceData())
        )
    assert not Match.objects.active().filter(need=need).exists()
    assert _sides_hold()
    # Matched again as the offer it now is: needs of other Parties may meet it.
    assert Match.objects.active().filter(offer=need).exists()


def test_importing_a_post_under_another_kind_retires_its_old_sides_matches(corpus):
    from apps.posts.post_data import ReferenceData, parse_post_record

    need = corpus["n-flood"]
    record = {
        "external_id": "n-flood", "kind": "offer", "party": "KEN", "title": need.title,
        "description": need.description, "support_types": ["technology"], "focus_areas": ["adaptation"],
    }  # fmt: skip
    services.post_import(actor=SECRETARIAT_ACTOR, items=[parse_post_record(record, ReferenceData())])
    need.refresh_from_db()
    assert need.kind == "offer"
    assert not Match.objects.active().filter(need=need).exists()
    assert _sides_hold()


def test_matching_a_post_retires_rows_that_have_it_on_its_old_side(corpus):
    """The worker's safety net, whatever wrote the change of kind (here a bare update)."""
    need = corpus["n-flood"]
    Post.objects.filter(pk=need.pk).update(kind="offer")
    pipeline.matching_run_for_posts(post_ids=[need.pk])
    assert not Match.objects.active().filter(need=need).exists()
    assert _sides_hold()


def test_running_the_same_task_twice_leaves_the_same_rows(corpus):
    ids = list(Post.objects.values_list("id", flat=True))
    pipeline.matching_run_for_posts(post_ids=ids)
    first = sorted(Match.objects.values_list("need_id", "offer_id", "score", "is_active"))
    pipeline.matching_run_for_posts(post_ids=ids)
    second = sorted(Match.objects.values_list("need_id", "offer_id", "score", "is_active"))
    assert first == second
    assert len(first) == len({(n, o) for n, o, _s, _a in first})


def test_full_rebuild_agrees_with_incremental_matching(corpus):
    incremental = sorted(Match.objects.active().values_list("need_id", "offer_id"))
    Match.objects.all().delete()
    run = pipeline.rebuild_start(sync=True)
    assert run.finished_at is not None and run.done_chunks == run.total_chunks == 2
    assert sorted(Match.objects.active().values_list("need_id", "offer_id")) == incremental


def test_rebuild_retires_matches_it_does_not_write_again(corpus):
    stale = Match.objects.active().first()
    stale.score = 0.99
    stale.save()
    Match.objects.filter(pk=stale.pk).update(updated_at="2000-01-01T00:00:00Z")
    stale_pair = (stale.need_id, stale.offer_id)
    Post.objects.filter(pk=stale.offer_id).update(status="withdrawn")  # behind the services' back
    pipeline.rebuild_start(sync=True)
    assert not Match.objects.active().filter(need_id=stale_pair[0], offer_id=stale_pair[1]).exists()


def test_a_finished_rebuild_refreshes_the_planner_statistics_of_matches(corpus):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        run = pipeline.rebuild_start(sync=True)
    assert run.finished_at is not None
    analyses = [i for i, q in enumerate(queries.captured_queries) if q["sql"] == "ANALYZE matching_match"]
    # Once, after the last write of the run.
    assert len(analyses) == 1
    assert not any("INSERT" in q["sql"] for q in queries.captured_queries[analyses[0] :])


def test_the_model_is_versioned_and_embeddings_are_cached(corpus):
    # While the corpus is small the model is refitted as it grows: one version per growth step.
    versions = list(TextModelVersion.objects.values_list("version", "corpus_size"))
    assert len(versions) >= 2 and max(versions)[1] == Post.objects.published().count()
    assert PostEmbedding.objects.count() == Post.objects.count()
    latest = max(versions)[0]
    version, _model = pipeline.text_model_refit()
    assert version == latest + 1
    pipeline.index_reset()
    # The new version is picked up from the database by a fresh process (simulated by the reset).
    assert pipeline.text_model_current()[0] == latest + 1


def test_a_model_stored_without_a_pivot_language_is_refitted_by_the_hourly_task(corpus):
    version, model = pipeline.text_model_current()
    assert model.pivot == "en"
    assert pipeline.text_model_refit_if_grown() is None  # not grown, and it has one: nothing to do
    # As a model stored before pivots were kept: the same state without them.
    state = pickle.loads(model.to_bytes())
    for key in ("pivot", "pool", "pool_vectors"):
        del state[key]
    TextModelVersion.objects.filter(version=version).update(payload=pickle.dumps(state))
    pipeline.index_reset()
    assert pipeline.text_model_current()[1].pivot is None
    assert pipeline.text_model_refit_if_grown() == version + 1
    pipeline.index_reset()
    assert pipeline.text_model_current()[1].pivot == "en"
    assert pipeline.text_model_refit_if_grown() is None


def test_a_model_stored_reading_words_as_written_is_refitted_by_the_hourly_task(corpus):
    """A model fitted before Russian and Arabic words were read as stems keeps reading them so (its vocabulary
    has no stems) until the hourly task replaces it."""
    version, model = pipeline.text_model_current()
    assert not model.outdated
    state = pickle.loads(model.to_bytes())
    state["vectorizer"].preprocessor = engine.preprocess_text
    TextModelVersion.objects.filter(version=version).update(payload=pickle.dumps(state))
    pipeline.index_reset()
    assert pipeline.text_model_current()[1].outdated
    assert pipeline.text_model_refit_if_grown() == version + 1
    pipeline.index_reset()
    current = pipeline.text_model_current()[1]
    assert current.vectorizer.preprocessor is engine.preprocess_words and not current.outdated
    assert pipeline.text_model_refit_if_grown() is None


def _offer_left_waiting(settings, capture) -> Post:
    """An offer published while matching is off (as after a broker outage): flagged as waiting, unmatched."""
    settings.MATCHING_AUTORUN = False
    with capture(execute=True):
        late = make_post(
            "o-late", "offer", "FRA", ["technology"], ["adaptation"], ["disaster_risk"], "en",
            "Flood warning radars", "Rainfall radar and flood forecasting for river basins.",
        )  # fmt: skip
    late.refresh_from_db()
    return late


def test_sweep_matches_posts_left_waiting(corpus, settings, django_capture_on_commit_callbacks):
    late = _offer_left_waiting(settings, django_capture_on_commit_callbacks)
    assert late.matching_pending and not Match.objects.filter(offer=late).exists()
    assert pipeline.matching_sweep() == 1
    late.refresh_from_db()
    assert not late.matching_pending
    assert Match.objects.active().filter(offer=late, need=corpus["n-flood"]).exists()


def test_one_sweep_at_a_time(corpus, settings, django_capture_on_commit_callbacks):
    """Overlapping sweeps, while the database was slow, took every worker process, each matching the same
    posts. The lock is PostgreSQL's (an advisory lock, released if its holder's connection drops)."""
    import psycopg
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the sweep's lock is PostgreSQL's advisory lock; SQLite runs one process")
    late = _offer_left_waiting(settings, django_capture_on_commit_callbacks)
    params = connection.get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True)
    key = pipeline._lock_key("matching-sweep")
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [key])  # another worker's sweep is going
        assert pipeline.matching_sweep() == 0
        late.refresh_from_db()
        assert late.matching_pending
        other.execute("SELECT pg_advisory_unlock(%s)", [key])
        assert pipeline.matching_sweep() == 1
        late.refresh_from_db()
        assert not late.matching_pending
    finally:
        other.close()


def test_a_process_that_waited_for_another_ones_fit_loads_it_instead_of_fitting_again(corpus, monkeypatch):
    """Every worker that found the model store empty, or the small corpus grown, at the same moment fitted a
    model of its own (four versions fitted at once on 263 posts, ~40 s each at 4,000)."""
    from contextlib import contextmanager

    from apps.matching import engine

    TextModelVersion.objects.all().delete()
    pipeline.index_reset()
    fits = []
    real_fit = engine.fit_model

    def counting_fit(*args, **kwargs):
        fits.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(engine, "fit_model", counting_fit)
    real_exclusive = pipeline._exclusive

    @contextmanager
    def another_fits_first(name, *, wait):
        with real_exclusive(name, wait=wait) as held:
            if name == "text-model-refit" and not TextModelVersion.objects.exists():
                pipeline._text_model_fit()  # the process that had the lock before this one
                pipeline.index_reset()
            yield held

    monkeypatch.setattr(pipeline, "_exclusive", another_fits_first)
    version, _model = pipeline.text_model_current()
    assert len(fits) == 1 and TextModelVersion.objects.count() == 1
    assert version == TextModelVersion.objects.get().version


def test_export_matches_prints_the_domain_format(corpus, capsys):
    call_command("export_matches")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines
    assert set(lines[0]) == {"need", "offer", "score", "rank"}
    by_need = {}
    for line in lines:
        by_need.setdefault(line["need"], []).append(line)
    for rows in by_need.values():
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert by_need["n-flood"][0]["offer"] == "o-warn"


def test_export_matches_stops_quietly_when_its_reader_does(corpus):
    """`export_matches | head -1` ended with a BrokenPipeError traceback."""

    class Head:
        def __init__(self):
            self.lines = []

        def write(self, text):
            if self.lines:
                raise BrokenPipeError(32, "Broken pipe")
            self.lines.append(text)

        def flush(self):
            pass

    head = Head()
    assert Match.objects.active().count() > 1
    call_command("export_matches", stdout=head)  # returns, no error
    assert len(head.lines) == 1 and json.loads(head.lines[0])["rank"] == 1


def test_export_matches_writes_any_script_to_an_output_that_is_not_utf8(corpus):
    """An external id in Arabic made export_matches fail with UnicodeEncodeError on an ASCII output."""
    import io

    Post.objects.filter(pk=corpus["n-flood"].pk).update(external_id="إنذار-1")
    for encoding in ("ascii", "utf-8"):
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, encoding=encoding)
        call_command("export_matches", stdout=out)
        out.flush()
        lines = [json.loads(line) for line in raw.getvalue().decode(encoding).splitlines()]
        assert "إنذار-1" in {line["need"] for line in lines}
        assert ("إنذار".encode() in raw.getvalue()) == (encoding == "utf-8")  # letters as they are in UTF-8


@pytest.mark.parametrize("terminal", [True, False])
def test_rebuild_command_in_process(corpus, capsys, monkeypatch, terminal):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    Match.objects.all().delete()
    call_command("rebuild_matches", "--sync")
    out = capsys.readouterr()
    assert "2 chunks" in out.out
    if terminal:
        # Progress on one line that ends with the last chunk, so what the run's end logs starts a line of its own.
        assert out.err.endswith("\rrebuild: 2/2 chunks\n") and out.err.count("\n") == 1, repr(out.err)
    else:  # a log: a line each, no carriage return
        assert out.err == "rebuild: 1/2 chunks\nrebuild: 2/2 chunks\n", repr(out.err)
    assert Match.objects.active().filter(need=corpus["n-flood"], offer=corpus["o-warn"]).exists()


def test_the_rebuild_on_the_workers_says_how_many_matches_are_stored_and_when_no_worker_answers(
    corpus, monkeypatch, capsys
):
    """Each side's chunks write the pairs they rank, so a pair ranked by both of its posts was counted twice
    ("160 matches written" for 80 rows): the command says what is stored. With no worker to take the chunks,
    it said nothing for an hour."""
    from apps.matching.management.commands import rebuild_matches

    monkeypatch.setattr(rebuild_matches, "_workers_answer", lambda: False)
    call_command("rebuild_matches", "--chunk-size", "2")
    out = capsys.readouterr()
    assert f"; {Match.objects.active().count()} matches stored" in out.out
    assert (
        "No Celery worker answered: the chunks wait in the broker until one starts (make worker)" in out.err
    )
    call_command("rebuild_matches", "--sync")
    assert "No Celery worker answered" not in capsys.readouterr().err  # in this process: no worker needed


def test_the_wait_for_the_workers_outlasts_a_database_away_for_a_moment(corpus, monkeypatch, capsys):
    """The command polls the run's progress: a database restart crashed it with a traceback while the workers,
    which retry, finished the run."""
    from django.db import OperationalError

    from apps.matching.management.commands import rebuild_matches

    monkeypatch.setattr(rebuild_matches, "_workers_answer", lambda: True)
    monkeypatch.setattr(rebuild_matches.time, "sleep", lambda seconds: None)
    real, calls = rebuild_matches.rebuild_progress, []

    def away_once(run_id):
        calls.append(run_id)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(run_id)

    monkeypatch.setattr(rebuild_matches, "rebuild_progress", away_once)
    call_command("rebuild_matches", "--chunk-size", "2")
    assert len(calls) == 2 and "matches stored" in capsys.readouterr().out


def test_a_rebuild_ended_as_failed_by_another_does_not_say_it_succeeded(corpus, monkeypatch):
    """A run silent for 30 minutes (waiting for a refit, say) is ended by the next rebuild; it then went on,
    retired nothing, and the command printed its usual success line."""
    from datetime import timedelta

    from django.core.management import CommandError
    from django.utils import timezone

    from apps.matching import engine
    from apps.matching.models import RebuildRun

    ranking = engine.match_all

    def ended_meanwhile(*args, **kwargs):
        silent = timezone.now() - pipeline.RUN_STALLED_AFTER - timedelta(minutes=1)
        RebuildRun.objects.filter(finished_at__isnull=True).update(progress_at=silent)
        pipeline._end_dead_runs()  # as the next rebuild's start does
        yield from ranking(*args, **kwargs)

    monkeypatch.setattr(engine, "match_all", ended_meanwhile)
    with pytest.raises(
        CommandError,
        match=r"failed and retired no match: No progress for 30 minutes: .* another rebuild ended it",
    ):
        call_command("rebuild_matches", "--sync")


def test_an_in_process_rebuild_that_fails_says_so_and_ends_its_run_failed(corpus, monkeypatch):
    """It said "Could not start the rebuild" after ranking ten chunks."""
    from django.core.management import CommandError
    from django.db import OperationalError

    from apps.matching import engine
    from apps.matching.models import RebuildRun

    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")
        yield

    monkeypatch.setattr(engine, "match_all", broken)
    with pytest.raises(CommandError, match=r"^The rebuild failed: server closed the connection unexpectedly"):
        call_command("rebuild_matches", "--sync")
    run = RebuildRun.objects.latest("pk")
    assert run.in_process and run.failed and run.finished_at is not None


def test_workers_answer_asks_the_broker_unless_tasks_run_here(monkeypatch):
    from apps.matching.management.commands.rebuild_matches import _workers_answer
    from nma_platform.celery import app

    eager = app.conf.task_always_eager
    try:
        app.conf.update(task_always_eager=True)
        assert _workers_answer()
        app.conf.update(task_always_eager=False)
        monkeypatch.setattr(app.control, "ping", lambda timeout: [])
        assert not _workers_answer()
        monkeypatch.setattr(app.control, "ping", lambda timeout: [{"celery@host": {"ok": "pong"}}])
        assert _workers_answer()
    finally:
        app.conf.update(task_always_eager=eager)


def test_a_sync_rebuild_stopped_by_sigterm_ends_its_run(corpus, monkeypatch, capsys):
    """systemd and `timeout` stop with SIGTERM, which killed the command at once: its run stayed unfinished,
    and every other rebuild retired nothing while it seemed to go on."""
    import os
    import signal

    from apps.matching import engine
    from apps.matching.models import RebuildRun

    real_match_all = engine.match_all

    def terminated_midway(*args, **kwargs):
        for n, chunk in enumerate(real_match_all(*args, **kwargs)):
            if n == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode, in this (main) thread
            yield chunk

    monkeypatch.setattr(engine, "match_all", terminated_midway)
    handler = signal.getsignal(signal.SIGTERM)
    active = set(Match.objects.active().values_list("pk", flat=True))
    with pytest.raises(SystemExit) as exited:
        call_command("rebuild_matches", "--sync", "--chunk-size", "1")
    assert exited.value.code == 128 + signal.SIGTERM
    assert "Stopped by SIGTERM: the rebuild ends as failed and retires nothing." in capsys.readouterr().err
    run = RebuildRun.objects.get()
    assert run.finished_at is not None and run.done_chunks < run.total_chunks
    assert set(Match.objects.active().values_list("pk", flat=True)) >= active  # it retired nothing
    assert signal.getsignal(signal.SIGTERM) is handler  # the command put the previous handler back


@pytest.mark.parametrize("size", ["-3", "0", "x"])
def test_a_rebuild_with_no_usable_chunk_size_is_refused_and_retires_nothing(corpus, size, settings):
    """A chunk of 0 or fewer posts ranked nothing, and the run's end then retired every match."""
    from django.core.management.base import CommandError

    active = Match.objects.active().count()
    assert active
    with pytest.raises(CommandError, match="chunk-size"):
        call_command("rebuild_matches", "--sync", "--chunk-size", size)
    settings.MATCHING_REBUILD_CHUNK = int(size) if size != "x" else 0
    with pytest.raises(ValueError, match="chunk size must be 1 or more"):
        pipeline.rebuild_start(sync=True)
    assert Match.objects.active().count() == active


def test_rerank_sentence_vectors_are_kept_for_every_worker(corpus, monkeypatch):
    from apps.matching import engine

    # Every post of a stored match was shortlisted: its sentence vectors are stored under their text hash.
    stored = dict(PostEmbedding.objects.exclude(sentences=None).values_list("post_id", "sentences_hash"))
    matched = set(Match.objects.active().values_list("need_id", flat=True)) | set(
        Match.objects.active().values_list("offer_id", flat=True)
    )
    assert len(matched) >= 6 and matched <= set(stored)
    records = {r.id: r for r in pipeline.post_records(Q(status=Post.Status.PUBLISHED))}
    assert all(stored[pk] == engine.post_sentences_key(records[pk]) for pk in stored)

    # A fresh process (the reset) rebuilds everything without embedding a sentence again.
    def no_embedding(_records):
        raise AssertionError("sentences were embedded again")

    monkeypatch.setattr(engine, "embed_post_sentences", no_embedding)
    pipeline.index_reset()
    before = sorted(Match.objects.active().values_list("need_id", "offer_id"))
    run = pipeline.rebuild_start(sync=True)
    assert run.finished_at is not None
    assert sorted(Match.objects.active().values_list("need_id", "offer_id")) == before


def test_a_post_is_stored_with_its_sentence_vectors_when_it_is_embedded(corpus, monkeypatch):
    from apps.matching import engine

    need = corpus["n-flood"]
    record = pipeline.post_records(Q(pk=need.pk))[0]
    PostEmbedding.objects.filter(post=need).delete()

    def no_embedding(_records):
        raise AssertionError("sentences were embedded apart from the post")

    monkeypatch.setattr(engine, "embed_post_sentences", no_embedding)
    vector = pipeline.embeddings_for([record])[need.pk]
    row = PostEmbedding.objects.get(post=need)
    assert row.text_hash == engine.post_embedding_key(record)
    assert np.array_equal(np.frombuffer(bytes(row.vector), dtype=np.float32), vector)
    assert row.sentences_hash == engine.post_sentences_key(record)
    assert set(pipeline.sentence_store.get([record])) == {need.pk}
    stored = pipeline.sentence_store.get([record])[need.pk]
    assert stored.shape == (len(engine.post_sentences(record)), engine.EMBED_DIM)
    # The stored title is the one in the post's vector: embedded once.
    opening = engine.encode_texts([engine.post_embedding_texts(record)[1]])[0]
    title = stored[0].astype(np.float32)
    assert np.allclose(vector, engine._l2((title + opening)[None])[0], atol=2e-3)
    # Matching the post now reads its sentences from the store and embeds none.
    pipeline.index_reset()
    pipeline.matching_run_for_posts(post_ids=[need.pk])
    assert Match.objects.active().filter(need=need).exists()


def test_editing_a_post_refreshes_its_stored_sentence_vectors(corpus, django_capture_on_commit_callbacks):
    from apps.matching import engine

    need = corpus["n-flood"]
    old_hash = PostEmbedding.objects.get(post=need).sentences_hash
    from apps.posts.post_data import ReferenceData, parse_post_record

    record = {
        "kind": "need",
        "party": "KEN",
        "title": "Flood early-warning system for the Tana river basin",
        "description": "Automatic river gauges and flood forecasting. Warnings reach villages by SMS.",
        "support_types": ["technology"],
        "focus_areas": ["adaptation"],
        "sectors": ["disaster_risk", "water"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        services.post_update(
            actor=SECRETARIAT_ACTOR, post=need, data=parse_post_record(record, ReferenceData())
        )
    row = PostEmbedding.objects.get(post=need)
    record = pipeline.post_records(Q(pk=need.pk))[0]
    assert row.sentences_hash == engine.post_sentences_key(record) != old_hash
    vectors = np.frombuffer(bytes(row.sentences), dtype=np.float16).reshape(-1, engine.EMBED_DIM)
    assert vectors.shape[0] == len(engine.post_sentences(record)) == 3


def test_a_rescore_marks_a_match_changed_only_when_its_score_moves(corpus):
    from datetime import timedelta

    from django.utils import timezone

    pair = Match.objects.active().filter(need=corpus["n-flood"], offer=corpus["o-warn"]).get()
    assert pair.changed_at is not None and pair.alignment is not None and 0 <= pair.alignment <= 1
    ids = list(Post.objects.values_list("id", flat=True))
    # The corpus was matched as it grew, under earlier model versions: score everything with the current one.
    pipeline.matching_run_for_posts(post_ids=ids)
    long_ago = timezone.now() - timedelta(days=60)
    Match.objects.filter(pk=pair.pk).update(changed_at=long_ago)
    pipeline.matching_run_for_posts(post_ids=ids)  # the same scores again
    pair.refresh_from_db()
    assert pair.changed_at == long_ago
    Match.objects.filter(pk=pair.pk).update(score=pair.score - 0.2)  # the stored score was different
    pipeline.matching_run_for_posts(post_ids=ids)
    pair.refresh_from_db()
    assert pair.changed_at > long_ago
    # A pair that comes back into a list, with the same score, is news too.
    Match.objects.filter(pk=pair.pk).update(is_active=False, changed_at=long_ago)
    pipeline.matching_run_for_posts(post_ids=ids)
    pair.refresh_from_db()
    assert pair.is_active and pair.changed_at > long_ago
    # Below the material change: kept.
    Match.objects.filter(pk=pair.pk).update(
        score=pair.score - pipeline.MATERIAL_CHANGE / 2, changed_at=long_ago
    )
    pipeline.matching_run_for_posts(post_ids=ids)
    pair.refresh_from_db()
    assert pair.changed_at == long_ago


def test_a_stale_index_does_not_overwrite_the_sentences_of_edited_text(corpus):
    from apps.matching import engine

    need = corpus["n-flood"]
    record = pipeline.post_records(Q(pk=need.pk))[0]
    current = PostEmbedding.objects.get(post=need)
    stale = dataclasses.replace(record, description="An older text of the post. It was edited since.")
    pipeline.sentence_store.put([stale], engine.embed_post_sentences([stale]))
    assert PostEmbedding.objects.get(post=need).sentences_hash == current.sentences_hash
    assert pipeline.sentence_store.get([stale]) == {}
    assert set(pipeline.sentence_store.get([record])) == {need.pk}


@pytest.mark.parametrize("path", ["incremental", "rebuild"])
def test_strong_at_is_the_first_time_a_pair_was_written_with_a_strong_score(corpus, settings, path):
    from datetime import timedelta

    from django.utils import timezone

    ids = list(Post.objects.values_list("id", flat=True))
    scores = sorted(Match.objects.active().values_list("score", flat=True))
    settings.MATCHING_STRONG_SCORE = scores[len(scores) // 2]  # about half the pairs are strong
    Match.objects.update(strong_at=None)
    kept = Match.objects.active().filter(score__gte=settings.MATCHING_STRONG_SCORE).first()
    long_ago = timezone.now() - timedelta(days=30)
    Match.objects.filter(pk=kept.pk).update(strong_at=long_ago)  # strong since long ago: stays so
    if path == "rebuild":
        pipeline.rebuild_start(sync=True)
    else:
        pipeline.matching_run_for_posts(post_ids=ids)
    active = Match.objects.active()
    assert active.filter(score__gte=settings.MATCHING_STRONG_SCORE).exists()
    assert not active.filter(score__gte=settings.MATCHING_STRONG_SCORE, strong_at__isnull=True).exists()
    assert not active.filter(score__lt=settings.MATCHING_STRONG_SCORE, strong_at__isnull=False).exists()
    kept.refresh_from_db()
    assert kept.strong_at == long_ago


def test_a_rebuild_retires_exactly_the_active_matches_it_neither_ranked_nor_saw_written_since(corpus):
    from datetime import timedelta

    from django.utils import timezone

    from apps.matching.models import RebuildPair, RebuildRun

    matches = list(Match.objects.active().order_by("pk")[:4])
    ranked, written_since, ranked_by_another, neither = matches
    run = RebuildRun.objects.create(model_version=1, total_chunks=1)
    before = run.started_at - timedelta(minutes=1)
    Match.objects.filter(pk__in=[ranked.pk, ranked_by_another.pk, neither.pk]).update(updated_at=before)
    Match.objects.filter(pk=written_since.pk).update(updated_at=run.started_at + timedelta(seconds=1))
    RebuildPair.objects.create(run=run, need_id=ranked.need_id, offer_id=ranked.offer_id)
    # A run still going leaves its unchanged matches unwritten too: what it ranked stays.
    going = RebuildRun.objects.create(model_version=1, total_chunks=1)
    RebuildPair.objects.create(
        run=going, need_id=ranked_by_another.need_id, offer_id=ranked_by_another.offer_id
    )
    # The pairs of a finished run count not (left by a chunk redelivered after the end).
    finished = RebuildRun.objects.create(model_version=1, total_chunks=1, finished_at=timezone.now())
    RebuildPair.objects.create(run=finished, need_id=neither.need_id, offer_id=neither.offer_id)
    untouched = set(
        Match.objects.active().exclude(pk__in=[m.pk for m in matches]).values_list("pk", flat=True)
    )
    Match.objects.filter(pk__in=untouched).update(updated_at=timezone.now() + timedelta(hours=1))

    pipeline.rebuild_finish(run)

    active = set(Match.objects.active().values_list("pk", flat=True))
    assert active == untouched | {ranked.pk, written_since.pk, ranked_by_another.pk}
    assert not RebuildPair.objects.filter(run=run).exists()  # forgotten once finished
    assert RebuildPair.objects.filter(run=going).count() == 1
    # The next run forgets the pairs of finished runs, and keeps those of runs going.
    pipeline.rebuild_start(sync=False)
    assert set(RebuildPair.objects.values_list("run_id", flat=True)) == {going.pk}


@pytest.mark.parametrize("read_at_start", [False, True])
def test_an_in_process_rebuild_retires_what_it_neither_ranked_nor_saw_written_since(corpus, read_at_start):
    from datetime import timedelta

    from apps.matching.models import RebuildPair, RebuildRun

    matches = list(Match.objects.active().order_by("pk")[:4])
    ranked, written_since, ranked_by_another, neither = matches
    run = RebuildRun.objects.create(model_version=1, total_chunks=1, in_process=True)
    before = run.started_at - timedelta(minutes=1)
    Match.objects.filter(pk__in=[ranked.pk, ranked_by_another.pk, neither.pk]).update(updated_at=before)
    Match.objects.filter(pk=written_since.pk).update(updated_at=run.started_at + timedelta(seconds=1))
    # A fanned-out run still going leaves its unchanged matches unwritten too: what it ranked stays.
    going = RebuildRun.objects.create(model_version=1, total_chunks=1)
    RebuildPair.objects.create(
        run=going, need_id=ranked_by_another.need_id, offer_id=ranked_by_another.offer_id
    )
    others = set(Match.objects.active().exclude(pk__in=[m.pk for m in matches]).values_list("pk", flat=True))
    Match.objects.filter(pk__in=others).update(updated_at=before)
    kept_others = sorted(others)[: len(others) // 2]
    pairs = Match.objects.filter(pk__in=kept_others).values_list("need_id", "offer_id")
    keys = pipeline._pair_keys([(ranked.need_id, ranked.offer_id), *pairs])
    # The active matches as the run read them when it started (the in-process rebuild), or read at its end.
    active = pipeline.StoredFingerprints.read() if read_at_start else None
    if read_at_start:
        assert sorted(active.ids.tolist()) == sorted(Match.objects.active().values_list("pk", flat=True))

    pipeline.rebuild_finish(run, ranked=keys, active=active)

    active = set(Match.objects.active().values_list("pk", flat=True))
    assert active == set(kept_others) | {ranked.pk, written_since.pk, ranked_by_another.pk}


def test_while_an_in_process_rebuild_goes_another_run_retires_nothing(corpus):
    from datetime import timedelta

    from django.utils import timezone

    from apps.matching.models import RebuildRun

    Match.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    active = set(Match.objects.active().values_list("pk", flat=True))
    going = RebuildRun.objects.create(model_version=1, total_chunks=1, in_process=True)
    fanned = RebuildRun.objects.create(model_version=1, total_chunks=1)
    pipeline.rebuild_finish(fanned)  # it ranked nothing, but the run going keeps its pairs to itself
    assert set(Match.objects.active().values_list("pk", flat=True)) == active
    # Started long ago but still making progress (a rebuild at scale): still going.
    RebuildRun.objects.filter(pk=going.pk).update(started_at=timezone.now() - timedelta(days=2))
    fanned = RebuildRun.objects.create(model_version=1, total_chunks=1)
    pipeline.rebuild_finish(fanned)
    assert set(Match.objects.active().values_list("pk", flat=True)) == active
    # One that shows no progress for longer than RUN_STALLED_AFTER died (a killed command): it holds nothing
    # back. It blocked every rebuild's retiring for a day, silently.
    stalled = timezone.now() - pipeline.RUN_STALLED_AFTER - timedelta(minutes=1)
    RebuildRun.objects.filter(pk=going.pk).update(started_at=timezone.now(), progress_at=stalled)
    fanned = RebuildRun.objects.create(model_version=1, total_chunks=1)
    pipeline.rebuild_finish(fanned)
    assert not Match.objects.active().exists()


def test_a_run_that_retires_nothing_because_another_goes_says_so(corpus, caplog):
    from apps.matching.models import RebuildRun

    going = RebuildRun.objects.create(model_version=1, total_chunks=1, in_process=True)
    fanned = RebuildRun.objects.create(model_version=1, total_chunks=1)
    with caplog.at_level("WARNING", logger="apps.matching.pipeline"):
        pipeline.rebuild_finish(fanned)
    [record] = [r for r in caplog.records if r.name == "apps.matching.pipeline"]
    assert f"Rebuild {fanned.pk} retired no match: rebuild {going.pk}" in record.getMessage()


def test_each_chunk_written_is_a_sign_of_life_of_its_run(corpus):
    from datetime import timedelta

    from django.utils import timezone

    from apps.matching.models import RebuildRun

    run = RebuildRun.objects.create(model_version=1, total_chunks=2)
    RebuildRun.objects.filter(pk=run.pk).update(progress_at=timezone.now() - timedelta(hours=1))
    assert not pipeline._runs_going().filter(pk=run.pk).exists()
    pipeline._write_chunk(run.pk, 1, [])
    run.refresh_from_db()
    assert run.done_chunks == 1 and timezone.now() - run.progress_at < timedelta(minutes=1)
    assert pipeline._runs_going().filter(pk=run.pk).exists()


def test_an_in_process_rebuild_records_no_pairs_in_the_database(corpus):
    from django.db import connection

    statements = []

    def spy(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        run = pipeline.rebuild_start(sync=True)
    assert run.in_process and run.finished_at is not None and run.matches_written > 0
    assert any("matching_match" in sql for sql in statements)
    assert not [sql for sql in statements if "INSERT INTO" in sql and "rebuildpair" in sql.lower()]


def test_a_chunk_redelivered_after_its_run_finished_does_nothing(corpus):
    from apps.matching.models import RebuildPair

    run = pipeline.rebuild_start(sync=True)
    assert run.finished_at is not None
    ids = list(Post.objects.published().filter(kind=Post.Kind.NEED).values_list("id", flat=True))
    assert pipeline.rebuild_run_chunk(run_id=run.pk, side="need", post_ids=ids) == 0
    assert not RebuildPair.objects.exists()
    run.refresh_from_db()
    assert run.done_chunks == run.total_chunks


def _fanned_run(total: int):
    """A fanned-out run as `rebuild_start` creates it, its chunks not queued: (run, need ids, offer ids)."""
    from apps.matching.models import RebuildRun

    run = RebuildRun.objects.create(model_version=TextModelVersion.objects.latest("version").version,
                                    total_chunks=total)  # fmt: skip
    needs = list(
        Post.objects.published().filter(kind=Post.Kind.NEED).order_by("id").values_list("id", flat=True)
    )
    offers = list(
        Post.objects.published().filter(kind=Post.Kind.OFFER).order_by("id").values_list("id", flat=True)
    )
    return run, needs, offers


def test_a_run_found_dead_ends_failed_and_a_late_chunk_of_it_retires_nothing(corpus):
    """A lost worker's chunk, redelivered after the run counted as dead and another rebuild forgot its pairs,
    finished it: its end retired every match those pairs held (56,061 active matches became 4,038)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.matching.models import RebuildRun

    pipeline.rebuild_start(sync=True)
    active = set(Match.objects.active().values_list("pk", flat=True))
    assert len(active) >= 6
    dead, needs, offers = _fanned_run(2)
    pipeline.rebuild_run_chunk(run_id=dead.pk, side="need", post_ids=needs)  # its first chunk, then silence
    RebuildRun.objects.filter(pk=dead.pk).update(progress_at=timezone.now() - pipeline.RUN_STALLED_AFTER
                                                 - timedelta(minutes=1))  # fmt: skip
    pipeline.rebuild_start(sync=True)  # forgets the dead run's pairs, and ends it
    dead.refresh_from_db()
    assert dead.finished_at is not None and dead.failed
    assert pipeline.rebuild_run_chunk(run_id=dead.pk, side="offer", post_ids=offers) == 0  # the late chunk
    assert set(Match.objects.active().values_list("pk", flat=True)) == active


def test_a_chunk_delivered_twice_counts_once_and_the_run_ends_with_its_last_chunk(corpus):
    from apps.matching.models import RebuildChunk, RebuildRun

    pipeline.rebuild_start(sync=True)
    active = set(Match.objects.active().values_list("pk", flat=True))
    run, needs, offers = _fanned_run(3)
    half = len(needs) // 2
    pipeline.rebuild_run_chunk(run_id=run.pk, side="need", post_ids=needs[:half])
    # The same chunk again (its worker lost after the commit, the message redelivered): nothing written.
    assert pipeline.rebuild_run_chunk(run_id=run.pk, side="need", post_ids=needs[:half]) == 0
    run.refresh_from_db()
    assert (run.done_chunks, run.finished_at) == (1, None)  # it counted 2 of 3 and could end a chunk early
    pipeline.rebuild_run_chunk(run_id=run.pk, side="need", post_ids=needs[half:])
    run.refresh_from_db()
    assert (run.done_chunks, run.finished_at) == (2, None)
    pipeline.rebuild_run_chunk(run_id=run.pk, side="offer", post_ids=offers)
    run.refresh_from_db()
    assert run.done_chunks == 3 and run.finished_at is not None and not run.failed
    assert set(Match.objects.active().values_list("pk", flat=True)) == active
    assert not RebuildChunk.objects.filter(run=run).exists()  # forgotten with the run's pairs
    assert RebuildRun.objects.get(pk=run.pk).matches_written > 0


def _lost_in_the_broker(monkeypatch):
    """Chunks queued by `rebuild_start` vanish, as in a Redis restarted without its data: returns the list of
    those lost, (run id, side, post ids)."""
    from apps.matching import tasks

    lost = []
    monkeypatch.setattr(tasks.rebuild_chunk, "delay", lambda *args: lost.append(args))
    return lost


def _silent_for(run, delta):
    from django.utils import timezone

    from apps.matching.models import RebuildRun

    RebuildRun.objects.filter(pk=run.pk).update(progress_at=timezone.now() - delta)


def test_the_sweep_queues_again_the_chunks_a_silent_rebuild_lost(corpus, monkeypatch):
    """Chunks waiting in a Redis that restarted without its data were gone: the run stalled, counted as dead
    after 30 minutes, and the matches waited for someone to run the rebuild again."""
    from datetime import timedelta

    from apps.matching import tasks
    from apps.matching.models import RebuildChunk

    pipeline.rebuild_start(sync=True)
    active = set(Match.objects.active().values_list("pk", flat=True))
    Match.objects.filter(pk__in=list(active)[:2]).update(score=0.99)  # for the rebuild to set right
    lost = _lost_in_the_broker(monkeypatch)
    run = pipeline.rebuild_start(chunk_size=2)
    assert len(lost) == run.total_chunks == 4
    assert RebuildChunk.objects.filter(run=run, written_at__isnull=True).count() == 4  # planned
    pipeline.rebuild_run_chunk(run_id=run.pk, side=lost[0][1], post_ids=lost[0][2])  # the one delivered
    monkeypatch.undo()  # the broker is back

    _silent_for(run, pipeline.CHUNKS_LOST_AFTER - timedelta(minutes=1))
    assert pipeline.rebuild_requeue_lost() == 0  # silent, but not for long enough: chunks may be running
    _silent_for(run, pipeline.CHUNKS_LOST_AFTER + timedelta(minutes=1))
    queued = _lost_in_the_broker(monkeypatch)
    tasks.sweep_pending()
    assert [(side, ids) for _run, side, ids in queued] == [(side, ids) for _run, side, ids in lost[1:]]
    tasks.sweep_pending()
    assert len(queued) == 3  # once per silence: the chunks queued are on their way
    monkeypatch.undo()
    for run_id, side, ids in queued:
        tasks.rebuild_chunk.delay(run_id, side, ids)
    run.refresh_from_db()
    assert run.finished_at is not None and not run.failed and run.done_chunks == 4
    assert set(Match.objects.active().values_list("pk", flat=True)) == active
    assert not Match.objects.filter(score=0.99).exists()


def test_chunks_queued_again_keep_their_names_when_their_first_post_is_gone(corpus, monkeypatch):
    """A chunk queued again is named by its first post, withdrawn meanwhile or not: under another name it
    would count as one more chunk, and the run could end before the first delivery of the chunk it copies."""
    from datetime import timedelta

    lost = _lost_in_the_broker(monkeypatch)
    run = pipeline.rebuild_start(chunk_size=2)
    first = Post.objects.get(pk=lost[0][2][0])
    services.post_withdraw(actor=SECRETARIAT_ACTOR, post=first)
    _silent_for(run, pipeline.CHUNKS_LOST_AFTER + timedelta(minutes=1))
    queued = _lost_in_the_broker(monkeypatch)
    assert pipeline.rebuild_requeue_lost() == 4
    assert queued[0][2][0] == first.pk
    for run_id, side, ids in queued:
        pipeline.rebuild_run_chunk(run_id=run_id, side=side, post_ids=ids)
    run.refresh_from_db()
    assert run.done_chunks == 4 and run.finished_at is not None
    # The first deliveries, late: written already, they are not ranked again.
    ranked = []
    monkeypatch.setattr(pipeline.MatchIndex, "match_rows", lambda *a, **k: ranked.append(a) or [])
    for run_id, side, ids in lost:
        assert pipeline.rebuild_run_chunk(run_id=run_id, side=side, post_ids=ids) == 0
    assert not ranked
    assert not Match.objects.active().filter(Q(need=first) | Q(offer=first)).exists()


def test_chunks_the_broker_refuses_to_queue_again_are_queued_by_the_next_sweep(corpus, monkeypatch):
    from datetime import timedelta

    from kombu.exceptions import OperationalError

    from apps.matching import tasks

    _lost_in_the_broker(monkeypatch)
    run = pipeline.rebuild_start(chunk_size=2)
    _silent_for(run, pipeline.CHUNKS_LOST_AFTER + timedelta(minutes=1))
    sent = []

    def broker_away_after_one(*args):
        if sent:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        sent.append(args)

    monkeypatch.setattr(tasks.rebuild_chunk, "delay", broker_away_after_one)
    with pytest.raises(OperationalError):
        pipeline.rebuild_requeue_lost()  # the task retries
    queued = _lost_in_the_broker(monkeypatch)
    assert pipeline.rebuild_requeue_lost() == 4  # all of them: the claim was given back
    assert len(queued) == 4


def test_a_chunk_written_already_is_not_ranked_again(corpus, monkeypatch):
    lost = _lost_in_the_broker(monkeypatch)
    run = pipeline.rebuild_start(chunk_size=2)
    _run, side, ids = lost[0]
    assert pipeline.rebuild_run_chunk(run_id=run.pk, side=side, post_ids=ids) > 0
    ranked = []
    monkeypatch.setattr(pipeline.MatchIndex, "match_rows", lambda *a, **k: ranked.append(a) or [])
    assert pipeline.rebuild_run_chunk(run_id=run.pk, side=side, post_ids=ids) == 0
    assert not ranked
    run.refresh_from_db()
    assert run.done_chunks == 1


def test_the_sweep_leaves_alone_runs_in_one_process_finished_or_showing_progress(corpus, monkeypatch):
    from datetime import timedelta

    from apps.matching.models import RebuildRun

    long_ago = pipeline.CHUNKS_LOST_AFTER + timedelta(minutes=1)
    lost = _lost_in_the_broker(monkeypatch)
    going = pipeline.rebuild_start(chunk_size=2)  # its chunks lost, but it wrote one a moment ago
    pipeline.rebuild_run_chunk(run_id=going.pk, side=lost[0][1], post_ids=lost[0][2])
    in_process = RebuildRun.objects.create(model_version=going.model_version, total_chunks=4, in_process=True)
    _silent_for(in_process, long_ago)
    dead = pipeline.rebuild_start(chunk_size=2)  # silent for longer than RUN_STALLED_AFTER: dead
    _silent_for(dead, pipeline.RUN_STALLED_AFTER + timedelta(minutes=1))
    finished = pipeline.rebuild_start(chunk_size=2)
    _silent_for(finished, long_ago)
    RebuildRun.objects.filter(pk=finished.pk).update(finished_at=going.started_at)
    assert pipeline.rebuild_requeue_lost() == 0
    _silent_for(going, long_ago)
    assert pipeline.rebuild_requeue_lost() == 3


def test_a_worker_with_other_ranking_settings_ends_the_run_as_failed(corpus, monkeypatch, settings):
    """Workers started with different MATCHING_WEIGHTS mixed two rankings in one run, without a word."""
    from django.core.management import CommandError

    from apps.matching import tasks

    pipeline.rebuild_start(sync=True)
    active = set(Match.objects.active().values_list("pk", flat=True))
    alike, other = dict(settings.MATCHING_WEIGHTS), {**settings.MATCHING_WEIGHTS, "lexical": 0.9}
    queue = _lost_in_the_broker(monkeypatch)
    run = pipeline.rebuild_start(chunk_size=2)
    run_id, side, ids = queue[0]
    assert pipeline.rebuild_run_chunk(run_id=run_id, side=side, post_ids=ids) > 0  # ranked alike: written
    settings.MATCHING_WEIGHTS = other
    assert pipeline.ranking_settings_digest() != run.settings_digest
    for run_id, side, ids in queue[1:]:
        assert pipeline.rebuild_run_chunk(run_id=run_id, side=side, post_ids=ids) == 0
    run.refresh_from_db()
    assert run.failed and run.finished_at is not None and run.done_chunks == 1
    assert "other than those of the process that started the rebuild" in run.failure
    assert set(Match.objects.active().values_list("pk", flat=True)) == active  # nothing retired

    # The command that waits for such a run says why it failed.
    settings.MATCHING_WEIGHTS = alike

    def worker_with_other_weights(run_id, side, ids):
        settings.MATCHING_WEIGHTS = other
        try:
            pipeline.rebuild_run_chunk(run_id=run_id, side=side, post_ids=ids)
        finally:
            settings.MATCHING_WEIGHTS = alike

    monkeypatch.setattr(tasks.rebuild_chunk, "delay", worker_with_other_weights)
    with pytest.raises(
        CommandError, match=r"failed and retired no match: A worker ranks with settings .* other than those"
    ):
        call_command("rebuild_matches", "--chunk-size", "2", "--timeout", "5")


@pytest.mark.parametrize("fanned", [True, False])
@pytest.mark.parametrize("when", ["ranking", "stamped before the index", "writing"])
def test_a_post_withdrawn_while_a_rebuild_ranks_does_not_get_its_matches_back(
    corpus, monkeypatch, django_capture_on_commit_callbacks, fanned, when
):
    """The rebuild's index read the post as published; the withdrawal retired its matches while the chunk
    ranked; the chunk's write brought them back, where no sweep would look again. Also when the withdrawal was
    saved (its `updated_at`) just before the index read the posts and committed after, and when it commits
    while the chunk writes (its retiring did not see the rows the chunk inserted)."""
    from datetime import timedelta

    from apps.matching import engine

    pipeline.rebuild_start(sync=True)
    offer = corpus["o-warn"]
    assert Match.objects.active().filter(offer=offer).exists()
    # Stored otherwise than the rebuild computes them, so that it writes them (it leaves rows it would write
    # alike as they are).
    Match.objects.filter(offer=offer).update(fingerprint=None, score=0.01)

    def withdraw():
        if Post.objects.filter(pk=offer.pk, status=Post.Status.WITHDRAWN).exists():
            return
        with django_capture_on_commit_callbacks(execute=True):
            services.post_withdraw(actor=SECRETARIAT_ACTOR, post=Post.objects.get(pk=offer.pk))
        assert not Match.objects.active().filter(offer=offer).exists()
        if when == "stamped before the index":
            Post.objects.filter(pk=offer.pk).update(
                updated_at=pipeline._state.index_as_of - timedelta(seconds=1)
            )

    if when == "writing":
        upsert = pipeline._upsert

        def withdrawn_meanwhile(*args, **kwargs):
            written = upsert(*args, **kwargs)
            withdraw()
            # What the chunk wrote after the withdrawal's own retiring ran (it could not see uncommitted rows).
            Match.objects.filter(offer=offer).update(is_active=True)
            return written

        monkeypatch.setattr(pipeline, "_upsert", withdrawn_meanwhile)
    else:
        ranking = engine.MatchIndex.match_rows if fanned else engine.match_all

        def withdrawn_meanwhile(*args, **kwargs):
            withdraw()
            return ranking(*args, **kwargs)

        monkeypatch.setattr(*((engine.MatchIndex, "match_rows") if fanned else (engine, "match_all")),
                            withdrawn_meanwhile)  # fmt: skip
    if fanned:
        run, needs, offers = _fanned_run(2)
        pipeline.rebuild_run_chunk(run_id=run.pk, side="need", post_ids=needs)
        pipeline.rebuild_run_chunk(run_id=run.pk, side="offer", post_ids=offers)
    else:
        pipeline.rebuild_start(sync=True)
    assert not Match.objects.active().filter(offer=offer).exists()
    assert Match.objects.active().exists()  # the others' matches written


def test_a_rebuild_keeps_the_matches_of_a_post_changed_while_it_ran(
    corpus, django_capture_on_commit_callbacks
):
    """A chunk leaves the pairs of a post changed since its index alone (the post's own task matched it): they
    count as ranked, or the run's end retired them."""
    from apps.matching import engine

    pipeline.rebuild_start(sync=True)
    need = corpus["n-flood"]
    kept = set(Match.objects.active().filter(need=need).values_list("pk", flat=True))
    assert kept
    run, needs, offers = _fanned_run(2)
    ranking = engine.MatchIndex.match_rows

    def edited_meanwhile(*args, **kwargs):
        Post.objects.filter(pk=need.pk).update(updated_at=timezone_now())  # an edit its own task matched
        return ranking(*args, **kwargs)

    from unittest import mock

    from django.utils.timezone import now as timezone_now

    with mock.patch.object(engine.MatchIndex, "match_rows", edited_meanwhile):
        pipeline.rebuild_run_chunk(run_id=run.pk, side="need", post_ids=needs)
        pipeline.rebuild_run_chunk(run_id=run.pk, side="offer", post_ids=offers)
    run.refresh_from_db()
    assert run.finished_at is not None
    assert set(Match.objects.active().filter(need=need).values_list("pk", flat=True)) == kept


def test_a_rebuild_leaves_unchanged_matches_unwritten(corpus):
    """On PostgreSQL, a rebuild that ranks a pair as it is stored does not write a new version of its row."""
    from django.db import connection

    from apps.matching.models import RebuildPair

    if connection.vendor != "postgresql":
        pytest.skip("row versions (xmin) are PostgreSQL's; on SQLite every upsert writes")
    pipeline.rebuild_start(sync=True)  # everything scored by the current model
    changed = Match.objects.active().order_by("pk").first()
    Match.objects.filter(pk=changed.pk).update(score=changed.score / 2)

    def versions():
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, xmin::text, is_active FROM matching_match")
            return {pk: (xmin, active) for pk, xmin, active in cursor.fetchall()}

    before = versions()
    run = pipeline.rebuild_start(sync=True)
    after = versions()
    rewritten = {pk for pk in before if before[pk][0] != after[pk][0]}
    assert rewritten == {changed.pk}
    assert Match.objects.get(pk=changed.pk).score == pytest.approx(changed.score, abs=1e-6)
    assert {pk for pk, (_, active) in after.items() if active} == {pk for pk, (_, a) in before.items() if a}
    assert run.matches_written > 1 and not RebuildPair.objects.exists()


def test_a_large_index_is_frozen_out_of_the_collectors_scans(corpus, monkeypatch):
    import gc

    pipeline.index_reset()
    monkeypatch.setattr(pipeline, "FREEZE_FROM", 10**9)
    gc.unfreeze()
    pipeline._current_index()
    assert gc.get_freeze_count() == 0  # a small index: nothing frozen
    pipeline.index_reset()
    monkeypatch.setattr(pipeline, "FREEZE_FROM", 1)
    try:
        index, _ = pipeline._current_index()
        assert gc.get_freeze_count() > 0
        assert all(o is not index for o in gc.get_objects())  # frozen: in no generation the collector scans
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("scan_from", [1, 10**9])
def test_cached_embeddings_are_read_alike_by_a_table_scan_or_by_lists_of_ids(corpus, monkeypatch, scan_from):
    # Most of the table is read by one scan (a rebuild), a few posts by lists of ids: the same vectors, and a
    # vector stored for an older text is not taken.
    monkeypatch.setattr(pipeline, "EMBEDDINGS_SCAN_FROM", scan_from)
    records = pipeline.post_records()
    stored = {
        post_id: np.frombuffer(bytes(vector), dtype=np.float32)
        for post_id, vector in PostEmbedding.objects.values_list("post_id", "vector")
    }
    stale = records[0]
    PostEmbedding.objects.filter(post_id=stale.id).update(text_hash="an older text")
    with monkeypatch.context() as m:
        m.setattr(
            pipeline.engine,
            "embed_posts_and_sentences",
            lambda batch: (
                np.full((len(batch), 512), 0.5, np.float32),
                [np.zeros((len(pipeline.engine.post_sentences(r)), 512), np.float16) for r in batch],
            ),
        )
        vectors = pipeline.embeddings_for(records)
    assert set(vectors) == {r.id for r in records}
    assert all(np.array_equal(vectors[r.id], stored[r.id]) for r in records[1:])
    assert np.all(vectors[stale.id] == 0.5)  # embedded again, and stored under the new text's hash
    assert PostEmbedding.objects.get(post_id=stale.id).text_hash == pipeline.engine.post_embedding_key(stale)


def test_each_posts_lexical_rows_are_kept_for_the_next_index_of_the_same_model(
    corpus, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.posts.post_data import ReferenceData, parse_post_record

    version, model = pipeline.text_model_current()
    pipeline.index_reset()
    pipeline._current_index()
    published = pipeline.post_records(Q(status=Post.Status.PUBLISHED))
    keys = dict(PostEmbedding.objects.values_list("post_id", "lexical_key"))
    assert all(keys[r.id] == pipeline.lexical_key(r, version) for r in published)

    # A new process (the reset) reads them: nothing is tokenised, and the index is the same.
    before = pipeline._state.index
    computed: list[int] = []
    original = pipeline.engine.TextModel.lexical
    monkeypatch.setattr(
        pipeline.engine.TextModel,
        "lexical",
        lambda self, texts: computed.append(len(texts)) or original(self, texts),
    )
    pipeline.index_reset()
    index, _ = pipeline._current_index()
    assert computed == []
    assert (index.needs.feats.words != before.needs.feats.words).nnz == 0
    assert (index.offers.feats.esa != before.offers.feats.esa).nnz == 0

    # An edited text has new rows; the others are read.
    need = corpus["n-solar"]
    record = {"kind": "need", "party": "NPL", "title": "Hospital cooling",
              "description": "Efficient cooling for district hospitals and vaccine cold chains.",
              "support_types": ["finance", "capacity_building"], "focus_areas": ["clean_energy"]}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        services.post_update(
            actor=SECRETARIAT_ACTOR, post=need, data=parse_post_record(record, ReferenceData())
        )
    computed.clear()
    pipeline.index_reset()
    index, _ = pipeline._current_index()
    assert computed == [1]
    edited = next(r for r in pipeline.post_records(Q(pk=need.pk)))
    row = index.needs.row_of[need.pk]
    assert (index.needs.feats.words[row] != model.lexical([pipeline.engine.post_text(edited)])[0]).nnz == 0

    # A refitted model computes every post's rows again, under its version.
    new_version, _ = pipeline.text_model_refit()
    computed.clear()
    pipeline.index_reset()
    pipeline._current_index()
    assert computed == [len(published)]
    assert set(PostEmbedding.objects.filter(post__status=Post.Status.PUBLISHED).values_list(
        "lexical_key", flat=True)) == {pipeline.lexical_key(r, new_version)
                                       for r in pipeline.post_records(Q(status=Post.Status.PUBLISHED))}  # fmt: skip


def test_lexical_rows_of_an_older_text_are_not_kept(corpus):
    # A worker whose records predate an edit must not label the new text's embedding row with the old rows.
    _version, model = pipeline.text_model_current()
    record = pipeline.post_records(Q(pk=corpus["o-grid"].pk))[0]
    old = dataclasses.replace(record, description="An older description of the offer.")
    words, esa = model.lexical([pipeline.engine.post_text(old)])
    pipeline._keep_lexical([old], {old.id: "stale"}, pipeline.engine.pack_lexical(words, esa))
    assert PostEmbedding.objects.get(post_id=record.id).lexical_key != "stale"
    pipeline._keep_lexical([record], {record.id: "current"}, pipeline.engine.pack_lexical(
        *model.lexical([pipeline.engine.post_text(record)])))  # fmt: skip
    assert PostEmbedding.objects.get(post_id=record.id).lexical_key == "current"


def test_an_edit_past_the_embedded_opening_gets_new_lexical_rows(corpus, django_capture_on_commit_callbacks):
    # The embedding covers a post's opening only (its key does not change with the rest); the lexical rows
    # cover the whole text, so they are keyed by all of it.
    from apps.posts.post_data import ReferenceData, parse_post_record

    need = corpus["n-solar"]
    opening = "Efficient cooling for district hospitals and vaccine cold chains in remote provinces. " * 10

    def edit(description: str) -> None:
        record = {"kind": "need", "party": "NPL", "title": "Hospital cooling", "description": description,
                  "support_types": ["finance", "capacity_building"], "focus_areas": ["clean_energy"]}  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            services.post_update(
                actor=SECRETARIAT_ACTOR, post=need, data=parse_post_record(record, ReferenceData())
            )

    edit(opening)
    pipeline.index_reset()
    pipeline._current_index()
    before = PostEmbedding.objects.get(post=need)
    edit(opening + "Flood warning and solar power for the clinics.")
    pipeline.index_reset()
    index, _ = pipeline._current_index()
    after = PostEmbedding.objects.get(post=need)
    assert after.text_hash == before.text_hash  # the same embedded opening
    assert after.lexical_key != before.lexical_key
    _version, model = pipeline.text_model_current()
    edited = pipeline.post_records(Q(pk=need.pk))[0]
    new_words = model.lexical([pipeline.engine.post_text(edited)])[0]
    old_words = model.lexical([pipeline.engine.post_text(dataclasses.replace(edited, description=opening))])[
        0
    ]
    assert (new_words != old_words).nnz > 0  # the edit changes the rows
    assert (index.needs.feats.words[index.needs.row_of[need.pk]] != new_words).nnz == 0


def _rows_sent(monkeypatch) -> list[int]:
    """Counts, call by call, the rows `_upsert` hands to the database (either vendor's path)."""
    sent: list[int] = []
    by_copy, bulk_create = pipeline._upsert_by_copy, Match.objects.bulk_create

    def copy_spy(values, *args, **kwargs):
        sent.append(len(values))
        return by_copy(values, *args, **kwargs)

    def bulk_spy(rows, *args, **kwargs):
        sent.append(len(rows))
        return bulk_create(rows, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_upsert_by_copy", copy_spy)
    monkeypatch.setattr(Match.objects, "bulk_create", bulk_spy)
    return sent


def test_a_rebuild_does_not_send_the_rows_it_finds_unchanged(corpus, monkeypatch):
    pipeline.rebuild_start(sync=True)  # every row written by the current model, with its fingerprint
    assert not Match.objects.active().filter(fingerprint__isnull=True).exists()
    stored = {m.pk: (m.score, m.updated_at) for m in Match.objects.active()}
    changed = Match.objects.active().order_by("pk").first()
    # Written by other means than the pipeline: the fingerprint no longer vouches for the row, and the next
    # rebuild sends it.
    Match.objects.filter(pk=changed.pk).update(score=changed.score / 2)
    assert Match.objects.get(pk=changed.pk).fingerprint is None
    sent = _rows_sent(monkeypatch)
    run = pipeline.rebuild_start(sync=True)
    assert sum(sent) == 1
    assert run.matches_written == len(stored)  # every pair is still counted as ranked
    after = {m.pk: (m.score, m.updated_at) for m in Match.objects.active()}
    assert after.keys() == stored.keys()
    assert after[changed.pk][0] == pytest.approx(changed.score, abs=1e-6)
    assert {pk for pk in stored if after[pk] != stored[pk]} == {changed.pk}
    assert Match.objects.get(pk=changed.pk).fingerprint is not None


def test_a_rebuild_sends_every_row_of_a_new_model_and_rows_that_come_back(corpus, monkeypatch):
    pipeline.rebuild_start(sync=True)
    total = Match.objects.active().count()
    retired = Match.objects.active().order_by("-pk").first()
    Match.objects.filter(pk=retired.pk).update(is_active=False)  # keeps its fingerprint, but is inactive
    sent = _rows_sent(monkeypatch)
    pipeline.rebuild_start(sync=True)
    assert sum(sent) == 1 and Match.objects.get(pk=retired.pk).is_active
    sent.clear()
    pipeline.rebuild_start(sync=True, refit=True)  # a new model version: every row holds another value
    assert sum(sent) == Match.objects.active().count() == total


def test_the_fingerprint_covers_what_the_row_stores_and_only_that():
    from apps.matching.engine import MatchResult

    result = MatchResult(1, 2, 0.5, {"lexical": 0.1, "semantic": 0.2, "structured": 0.3, "alignment": 0.4},
                         {"top_terms": ["flood"], "shared_support_types": ["finance"]})  # fmt: skip
    base = pipeline.fingerprint(result, 3)
    assert pipeline.fingerprint(dataclasses.replace(result), 3) == base
    # The same explanation with its keys in another order is the same row.
    reordered = dataclasses.replace(result, explanation=dict(reversed(result.explanation.items())))
    assert pipeline.fingerprint(reordered, 3) == base
    assert pipeline.fingerprint(dataclasses.replace(result, score=0.5 + 1e-9), 3) == base  # stored rounded
    others = [
        dataclasses.replace(result, need_id=5),
        dataclasses.replace(result, offer_id=5),
        dataclasses.replace(result, score=0.51),
        dataclasses.replace(result, components={**result.components, "lexical": 0.11}),
        dataclasses.replace(result, components={**result.components, "alignment": None}),
        dataclasses.replace(result, explanation={**result.explanation, "top_terms": ["drought"]}),
    ]
    prints = {pipeline.fingerprint(other, 3) for other in others} | {pipeline.fingerprint(result, 4)}
    assert base not in prints and len(prints) == len(others) + 1
    assert -(2**63) <= base < 2**63


def test_only_changes_of_what_a_fingerprint_covers_clear_it(corpus):
    match = Match.objects.active().order_by("pk").first()
    kept = match.fingerprint
    assert kept is not None
    Match.objects.filter(pk=match.pk).update(need_interest="interested", is_active=True)
    assert Match.objects.get(pk=match.pk).fingerprint == kept
    Match.objects.filter(pk=match.pk).update(score=match.score)  # the same value
    assert Match.objects.get(pk=match.pk).fingerprint == kept
    Match.objects.filter(pk=match.pk).update(explanation={"top_terms": []})
    assert Match.objects.get(pk=match.pk).fingerprint is None
    Match.objects.filter(pk=match.pk).update(score=0.9, fingerprint=7)  # written with its own fingerprint
    assert Match.objects.get(pk=match.pk).fingerprint == 7


def _stored_rows() -> dict[tuple[int, int], tuple]:
    return {
        (m.need_id, m.offer_id): (round(m.score, 6), m.lexical, m.semantic, m.structured, m.alignment,
                                  m.explanation, m.model_version)
        for m in Match.objects.active()
    }  # fmt: skip


def _explained_pairs(monkeypatch) -> list[int]:
    """How many pairs the engine explains, call by call."""
    from apps.matching import engine

    counts = []
    real = engine._explanations

    def spy(n_side, nrows, *args, **kwargs):
        counts.append(len(nrows))
        return real(n_side, nrows, *args, **kwargs)

    monkeypatch.setattr(engine, "_explanations", spy)
    return counts


def test_a_rebuild_explains_only_the_pairs_whose_inputs_changed(
    corpus, monkeypatch, django_capture_on_commit_callbacks
):
    """A rebuild over matches it stored itself finds every pair's fingerprint of what the row is computed from
    (the posts' texts, tags, language, amount, the model, the weights, the scores) unchanged: it neither
    explains nor writes them, and they stay exactly what a rebuild into an empty table gives."""
    from apps.posts import services
    from tests.posts.test_edit_conflicts import edited

    from .conftest import SECRETARIAT_ACTOR

    pipeline.rebuild_start(sync=True)  # every row as an in-process rebuild computes it
    first = _stored_rows()
    explained = _explained_pairs(monkeypatch)
    sent = _rows_sent(monkeypatch)
    run = pipeline.rebuild_start(sync=True)
    assert sum(explained) == 0 and sum(sent) == 0
    assert run.matches_written == len(first)  # ranked all the same
    assert _stored_rows() == first
    # A post edited (its matches rewritten by the worker, its words and tags changed): only pairs of that post
    # are explained again, and the result is the rebuild from scratch.
    post = corpus["n-flood"]
    with django_capture_on_commit_callbacks(execute=True):
        services.post_update(
            actor=SECRETARIAT_ACTOR,
            post=post,
            data=edited(post, description=post.description + " Community radio alerts too.",
                        sectors=["disaster_risk", "water", "health"]),
        )  # fmt: skip
    explained.clear()
    pipeline.rebuild_start(sync=True)
    assert 0 < sum(explained) < len(first)
    incremental_then_rebuilt = _stored_rows()
    Match.objects.all().delete()
    pipeline.rebuild_start(sync=True)
    assert _stored_rows() == incremental_then_rebuilt


def test_a_rebuild_explains_again_a_row_changed_behind_its_back(corpus, monkeypatch):
    """An operator's SQL that changes a row clears its fingerprint (the trigger): the next rebuild writes it
    again as computed, explanation included."""
    pipeline.rebuild_start(sync=True)
    first = _stored_rows()
    match = Match.objects.active().order_by("pk").first()
    Match.objects.filter(pk=match.pk).update(explanation={"top_terms": ["tampered"]})
    explained = _explained_pairs(monkeypatch)
    pipeline.rebuild_start(sync=True)
    assert sum(explained) == 1
    assert _stored_rows() == first


@pytest.mark.parametrize("writer", ["worker", "fanned-out rebuild"])
def test_rows_written_by_other_paths_are_explained_again(corpus, monkeypatch, writer):
    """A row a worker (or a fanned-out chunk) wrote holds the hash of its content, which no fingerprint of what
    a row is computed from equals: the next --sync rebuild explains it, whatever the posts did meanwhile."""
    pipeline.rebuild_start(sync=True)
    if writer == "worker":
        pipeline.matching_run_for_posts(post_ids=list(Post.objects.values_list("id", flat=True)))
    else:
        pipeline.rebuild_start(sync=False)  # tasks run in this process here, chunk by chunk
    rewritten = Match.objects.active().count()
    explained = _explained_pairs(monkeypatch)
    pipeline.rebuild_start(sync=True)
    assert sum(explained) == rewritten
    rebuilt = _stored_rows()
    Match.objects.all().delete()
    pipeline.rebuild_start(sync=True)
    assert _stored_rows() == rebuilt


def test_a_pair_becoming_strong_is_written_though_its_fingerprint_is_unchanged(corpus, settings):
    """strong_at is set when a strong pair is written, from its stored (rounded) score: a pair skipped as
    unchanged must still be written when it becomes strong, also when only its rounding makes it so."""
    pipeline.rebuild_start(sync=True)
    match = Match.objects.active().order_by("-score").first()
    Match.objects.filter(strong_at__isnull=False).update(strong_at=None)  # a threshold raised meanwhile, say
    assert Match.objects.get(pk=match.pk).fingerprint is not None  # strong_at is not what it covers
    settings.MATCHING_STRONG_SCORE = match.score  # exactly the stored score: strong as stored
    pipeline.rebuild_start(sync=True)
    assert Match.objects.get(pk=match.pk).strong_at is not None


def test_strong_as_stored_reads_the_rounded_score(settings):
    settings.MATCHING_STRONG_SCORE = 0.75
    got = pipeline._strong_as_stored(np.array([0.7499996, 0.7499994, 0.75, 0.9, 0.2]))
    assert got.tolist() == [True, False, True, True, False]


def _on_postgresql() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the plain insert of fresh rows is PostgreSQL's path (SQLite upserts every row)")


def test_a_rebuild_into_an_empty_table_inserts_its_rows_plainly(corpus, monkeypatch):
    """No pair stored: the rows are inserted without the upsert's lookup (half the database's time), and they
    are the rows the upsert would have written."""
    _on_postgresql()
    pipeline.rebuild_start(sync=True)
    upserted = _stored_rows()
    strong = set(Match.objects.active().filter(strong_at__isnull=False).values_list("need_id", "offer_id"))
    Match.objects.all().delete()
    calls = {"fresh": 0, "upsert": 0}
    fresh, upsert = pipeline._insert_fresh_by_copy, pipeline._upsert_by_copy

    def fresh_spy(values, *args):
        calls["fresh"] += len(values)
        return fresh(values, *args)

    def upsert_spy(values, *args):
        calls["upsert"] += len(values)
        return upsert(values, *args)

    monkeypatch.setattr(pipeline, "_insert_fresh_by_copy", fresh_spy)
    monkeypatch.setattr(pipeline, "_upsert_by_copy", upsert_spy)
    pipeline.rebuild_start(sync=True)
    assert calls == {"fresh": len(upserted), "upsert": 0}
    assert _stored_rows() == upserted
    assert (
        set(Match.objects.active().filter(strong_at__isnull=False).values_list("need_id", "offer_id"))
        == strong
    )
    assert not Match.objects.filter(is_active=True, changed_at__isnull=True).exists()


def test_fresh_rows_that_meet_a_stored_pair_are_upserted_instead(corpus, monkeypatch):
    """A pair retired before the rebuild (inactive, so not among the active matches it read) is stored all the
    same: the plain insert fails on it, is undone, and the chunk's fresh rows are upserted."""
    _on_postgresql()
    pipeline.rebuild_start(sync=True)
    expected = _stored_rows()
    retired = Match.objects.active().order_by("pk").first()
    Match.objects.exclude(pk=retired.pk).delete()
    Match.objects.filter(pk=retired.pk).update(is_active=False, explanation={"top_terms": ["old"]})
    pipeline.rebuild_start(sync=True)
    assert _stored_rows() == expected
    assert Match.objects.get(pk=retired.pk).is_active  # the same row, back
    assert Match.objects.count() == len(expected)


def test_a_connection_survives_an_edit_and_a_rebuild_that_no_longer_rank_it(
    corpus, django_capture_on_commit_callbacks
):
    """An offer's poster narrows its eligibility (the Party can no longer be matched) or rewrites it: the
    connection both sides made stays active and shown; a plain match of the same post is retired."""
    from django.utils import timezone

    from apps.posts import services
    from tests.posts.test_edit_conflicts import edited

    from .conftest import SECRETARIAT_ACTOR

    offer = corpus["o-warn"]
    matches = list(Match.objects.active().filter(offer=offer).order_by("pk"))
    assert len(matches) >= 2
    connected, plain = matches[0], matches[1]
    Match.objects.filter(pk=connected.pk).update(
        need_interest="interested", offer_interest="interested", connected_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.post_update(actor=SECRETARIAT_ACTOR, post=offer, data=edited(offer, eligible=["CHL"]))
    assert Match.objects.get(pk=connected.pk).is_active
    assert not Match.objects.get(pk=plain.pk).is_active
    pipeline.rebuild_start(sync=True)
    assert Match.objects.get(pk=connected.pk).is_active
    pipeline.rebuild_start(sync=False)  # the workers' chunks (in this process here) and their end
    assert Match.objects.get(pk=connected.pk).is_active


def test_a_retired_pair_is_upserted_not_first_inserted(corpus, monkeypatch):
    """The rebuild reads the retired pairs too: their rows are stored, so they go straight to the upsert (a
    plain insert of them failed, was undone, and left dead rows behind)."""
    pipeline.rebuild_start(sync=True)
    retired = Match.objects.active().order_by("pk").first()
    Match.objects.filter(pk=retired.pk).update(is_active=False)
    stored = pipeline.StoredFingerprints.read()
    fresh_result = engine_result(retired.need_id, retired.offer_id + 10_000)
    assert stored.absent([engine_result(retired.need_id, retired.offer_id), fresh_result]).tolist() == [
        False,
        True,
    ]


def engine_result(need_id: int, offer_id: int):
    from apps.matching.engine import MatchResult

    return MatchResult(need_id, offer_id, 0.5, {})


def test_a_connection_comes_back_with_its_post(corpus, django_capture_on_commit_callbacks):
    """Taken back, a post's matches leave the list, its connections too; published again, its connections come
    back with it, ranked or not (a connection is not undone)."""
    from django.utils import timezone

    from apps.posts import services

    from .conftest import SECRETARIAT_ACTOR

    need = corpus["n-flood"]
    connected = Match.objects.active().filter(need=need).order_by("pk").first()
    Match.objects.filter(pk=connected.pk).update(
        need_interest="interested", offer_interest="interested", connected_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.post_return(actor=SECRETARIAT_ACTOR, post=need, reason="Check the amounts.")
    assert not Match.objects.get(pk=connected.pk).is_active
    need.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.post_submit(actor=SECRETARIAT_ACTOR, post=need)
    need.refresh_from_db()
    Match.objects.filter(pk=connected.pk).update(score=0.01)  # as if it no longer ranked
    with django_capture_on_commit_callbacks(execute=True):
        services.post_publish(actor=SECRETARIAT_ACTOR, post=need)
    assert Match.objects.get(pk=connected.pk).is_active
