"""The facets a public list and the API filter posts by, defined once for both."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from apps.parties.forms import PartySelect, ReadingOrderMixin
from apps.parties.models import Party, RegionalGroup

from .models import Post
from .selectors import post_search
from .taxonomies import FocusArea, Sector, SupportType


class _YesNoSelect(forms.NullBooleanSelect):
    """The list's yes/no select, passing the query's raw value on: Django's turns any value it does not know
    ("1", "yes") into "unknown", so a filter a client asked for was silently left out."""

    def value_from_datadict(self, data, files, name):
        return data.get(name)


class StrictNullBooleanField(forms.NullBooleanField):
    """true/false (also 1/0, yes/no, on/off, any case); empty or "unknown" for no filter; anything else is an
    error naming the field."""

    widget = _YesNoSelect
    TRUE, FALSE, UNSET = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}, {"", "unknown"}

    def to_python(self, value):
        if value is None or isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in self.UNSET:
            return None
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValidationError(_("Give true or false."), code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictNullBooleanField


class _SharedRows(forms.models.ModelChoiceIterator):
    """The field's `shared_rows` (a list several selects read once) in place of a query of its own, if set."""

    def __iter__(self):
        rows = getattr(self.field, "shared_rows", None)
        if rows is None:
            yield from super().__iter__()
            return
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for row in rows:
            yield self.choice(row)


class _ReadingOrder(ReadingOrderMixin, django_filters.fields.ModelChoiceIterator, _SharedRows):
    """Parties named in the page's language, in its alphabetical order."""


class _PartyChoiceField(django_filters.fields.ModelChoiceField):
    iterator = _ReadingOrder
    widget = PartySelect

    def to_python(self, value):
        # Any case, as creating and importing a post take it (?party=ken was a 400 where "ken" posts for Kenya).
        return super().to_python(self.prepare_value(value))

    def prepare_value(self, value):
        # The select shows the Party a link's spelling means: else sending the filters again dropped it.
        return value.strip().upper() if isinstance(value, str) else super().prepare_value(value)


class PartyFilter(django_filters.ModelChoiceFilter):
    field_class = _PartyChoiceField


class _ProviderChoiceField(django_filters.fields.ModelChoiceField):
    """A support provider by its short name, in any case (as imports and the API's posts name it); one that does
    not exist is an error naming the parameter, as an unknown Party is (it was an empty list)."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self.queryset.get(short_name__iexact=str(value).strip())
        except (self.queryset.model.DoesNotExist, ValueError):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice") from None


class ProviderFilter(django_filters.ModelChoiceFilter):
    field_class = _ProviderChoiceField


class PostFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label=_("Search"),
        method="filter_q",
        help_text=_(
            "Finds posts holding these words as written. A post in another language is found by its own words; "
            "your posts' matches bring such posts to you whatever their language."
        ),
    )
    kind = django_filters.ChoiceFilter(label=_("Kind"), choices=Post.Kind.choices)
    support_type = django_filters.ChoiceFilter(
        label=_("Type of support"), choices=SupportType.choices, field_name="support_types"
    )
    focus_area = django_filters.ChoiceFilter(
        label=_("Focus area"), choices=FocusArea.choices, field_name="focus_areas"
    )
    sector = django_filters.ChoiceFilter(label=_("Sector"), choices=Sector.choices, field_name="sectors")
    # Who may take an offer up, by its `eligible` list: the question of a Party looking for support (the filters
    # below are about who posted).
    open_to = PartyFilter(
        label=_("Offers open to"), queryset=Party.objects.all(), to_field_name="iso3", method="filter_open_to"
    )
    regional_group = django_filters.ChoiceFilter(
        label=_("Posted from the regional group"),
        choices=RegionalGroup.choices,
        field_name="party__regional_group",
    )
    party = PartyFilter(
        label=_("Party"), queryset=Party.objects.all(), to_field_name="iso3", field_name="party"
    )
    ldc = StrictBooleanFilter(label=_("Posted by a least developed country"), field_name="party__is_ldc")
    sids = StrictBooleanFilter(
        label=_("Posted by a small island developing State"), field_name="party__is_sids"
    )

    class Meta:
        model = Post
        fields = [
            "q",
            "kind",
            "support_type",
            "focus_area",
            "sector",
            "open_to",
            "regional_group",
            "party",
            "ldc",
            "sids",
        ]

    @property
    def form(self):
        form = super().form
        if not hasattr(form, "_parties"):
            # The two Party selects from one read of the Parties, when the form is drawn (not for results alone).
            form._parties = SimpleLazyObject(lambda: list(Party.objects.all()))
            for name in ("open_to", "party"):  # a subclass may leave either out (the API's)
                if name in form.fields:
                    form.fields[name].shared_rows = form._parties
        return form

    def filter_open_to(self, queryset, name, party):
        """The offers the Party may take up, by the engine's rule: open to all (`eligible` empty), or naming its
        code or one of its groups (regional group, LDC, SIDS); not its own. The list is matched in its JSON text
        (`"KEN"`, quotes included), which PostgreSQL and SQLite both read."""
        if party is None:
            return queryset
        open_ = Q(eligible=[])
        for code in (party.iso3, *sorted(party.groups)):
            open_ |= Q(eligible__icontains=f'"{code}"')
        return queryset.filter(open_, kind=Post.Kind.OFFER).exclude(party=party)

    def filter_q(self, queryset, name, value):
        return post_search(queryset, value)
