"""Pages of the matching app: answering a match (interest or dismiss)."""

from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.actors import Actor

from .models import Match
from .selectors import match_add_passages, match_side_for_actor
from .services import MatchAnswerError, match_set_interest
from .templatetags.matching_tags import match_for_display


def _login_required_htmx(view):
    """`login_required`, except that an htmx request whose session has ended is sent to the login page as a
    full-page navigation (HX-Redirect), back to the page it came from: htmx would otherwise follow the redirect
    and swap the whole login page into the match."""
    plain = login_required(view)

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.htmx and not request.user.is_authenticated:
            url = reverse("login") + "?" + urlencode({"next": request.htmx.current_url_abs_path or "/"})
            return HttpResponse(status=204, headers={"HX-Redirect": url})
        return plain(request, *args, **kwargs)

    return wrapped


@_login_required_htmx
@require_POST
def match_interest(request, pk: int):
    match = get_object_or_404(Match.objects.select_related("need", "offer"), pk=pk)
    actor = Actor.for_user(request.user)
    side = match_side_for_actor(actor=actor, match=match)
    if side is None:
        raise PermissionDenied
    own_post = match.need if side == "need" else match.offer
    try:
        match = match_set_interest(actor=actor, match=match, interest=request.POST.get("interest", ""))
    except MatchAnswerError as error:
        # Withdrawn, closed or re-ranked away since the page was shown, or a connection being dismissed.
        return _answer(request, match, own_post, actor, error=str(error))
    except ValueError as error:
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
        return redirect(reverse("posts:detail", args=[own_post.pk]) + "#matches")
    match = Match.objects.select_related("need", "offer").get(pk=match.pk)
    match_for_display(match, own_post, actor)
    if match.is_active:
        match_add_passages(post=own_post, matches=[match])
    else:
        match.side = None  # no buttons: it can no longer be answered
    context = {"match": match, "post": own_post, "error": error, "notice": notice}
    return render(request, "matching/_match_item.html", context)
