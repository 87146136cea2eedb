"""The facets a public list and the API filter posts by, defined once for both."""

import django_filters
from django.utils.translation import gettext_lazy as _

from apps.parties.models import Party, RegionalGroup

from .models import Post
from .selectors import post_search
from .taxonomies import FocusArea, Sector, SupportType


class PostFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label=_("Search"), method="filter_q")
    kind = django_filters.ChoiceFilter(label=_("Kind"), choices=Post.Kind.choices)
    support_type = django_filters.ChoiceFilter(
        label=_("Type of support"), choices=SupportType.choices, field_name="support_types"
    )
    focus_area = django_filters.ChoiceFilter(
        label=_("Focus area"), choices=FocusArea.choices, field_name="focus_areas"
    )
    sector = django_filters.ChoiceFilter(label=_("Sector"), choices=Sector.choices, field_name="sectors")
    regional_group = django_filters.ChoiceFilter(
        label=_("Regional group"), choices=RegionalGroup.choices, field_name="party__regional_group"
    )
    party = django_filters.ModelChoiceFilter(
        label=_("Party"), queryset=Party.objects.all(), to_field_name="iso3", field_name="party"
    )
    ldc = django_filters.BooleanFilter(label=_("Least developed countries"), field_name="party__is_ldc")
    sids = django_filters.BooleanFilter(
        label=_("Small island developing States"), field_name="party__is_sids"
    )

    class Meta:
        model = Post
        fields = [
            "q",
            "kind",
            "support_type",
            "focus_area",
            "sector",
            "regional_group",
            "party",
            "ldc",
            "sids",
        ]

    def filter_q(self, queryset, name, value):
        return post_search(queryset, value)
