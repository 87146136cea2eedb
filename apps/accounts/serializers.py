"""The API's wire format: the JSON parser, and the one error format described for the OpenAPI schema.

(The parser lives here, not in apis.py, because DRF imports it while defining APIView.)
"""

from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """JSON only; a body nested too deeply for Python's parser is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(_("JSON parse error - the document is nested too deeply.")) from None


class ErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True,
        help_text="The field or query parameter at fault (dotted for nested values), or null for the request.",
    )
    code = serializers.CharField(
        help_text="A stable machine-readable code, e.g. required, invalid, not_found."
    )
    message = serializers.CharField(help_text="A human-readable explanation, in the request's language.")
    index = serializers.IntegerField(
        required=False, help_text="Bulk import only: the position of the item at fault in `items` (from 0)."
    )


class ErrorSerializer(serializers.Serializer):
    """Every 4xx response body: `{"errors": [{"field": ..., "code": ..., "message": ...}]}`."""

    errors = ErrorItemSerializer(many=True)


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["ok", "degraded", "down"],
        help_text="ok: everything answers; degraded: the database answers but the broker or workers do not, or the queue is stalled.",
    )
    database = serializers.ChoiceField(choices=["ok", "error"])
    broker = serializers.ChoiceField(
        choices=["ok", "eager", "error"],
        help_text="eager: no broker, tasks run inside the web process (the embedded default).",
    )
    workers = serializers.IntegerField(
        allow_null=True, help_text="Celery workers that answered a ping; null when there is no broker."
    )
    queue = serializers.ChoiceField(
        choices=["ok", "stalled"],
        allow_null=True,
        help_text=(
            "stalled: the task next in line has waited HEALTH_QUEUE_STALL_SECONDS (900 by default) while no "
            "worker took a task; null when there is no broker or it does not answer."
        ),
    )


class PingSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
