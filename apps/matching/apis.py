"""Matches for partner systems: a post's ranked matches, expressing interest in (or dismissing) one, and the
caller's connections."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from apps.accounts.apis import ApiView, field_error, offset_page, offset_page_parameters
from apps.accounts.permissions import CanAnswerMatches, IsAuthenticatedCaller
from apps.posts.selectors import post_list_visible
from apps.posts.services import post_can_manage

from .models import Match
from .selectors import (
    connection_list_for_actor,
    connection_sides,
    match_list_for_post,
    match_shown_to,
    match_side_for_actor,
    match_with_ranks,
)
from .serializers import (
    ConnectionSerializer,
    MatchInterestSerializer,
    MatchSerializer,
    connection_api_record,
    match_api_record,
)
from .services import InvalidInterest, match_check_interest, match_set_interest

MATCH_PAGE_SIZE = 20
MAX_MATCH_PAGE_SIZE = 200


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
        parameters=offset_page_parameters(default=MATCH_PAGE_SIZE, most=MAX_MATCH_PAGE_SIZE),
        responses=MatchSerializer(many=True),
    )
    def get(self, request, pk: int):
        post = self.get_or_404(
            post_list_visible(actor=self.actor).select_related(None).prefetch_related(None), pk
        )
        if not post_can_manage(actor=self.actor, post=post):
            raise PermissionDenied(_("Only the post's own Party or provider sees its matches."))
        listed = match_list_for_post(post=post)
        matches, headers = offset_page(
            request, match_with_ranks(listed), default=MATCH_PAGE_SIZE, most=MAX_MATCH_PAGE_SIZE, count=listed
        )
        records = [
            match_api_record(match, side=match_side_for_actor(actor=self.actor, match=match))
            for match in matches
        ]
        return Response(records, headers=headers)


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
        try:
            match_check_interest(interest)
        except InvalidInterest as error:
            raise field_error("interest", str(error), "invalid_choice") from None
        match = self.get_or_404(Match.objects.select_related("need", "offer"), pk)
        if not match_shown_to(actor=self.actor, match=match):  # it is not found, rather than told of
            raise NotFound(_("Not found."))
        match = match_set_interest(actor=self.actor, match=match, interest=interest)
        match = match_with_ranks(Match.objects.filter(pk=match.pk)).get()
        return Response(match_api_record(match, side=match_side_for_actor(actor=self.actor, match=match)))


class ConnectionListApi(ApiView):
    permission_classes = [IsAuthenticatedCaller]
    error_statuses = {"get": (400, 403)}

    @extend_schema(
        tags=["matches"],
        summary="Your connections, with whom to write to",
        description=(
            "The connections (matches both sides were interested in) that the caller's own Party or provider "
            "made: a write token's, or a focal point's or provider user's session. Newest first, each with the "
            "caller's post, the other post, the partner and whom to write to about it. A connection stays listed "
            "when either post is withdrawn, closed or returned for changes; the other post's title is null while "
            "it is returned or awaiting review. `offset` and `limit` page through them; the `X-Total-Count` "
            "header gives how many there are."
        ),
        parameters=offset_page_parameters(default=MATCH_PAGE_SIZE, most=MAX_MATCH_PAGE_SIZE),
        responses=ConnectionSerializer(many=True),
    )
    def get(self, request):
        actor = self.actor
        if actor.party_id is None and actor.provider_id is None:
            raise PermissionDenied(
                _("Connections are listed for the systems and users of a Party or support provider only.")
            )
        connections = connection_list_for_actor(actor=actor)
        matches, headers = offset_page(
            request, connections, default=MATCH_PAGE_SIZE, most=MAX_MATCH_PAGE_SIZE, count=connections
        )
        sides = connection_sides(actor=actor, matches=matches, contacts=actor.reads_contacts())
        return Response([connection_api_record(item) for item in sides], headers=headers)
