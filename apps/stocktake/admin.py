"""Snapshots in the admin: listed and annotated by the secretariat; their figures are read-only."""

import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from .models import Snapshot
from .selectors import export_headline


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ("title", "date_from", "date_to", "created_by", "created_at", "permalink")
    list_filter = ("created_at",)
    search_fields = ("title", "slug", "note")
    date_hierarchy = "created_at"
    fields = (
        "title",
        "slug",
        "note",
        "date_from",
        "date_to",
        "filters",
        "created_by",
        "created_at",
        "headline",
        "figures_json",
    )
    # The figures and what they were computed from are the record of a meeting: never edited by hand.
    readonly_fields = (
        "date_from",
        "date_to",
        "filters",
        "created_by",
        "created_at",
        "headline",
        "figures_json",
    )

    def has_add_permission(self, request) -> bool:
        # A snapshot is computed from the live report (Stocktake page, "Save snapshot"), never typed in.
        return False

    @admin.display(description=_("permalink"))
    def permalink(self, obj: Snapshot):
        return format_html('<a href="{}">{}</a>', obj.get_absolute_url(), obj.slug)

    @admin.display(description=_("headline figures"))
    def headline(self, obj: Snapshot):
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", export_headline(obj.export).items())
        return format_html("<table>{}</table>", rows)

    @admin.display(description=_("figures (JSON)"))
    def figures_json(self, obj: Snapshot):
        return format_html(
            "<pre style='max-height: 30rem; overflow: auto'>{}</pre>", json.dumps(obj.export, indent=1)
        )
