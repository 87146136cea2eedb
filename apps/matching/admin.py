"""Admin views of matching: stored matches (read-only), fitted model versions and rebuild runs."""

from django.contrib import admin
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from apps.parties.admin import PresenceFilter, is_secretariat_staff

from .models import Match, RebuildRun, TextModelVersion


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the worker only: the secretariat looks, never edits."""

    def has_module_permission(self, request):
        return is_secretariat_staff(request) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_secretariat_staff(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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
        "need__party__name",
        "offer__party__name",
        "=need__party__iso3",
        "=offer__party__iso3",
        "offer__provider__short_name",
    ]
    list_select_related = ["need__party", "need__provider", "offer__party", "offer__provider"]
    date_hierarchy = "created_at"
    raw_id_fields = ["need", "offer"]

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
        return f"{match.score:.2f}"


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
        "model_version",
        "done_chunks",
        "total_chunks",
        "matches_written",
        "in_process",
        "started_at",
        "finished_at",
    ]
