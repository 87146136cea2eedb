"""Stored matches, the interest each side shows in them, and the fitted text model every worker loads."""

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _


class Interest(models.TextChoices):
    NONE = "", _("No answer yet")
    INTERESTED = "interested", _("Interested")
    DISMISSED = "dismissed", _("Dismissed")


class MatchQuerySet(models.QuerySet):
    def active(self) -> "MatchQuerySet":
        return self.filter(is_active=True)

    def connections(self) -> "MatchQuerySet":
        return self.filter(connected_at__isnull=False)


def _poster_when_connected(model: str, label) -> models.ForeignKey:
    """A side's Party or provider as it was when the match connected (`Match.need_party` and the three others):
    null before, kept whatever becomes of the post, never deleted under a connection."""
    return models.ForeignKey(
        model,
        verbose_name=label,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )


class Match(models.Model):
    """One (need, offer) pair the engine ranked in either side's top k, upserted by the worker.

    Rows are never deleted: a pair that drops out of the top k, or whose post is closed or withdrawn, is
    made inactive and disappears from every view, while the stocktake can still count what was generated.
    """

    # No index of its own: the (need, offer) constraint and the indexes below all start with need_id.
    need = models.ForeignKey(
        "posts.Post",
        verbose_name=_("need"),
        on_delete=models.CASCADE,
        related_name="matches_as_need",
        db_index=False,
    )
    # Nor this one: `match_offer_active_score` starts with offer_id.
    offer = models.ForeignKey(
        "posts.Post",
        verbose_name=_("offer"),
        on_delete=models.CASCADE,
        related_name="matches_as_offer",
        db_index=False,
    )
    score = models.FloatField(_("score"))
    lexical = models.FloatField(_("lexical similarity"), default=0)
    semantic = models.FloatField(_("semantic similarity"), default=0)
    structured = models.FloatField(_("structured fit"), default=0)
    # Share of the need's sentences that some sentence of the offer answers (the rerank); null: not reranked.
    alignment = models.FloatField(_("sentence alignment"), null=True, blank=True)
    explanation = models.JSONField(_("explanation"), default=dict)
    # Not indexed: every read of matches filters by a post first (the indexes below), and every index costs each
    # of the millions of rows a rebuild writes (at 100k posts, four fewer full indexes: 37 s -> 27 s of insert).
    is_active = models.BooleanField(pgettext_lazy("match", "active"), default=True)
    model_version = models.PositiveIntegerField(_("model version"), default=0)
    # A hash of what the row holds (scores, explanation, model version; `pipeline.fingerprint`), written with it,
    # or, for a row an in-process rebuild wrote, of what it is computed from (`engine._pair_fingerprints`): such
    # a rebuild reads them first and neither explains nor sends the database the rows it finds unchanged.
    # Null: written before it existed, or changed since by anything but the pipeline's upsert (a trigger clears
    # it, migration 0012): the next rebuild sends the row.
    fingerprint = models.BigIntegerField(_("fingerprint"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("found at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # When the score last moved by MATERIAL_CHANGE or more: a task rewrites the rows of the posts it matches
    # (updated_at), but a focal point's "updated" mark must mean that the match itself changed.
    changed_at = models.DateTimeField(_("score changed at"), null=True, blank=True)
    # When the pair first scored at or above the strong-match threshold.
    strong_at = models.DateTimeField(_("first strong at"), null=True, blank=True)
    need_interest = models.CharField(
        _("need side"), max_length=10, choices=Interest.choices, default=Interest.NONE, blank=True
    )
    need_interest_at = models.DateTimeField(_("need side answered at"), null=True, blank=True)
    offer_interest = models.CharField(
        _("offer side"), max_length=10, choices=Interest.choices, default=Interest.NONE, blank=True
    )
    offer_interest_at = models.DateTimeField(_("offer side answered at"), null=True, blank=True)
    connected_at = models.DateTimeField(_("connected at"), null=True, blank=True)
    # Who made the connection, each side's Party or provider when it was made: the secretariat may later move a post
    # to another, which must not hand the connection (and the contacts it gave) to a poster that never answered.
    # Null until connected. Not indexed: connections are read through `match_connected_at`.
    need_party = _poster_when_connected("parties.Party", _("need side's Party when connected"))
    need_provider = _poster_when_connected(
        "parties.SupportProvider", _("need side's provider when connected")
    )
    offer_party = _poster_when_connected("parties.Party", _("offer side's Party when connected"))
    offer_provider = _poster_when_connected(
        "parties.SupportProvider", _("offer side's provider when connected")
    )
    # When both sides were sent each other's contacts. Null on a connection: the emails are still to send (a
    # task sends them after the commit; the periodic sweep sends those a mail server or broker outage held up).
    connection_notified_at = models.DateTimeField(_("contacts emailed at"), null=True, blank=True)
    # When the side that stays was told that the other withdrew or closed its post. Null on a connection whose two
    # posts are still open, or whose news is still to send (a task after the commit; the sweep after an outage).
    end_notified_at = models.DateTimeField(_("end of connection emailed at"), null=True, blank=True)

    objects = MatchQuerySet.as_manager()

    class Meta:
        verbose_name = _("match")
        verbose_name_plural = _("matches")
        ordering = ["-score", "id"]
        constraints = [
            models.UniqueConstraint(fields=["need", "offer"], name="one_match_per_pair"),
            models.CheckConstraint(condition=~Q(need=F("offer")), name="match_two_posts"),
            models.CheckConstraint(
                condition=Q(score__gte=0) & Q(score__lte=1), name="match_score_in_unit_range"
            ),
        ]
        indexes = [
            models.Index(fields=["need", "is_active", "-score"], name="match_need_active_score"),
            # Partial: most matches are never strong nor connected, and an index of them would hold their nulls.
            models.Index(fields=["strong_at"], condition=Q(strong_at__isnull=False), name="match_strong_at"),
            models.Index(
                fields=["connected_at"], condition=Q(connected_at__isnull=False), name="match_connected_at"
            ),
            # The stocktake counts the matches generated in a period for the needs under its filters; in place
            # of the plain need_id index, so a match insert maintains as many indexes as before.
            models.Index(fields=["need", "created_at"], name="match_need_created"),
            models.Index(fields=["offer", "is_active", "-score"], name="match_offer_active_score"),
            # The stocktake reads each need's first strong match, connection and offer-side answer from these
            # alone (100k posts / 1M matches: the whole report went from 2.4 s to 1.6 s).
            models.Index(
                fields=["need", "strong_at"], condition=Q(strong_at__isnull=False), name="match_need_strong"
            ),
            models.Index(
                fields=["need", "connected_at"],
                condition=Q(connected_at__isnull=False),
                name="match_need_connected",
            ),
            models.Index(
                fields=["need", "offer_interest_at"],
                condition=Q(offer_interest="interested"),
                name="match_need_answer",
            ),
            # Counting need-side interests in a period without reading every match (152 ms -> 5 ms at 1M).
            models.Index(
                fields=["need_interest_at"],
                condition=Q(need_interest="interested"),
                name="match_need_interest",
            ),
        ]

    def __str__(self) -> str:
        # The score as the page's language writes a percentage (80 % in Spanish and French: the admin's titles).
        score = gettext("%(value)s%%") % {"value": round(100 * self.score)}
        return f"{self.need.title[:60]} ↔ {self.offer.title[:60]} ({score})"


class TextModelVersion(models.Model):
    """A fitted text model (vocabulary, idf, weights), stored in the database so every worker can load it."""

    version = models.PositiveIntegerField(_("version"), unique=True)
    corpus_size = models.PositiveIntegerField(_("posts in the corpus"))
    payload = models.BinaryField(_("fitted model"))
    created_at = models.DateTimeField(_("fitted at"), auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        verbose_name = _("fitted text model")
        verbose_name_plural = _("fitted text models")

    def __str__(self) -> str:
        return f"v{self.version} ({self.corpus_size} posts)"


class PostEmbedding(models.Model):
    """A post's embeddings, cached by a hash of its text so a refit or a rebuild re-embeds nothing."""

    post = models.OneToOneField(
        "posts.Post", on_delete=models.CASCADE, related_name="embedding", primary_key=True
    )
    text_hash = models.CharField(max_length=64)
    vector = models.BinaryField()
    # The rerank's vectors of the post's sentences (n x 512 float16), kept under their own hash: embedded with
    # the post (or when it is first shortlisted, if its sentences changed beyond its embedded opening), and a
    # rebuild must not embed them again.
    sentences_hash = models.CharField(max_length=64, blank=True, default="")
    sentences = models.BinaryField(null=True, blank=True)
    # The post's word TF-IDF and ESA rows (`engine.pack_lexical`) under the text model version that computed
    # them and the text's hash (`lexical_key`): an index build of the same model reads them instead of
    # tokenising every post again.
    lexical_key = models.CharField(max_length=80, blank=True, default="")
    lexical = models.BinaryField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("post embedding")
        verbose_name_plural = _("post embeddings")

    def __str__(self) -> str:
        return f"embedding of post {self.post_id}"


class RebuildRun(models.Model):
    """A full rebuild fanned out in chunks; the worker that finishes the last chunk retires stale matches."""

    model_version = models.PositiveIntegerField(_("model version"))
    total_chunks = models.PositiveIntegerField(_("chunks"), default=0)
    done_chunks = models.PositiveIntegerField(_("chunks done"), default=0)
    matches_written = models.PositiveIntegerField(_("matches written"), default=0)
    # In one process (`rebuild_matches --sync`): it keeps the pairs it ranks in memory, not as `RebuildPair`s.
    in_process = models.BooleanField(_("in process"), default=False)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    # When it last showed life: its start, then each chunk written. A run unfinished whose last sign is older
    # than `pipeline.RUN_STALLED_AFTER` died (a killed worker or command) and holds nothing back.
    progress_at = models.DateTimeField(_("last progress"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Ended by an error (or a stop) before retiring anything: finished, but not a rebuild to rely on.
    failed = models.BooleanField(_("failed"), default=False)
    # Why it failed, for the command that waits for it and the secretariat's admin.
    failure = models.TextField(_("why it failed"), blank=True)
    # A digest of the settings that rank (`pipeline.ranking_settings_digest`): a worker started with others
    # would mix two rankings into one run, which it then ends as failed. Blank: not checked.
    settings_digest = models.CharField(_("ranking settings"), max_length=64, blank=True)
    # When the sweep last queued again the chunks a fanned-out run had not written (they were lost in the
    # broker, e.g. a Redis restarted without its data): once per silence.
    requeued_at = models.DateTimeField(_("chunks queued again at"), null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("rebuild")
        verbose_name_plural = _("rebuilds")

    def __str__(self) -> str:
        return f"rebuild {self.pk} ({self.done_chunks}/{self.total_chunks})"


class RebuildChunk(models.Model):
    """A chunk of a fanned-out rebuild, planned when the run starts and marked written by the chunk's commit: a
    chunk delivered twice (a worker lost after its commit, before its acknowledgement) finds it written and
    writes nothing, so that the run counts each chunk once and does not end (retiring what its last chunks would
    rank) before every chunk is in; the sweep queues again the chunks of a silent run not written (lost in the
    broker). A chunk is named by its side and its first post (a side's chunks are disjoint runs of ids)."""

    pk = models.CompositePrimaryKey("run_id", "side", "first_post_id")
    run = models.ForeignKey(RebuildRun, on_delete=models.CASCADE, db_index=False)
    side = models.CharField(max_length=5)
    first_post_id = models.BigIntegerField()
    # The chunk's last post: queued again, it takes the posts of its side published from first to last.
    last_post_id = models.BigIntegerField(null=True)
    written_at = models.DateTimeField(null=True)

    class Meta:
        verbose_name = _("chunk of a rebuild")
        verbose_name_plural = _("chunks of a rebuild")

    def __str__(self) -> str:
        return f"rebuild {self.run_id}: {self.side}s {self.first_post_id} to {self.last_post_id}"


class RebuildPair(models.Model):
    """A pair a rebuild ranked: when the rebuild finishes, it retires the active matches it did not rank, then
    forgets its pairs. A rebuild writes a match only where it changed (rewriting 1.6M unchanged rows took a 100k
    rebuild's database 73 s, skipping them 10 s), so `updated_at` no longer tells which pairs it saw.

    No foreign keys and no index beyond the key: a rebuild inserts a row per pair it ranks."""

    pk = models.CompositePrimaryKey("run_id", "need_id", "offer_id")
    run = models.ForeignKey(RebuildRun, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    need_id = models.BigIntegerField()
    offer_id = models.BigIntegerField()

    class Meta:
        verbose_name = _("pair ranked by a rebuild")
        verbose_name_plural = _("pairs ranked by a rebuild")

    def __str__(self) -> str:
        return f"rebuild {self.run_id}: {self.need_id} ↔ {self.offer_id}"
