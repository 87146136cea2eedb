"""Admin views of matching: stored matches (read-only), fitted model versions and rebuild runs."""

from django.contrib import admin

from .models import Match, RebuildRun, TextModelVersion


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the worker only: the secretariat looks, never edits."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Match)
class MatchAdmin(ReadOnlyAdmin):
    list_display = [
        "need",
        "offer",
        "score",
        "is_active",
        "need_interest",
        "offer_interest",
        "connected_at",
        "created_at",
    ]
    list_filter = [
        "is_active",
        "need_interest",
        "offer_interest",
        ("connected_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["need__title", "offer__title", "need__external_id", "offer__external_id"]
    list_select_related = ["need", "offer"]
    date_hierarchy = "created_at"
    raw_id_fields = ["need", "offer"]


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
