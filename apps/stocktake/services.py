"""Writes of the stocktake: freezing a report as a snapshot (secretariat only)."""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.text import slugify
from django.utils.translation import gettext as _

from apps.accounts.actors import Actor

from .models import Snapshot
from .selectors import Filters, stocktake_export


@transaction.atomic
def snapshot_create(
    *,
    actor: Actor,
    title: str,
    date_from: dt.date,
    date_to: dt.date,
    filters: dict | None = None,
    note: str = "",
) -> Snapshot:
    """Compute the report now and keep its figures; later changes to posts and matches leave it as it is.

    Raises PermissionDenied for anyone but the secretariat, ValueError for an empty title, a bad period or
    a bad filter.
    """
    if not actor.is_secretariat:
        raise PermissionDenied(_("Only the secretariat can freeze a stocktake report."))
    title = title.strip()
    if not title:
        raise ValueError(_("Give the snapshot a title, such as the Committee meeting it is for."))
    clean_filters = Filters.from_dict(filters).as_dict()
    export = stocktake_export(date_from=date_from, date_to=date_to, filters=clean_filters)
    return Snapshot.objects.create(
        title=title,
        slug=_unique_slug(title, date_from, date_to),
        date_from=date_from,
        date_to=date_to,
        filters=clean_filters,
        export=export,
        note=note.strip(),
        created_by=actor.user,
    )


# Paths under /stocktake/snapshots/ that a slug must not take.
RESERVED_SLUGS = frozenset({"new"})


def _unique_slug(title: str, date_from: dt.date, date_to: dt.date) -> str:
    """The permalink's name, from the title's Latin letters. A title in another script has none, and gave
    `snapshot`, `snapshot-2` or the digits run together (`12202612` of "第12次会议（2026年12月）"): it is named by
    its period instead, which reads the same in every language."""
    base = slugify(title)[:100]
    if not re.search("[a-z]", base):
        base = f"snapshot-{date_from.isoformat()}-{date_to.isoformat()}"
    if base in RESERVED_SLUGS:
        base = f"{base}-snapshot"
    slug, n = base, 1
    # A few snapshots a year: probing the next free suffix is cheap and keeps permalinks readable.
    while Snapshot.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug
