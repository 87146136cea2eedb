"""The matches panel shown on a poster's own published post."""

import functools
import re
import unicodedata

from django import template
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, pgettext

from apps.accounts.actors import Actor
from apps.matching.sentences import WORD_PATTERN
from apps.posts.folding import search_fold
from apps.posts.models import Post
from apps.posts.stemming import stem_text
from apps.posts.taxonomies import FACETS
from apps.posts.templatetags.post_tags import in_brackets

from ..models import Match
from ..selectors import (
    FRESH_FOR,
    MatchSummary,
    match_add_passages,
    match_list_for_post,
    match_side_for_actor,
    match_summaries,
    match_their_interest_unanswered,
)

register = template.Library()

# Matches a page of the panel lists (the engine keeps a post's top 20, and the posts that have it in theirs).
PANEL_PAGE_SIZE = 20
# `?matches=awaiting`: only the matches whose other side is interested and this side has not answered;
# `?matches=connected`: only the connections (an email's link to one finds it whatever its rank).
AWAITING = "awaiting"
CONNECTED = "connected"


def match_for_display(match, post, actor: Actor):
    """The match as the panel shows it on `post`'s page, to `actor`: which side it answers for (None for the
    secretariat, which speaks for neither), the other post, both answers, the "new" and "updated" flags."""
    fresh_since = timezone.now() - FRESH_FOR
    match.side = match_side_for_actor(actor=actor, match=match)
    match.other = match.offer if post.kind == "need" else match.need
    match.own_interest = getattr(match, f"{match.side}_interest", "") if match.side else ""
    match.other_interest = match.offer_interest if match.side == "need" else match.need_interest
    # New until answered: one answered (interest, dismissal, a connection) is no longer news to its side.
    match.is_new = match.created_at >= fresh_since and not match.own_interest
    # Updated: changed since it was found (a new pair's change time is the time it was found), lately.
    match.is_updated = (
        not match.is_new
        and match.changed_at is not None
        and match.changed_at >= fresh_since
        and match.changed_at > match.created_at
    )
    match.passages = None  # see `match_add_passages`
    return match


@register.inclusion_tag("matching/_match_panel.html", takes_context=True)
def match_panel(context, post):
    request = context["request"]
    actor = Actor.for_user(request.user)
    summary = match_summaries(posts=[post]).get(post.pk, MatchSummary())
    counts = match_counts_context(post, actor, summary, request.GET)
    shown = counts["shown"]
    matches = match_list_for_post(post=post)
    if shown == AWAITING:
        matches = matches.filter(match_their_interest_unanswered(post.kind))
    elif shown == CONNECTED:
        matches = matches.filter(connected_at__isnull=False)
    paginator = Paginator(matches, PANEL_PAGE_SIZE)
    # No COUNT query: the summary has them.
    paginator.__dict__["count"] = {AWAITING: summary.awaiting, CONNECTED: summary.connected}.get(
        shown, summary.total
    )
    page = paginator.get_page(request.GET.get("matches_page"))
    matches = [match_for_display(match, post, actor) for match in page.object_list]
    match_add_passages(post=post, matches=matches)
    return {
        **counts,
        "matches": matches,
        "page": page,
        "request": request,
    }


def _shown(params, summary: MatchSummary, *, owner: bool, answered: bool) -> str | None:
    """Which matches the panel lists: AWAITING (the owner's only: it is about their answer), CONNECTED, or
    None for all. A page opened on a filter with nothing in it lists all; the counts updated after an answer
    (`answered`) keep the filter the page still shows, emptied by that answer."""
    wanted = params.get("matches")
    if wanted == AWAITING and owner and (summary.awaiting or answered):
        return AWAITING
    if wanted == CONNECTED and (summary.connected or answered):
        return CONNECTED
    return None


def match_counts_context(
    post, actor: Actor, summary: MatchSummary, params, *, answered: bool = False
) -> dict:
    """What the panel's heading and its "awaiting your answer" line show (`_match_counts.html`), for the panel
    and for the answer to a match (`answered`), which updates them in place (htmx, out of band). `params`: the
    page's query."""
    query = params.copy()
    query.pop("matches_page", None)
    owner = actor.can_post and actor.acts_for(party_id=post.party_id, provider_id=post.provider_id)
    shown = _shown(params, summary, owner=owner, answered=answered)
    ended = 0
    if params.get("matches") == CONNECTED and shown is None and not answered:
        # Opened on its connections (the connection email's link) when none is open any more: the page listed
        # all matches without a word. Counted: the connections whose other post is no longer published (one
        # retired by a move or a change of kind leaves it published, and the note would say it is not).
        other_gone = (Q(need_id=post.pk) & ~Q(offer__status=Post.Status.PUBLISHED)) | (
            Q(offer_id=post.pk) & ~Q(need__status=Post.Status.PUBLISHED)
        )
        ended = Match.objects.filter(other_gone, connected_at__isnull=False, is_active=False).count()
    return {
        "post": post,
        "owner": owner,
        "summary": summary,
        "shown": shown,
        "ended_connections": ended,
        "awaiting_only": shown == AWAITING,
        "query": query.urlencode(),
    }


