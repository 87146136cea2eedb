"""The stocktake export in the API: query parameters in, figures for the period out."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.parties.models import RegionalGroup
from apps.posts.taxonomies import FocusArea, SupportType

from .selectors import EARLIEST, LATEST, MAX_PERIOD_DAYS, NotADate, calendar_date


class CalendarDateField(serializers.DateField):
    """YYYY-MM-DD in ASCII digits (`calendar_date`)."""

    def to_internal_value(self, value):
        try:
            return calendar_date(value)
        except NotADate as error:
            raise serializers.ValidationError(str(error), code="invalid") from None


class StocktakeQuerySerializer(serializers.Serializer):
    """`from` and `to` are Python keywords, so they are declared in __init__ below."""

    regional_group = serializers.ChoiceField(choices=RegionalGroup.values, required=False)
    ldc = serializers.BooleanField(required=False, allow_null=True, default=None)
    sids = serializers.BooleanField(required=False, allow_null=True, default=None)
    focus_area = serializers.ChoiceField(choices=FocusArea.values, required=False)
    support_type = serializers.ChoiceField(choices=SupportType.values, required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = CalendarDateField(input_formats=["iso-8601"], help_text="First day (YYYY-MM-DD).")
        fields["to"] = CalendarDateField(input_formats=["iso-8601"], help_text="Last day, included.")
        return fields

    def validate(self, attrs):
        errors = {}
        for name in ("from", "to"):
            if not EARLIEST <= attrs[name] <= LATEST:
                errors[name] = [
                    _("Give a date from %(first)s to %(last)s.") % {"first": EARLIEST, "last": LATEST}
                ]
        if not errors and attrs["from"] > attrs["to"]:
            errors["from"] = [_("`from` must be on or before `to`.")]
        elif not errors and (attrs["to"] - attrs["from"]).days > MAX_PERIOD_DAYS:
            errors["to"] = [_("The period is longer than ten years; choose a shorter one.")]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def filters(self) -> dict:
        """The filters the caller gave (the selector's `filters` argument)."""
        data = self.validated_data
        return {
            name: data[name]
            for name in ("regional_group", "ldc", "sids", "focus_area", "support_type")
            if data.get(name) is not None
        }


class StocktakePeriodSerializer(serializers.Serializer):
    # `from` is a keyword: declared below.
    to = serializers.DateField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = CalendarDateField()
        return fields


class StocktakeFigureSerializer(serializers.Serializer):
    figure = serializers.CharField(help_text="The figure's name, e.g. needs_published.")
    dimension = serializers.DictField(help_text="What the figure is broken down by (empty for a total).")
    value = serializers.FloatField(
        allow_null=True, help_text="null when the figure has no data (e.g. a median of nothing)."
    )


class StocktakeSerializer(serializers.Serializer):
    period = StocktakePeriodSerializer()
    filters = serializers.DictField(
        required=False, help_text="The filters applied (only those set); absent from snapshots frozen before."
    )
    figures = StocktakeFigureSerializer(many=True)
