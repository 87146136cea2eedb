"""Reference data for partner systems: Parties (with group, LDC, SIDS), support providers, taxonomies."""

from django.db.models import TextChoices
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.accounts.apis import ApiView
from apps.posts.taxonomies import POST_LANGUAGES, Aim, FinanceInstrument, FocusArea, Sector, SupportType

from .models import Party, RegionalGroup, SupportProvider
from .serializers import PartySerializer, ProviderSerializer, TaxonomiesSerializer


class PartyListApi(ApiView):
    @extend_schema(
        tags=["reference data"],
        summary="All UNFCCC Parties",
        description="Every Party with its ISO3 code, UN regional group, LDC and SIDS flags (198 rows, one query).",
        responses=PartySerializer(many=True),
    )
    def get(self, request):
        parties = Party.objects.order_by("iso3")
        return Response(PartySerializer(parties, many=True).data)


class ProviderListApi(ApiView):
    @extend_schema(
        tags=["reference data"],
        summary="Registered support providers",
        description=(
            "Every provider a post may name (`short_name` is the value of a post's `provider` field). "
            "`is_active` false: deactivated by the secretariat; it posts nothing new, and its posts stay listed "
            "until withdrawn or closed."
        ),
        responses=ProviderSerializer(many=True),
    )
    def get(self, request):
        # Deactivated ones too: their published posts still name them, which a partner system must resolve.
        providers = SupportProvider.objects.order_by("short_name")
        return Response(ProviderSerializer(providers, many=True).data)


def _terms(choices: type[TextChoices] | list[tuple[str, str]]) -> list[dict]:
    pairs = choices.choices if isinstance(choices, type) else choices
    return [{"key": key, "label": str(label)} for key, label in pairs]


class TaxonomyListApi(ApiView):
    @extend_schema(
        tags=["reference data"],
        summary="Taxonomy keys and labels",
        description=(
            "The keys posts use, with labels in the request's language (Accept-Language): focus areas, "
            "support types, sectors, finance instruments, aims, post languages and UN regional groups."
        ),
        responses=TaxonomiesSerializer,
    )
    def get(self, request):
        return Response(
            {
                "focus_areas": _terms(FocusArea),
                "support_types": _terms(SupportType),
                "sectors": _terms(Sector),
                "instruments": _terms(FinanceInstrument),
                "aims": _terms(Aim),
                "languages": _terms(POST_LANGUAGES),
                "regional_groups": _terms(RegionalGroup),
            }
        )
