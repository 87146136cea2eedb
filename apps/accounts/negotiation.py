"""The API's content negotiation (a module of its own: DRF's APIView reads the setting that names it when
rest_framework.views is first imported, which the API modules import)."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class LenientFormatNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, except that a `?format=` no renderer of the endpoint speaks is ignored rather than a
    404 "Not found." (every endpoint but the schema speaks JSON only)."""

    def filter_renderers(self, renderers, format):
        matching = [renderer for renderer in renderers if renderer.format == format]
        return matching or renderers