@register.simple_tag
def connection_url(match) -> str:
    """The connections page opened at this connection's place (`views.connection_list`, `?match=`)."""
    return f"{reverse('matching:connections')}?match={match.pk}"


@register.filter
def remove_param(query: str, name: str) -> str:
    """An urlencoded query string without the parameter `name`."""
    params = QueryDict(query, mutable=True)
    params.pop(name, None)
    return params.urlencode()


@register.filter
def percent(value) -> str:
    """A share as a whole percentage, written as the page's language does (80% in English, 80 % in French)."""
    return gettext("%(value)s%%") % {"value": round(float(value) * 100)}


@register.simple_tag
def score_components(match, after_word: bool = False) -> str:
    """A match's score's parts, in brackets as the page's language writes a remark: "(similar wording 41%,
    similar meaning 49%, shared categories 80%)"; `after_word`: see `in_brackets`."""
    wording = (
        # The words of one text against those of posts like the other, in its language: not the texts' own words.
        gettext("similar wording via similar posts")
        if (match.explanation or {}).get("cross_lingual")
        else gettext("similar wording")
    )
    parts = [
        f"{wording} {percent(match.lexical)}",
        f"{gettext('similar meaning')} {percent(match.semantic)}",
        f"{gettext('shared categories')} {percent(match.structured)}",
    ]
    if match.alignment is not None:
        parts.append(f"{gettext('parts of the need answered')} {percent(match.alignment)}")
    return in_brackets(parts, after_word=after_word)


_LABELS = {key: label for choices in FACETS.values() for key, label in choices.choices}
_ORDER = {key: position for position, key in enumerate(_LABELS)}


@register.filter
def term_labels(keys) -> str:
    """Taxonomy keys (as stored in an explanation) as their translated labels, in the taxonomy's order and
    separated as a post's page separates them: a semicolon, since some labels hold commas ("Adaptation,
    resilience and sustainability, Mitigation measures..." read as three areas)."""
    keys = sorted(keys or (), key=lambda key: _ORDER.get(key, len(_ORDER)))
    return pgettext("between the items of a list", "; ").join(str(_LABELS.get(key, key)) for key in keys)


# The word model's tokens, found in the text as written.
_WORDS = re.compile(WORD_PATTERN)


@register.filter
def as_written(terms, post) -> list[str]:
    """The words of an explanation, which the word model stores folded (no accents, lower case; a Russian or
    Arabic word as its stem), as `post` writes them: "indígenas", "formación", "NDC" where the panel showed
    "indigenas", "formacion", "ndc", "адаптации" for the stem "адаптац" (the first form the text writes). A word
    the text does not hold (a changed text) stays as stored."""
    if not terms:
        return []
    exact, stems = written_words(f"{post.title}\n{post.description}")
    return [exact.get(term) or stems.get(term, term) for term in terms]


@functools.lru_cache(maxsize=256)
def written_words(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The forms `text` writes its words in: by folded word, and by the stem the word model reads it as
    (`stemming.stem_text`: a Russian or Arabic word's; a hyphenated word's part by part), which a folded word
    of the text outranks (the stem طن, tonne, is not shown as وطنية, national, whose light10 stem it also
    is). Remembered per text: a post's page reads its own text once per match (each match holds its own copy
    of the post: 20 on a page), at 0.3-0.5 ms a time. Read only: the same dicts serve every caller."""
    exact: dict[str, str] = {}
    stems: dict[str, str] = {}
    keys_of: dict[str, tuple[str, str]] = {}
    # Composed first: an accent typed as a combining mark is no word character, and cut the word in two.
    for word in _WORDS.findall(unicodedata.normalize("NFC", text)):
        keys = keys_of.get(word)
        if keys is None:
            folded = search_fold(word)
            keys = keys_of[word] = (folded, stem_text(folded))
        form = word if word.isupper() else word.lower()
        for key, written in zip(keys, (exact, stems), strict=True):
            # In capitals only if written so wherever it is (an acronym), not for a title written in capitals.
            if key not in written or (written[key].isupper() and not form.isupper()):
                written[key] = form
    return exact, stems
