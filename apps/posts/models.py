"""Needs and offers, their taxonomy terms and the audit trail of every change.

The multi-valued facets (support types, focus areas, sectors, instruments) are many-to-many joins to small
lookup tables rather than PostgreSQL arrays: joins filter and aggregate the same way on PostgreSQL and on the
embedded SQLite default, the stocktake's GROUP BY a term is a plain join, and the lookup tables give the
database a foreign key that refuses an unknown key. `eligible` and `aims` are JSON lists because nothing
filters on them in SQL: eligibility is checked by the matching engine, which holds every offer in memory.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .folding import post_search_text
from .taxonomies import FinanceInstrument, FocusArea, Sector, SupportType

DESCRIPTION_MAX_LENGTH = 20_000
# The Article 6.8 eligibility declarations a post makes: its fields `declares_<key>` (../shared/DOMAIN.md).
DECLARATIONS = ("voluntary", "no_transfer", "ndc", "rights", "safeguards")
# Under a trillion dollars: no cooperation of the platform comes near it (the largest climate funds hold tens of
# billions), and every amount up to it is exact to the cent as a float too (SQLite's storage, JSON readers),
# which amounts of 10^13 and more were not (…99.99 read back as …99.98; SQLite's reading even failed).
MAX_AMOUNT = Decimal("999999999999.99")
AMOUNT_TOO_LARGE = _("That is more than any post could need or offer (under a trillion dollars): check the number "
                     "of zeros.")  # fmt: skip
TITLE_MAX_LENGTH = 200


class TaxonomyTerm(models.Model):
    """A key of one of the work programme's taxonomies; labels come from `taxonomies.py` so they translate."""

    choices: type[models.TextChoices]
    key = models.CharField(_("key"), max_length=40, primary_key=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        abstract = True
        ordering = ["position"]

    def __str__(self) -> str:
        return str(self.label)

    @property
    def label(self) -> str:
        try:
            return self.choices(self.key).label
        except ValueError:
            return self.key


class SupportTypeTerm(TaxonomyTerm):
    choices = SupportType

    class Meta(TaxonomyTerm.Meta):
        verbose_name = _("support type")
        verbose_name_plural = _("support types")


class FocusAreaTerm(TaxonomyTerm):
    choices = FocusArea

    class Meta(TaxonomyTerm.Meta):
        verbose_name = _("focus area")
        verbose_name_plural = _("focus areas")


class SectorTerm(TaxonomyTerm):
    choices = Sector

    class Meta(TaxonomyTerm.Meta):
        verbose_name = _("sector")
        verbose_name_plural = _("sectors")


class InstrumentTerm(TaxonomyTerm):
    choices = FinanceInstrument

    class Meta(TaxonomyTerm.Meta):
        verbose_name = _("finance instrument")
        verbose_name_plural = _("finance instruments")


# The fields `Post.search_text` is folded from: whatever writes one of them writes it too.
SEARCHED_FIELDS = frozenset({"title", "description"})


class PostQuerySet(models.QuerySet):
    """`Post.search_text` is folded in Python (`folding.py`), so the writes that bypass `Post.save` keep it
    right here: bulk_create, bulk_update and update of a title or description, wherever they are called from."""

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for post in objs:
            post.search_text = post_search_text(post.title, post.description)
        update_fields = kwargs.get("update_fields")
        if (
            update_fields
            and not SEARCHED_FIELDS.isdisjoint(update_fields)
            and "search_text" not in update_fields
        ):
            kwargs["update_fields"] = [*update_fields, "search_text"]
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        fields = list(fields)
        if not SEARCHED_FIELDS.isdisjoint(fields) and "search_text" not in fields:
            objs = list(objs)
            for post in objs:
                post.search_text = post_search_text(post.title, post.description)
            fields.append("search_text")
        # Django's bulk_update ends in update(), with search_text among the columns: written once, not folded again.
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def update(self, **kwargs):
        if SEARCHED_FIELDS.isdisjoint(kwargs) or "search_text" in kwargs:
            return super().update(**kwargs)
        # The new values may be expressions (Concat, F, Case) that only the database evaluates: the rows are read
        # back and folded. Their ids first, since the update may change which rows the filter selects.
        with transaction.atomic(using=self.db, savepoint=False):
            ids = list(self.order_by().values_list("pk", flat=True))
            rows = super().update(**kwargs)
            refold_search_text(ids, using=self.db)
        return rows

    bulk_create.alters_data = True
    bulk_update.alters_data = True
    update.alters_data = True

    def published(self) -> "PostQuerySet":
        return self.filter(status=Post.Status.PUBLISHED)

    def needs(self) -> "PostQuerySet":
        return self.filter(kind=Post.Kind.NEED)

    def offers(self) -> "PostQuerySet":
        return self.filter(kind=Post.Kind.OFFER)

    def with_related(self) -> "PostQuerySet":
        """What a list or detail shows: the poster and every facet, in a fixed number of queries. Not the
        search text, a second copy of title and description that no page shows."""
        return (
            self.select_related("party", "provider")
            .prefetch_related("support_types", "focus_areas", "sectors", "instruments")
            .defer("search_text")
        )


def refold_search_text(ids, *, using: str = "default", batch: int = 1000) -> None:
    """Fold again the search text of these posts from their stored title and description."""
    ids = list(ids)
    for start in range(0, len(ids), batch):
        posts = list(Post._base_manager.using(using).filter(pk__in=ids[start : start + batch]).only(
            "pk", "title", "description"))  # fmt: skip
        for post in posts:
            post.search_text = post_search_text(post.title, post.description)
        Post._base_manager.using(using).bulk_update(posts, ["search_text"])


class Post(models.Model):
    class Kind(models.TextChoices):
        NEED = "need", _("Need")
        OFFER = "offer", _("Offer")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Submitted")
        PUBLISHED = "published", _("Published")
        RETURNED = "returned", _("Returned")
        CLOSED = "closed", _("Closed")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    kind = models.CharField(_("kind"), max_length=5, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    party = models.ForeignKey(
        "parties.Party",
        verbose_name=_("Party"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="posts",
    )
    provider = models.ForeignKey(
        "parties.SupportProvider",
        verbose_name=_("support provider"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="posts",
    )
    external_id = models.CharField(
        _("external id"),
        max_length=100,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The post's id in the system it was imported from."),
    )
    title = models.CharField(_("title"), max_length=TITLE_MAX_LENGTH)
    description = models.TextField(_("description"), validators=[MaxLengthValidator(DESCRIPTION_MAX_LENGTH)])
    language = models.CharField(_("language"), max_length=8, default="en")
    support_types = models.ManyToManyField(
        SupportTypeTerm, verbose_name=_("types of support"), related_name="posts"
    )
    focus_areas = models.ManyToManyField(FocusAreaTerm, verbose_name=_("focus areas"), related_name="posts")
    sectors = models.ManyToManyField(SectorTerm, verbose_name=_("sectors"), related_name="posts", blank=True)
    instruments = models.ManyToManyField(
        InstrumentTerm, verbose_name=_("finance instruments"), related_name="posts", blank=True
    )
    amount_usd = models.DecimalField(
        _("amount (USD)"),
        max_digits=16,
        decimal_places=2,
        null=True,
        blank=True,
        # The admin's form enforces the ceiling that every other way in does (MAX_AMOUNT, above).
        validators=[MinValueValidator(0), MaxValueValidator(MAX_AMOUNT, message=AMOUNT_TOO_LARGE)],
    )
    eligible = models.JSONField(
        _("eligible Parties and groups"),
        default=list,
        blank=True,
        help_text=_("Offers only: ISO3 codes and group names that may receive it; empty means every Party."),
    )
    aims = models.JSONField(_("aims of Article 6.8"), default=list, blank=True)
    partner_parties = models.ManyToManyField(
        "parties.Party",
        verbose_name=_("partner Parties"),
        related_name="partner_posts",
        blank=True,
        help_text=_("Other Parties taking part with the posting Party (welcome, never required)."),
    )
    involves_iplc = models.BooleanField(
        _("Indigenous Peoples and local communities take part"), default=False
    )
    # The Article 6.8 eligibility declarations.
    declares_voluntary = models.BooleanField(
        _("identified voluntarily by the participating Parties"), default=False
    )
    declares_no_transfer = models.BooleanField(
        _("involves no transfer of mitigation outcomes"), default=False
    )
    declares_ndc = models.BooleanField(_("helps the host Party implement its NDC"), default=False)
    declares_rights = models.BooleanField(
        _(
            "respects human rights, gender equality and the rights of Indigenous Peoples and local communities"
        ),
        default=False,
    )
    declares_safeguards = models.BooleanField(
        _("minimises negative environmental, economic and social impacts"), default=False
    )
    contact_name = models.CharField(_("contact name"), max_length=200, blank=True)
    contact_email = models.EmailField(_("contact email"), blank=True)

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="posts",
    )
    return_reason = models.TextField(_("reason for return"), blank=True)
    outcome = models.TextField(_("outcome"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True, db_index=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, db_index=True)
    returned_at = models.DateTimeField(_("returned at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    # A published post stays published when its poster edits it (a typo should not take it off the platform),
    # so the secretariat reviews such changes after the fact: the time of the first one it has not reviewed yet
    # (`post_mark_reviewed`, or any step of the life cycle, clears it).
    changed_since_review_at = models.DateTimeField(_("changed since its review"), null=True, blank=True)
    # Set in the same transaction as the change that needs (re)matching; cleared by the worker. A broker
    # outage leaves it set, and the periodic sweep picks the post up.
    matching_pending = models.BooleanField(_("waiting for matching"), default=False, db_index=True)
    # Title and description folded as the search compares them (`folding.py`: case, accents, Arabic short
    # vowels...), which PostgreSQL's full-text index is built on and SQLite's LIKE reads: folded by the
    # application whenever title or description is written (`save` below, `PostQuerySet`), never by hand.
    # The database's default keeps a row written by code older than this field (a web process not yet
    # restarted after the migration) insertable; the search finds it once it is saved again.
    # On PostgreSQL, two indexes and a generated column the model does not name depend on it: `search_vector`, its
    # English full-text vector (migration 0013), and a trigram index (0012). A change of its type, or its removal,
    # must drop `search_vector` first.
    search_text = models.TextField(_("search text"), default="", db_default="", editable=False)

    objects = PostQuerySet.as_manager()

    class Meta:
        ordering = ["-published_at", "-created_at", "-id"]
        verbose_name = _("post")
        verbose_name_plural = _("posts")
        indexes = [
            models.Index(fields=["status", "kind", "-published_at"], name="post_status_kind_pub"),
            # The API's keyset pagination and incremental sync walk (updated_at, id) and (created_at, id).
            models.Index(fields=["updated_at", "id"], name="post_updated_id"),
            models.Index(fields=["created_at", "id"], name="post_created_id"),
            # The secretariat's list of published posts changed since their review: a few posts, never all.
            models.Index(
                fields=["changed_since_review_at"],
                condition=Q(changed_since_review_at__isnull=False),
                name="post_changed_since_review",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(party__isnull=False) & Q(provider__isnull=True))
                | (Q(party__isnull=True) & Q(provider__isnull=False)),
                name="post_has_party_or_provider",
            ),
            models.CheckConstraint(
                condition=Q(provider__isnull=True) | Q(kind="offer"), name="provider_posts_offers_only"
            ),
            models.CheckConstraint(
                condition=Q(amount_usd__isnull=True) | Q(amount_usd__gte=0), name="amount_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            written = SEARCHED_FIELDS.intersection(update_fields)
        elif self._state.adding:
            written = SEARCHED_FIELDS
        else:  # Django writes only the fields that were loaded (`only`, `defer`)
            written = SEARCHED_FIELDS - self.get_deferred_fields()
        if written:
            self.search_text = post_search_text(self.title, self.description)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "search_text"}
        super().save(*args, **kwargs)

    @property
    def poster(self):
        return self.party or self.provider

    @property
    def poster_name(self) -> str:
        return self.party.local_name if self.party_id else self.provider.name

    @property
    def export_id(self) -> str:
        """The id used in exports: the external id, or `post-<id>` for posts made in the platform."""
        return self.external_id or f"post-{self.pk}"

    @property
    def missing_declarations(self) -> list[str]:
        """The Article 6.8 declarations its poster has not made, as their labels say them, in the model's order."""
        return [
            self._meta.get_field(f"declares_{key}").verbose_name
            for key in DECLARATIONS
            if not getattr(self, f"declares_{key}")
        ]

    @property
    def is_editable(self) -> bool:
        return self.status in (self.Status.DRAFT, self.Status.RETURNED)


class PostEvent(models.Model):
    """One change to a post: who, when, which transition, which fields. Written only by posts.services."""

    class Action(models.TextChoices):
        CREATED = "created", _("Created")
        UPDATED = "updated", _("Updated")
        SUBMITTED = "submitted", _("Submitted")
        RECALLED = "recalled", _("Taken back from review")
        PUBLISHED = "published", _("Published")
        RETURNED = "returned", _("Returned")
        CLOSED = "closed", _("Closed")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        IMPORTED = "imported", _("Imported")
        REVIEWED = "reviewed", _("Changes reviewed")

    post = models.ForeignKey(Post, verbose_name=_("post"), on_delete=models.CASCADE, related_name="events")
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    from_status = models.CharField(_("from status"), max_length=10, choices=Post.Status.choices, blank=True)
    to_status = models.CharField(_("to status"), max_length=10, choices=Post.Status.choices, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="post_events",
    )
    # Who acted, kept as text too so the trail survives a deleted user or a revoked API token.
    actor_label = models.CharField(_("actor"), max_length=200)
    # The role the actor acted in (a token acts as its Party's or provider's, though `actor` is the secretariat
    # user who issued it): the secretariat's own edits of a published post leave nothing to review. Blank on
    # entries written before it was recorded.
    actor_role = models.CharField(_("acting as"), max_length=20, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    note = models.TextField(_("note"), blank=True)
    # "time", not "at": the admin's date filter is titled "By <name>" ("By at" read as a typo).
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("post history entry")
        verbose_name_plural = _("post history")

    def __str__(self) -> str:
        return gettext("%(action)s by %(actor)s") % {
            "action": self.get_action_display(),
            "actor": self.actor_label,
        }
