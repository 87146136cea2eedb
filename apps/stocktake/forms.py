"""The report's period and filters, and the snapshot form (the same fields plus a title)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.parties.models import RegionalGroup
from apps.posts.filters import StrictNullBooleanField
from apps.posts.taxonomies import FocusArea, SupportType

from .selectors import EARLIEST, LATEST, MAX_PERIOD_DAYS, NotADate, calendar_date

_ALL = [("", _("All"))]
_GROUP_MEMBERSHIP = [("", _("All Parties")), ("yes", _("Members only")), ("no", _("Non-members only"))]


class MembershipField(forms.ChoiceField):
    """yes/no, as the page's select sends it; in a link, also true/false, 1/0 or on/off, as the API and the
    post list take them."""

    def __init__(self, **kwargs):
        super().__init__(choices=_GROUP_MEMBERSHIP, required=False, **kwargs)

    def to_python(self, value):
        return self._normalise(super().to_python(value))

    def prepare_value(self, value):
        # The select and the filter's chip show the choice a link's spelling means (ldc=true: Members only).
        return self._normalise(value) if isinstance(value, str) else value

    @staticmethod
    def _normalise(value: str) -> str:
        text = value.strip().lower()
        if text in StrictNullBooleanField.TRUE:
            return "yes"
        if text in StrictNullBooleanField.FALSE:
            return "no"
        return text


def default_period(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The half-year the Committee is likely reviewing: the one in which `today` falls."""
    today = today or timezone.localdate()
    if today.month <= 6:
        return dt.date(today.year, 1, 1), dt.date(today.year, 6, 30)
    return dt.date(today.year, 7, 1), dt.date(today.year, 12, 31)


class DateInput(forms.DateInput):
    """A date picker; a value that is no date (2025-13-40, from an edited link) is shown as typed, in a text
    box beside its error: a date box would show it empty, and the reader would not see what is wrong."""

    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        shown = context["widget"]["value"]
        if shown:
            try:
                calendar_date(str(shown))
            except NotADate:
                context["widget"]["type"] = "text"
        return context


class CalendarDateField(forms.DateField):
    """YYYY-MM-DD only (`calendar_date`), whatever the page's language: a link to the report shows every reader
    the same period (a form's DateField reads 01/02/2026 by the language)."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, dt.date):
            return value
        try:
            return calendar_date(value)
        except NotADate as error:
            raise forms.ValidationError(str(error), code="invalid") from None


class PeriodForm(forms.Form):
    date_from = CalendarDateField(label=_("From"), widget=DateInput())
    date_to = CalendarDateField(label=_("To"), widget=DateInput(), help_text=_("Both days are included."))

    def __init__(self, data=None, *args, **kwargs):
        # A parameter given twice in a link (date_from=...&date_from=...) is refused, not read as its last value.
        self.repeated = [name for name in self.base_fields if data is not None and hasattr(data, "getlist")
                         and len(data.getlist(name)) > 1]  # fmt: skip
        super().__init__(data, *args, **kwargs)

    @classmethod
    def from_query(cls, data) -> PeriodForm:
        """Bound to the query string, or to the default period when it has none."""
        if not data.get("date_from") and not data.get("date_to"):
            start, end = default_period()
            data = data.copy()
            data["date_from"], data["date_to"] = start.isoformat(), end.isoformat()
        return cls(data)

    def clean(self):
        cleaned = super().clean()
        for name in self.repeated:
            self.add_error(name, _("Given more than once in the address: give it once."))
        for name in ("date_from", "date_to"):
            value = cleaned.get(name)
            if value is not None and not EARLIEST <= value <= LATEST:
                self.add_error(
                    name, _("Give a date from %(first)s to %(last)s.") % {"first": EARLIEST, "last": LATEST}
                )
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end:
            if start > end:
                self.add_error("date_to", _("The end of the period must not be before its start."))
            elif (end - start).days > MAX_PERIOD_DAYS:
                self.add_error("date_to", _("Choose a period of at most ten years."))
        return cleaned


class StocktakeForm(PeriodForm):
    regional_group = forms.ChoiceField(
        label=_("Regional group"), choices=_ALL + list(RegionalGroup.choices), required=False
    )
    ldc = MembershipField(label=_("Least developed countries"))
    sids = MembershipField(label=_("Small island developing States"))
    focus_area = forms.ChoiceField(
        label=_("Focus area"), choices=_ALL + list(FocusArea.choices), required=False
    )
    support_type = forms.ChoiceField(
        label=_("Type of support"), choices=_ALL + list(SupportType.choices), required=False
    )

    def filters(self) -> dict:
        """The cleaned filters as `stocktake_export` takes them (only those set)."""
        data = self.cleaned_data
        filters: dict = {}
        for key in ("regional_group", "focus_area", "support_type"):
            if data.get(key):
                filters[key] = data[key]
        for key in ("ldc", "sids"):
            if data.get(key):
                filters[key] = data[key] == "yes"
        return filters


class SnapshotForm(StocktakeForm):
    title = forms.CharField(
        label=_("Title"), max_length=200, help_text=_("The meeting it is for, e.g. GCNMA 12, June 2026.")
    )
    note = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 3}), required=False)


def filter_labels(filters: dict) -> list[tuple[str, str]]:
    """A report's (or snapshot's) filters as (field label, value label) pairs, in the active language."""
    form = StocktakeForm()
    labels = []
    for key, value in filters.items():
        field = form.fields[key]
        if isinstance(value, bool):
            value = "yes" if value else "no"
        labels.append((str(field.label), str(dict(field.choices).get(value, value))))
    return labels
