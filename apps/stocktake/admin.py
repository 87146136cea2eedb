"""Snapshots in the admin: listed and read by the secretariat, never changed nor deleted.

A snapshot is the record of what a Committee meeting was shown, and its permalink is cited: its title,
permalink name and note are as frozen as its figures. Snapshots are made from the report page ("Save
snapshot", `stocktake.services.snapshot_create`), not here.
"""

import json

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from apps.parties.admin import SecretariatAdminMixin

from .forms import filter_labels
from .models import Snapshot
from .tables import report_layout


@admin.register(Snapshot)
class SnapshotAdmin(SecretariatAdminMixin, admin.ModelAdmin):
    list_display = ("title", "date_from", "date_to", "created_by", "created_at", "permalink")
    list_filter = ("created_at",)
    list_select_related = ("created_by",)
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
    # Without change permission every field is shown read-only; the two displays need naming as such.
    readonly_fields = ("filters_shown", "headline", "figures_json")

    def has_add_permission(self, request, *args) -> bool:
        # A snapshot is computed from the live report (Stocktake page, "Save snapshot"), never typed in.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The record of a meeting, cited by its permalink: never edited (nor deleted: SecretariatAdminMixin).
        return False

    @admin.display(description=_("permalink"))
    def permalink(self, obj: Snapshot):
        return format_html('<a href="{}">{}</a>', obj.get_absolute_url(), obj.slug)

    def get_fields(self, request, obj=None):
        return tuple(
            "filters_shown" if name == "filters" else name for name in super().get_fields(request, obj)
        )

    @admin.display(description=_("filters"))
    def filters_shown(self, obj: Snapshot):
        """As the snapshot's page says them (Regional group: African States), not as stored."""
        return render_to_string(
            "stocktake/_filter_labels.html", {"filter_labels": filter_labels(obj.filters)}
        )

    @admin.display(description=_("headline figures"))
    def headline(self, obj: Snapshot):
        """Named and written as the report shows them, in the page's language."""
        rows = format_html_join(
            "",
            "<tr><th scope='row'>{}</th><td>{}</td></tr>",
            ((row["label"], row["value"]) for row in report_layout(obj.export)["headline"]),
        )
        return format_html("<table>{}</table>", rows)

    @admin.display(description=_("figures (JSON)"))
    def figures_json(self, obj: Snapshot):
        return format_html(
            "<pre style='max-height: 30rem; overflow: auto'>{}</pre>", json.dumps(obj.export, indent=1)
        )
