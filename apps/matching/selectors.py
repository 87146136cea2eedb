"""Reads of matches: a post's ranked list, a focal point's matches, the export."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.posts.models import Post
from apps.posts.selectors import contact_addresses_left, post_list_own, poster_users

from .models import Interest, Match, PostEmbedding

# Matches found this recently are "new" (and ones whose score changed materially, "updated") on a post's page
# and on the dashboard.
FRESH_FOR = timedelta(days=7)


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


def match_list_for_post(*, post: Post) -> QuerySet[Match]:
    """The post's active matches, best first, with both posts and their posters loaded."""
    side = "need" if post.kind == Post.Kind.NEED else "offer"
    return (
        Match.objects.active()
        .filter(**{side: post})
        .select_related("need__party", "need__provider", "offer__party", "offer__provider")
        .order_by("-score", "id")
    )


def match_add_passages(*, post: Post, matches: Sequence[Match]) -> None:
    """Set `passages` on each of the post's matches: the need's and the offer's sentences that agree most
    (`sentences.closest_passages`), from the sentence vectors the worker stored, in one query; None where
    either post has none stored for its present text (not shortlisted yet, or edited since)."""
    from .sentences import closest_passages, stored_sentence_vectors

    own_is_need = post.kind == Post.Kind.NEED
    others = {m.offer_id if own_is_need else m.need_id: m.offer if own_is_need else m.need for m in matches}
    posts = {post.pk: post, **others}
    rows = PostEmbedding.objects.filter(post_id__in=list(posts), sentences__isnull=False).values_list(
        "post_id", "sentences_hash", "sentences"
    )
    vectors = {pk: stored_sentence_vectors(data, key, posts[pk]) for pk, key, data in rows}
    own = vectors.get(post.pk)
    for match in matches:
        other_id = match.offer_id if own_is_need else match.need_id
        other = vectors.get(other_id)
        match.passages = None
        if own is not None and other is not None:
            need, offer = (post, own), (posts[other_id], other)
            if not own_is_need:
                need, offer = offer, need
            match.passages = closest_passages(need[0], need[1], offer[0], offer[1])


def match_shown_to(*, actor: Actor, match: Match) -> bool:
    """Whether the actor sees the match: the secretariat, and the Parties or providers of its two posts (one
    deactivated by the secretariat too, though it may no longer answer). To anyone else it is not found."""
    return actor.is_secretariat or any(
        actor.acts_for(party_id=post.party_id, provider_id=post.provider_id)
        for post in (match.need, match.offer)
    )


def match_side_for_actor(*, actor: Actor, match: Match) -> str | None:
    """'need' or 'offer': which side of the match the actor speaks for (None when neither)."""
    for side in ("need", "offer"):
        post = getattr(match, side)
        if actor.can_post and actor.acts_for(party_id=post.party_id, provider_id=post.provider_id):
            return side
    return None


@dataclass(frozen=True)
class MatchSummary:
    """What a poster's published post has in its matches list, as the dashboard shows it."""

    total: int = 0
    new: int = 0
    awaiting: int = 0  # the other side expressed interest; this side has not answered yet
    connected: int = 0


def match_their_interest_unanswered(side: str) -> Q:
    """The matches where the other side is interested and `side` ('need' or 'offer') has not answered."""
    other = "offer" if side == "need" else "need"
    return Q(**{f"{other}_interest": Interest.INTERESTED, f"{side}_interest": Interest.NONE})


def match_summaries(*, posts: Iterable[Post]) -> dict[int, MatchSummary]:
    """Post id -> the summary of its active matches (posts without any are absent), in one query per kind."""
    since = timezone.now() - FRESH_FOR
    ids = {"need": [], "offer": []}
    for post in posts:
        ids["need" if post.kind == Post.Kind.NEED else "offer"].append(post.pk)
    out: dict[int, MatchSummary] = {}
    for side, post_ids in ids.items():
        if not post_ids:
            continue
        rows = (
            Match.objects.active()
            .filter(**{f"{side}_id__in": post_ids})
            .order_by()
            .values(f"{side}_id")
            .annotate(
                total=Count("id"),
                new=Count("id", filter=Q(created_at__gte=since, **{f"{side}_interest": Interest.NONE})),
                awaiting=Count("id", filter=match_their_interest_unanswered(side)),
                connected=Count("id", filter=Q(connected_at__isnull=False)),
            )
        )
        for row in rows:
            post_id = row.pop(f"{side}_id")
            out[post_id] = MatchSummary(**row)
    return out


