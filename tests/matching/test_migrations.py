"""Data steps of the matching app's migrations, run on the database as an upgrade would."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_chunks_of_a_run_going_at_the_upgrade_stay_written():
    """Before chunks were planned, a chunk's row was made by its commit: a row without `written_at` would read
    as planned, and a second delivery of that chunk would count twice."""
    before, after = [("matching", "0016_rebuildchunk")], [("matching", "0017_rebuild_chunks_planned")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        run = old.get_model("matching", "RebuildRun").objects.create(model_version=1, total_chunks=2)
        old.get_model("matching", "RebuildChunk").objects.create(run=run, side="need", first_post_id=7)
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        chunk = new.get_model("matching", "RebuildChunk").objects.get()
        assert chunk.written_at is not None and chunk.last_post_id is None
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_connections_made_before_the_upgrade_get_their_posters():
    """0018 records each side's poster when a match connects; the connections made before take their posts'
    posters of the day, and the other matches none."""
    # The posts' history as it is now (its entries record their actor's role): posts 0013, which 0018 follows.
    before = [("matching", "0017_rebuild_chunks_planned"), ("posts", "0013_search_vector_column")]
    after = [("matching", "0018_connection_posters")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        Post, Match = old.get_model("posts", "Post"), old.get_model("matching", "Match")
        party = old.get_model("parties", "Party").objects.get
        provider = old.get_model("parties", "SupportProvider").objects.create(
            short_name="FUNDX", name="Fund X"
        )

        def post(kind, **poster):
            return Post.objects.create(kind=kind, status="published", title=kind, description="-", **poster)

        need = post("need", party=party(iso3="KEN"))
        connected = Match.objects.create(
            need=need, offer=post("offer", provider=provider), score=0.5, connected_at="2026-01-02T00:00Z"
        )
        plain = Match.objects.create(need=need, offer=post("offer", party=party(iso3="JPN")), score=0.4)
        # Connected with Japan's offer; the secretariat moved the offer to Brazil since, then Brazil's to Chile.
        moved = Match.objects.create(
            need=need,
            offer=post("offer", party=party(iso3="CHL")),
            score=0.5,
            connected_at="2026-03-01T00:00Z",
        )
        PostEvent = old.get_model("posts", "PostEvent")
        jpn, bra, chl = (party(iso3=code).pk for code in ("JPN", "BRA", "CHL"))
        for at, changes in (
            ("2026-02-01T00:00Z", {"party_id": [7, jpn]}),  # before the connection: not the one to undo
            ("2026-04-01T00:00Z", {"party_id": [jpn, bra], "title": ["a", "b"]}),
            ("2026-05-01T00:00Z", {"party_id": [bra, chl]}),
        ):
            event = PostEvent.objects.create(
                post_id=moved.offer_id,
                action="updated",
                changes=changes,
                actor_label="secretariat",
                actor_role="",
            )
            PostEvent.objects.filter(pk=event.pk).update(created_at=at)
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        Match = executor.loader.project_state(after).apps.get_model("matching", "Match")
        assert Match.objects.filter(pk=moved.pk).values_list(
            "need_party__iso3", "offer_party__iso3"
        ).get() == (
            "KEN",
            "JPN",
        )
        values = ("need_party__iso3", "need_provider_id", "offer_party_id", "offer_provider__short_name")
        assert Match.objects.filter(pk=connected.pk).values_list(*values).get() == (
            "KEN",
            None,
            None,
            "FUNDX",
        )
        assert Match.objects.filter(pk=plain.pk).values_list(*values).get() == (None, None, None, None)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_connections_ended_before_the_upgrade_are_not_announced_after_it():
    """0019: the sweep tells the other side of a connection whose post was withdrawn or closed; those that ended
    before the upgrade are marked as told, or the first sweep would announce them, long after the fact."""
    before, after = [("matching", "0018_connection_posters")], [("matching", "0019_connection_end_notice")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        Post, Match = old.get_model("posts", "Post"), old.get_model("matching", "Match")
        kenya = old.get_model("parties", "Party").objects.get(iso3="KEN")

        def post(kind, status):
            return Post.objects.create(kind=kind, status=status, title=kind, description="-", party=kenya)

        need = post("need", "published")
        ended = Match.objects.create(need=need, offer=post("offer", "withdrawn"), score=0.5,
                                     connected_at="2026-01-02T00:00Z")  # fmt: skip
        open_one = Match.objects.create(need=need, offer=post("offer", "published"), score=0.5,
                                        connected_at="2026-01-02T00:00Z")  # fmt: skip
        not_connected = Match.objects.create(need=need, offer=post("offer", "closed"), score=0.5)
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        Match = executor.loader.project_state(after).apps.get_model("matching", "Match")
        told = dict(Match.objects.values_list("pk", "end_notified_at"))
        assert told[ended.pk] is not None
        assert told[open_one.pk] is None and told[not_connected.pk] is None
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
