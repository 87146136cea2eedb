"""The export contract written out: JSON as returned by `stocktake_export`, CSV as figure, dimensions, value."""

from __future__ import annotations

import csv
import io
import json

from .selectors import DIMENSIONS


def export_json(export: dict) -> str:
    return json.dumps(export, indent=2, ensure_ascii=False) + "\n"


def export_csv(export: dict) -> str:
    """Columns `figure`, one per dimension (empty when the row has none), `value` (empty when undefined)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["figure", *DIMENSIONS, "value"])
    for row in export["figures"]:
        value = row["value"]
        writer.writerow(
            [
                row["figure"],
                *(row["dimension"].get(d, "") for d in DIMENSIONS),
                "" if value is None else value,
            ]
        )
    return out.getvalue()


def export_filename(export: dict, extension: str, prefix: str = "stocktake") -> str:
    """stocktake_<from>_<to>[_<filter>-<value>...].<ext>: a filtered download is told apart from the whole."""
    period = export["period"]
    filters = "".join(
        f"_{key}-{str(value).lower().replace(' ', '-')}"
        for key, value in (export.get("filters") or {}).items()
    )
    return f"{prefix}_{period['from']}_{period['to']}{filters}.{extension}"