def match_awaiting_count(*, actor: Actor) -> int:
    """How many active matches of the actor's published posts wait for its answer: the other side expressed
    interest and the actor has not answered."""
    if not actor.can_post:
        return 0
    published = post_list_own(actor=actor).published().order_by().values("pk")
    # Each side counted apart and added up in one query (a match never waits on both sides at once). OR-ed in one
    # WHERE, PostgreSQL could not start from the actor's posts: it read every answered match of the table (a
    # dashboard at 100k posts and 1M matches: 160 ms of its 210; apart, 20 ms, from the matches' post indexes).
    need_side = Match.objects.active().filter(match_their_interest_unanswered("need"), need__in=published)
    offer_side = Match.objects.active().filter(match_their_interest_unanswered("offer"), offer__in=published)
    return need_side.order_by().values("pk").union(offer_side.order_by().values("pk"), all=True).count()


def connection_list_for_actor(*, actor: Actor) -> QuerySet[Match]:
    """The connections the actor's Party or provider made (each side's poster is recorded when the match
    connects: a post the secretariat later moves to another poster does not take them along), newest first,
    with both posts and the posters who made it loaded; not the texts, which no list of them shows. Every one
    stays, active or not: when either post is withdrawn or closed the match leaves the lists of matches, but the
    two sides exchanged contacts and the connection stands as it was made."""
    if actor.party_id is not None:
        own = Q(need_party_id=actor.party_id) | Q(offer_party_id=actor.party_id)
    elif actor.provider_id is not None:
        own = Q(need_provider_id=actor.provider_id) | Q(offer_provider_id=actor.provider_id)
    else:
        return Match.objects.none()
    return (
        Match.objects.connections()
        .filter(own)
        .select_related(
            "need__party", "need__provider", "offer__party", "offer__provider",
            "need_party", "need_provider", "offer_party", "offer_provider",
        )
        .defer("explanation", *(f"{side}__{field}" for side in ("need", "offer")
                                for field in ("description", "search_text", "eligible", "aims")))
        .order_by("-connected_at", "-pk")
    )  # fmt: skip


def connection_count_for_post(*, post: Post) -> int:
    """How many connections the post's poster made with it that have another side still there (not withdrawn
    nor closed): those whose other side is told if this post leaves. One the post's previous poster made (the
    secretariat moved it since) is not this poster's to announce."""
    side, other = ("need", "offer") if post.kind == Post.Kind.NEED else ("offer", "need")
    ended = (Post.Status.WITHDRAWN, Post.Status.CLOSED)
    return (
        Match.objects.connections()
        .filter(**{side: post, f"{side}_party_id": post.party_id, f"{side}_provider_id": post.provider_id})
        .exclude(**{f"{other}__status__in": ended})
        .count()
    )


# A post in one of these shows the wording it was last published with (closed and withdrawn posts are not edited).
_FINAL_OR_PUBLISHED = (Post.Status.PUBLISHED, Post.Status.WITHDRAWN, Post.Status.CLOSED)


@dataclass(frozen=True)
class ConnectionSides:
    """A connection seen from one of its sides: its own post, the other post, the other side's poster when it
    connected (party or provider, with its name), and what of each post may be shown to this side: a title
    (None: not to be shown) and whether to link to it."""

    match: Match
    side: str  # "need" or "offer": the actor's
    own: Post
    other: Post
    other_party_id: int | None
    other_provider_id: int | None
    other_name: str
    own_title: str | None = None
    own_linked: bool = False
    own_moved: bool = False
    other_title: str | None = None
    contacts: list[tuple[str, str]] | None = None  # whom to write to (`connection_contacts`); None: not read


