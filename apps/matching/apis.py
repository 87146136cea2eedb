"""Matches for partner systems: a post's ranked matches, and expressing interest in (or dismissing) one."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.accounts.apis import ApiView, field_error
from apps.accounts.permissions import CanAnswerMatches, IsAuthenticatedCaller
from apps.posts.selectors import post_list_visible
from apps.posts.services import post_can_manage

from .models import Interest, Match
from .selectors import match_list_for_post, match_with_ranks
from .serializers import MatchInterestSerializer, MatchSerializer, match_api_record
from .services import match_set_interest


class PostMatchListApi(ApiView):
    permission_classes = [IsAuthenticatedCaller]
    error_statuses = {"get": (403, 404)}

    @extend_schema(
        tags=["matches"],
        summary="Ranked matches of one of your posts",
        description=(
            "The active matches of a post of the caller's own Party or provider (the secretariat may read any), "
            "best first, with the score, its parts and the explanation."
        ),
        responses=MatchSerializer(many=True),
    )
    def get(self, request, pk: int):
        post = self.get_or_404(
            post_list_visible(actor=self.actor).select_related(None).prefetch_related(None), pk
        )
        if not post_can_manage(actor=self.actor, post=post):
            raise PermissionDenied(_("Only the post's own Party or provider sees its matches."))
        matches = match_with_ranks(match_list_for_post(post=post, limit=None))[:20]
        return Response([match_api_record(match) for match in matches])


class MatchInterestApi(ApiView):
    permission_classes = [CanAnswerMatches]
    error_statuses = {"post": (400, 403, 404)}

    @extend_schema(
        tags=["matches"],
        summary="Express interest in a match, or dismiss it",
        description=(
            "For the Party or provider of either post. When both sides are interested the match becomes a "
            "connection (`connected_at`) and both are sent each other's contacts."
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
        return Response(match_api_record(match))
