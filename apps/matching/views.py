"""Pages of the matching app: answering a match (interest or dismiss), and a poster's connections."""

from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.actors import PROVIDER_DEACTIVATED_MESSAGE, Actor
from apps.accounts.expiry import note_action_lost
from apps.accounts.limits import writes_rate_limited
from apps.posts.models import Post

from .models import Match
from .selectors import (
    MatchSummary,
    connection_list_for_actor,
    connection_page_of,
    connection_sides,
    match_add_passages,
    match_shown_to,
    match_side_for_actor,
    match_summaries,
)
from .services import InvalidInterest, MatchAnswerError, match_set_interest
from .templatetags.matching_tags import match_counts_context, match_for_display


def _came_from(request) -> str | None:
    """The path (and query) of the page the request was made from, if it is one of ours: htmx says it, a plain
    form post has it as its Referer."""
    url = (request.htmx.current_url if request.htmx else None) or request.META.get("HTTP_REFERER")
    if not url or not url_has_allowed_host_and_scheme(url, {request.get_host()}, request.is_secure()):
        return None
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _login_required_answer(view):
    """`login_required` for the answer to a match, which is a POST: a user whose session has ended is sent to
    the login page and, once logged in, back to the page they answered from (not to this POST-only URL); with
    htmx as a full-page navigation (HX-Redirect), or htmx would swap the whole login page into the match."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        back = _came_from(request) or "/"
        if request.method == "POST":
            note_action_lost(request, urlsplit(back).path)
        url = reverse("login") + "?" + urlencode({"next": back})
        if request.htmx:
            return HttpResponse(status=204, headers={"HX-Redirect": url})
        return redirect(url)

    return wrapped


@_login_required_answer
@require_POST
@writes_rate_limited
def match_interest(request, pk: int):
    match = get_object_or_404(Match.objects.select_related("need", "offer"), pk=pk)
    actor = Actor.for_user(request.user)
    side = match_side_for_actor(actor=actor, match=match)
    if side is None:
        # To anyone the match is not shown to, it is not found; the others are told why they may not answer.
        if not match_shown_to(actor=actor, match=match):
            raise Http404
        raise PermissionDenied(PROVIDER_DEACTIVATED_MESSAGE if actor.is_deactivated_provider else None)
    own_post = match.need if side == "need" else match.offer
    try:
        match = match_set_interest(actor=actor, match=match, interest=request.POST.get("interest", ""))
    except (InvalidInterest, MatchAnswerError) as error:
        # A forged answer; or withdrawn, closed or re-ranked away since the page was shown, or a connection
        # being dismissed.
        return _answer(request, match, own_post, actor, error=str(error))
    notice = (
        _("Both sides are interested: we have emailed you each other's contacts.")
        if match.became_connection
        else None
    )
    return _answer(request, match, own_post, actor, notice=notice)


def _answer(
    request, match: Match, own_post, actor: Actor, *, error: str | None = None, notice: str | None = None
):
    """With htmx, the match's item again (its new state, and the outcome said in it); otherwise back to the
    post's matches with the outcome as a message."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        elif notice:
            messages.success(request, notice)
        page = reverse("posts:detail", args=[own_post.pk])
        came_from = _came_from(request)
        # Back to the same page of the list (and filter) when the answer came from it.
        back = came_from if came_from and came_from.split("?")[0] == page else page
        # To the item answered (still listed: its new state; gone: the panel's top, where the message is).
        anchor = f"#match-{match.pk}" if match.is_active and not error else "#matches"
        return redirect(back + anchor)
    match = Match.objects.select_related("need", "offer").get(pk=match.pk)
    other = match.offer if own_post.pk == match.need_id else match.need
    context = {"match": match, "post": own_post, "error": error, "notice": notice}
    if not match.is_active or other.status != Post.Status.PUBLISHED:
        # Off the list: nothing of the other post, which may be taken back and edited, unpublished (its title
        # and wording were shown again at each click, while its page answered "not found").
        item = render_to_string("matching/_match_gone.html", context, request=request)
    else:
        match_for_display(match, own_post, actor)
        match_add_passages(post=own_post, matches=[match])
        item = render_to_string("matching/_match_item.html", context, request=request)
    # The panel's counts as they are now, put in place of the page's (out of band): "3 matches await your
    # answer" went on saying 3 after each answer.
    came_from = _came_from(request) or ""
    summary = match_summaries(posts=[own_post]).get(own_post.pk, MatchSummary())
    counts = match_counts_context(
        own_post, actor, summary, QueryDict(urlsplit(came_from).query), answered=True
    )
    counts_html = render_to_string("matching/_match_counts.html", {**counts, "oob": True}, request=request)
    return HttpResponse(item + counts_html)


@login_required
def connection_list(request):
    """The connections the user's Party or provider made, newest first: each with their own post, the other
    post and its poster, and whom to write to. One stays listed when either post is withdrawn or closed; what of
    each post is shown is `selectors.connection_sides`'s to say. `?match=<id>` opens the page that holds it."""
    actor = Actor.for_user(request.user)
    # A deactivated provider's users keep the contacts its connections gave them.
    if not actor.can_post and not actor.is_deactivated_provider:
        raise PermissionDenied(_("Only focal points and the users of support providers have connections."))
    connections = connection_list_for_actor(actor=actor)
    per_page = settings.POSTS_PAGE_SIZE
    if "match" in request.GET:
        # To the page that holds it (its page links then carry no `match`); one of another poster's, or gone, is
        # just not found there.
        number = connection_page_of(connections, request.GET["match"], per_page)
        query = f"?page={number}" if number and number > 1 else ""
        anchor = f"#connection-{int(request.GET['match'])}" if number else ""
        return redirect(reverse("matching:connections") + query + anchor)
    page = Paginator(connections, per_page).get_page(request.GET.get("page"))
    context = {"page": page, "items": connection_sides(actor=actor, matches=list(page.object_list))}
    response = render(request, "matching/connections.html", context)
    add_never_cache_headers(response)  # a new connection or a contact who left changes it
    return response