def connection_sides(
    *, actor: Actor, matches: Sequence[Match], contacts: bool = True
) -> list[ConnectionSides]:
    """Each connection (from `connection_list_for_actor`) from the side the actor made, by the posters recorded,
    with whom to write to unless `contacts` is false (a token issued without contact details).

    What each side may see of the posts, as they are now:
    - the other post's title while it is published, or withdrawn or closed with the wording it was published
      with: not after the secretariat took it back since the connection (its wording may have been taken down,
      or revised and never published again), nor while it is returned or awaiting review;
    - its own post as its own while it is still the actor's; moved by the secretariat to another poster since,
      as the other post, and without a link (its page is that poster's now). One query for the returns."""
    from apps.posts.models import PostEvent

    returned: dict[int, list] = {}
    post_ids = {m.need_id for m in matches} | {m.offer_id for m in matches}
    if post_ids:
        rows = PostEvent.objects.filter(post_id__in=post_ids, action=PostEvent.Action.RETURNED)
        for post_id, at in rows.order_by().values_list("post_id", "created_at"):
            returned.setdefault(post_id, []).append(at)

    def title(post: Post, connected_at) -> str | None:
        taken_back = any(at > connected_at for at in returned.get(post.pk, ()))
        return post.title if post.status in _FINAL_OR_PUBLISHED and not taken_back else None

    out = []
    for match in matches:
        side = (
            "need"
            if actor.acts_for(party_id=match.need_party_id, provider_id=match.need_provider_id)
            else "offer"
        )
        other = "offer" if side == "need" else "need"
        own_post, other_post = getattr(match, side), getattr(match, other)
        party, provider = getattr(match, f"{other}_party"), getattr(match, f"{other}_provider")
        moved = not actor.acts_for(party_id=own_post.party_id, provider_id=own_post.provider_id)
        out.append(
            ConnectionSides(
                match=match,
                side=side,
                own=own_post,
                other=other_post,
                other_party_id=party.pk if party else None,
                other_provider_id=provider.pk if provider else None,
                other_name=party.local_name if party else provider.name if provider else "",
                own_title=title(own_post, match.connected_at) if moved else own_post.title,
                own_linked=not moved,
                own_moved=moved,
                other_title=title(other_post, match.connected_at),
            )
        )
    if not contacts:
        return out
    found = connection_contacts((i.other, i.other_party_id, i.other_provider_id) for i in out)
    return [replace(item, contacts=found[item.other.pk]) for item in out]


def connection_contacts(
    sides: Iterable[tuple[Post, int | None, int | None]],
) -> dict[int, list[tuple[str, str]]]:
    """Post id -> (name, email) of whom to write to about it, for the other side of a connection; `sides`: each
    post with the Party or provider that made the connection. The contact given on the post while the post is
    still that poster's, else (none given, a person who has left: `contact_addresses_left`, or a post moved to
    another poster since) the people who speak for that poster now (`poster_users`). Read when asked, so that it
    follows a contact who leaves; the connection email and the connections page say the same. Two queries
    whatever the number of posts."""
    sides = list(sides)
    left = contact_addresses_left(
        post.contact_email for post, _party, _provider in sides if post.contact_email
    )
    given = {
        post.pk
        for post, party_id, provider_id in sides
        if post.contact_email
        and (post.party_id, post.provider_id) == (party_id, provider_id)
        and post.contact_email.strip().lower() not in left
    }
    people = poster_users(
        (party_id, provider_id) for post, party_id, provider_id in sides if post.pk not in given
    )
    return {
        post.pk: [(post.contact_name, post.contact_email)]
        if post.pk in given
        else [(user.get_full_name(), user.email) for user in people[(party_id, provider_id)]]
        for post, party_id, provider_id in sides
    }


def connection_page_of(qs: QuerySet[Match], match_id: str | None, per_page: int) -> int | None:
    """The page of the connections list `qs` that holds the match `match_id` (a query parameter), or None when
    it is not one of them: a connected match links to its own place in the list, whatever its page."""
    if not match_id or not re.fullmatch(r"[0-9]{1,18}", match_id):
        return None
    match = qs.filter(pk=int(match_id)).first()
    if match is None:
        return None
    before = qs.filter(
        Q(connected_at__gt=match.connected_at) | Q(connected_at=match.connected_at, pk__gt=match.pk)
    ).count()
    return before // per_page + 1


def match_export_rows() -> Iterator[dict]:
    """Every active match of a published need, in the export format of docs/FORMATS.md, ranked per need.

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
