"""Logging's own pieces for the settings' LOGGING (no Django import: read while settings load)."""

from __future__ import annotations

import logging


class ClientErrorsInOneLine(logging.Filter):
    """A request refused for the client's own reason (403, 404, 405: `django.request` gives the status) is one
    line: the traceback of the PermissionDenied or Http404 that refused it says nothing an operator can act on,
    and made every refusal a dozen lines. A server error (5xx) keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
