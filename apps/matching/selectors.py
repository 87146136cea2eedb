"""Reads of matches: a post's ranked list, a focal point's matches, the export."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from apps.accounts.actors import Actor
from apps.posts.models import Post

from .models import Match


def _rank_in_list_of(side: str) -> Coalesce:
    """1 + the number of active matches of the same post on `side` that rank before this one (by score, then
    id: the order of every list). Computed when read, as ranks shift whenever another match comes or goes."""
    before = (
        Match.objects.active()
        .filter(**{side: OuterRef(side)})
        .filter(Q(score__gt=OuterRef("score")) | Q(score=OuterRef("score"), id__lt=OuterRef("id")))
        .order_by()
        .values(side)
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(before), 0) + 1


def match_with_ranks(qs: QuerySet[Match]) -> QuerySet[Match]:
    """Matches with `need_rank` (the offer's place in the need's list) and `offer_rank`, posts and posters."""
    return qs.select_related("need__party", "need__provider", "offer__party", "offer__provider").annotate(
        need_rank=_rank_in_list_of("need"), offer_rank=_rank_in_list_of("offer")
    )


def match_list_for_post(*, post: Post, limit: int | None = 20) -> QuerySet[Match]:
    """The post's active matches, best first, with both posts and their posters loaded."""
    side = "need" if post.kind == Post.Kind.NEED else "offer"
    qs = (
        Match.objects.active()
        .filter(**{side: post})
        .select_related("need__party", "need__provider", "offer__party", "offer__provider")
        .order_by("-score", "id")
    )
    return qs[:limit] if limit else qs


def match_side_for_actor(*, actor: Actor, match: Match) -> str | None:
    """'need' or 'offer': which side of the match the actor speaks for (None when neither)."""
    for side in ("need", "offer"):
        post = getattr(match, side)
        if actor.can_post and actor.acts_for(party_id=post.party_id, provider_id=post.provider_id):
            return side
    return None


def match_export_rows() -> Iterator[dict]:
    """Every active match of a published need, in the export format of DOMAIN.md, ranked per need.

    Streams in need order so that a million rows never sit in memory at once.
    """
    needs = (
        Post.objects.published()
        .needs()
        .order_by("id")
        .only("id", "external_id")
        .prefetch_related(
            Prefetch(
                "matches_as_need",
                queryset=Match.objects.active()
                .filter(offer__status=Post.Status.PUBLISHED)
                .select_related("offer")
                .only("id", "need_id", "score", "offer__id", "offer__external_id")
                .order_by("-score", "offer_id"),
                to_attr="ranked_matches",
            )
        )
    )
    for need in needs.iterator(chunk_size=500):
        for rank, match in enumerate(need.ranked_matches, start=1):
            yield {
                "need": need.export_id,
                "offer": match.offer.export_id,
                "score": round(match.score, 3),
                "rank": rank,
            }
