"""Admin views of matching: stored matches (read-only), fitted model versions and rebuild runs."""

from django.conf import settings
from django.contrib import admin
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.parties.admin import PresenceFilter, SecretariatAdminMixin
from apps.parties.models import NAME_FIELDS as PARTY_NAME_FIELDS

from .models import Match, RebuildRun, TextModelVersion


class ReadOnlyAdmin(SecretariatAdminMixin, admin.ModelAdmin):
    """Written by the worker only: the secretariat looks, never edits. By role, as every page of the admin:
    Django's model permissions are not read (a staff user given "view match" in a shell saw every match)."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ConnectedFilter(PresenceFilter):
    title = _("connected")
    parameter_name = "connected"
    lookup = "connected_at"


@admin.register(Match)
class MatchAdmin(ReadOnlyAdmin):
    list_display = [
        "need",
        "need_poster",
        "offer",
        "offer_poster",
        "score_shown",
        "is_active",
        "need_interest",
        "offer_interest",
        "connected_at",
        "created_at",
    ]
    list_filter = ["is_active", "need_interest", "offer_interest", ConnectedFilter]
    search_fields = [
        "need__title",
        "offer__title",
        "need__external_id",
        "offer__external_id",
        *(f"{side}__party__{field}" for side in ("need", "offer") for field in PARTY_NAME_FIELDS),
        "=need__party__iso3",
        "=offer__party__iso3",
        "offer__provider__short_name",
    ]
    list_select_related = ["need__party", "need__provider", "offer__party", "offer__provider"]
    date_hierarchy = "created_at"
    raw_id_fields = ["need", "offer"]
    # The page of one match, as a secretariat officer reads it: the two posts (linked), the score and its parts
    # as percentages, the explanation in words, the answers.
    fields = ["need_link", "offer_link", "score_shown", "parts", "explanation_shown", "is_active", "need_interest",
              "need_interest_at", "offer_interest", "offer_interest_at", "connected_at", "created_at",
              "changed_at", "model_version"]  # fmt: skip
    readonly_fields = fields

    def get_list_filter(self, request):
        return [StrongFilter, *self.list_filter]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(*self.list_select_related)

    @admin.display(description=_("need"))
    def need_link(self, match):
        return _post_link(match.need)

    @admin.display(description=_("offer"))
    def offer_link(self, match):
        return _post_link(match.offer)

    @admin.display(description=_("parts of the score"))
    def parts(self, match):
        rows = [(_("similar wording"), match.lexical), (_("similar meaning"), match.semantic),
                (_("shared categories"), match.structured)]  # fmt: skip
        if match.alignment is not None:
            rows.append((_("parts of the need answered"), match.alignment))
        # As the page's language writes a colon (French: a no-break space before it).
        return mark_safe(
            "<br>".join(
                escape(gettext("%(label)s: %(value)s") % {"label": label, "value": _percent(v)})
                for label, v in rows
            )
        )

    @admin.display(description=_("explanation"))
    def explanation_shown(self, match):
        from apps.posts.templatetags.post_tags import before_value, language_name_in_sentence

        from .templatetags.matching_tags import as_written, term_labels

        e = match.explanation or {}
        lines = []
        for key, label in (
            ("shared_support_types", _("Shared types of support:")),
            ("shared_focus_areas", _("Shared focus areas:")),
            ("shared_sectors", _("Shared sectors:")),
        ):
            if e.get(key):
                lines.append((label, term_labels(e[key])))
        if e.get("top_terms"):
            lines.append((_("Words in common:"), ", ".join(as_written(e["top_terms"], match.need))))
        if e.get("related_terms"):
            lines.append((_("Related words, through similar posts in %(lang)s:") % {
                "lang": language_name_in_sentence(e.get("terms_language", ""))}, ", ".join(e["related_terms"])))  # fmt: skip
        if e.get("cross_lingual"):
            lines.append((_("Languages:"), f"{language_name_in_sentence(e.get('need_language', ''))} ↔ "
                                           f"{language_name_in_sentence(e.get('offer_language', ''))}"))  # fmt: skip
        if not lines:
            return "—"
        # The space after a label is the filter's: none after a full-width colon (Chinese 共同的部门：水).
        return format_html_join(
            mark_safe("<br>"), "{}{}", ((before_value(label), value) for label, value in lines)
        )

    @admin.display(
        description=_("need's poster"), ordering=Coalesce("need__party__name", "need__provider__name")
    )
    def need_poster(self, match):
        return match.need.poster_name

    @admin.display(
        description=_("offer's poster"), ordering=Coalesce("offer__party__name", "offer__provider__name")
    )
    def offer_poster(self, match):
        return match.offer.poster_name

    @admin.display(description=_("score"), ordering="score")
    def score_shown(self, match):
        return _percent(match.score)


def _percent(value: float | None) -> str:
    from .templatetags.matching_tags import percent

    return "—" if value is None else percent(value)


def _post_link(post) -> str:
    url = reverse("admin:posts_post_change", args=[post.pk])
    return format_html('<a href="{}" lang="{}" dir="auto">{}</a> ({}, {})', url, post.language, post.title,
                       post.get_kind_display(), post.poster_name)  # fmt: skip


class StrongFilter(admin.SimpleListFilter):
    """Strong matches: the ones the daily digest announces (`MATCHING_STRONG_SCORE`)."""

    title = _("strength")
    parameter_name = "strong"

    def lookups(self, request, model_admin):
        return [("yes", _("strong (announced in digests)")), ("no", _("not strong"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(score__gte=settings.MATCHING_STRONG_SCORE)
        if self.value() == "no":
            return queryset.filter(score__lt=settings.MATCHING_STRONG_SCORE)
        return queryset


@admin.register(TextModelVersion)
class TextModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["version", "corpus_size", "created_at"]
    # The payload can be tens of megabytes: never load it for a page.
    exclude = ["payload"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("payload")


@admin.register(RebuildRun)
class RebuildRunAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "status",
        "model_version",
        "done_chunks",
        "total_chunks",
        "matches_written",
        "in_process",
        "started_at",
        "finished_at",
    ]
    list_filter = ["failed", "in_process"]
    fields = ["status", "failure", "model_version", "in_process", "total_chunks", "done_chunks", "matches_written",
              "started_at", "progress_at", "requeued_at", "finished_at", "settings_digest"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description=_("status"))
    def status(self, run: RebuildRun) -> str:
        """Finished, failed, going, or stalled: a run that has shown no progress for `RUN_STALLED_AFTER` died
        (a killed worker or command) and holds nothing back."""
        from .pipeline import RUN_STALLED_AFTER

        if run.failed:
            return gettext("failed")
        if run.finished_at is not None:
            return gettext("finished")
        if run.progress_at < timezone.now() - RUN_STALLED_AFTER:
            return gettext("stalled (no progress since %(time)s)") % {
                "time": date_format(timezone.localtime(run.progress_at), "DATETIME_FORMAT")
            }
        return gettext("going")
