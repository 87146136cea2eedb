"""The stocktake figures for the committee's and the secretariat's own reporting scripts."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from apps.accounts.apis import ApiView, field_error
from apps.accounts.permissions import CanReadStocktake
from apps.parties.models import RegionalGroup
from apps.posts.taxonomies import FocusArea, SupportType

from .selectors import MAX_PERIOD_DAYS, stocktake_export
from .serializers import EARLIEST, LATEST, StocktakeQuerySerializer, StocktakeSerializer


class StocktakeApi(ApiView):
    permission_classes = [CanReadStocktake]
    error_statuses = {"get": (400, 403)}

    @extend_schema(
        tags=["stocktake"],
        summary="Stocktake figures for a period",
        description=(
            "For committee members and the secretariat (session), or a token of scope `stocktake`. "
            f"Dates from {EARLIEST} to {LATEST}; `from` on or before `to`; a period of at most ten years "
            f"({MAX_PERIOD_DAYS} days)."
        ),
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, required=True, description="First day (YYYY-MM-DD)."),
            OpenApiParameter("to", OpenApiTypes.DATE, required=True, description="Last day, included."),
            OpenApiParameter("regional_group", OpenApiTypes.STR, enum=RegionalGroup.values),
            OpenApiParameter(
                "ldc", OpenApiTypes.BOOL, description="Only least developed countries (or not)."
            ),
            OpenApiParameter("sids", OpenApiTypes.BOOL, description="Only small island developing States."),
            OpenApiParameter("focus_area", OpenApiTypes.STR, enum=FocusArea.values),
            OpenApiParameter("support_type", OpenApiTypes.STR, enum=SupportType.values),
        ],
        responses=StocktakeSerializer,
    )
    def get(self, request):
        query = StocktakeQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            export = stocktake_export(
                date_from=query.validated_data["from"],
                date_to=query.validated_data["to"],
                filters=query.filters(),
            )
        except ValueError as error:
            # The selector's own checks (period, filters) should never trip after the serializer's.
            raise field_error(None, str(error)) from None
        return Response(export)
