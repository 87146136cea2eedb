"""Matches in the API: both posts in brief, the score and its parts, the explanation, each side's answer."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.posts.models import Post

from .models import Interest, Match
from .templatetags.matching_tags import as_written


def _post_summary(post: Post) -> dict[str, Any]:
    return {
        "id": post.pk,
        "external_id": post.export_id,
        "kind": post.kind,
        "status": post.status,
        "title": post.title,
        "party": post.party.iso3 if post.party_id else None,
        "provider": post.provider.short_name if post.provider_id else None,
    }


def _time(value) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _explanation(match: Match) -> dict[str, Any]:
    """The stored explanation, its `top_terms` as the need writes them (`as_written`): the word model stores
    them folded ("indigenas"; a Russian or Arabic word as its stem, "засух"), the API gives "indígenas",
    "засухе", as the page does."""
    explanation = match.explanation if isinstance(match.explanation, dict) else {}
    if explanation.get("top_terms"):
        explanation = {**explanation, "top_terms": as_written(explanation["top_terms"], match.need)}
    return explanation


def match_api_record(match: Match, *, side: str | None = None) -> dict[str, Any]:
    """A match as the API returns it. Expects need/offer and their posters selected, and the ranks annotated
    (`selectors.match_with_ranks`). `side` ('need' or 'offer'): the side the caller speaks for, which is not
    told that the other side dismissed the match (as on the web page); the secretariat (None) sees both."""
    interests = {"need": match.need_interest, "offer": match.offer_interest}
    if side is not None:
        other = "offer" if side == "need" else "need"
        if interests[other] == Interest.DISMISSED:
            interests[other] = Interest.NONE
    return {
        "id": match.pk,
        "score": round(match.score, 4),
        "lexical": round(match.lexical, 4),
        "semantic": round(match.semantic, 4),
        "structured": round(match.structured, 4),
        "alignment": None if match.alignment is None else round(match.alignment, 4),
        "explanation": _explanation(match),
        "rank_for_need": getattr(match, "need_rank", None) if match.is_active else None,
        "rank_for_offer": getattr(match, "offer_rank", None) if match.is_active else None,
        "need": _post_summary(match.need),
        "offer": _post_summary(match.offer),
        "need_interest": interests["need"],
        "offer_interest": interests["offer"],
        "connected_at": _time(match.connected_at),
        "created_at": _time(match.created_at),
    }


class MatchPostSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=Post.Kind.choices)
    status = serializers.ChoiceField(choices=Post.Status.choices)
    title = serializers.CharField()
    party = serializers.CharField(allow_null=True)
    provider = serializers.CharField(allow_null=True)


class MatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    score = serializers.FloatField(help_text="0 to 1; higher is a better fit.")
    lexical = serializers.FloatField(help_text="Shared wording (0 to 1).")
    semantic = serializers.FloatField(help_text="Similar meaning, across languages (0 to 1).")
    structured = serializers.FloatField(
        help_text="Fit of support types, focus areas, sectors, amount (0 to 1)."
    )
    alignment = serializers.FloatField(
        allow_null=True,
        help_text="Share of the need's sentences that some sentence of the offer answers (0 to 1); null when "
        "the pair was not reranked.",
    )
    explanation = serializers.DictField(
        help_text="Why they match: shared_support_types, shared_focus_areas, shared_sectors, top_terms (the "
        "words in common, as the need writes them), cross_lingual "
        "(with need_language, offer_language and, when compared through the pivot language, related_terms "
        "and terms_language), amount_covered, ..."
    )
    rank_for_need = serializers.IntegerField(
        allow_null=True, help_text="The offer's place in the need's list."
    )
    rank_for_offer = serializers.IntegerField(
        allow_null=True, help_text="The need's place in the offer's list."
    )
    need = MatchPostSerializer()
    offer = MatchPostSerializer()
    need_interest = serializers.ChoiceField(
        choices=Interest.choices, help_text="'' until the need side answers."
    )
    offer_interest = serializers.ChoiceField(
        choices=Interest.choices,
        help_text="'' until the offer side answers. A side is never shown the other's dismissal (it reads '').",
    )
    connected_at = serializers.DateTimeField(allow_null=True, help_text="When both sides were interested.")
    created_at = serializers.DateTimeField()


def connection_api_record(sides) -> dict[str, Any]:
    """A connection as the API returns it, from the caller's side (`selectors.ConnectionSides`, which says what of
    each post may be shown: a title of null where not), the partner that made it, and whom to write to (None for a
    token issued without contact details: `sides.contacts` not read)."""
    match = sides.match
    own, other = _post_summary(sides.own), _post_summary(sides.other)
    own["title"], other["title"] = sides.own_title, sides.other_title
    partner_side = "offer" if sides.side == "need" else "need"
    party, provider = getattr(match, f"{partner_side}_party"), getattr(match, f"{partner_side}_provider")
    return {
        "id": match.pk,
        "connected_at": _time(match.connected_at),
        "score": round(match.score, 4),
        "side": sides.side,
        "own": own,
        "own_moved": sides.own_moved,
        "other": other,
        "partner": {
            "party": party.iso3 if party else None,
            "provider": provider.short_name if provider else None,
            "name": sides.other_name,
        },
        "contacts": None
        if sides.contacts is None
        else [{"name": name, "email": email} for name, email in sides.contacts],
    }


class ConnectionPartnerSerializer(serializers.Serializer):
    party = serializers.CharField(
        allow_null=True, help_text="ISO 3166-1 alpha-3 code of the Party, if a Party."
    )
    provider = serializers.CharField(allow_null=True, help_text="Short name of the support provider, if one.")
    name = serializers.CharField(help_text="Its name, in the language the request asks for.")


class ConnectionPostSerializer(MatchPostSerializer):
    title = serializers.CharField(
        allow_null=True,
        help_text="null while the post is returned for changes or awaiting review, or after the secretariat took "
        "it back since the connection (its wording may have been taken down or revised).",
    )


class ConnectionContactSerializer(serializers.Serializer):
    name = serializers.CharField(allow_blank=True)
    email = serializers.EmailField()


class ConnectionSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The match's id.")
    connected_at = serializers.DateTimeField(help_text="When both sides were interested.")
    score = serializers.FloatField(help_text="0 to 1; higher is a better fit.")
    side = serializers.ChoiceField(
        choices=["need", "offer"], help_text="Which post of the match is the caller's."
    )
    own = ConnectionPostSerializer(help_text="The caller's post (as it is now; see `own_moved`).")
    own_moved = serializers.BooleanField(
        help_text="The secretariat has moved the caller's post to another Party or provider since the connection: "
        "it is shown as the other post is."
    )
    other = ConnectionPostSerializer(help_text="The other side's post, as it is now.")
    partner = ConnectionPartnerSerializer(
        help_text="The Party or provider that made the connection on the other side (a post moved since keeps its "
        "connections with the poster that made them)."
    )
    contacts = ConnectionContactSerializer(
        many=True,
        allow_null=True,
        help_text="Whom to write to about the other post: the contact given on it while it is still the partner's, "
        "else (none given, a person who has left, or a post moved since) the people who speak for the partner. "
        "null for a token issued without contact details.",
    )


class MatchInterestSerializer(serializers.Serializer):
    interest = serializers.ChoiceField(choices=[Interest.INTERESTED.value, Interest.DISMISSED.value])
