"""Pages of the matching app: answering a match (interest or dismiss)."""

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
from .selectors import match_side_for_actor
from .services import match_set_interest


@login_required
@require_POST
def match_interest(request, pk: int):
    match = get_object_or_404(Match.objects.select_related("need", "offer"), pk=pk)
    actor = Actor.for_user(request.user)
    side = match_side_for_actor(actor=actor, match=match)
    if side is None:
        raise PermissionDenied
    own_post = match.need if side == "need" else match.offer
    if not match.is_active:
        # Withdrawn, closed or re-ranked away since the page was shown: say so on the post's page.
        messages.error(request, _("This match is no longer open."))
        return _back_to_post(request, own_post)
    try:
        match = match_set_interest(actor=actor, match=match, interest=request.POST.get("interest", ""))
    except ValueError as error:
        messages.error(request, str(error))
    else:
        if match.connected_at:
            messages.success(
                request, _("Both sides are interested: we have emailed you each other's contacts.")
            )
    if request.htmx:
        from .templatetags.matching_tags import match_panel

        panel = match_panel({"request": request}, own_post)
        item = next((m for m in panel["matches"] if m.pk == match.pk), None)
        if item is not None:
            return render(request, "matching/_match_item.html", {"match": item, "post": own_post})
    return _back_to_post(request, own_post)


def _back_to_post(request, post) -> HttpResponse:
    """To the post's matches: a redirect, or for htmx a full-page navigation (not a page swapped into the item)."""
    url = reverse("posts:detail", args=[post.pk]) + "#matches"
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return redirect(url)
