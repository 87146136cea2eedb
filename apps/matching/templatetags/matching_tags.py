"""The matches panel shown on a poster's own published post."""

from datetime import timedelta

from django import template
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.posts.taxonomies import FACETS

from ..selectors import match_list_for_post, match_side_for_actor

register = template.Library()

# Matches found, or whose score changed materially, this recently carry a "new" or "updated" badge.
FRESH_FOR = timedelta(days=7)


@register.inclusion_tag("matching/_match_panel.html", takes_context=True)
def match_panel(context, post):
    actor = Actor.for_user(context["request"].user)
    matches = list(match_list_for_post(post=post))
    fresh_since = timezone.now() - FRESH_FOR
    for match in matches:
        match.side = match_side_for_actor(actor=actor, match=match)
        # Seen from the post whose page this is (the secretariat, which speaks for neither side, sees it too).
        match.other = match.offer if post.kind == "need" else match.need
        match.own_interest = getattr(match, f"{match.side}_interest", "") if match.side else ""
        match.other_interest = match.offer_interest if match.side == "need" else match.need_interest
        match.is_new = match.created_at >= fresh_since
        match.is_updated = (
            not match.is_new and match.changed_at is not None and match.changed_at >= fresh_since
        )
    return {"post": post, "matches": matches, "request": context["request"]}


@register.filter
def percent(value) -> str:
    return f"{round(float(value) * 100)}%"


_LABELS = {key: label for choices in FACETS.values() for key, label in choices.choices}


@register.filter
def term_labels(keys) -> str:
    """Taxonomy keys (as stored in an explanation) as their translated labels, comma-separated."""
    return ", ".join(str(_LABELS.get(key, key)) for key in keys or ())
