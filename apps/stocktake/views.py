"""Stocktake pages: the report (committee and secretariat), its downloads, snapshots, the public summary."""

from __future__ import annotations

import functools
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from markdown_it import MarkdownIt

from apps.accounts.actors import Actor
from apps.accounts.limits import anonymous_rate_limited, writes_rate_limited

from . import services
from .exports import export_csv, export_filename, export_json
from .forms import PeriodForm, SnapshotForm, StocktakeForm, filter_labels
from .models import Snapshot
from .selectors import (
    GAP_DAYS,
    export_diff,
    snapshot_list,
    snapshot_previous,
    stocktake_export,
    stocktake_headline,
    stocktake_waiting_needs,
    strong_score_threshold,
    without_retired_rows,
)
from .tables import FIGURE_LABELS, changes_table, format_value, named_value, report_layout

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def stocktake_reader_required(view):
    """Committee members and the secretariat; anyone else logged in gets 403, the anonymous log in first."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            # After logging in, back here; from a form's POST (a snapshot), to the report: the login's
            # redirect is a GET, which a POST-only address answers with a 405.
            return redirect_to_login(request.get_full_path() if request.method == "GET" else _report_url())
        if not Actor.for_user(request.user).can_read_stocktake:
            raise PermissionDenied(_("The stocktake report is for Committee members and the secretariat."))
        return view(request, *args, **kwargs)

    return wrapper


def _download(export: dict, fmt: str, prefix: str = "stocktake") -> HttpResponse:
    if fmt not in FORMATS:
        raise Http404
    body = export_json(export) if fmt == "json" else export_csv(export)
    response = HttpResponse(body, content_type=FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{export_filename(export, fmt, prefix)}"'
    return response


@require_GET
@stocktake_reader_required
def report(request: HttpRequest) -> HttpResponse:
    form = StocktakeForm.from_query(request.GET)
    context = _report_context(request, form)
    return render(request, "stocktake/report.html", context, status=200 if form.is_valid() else 400)


def _report_context(
    request: HttpRequest, form: StocktakeForm, snapshot_form: SnapshotForm | None = None
) -> dict:
    """The report page's context for the period and filters of `form`; `snapshot_form`: the freezing form as
    the secretariat filled it (with its errors), else a new one for this report."""
    context = {"form": form, "threshold": strong_score_threshold(), "gap_days": GAP_DAYS}
    if form.is_valid():
        period = {"date_from": form.cleaned_data["date_from"], "date_to": form.cleaned_data["date_to"]}
        filters = form.filters()
        export = stocktake_export(**period, filters=filters)
        context.update(
            export=export,
            layout=report_layout(export),
            waiting=stocktake_waiting_needs(**period, filters=filters, limit=100),
            query=_period_query(form.data),
            can_snapshot=Actor.for_user(request.user).is_secretariat,
            snapshot_form=snapshot_form or SnapshotForm(initial={**form.cleaned_data}),
            # A period not over yet: its states "at the end" are today's, and its figures will still grow.
            unfinished=form.cleaned_data["date_to"] >= timezone.localdate(),
        )
    return context


@require_GET
@stocktake_reader_required
def report_download(request: HttpRequest, fmt: str) -> HttpResponse:
    form = StocktakeForm.from_query(request.GET)
    if not form.is_valid():
        # A download link with a bad period or filter (written by hand: the page's own links are valid): the
        # report's page with each error beside its field, as the report answers it, not the form's raw errors.
        return render(request, "stocktake/report.html", _report_context(request, form), status=400)
    export = stocktake_export(
        date_from=form.cleaned_data["date_from"], date_to=form.cleaned_data["date_to"], filters=form.filters()
    )
    return _download(export, fmt)


@require_POST
@stocktake_reader_required
@writes_rate_limited
def snapshot_create(request: HttpRequest) -> HttpResponse:
    actor = Actor.for_user(request.user)
    if not actor.is_secretariat:
        raise PermissionDenied(_("Only the secretariat can freeze a stocktake report."))
    form = SnapshotForm(request.POST)
    if not form.is_valid():
        report_form = StocktakeForm(request.POST)
        if report_form.is_valid():
            # The report again, its freezing form as it was filled, each error beside its field: a redirect
            # lost the title and the note typed.
            context = _report_context(request, report_form, snapshot_form=form)
            return render(request, "stocktake/report.html", context, status=400)
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            messages.error(request, named_value(label, " ".join(errors)) if label else " ".join(errors))
        return redirect(f"{_report_url()}?{_period_query(request.POST)}")
    snapshot = services.snapshot_create(
        actor=actor,
        title=form.cleaned_data["title"],
        date_from=form.cleaned_data["date_from"],
        date_to=form.cleaned_data["date_to"],
        filters=form.filters(),
        note=form.cleaned_data["note"],
    )
    messages.success(
        request, _("Snapshot “%(title)s” saved: its figures will not change.") % {"title": snapshot}
    )
    return redirect(snapshot)


def _report_url() -> str:
    return reverse("stocktake:report")


def _period_query(data) -> str:
    keys = ("date_from", "date_to", "regional_group", "ldc", "sids", "focus_area", "support_type")
    query = data.copy()
    for key in list(query):
        if key not in keys:
            del query[key]
    return query.urlencode()


@require_GET
@stocktake_reader_required
def snapshots(request: HttpRequest) -> HttpResponse:
    # Each with its filters: two snapshots of one meeting, one for LDCs only, read alike without them.
    rows = [(snapshot, filter_labels(snapshot.filters)) for snapshot in snapshot_list()]
    return render(request, "stocktake/snapshot_list.html", {"snapshots": rows})


@require_GET
@stocktake_reader_required
def snapshot_detail(request: HttpRequest, slug: str) -> HttpResponse:
    snapshot = get_object_or_404(Snapshot.objects.select_related("created_by"), slug=slug)
    previous = snapshot_previous(snapshot)
    changes = changes_table(export_diff(previous.export, snapshot.export)) if previous else None
    # An old snapshot as one frozen now: without the rows the export no longer has.
    export = without_retired_rows(snapshot.export)
    return render(
        request,
        "stocktake/snapshot_detail.html",
        {
            "snapshot": snapshot,
            "export": export,
            "layout": report_layout(export),
            "previous": previous,
            "changes": changes,
            "filter_labels": filter_labels(snapshot.filters),
        },
    )


@require_GET
@stocktake_reader_required
def snapshot_download(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    snapshot = get_object_or_404(Snapshot, slug=slug)
    # The figures the page shows: an old snapshot without the rows the export no longer has (FIGURES.md).
    export = without_retired_rows(snapshot.export)
    if fmt == "json":
        # The file says which snapshot it is, not only its name (the CSV keeps its one table of figures).
        export = {
            "snapshot": {
                "title": snapshot.title,
                "slug": snapshot.slug,
                "created_at": snapshot.created_at.isoformat(),
                "note": snapshot.note,
                "url": f"{settings.SITE_URL}{snapshot.get_absolute_url()}",
            },
            **export,
        }
    return _download(export, fmt, prefix=snapshot.slug)


@require_GET
@anonymous_rate_limited
def summary(request: HttpRequest) -> HttpResponse:
    """The headline counts for anyone, no login: no filters, no lists, no names."""
    form = PeriodForm.from_query(request.GET)
    context: dict = {"form": form}
    if form.is_valid():
        headline = stocktake_headline(
            date_from=form.cleaned_data["date_from"], date_to=form.cleaned_data["date_to"]
        )
        context["headline"] = [
            {"figure": name, "label": FIGURE_LABELS[name], "value": format_value(name, value)}
            for name, value in headline.items()
        ]
    return render(request, "stocktake/summary.html", context, status=200 if form.is_valid() else 400)


# The figures' definitions, written once for developers and the Committee alike (apps/stocktake/FIGURES.md).
FIGURES_MD = Path(__file__).with_name("FIGURES.md")


@require_GET
def definitions(request: HttpRequest) -> HttpResponse:
    """How every figure is defined: FIGURES.md as it ships with the code, as text (public, like the summary)."""
    # "Back to the figures": the report for those who read it (the Committee, the secretariat), else the summary.
    can_read_report = request.user.is_authenticated and Actor.for_user(request.user).can_read_stocktake
    return render(request, "stocktake/definitions.html",
                  {"html": definitions_html(_("Table: scroll sideways to read it all")),
                   "can_read_report": can_read_report})  # fmt: skip


@functools.lru_cache(maxsize=8)
def definitions_html(table_label: str) -> str:
    """FIGURES.md as HTML: its headings one level down (the page has its own h1), its tables in frames that
    scroll sideways on a narrow screen (named `table_label`, in the page's language), raw HTML escaped."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(FIGURES_MD.read_text(encoding="utf-8"))
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
    frame = format_html('<div class="table-scroll" role="region" tabindex="0" aria-label="{}">', table_label)
    md.add_render_rule("table_open", lambda *args: f"{frame}<table>\n")
    md.add_render_rule("table_close", lambda *args: "</table></div>\n")
    return md.renderer.render(tokens, md.options, {})
