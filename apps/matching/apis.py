"""Matches for partner systems: a post's ranked matches, and expressing interest in (or dismissing) one."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from apps.accounts.apis import ApiView, field_error, whole_number_param
from apps.accounts.permissions import CanAnswerMatches, IsAuthenticatedCaller
from apps.posts.models import Post
from apps.posts.selectors import post_list_visible
from apps.posts.services import post_can_manage

from .models import Interest, Match
from .selectors import match_list_for_post, match_side_for_actor, match_with_ranks
from .serializers import MatchInterestSerializer, MatchSerializer, match_api_record
from .services import match_set_interest

MATCH_PAGE_SIZE = 20
MAX_MATCH_PAGE_SIZE = 200
MAX_OFFSET = 1_000_000


class PostMatchListApi(ApiView):
    permission_classes = [IsAuthenticatedCaller]
    error_statuses = {"get": (400, 403, 404)}

    @extend_schema(
        tags=["matches"],
        summary="Ranked matches of one of your posts",
        description=(
            "The active matches of a post of the caller's own Party or provider (the secretariat may read any), "
            "best first, with the score, its parts and the explanation. A post keeps its own top 20 and every "
            "match in whose other post's top 20 it is, so it may have more than 20: `offset` and `limit` page "
            "through them, and the `X-Total-Count` header gives how many there are."
        ),
        parameters=[
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                description=f"1 to {MAX_MATCH_PAGE_SIZE}; default {MATCH_PAGE_SIZE}.",
            ),
            OpenApiParameter(
                "offset", OpenApiTypes.INT, description="Matches to skip, best first; default 0."
            ),
        ],
        responses=MatchSerializer(many=True),
    )
    def get(self, request, pk: int):
        limit = whole_number_param(request, "limit", default=MATCH_PAGE_SIZE, low=1, high=MAX_MATCH_PAGE_SIZE)
        offset = whole_number_param(request, "offset", default=0, low=0, high=MAX_OFFSET)
        post = self.get_or_404(
            post_list_visible(actor=self.actor).select_related(None).prefetch_related(None), pk
        )
        if not post_can_manage(actor=self.actor, post=post):
            raise PermissionDenied(_("Only the post's own Party or provider sees its matches."))
        listed = match_list_for_post(post=post, limit=None)
        matches = match_with_ranks(listed)[offset : offset + limit]
        side = None if self.actor.is_secretariat else ("need" if post.kind == Post.Kind.NEED else "offer")
        records = [match_api_record(match, side=side) for match in matches]
        # A first page that is not full holds them all: no COUNT query then (the common case).
        total = len(records) if offset == 0 and len(records) < limit else listed.count()
        return Response(records, headers={"X-Total-Count": str(total)})


class MatchInterestApi(ApiView):
    permission_classes = [CanAnswerMatches]
    error_statuses = {"post": (400, 403, 404, 409)}

    @extend_schema(
        tags=["matches"],
        summary="Express interest in a match, or dismiss it",
        description=(
            "For the Party or provider of either post. When both sides are interested the match becomes a "
            "connection (`connected_at`) and both are sent each other's contacts. 409 when the match is no "
            "longer open (a post was closed or withdrawn, or it left the lists) or when dismissing a connection."
        ),
        request=MatchInterestSerializer,
        responses=MatchSerializer,
    )
    def post(self, request, pk: int):
        body = self.json_body()
        interest = body.get("interest") if isinstance(body, dict) else None
        if interest not in (Interest.INTERESTED, Interest.DISMISSED):
            raise field_error("interest", _("Choose 'interested' or 'dismissed'."), "invalid_choice")
        match = self.get_or_404(Match.objects.all(), pk)
        match = match_set_interest(actor=self.actor, match=match, interest=interest)
        match = match_with_ranks(Match.objects.filter(pk=match.pk)).get()
        return Response(match_api_record(match, side=match_side_for_actor(actor=self.actor, match=match)))
