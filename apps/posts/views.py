"""Pages for needs and offers: the public list and detail, the poster's dashboard, the form and the actions.

Views stay thin: they build the Actor, call selectors and services, and turn the services' refusals into a 403
(PermissionDenied, handled by Django) or a message on the page (PostTransitionError, ValueError), never a 500.
A post the actor may not see is a 404 on every read; a post the actor may see but not manage is a 403 on every
write URL and method; an anonymous visitor of a write URL is sent to the login page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial, wraps

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from apps.accounts.actors import PROVIDER_DEACTIVATED_MESSAGE, Actor
from apps.accounts.expiry import action_lost_notice, note_action_lost
from apps.accounts.limits import anonymous_rate_limited, writes_rate_limited, writes_wait
from apps.accounts.sessions import SessionStore
from apps.matching.selectors import (
    MatchSummary,
    connection_count_for_post,
    connection_list_for_actor,
    match_awaiting_count,
    match_summaries,
)

from .filters import PostFilter
from .forms import CloseForm, PostForm
from .models import Post
from .selectors import (
    post_allowed_actions,
    post_awaiting_moderation_count,
    post_changed_since_review_count,
    post_contact_has_left,
    post_eligibility_labels,
    post_list_own,
    post_list_public,
    post_list_visible,
    post_poster_users,
    post_status_counts,
)
from .services import (
    TRANSITIONS,
    PostEditConflict,
    PostTransitionError,
    post_can_manage,
    post_close,
    post_create,
    post_recall,
    post_submit,
    post_update,
    post_withdraw,
)
from .taxonomies import Aim

Status = Post.Status
# A dashboard section's heading: the posts in that status (French agrees the participle: "Publiées").
SECTION_HEADINGS = {
    Status.DRAFT: pgettext_lazy("dashboard section", "Drafts"),
    Status.SUBMITTED: pgettext_lazy("dashboard section", "Submitted"),
    Status.PUBLISHED: pgettext_lazy("dashboard section", "Published"),
    Status.RETURNED: pgettext_lazy("dashboard section", "Returned"),
    Status.CLOSED: pgettext_lazy("dashboard section", "Closed"),
    Status.WITHDRAWN: pgettext_lazy("dashboard section", "Withdrawn"),
}
# The dashboard's order: what needs the poster's attention first.
DASHBOARD_STATUSES = (
    Status.RETURNED,
    Status.DRAFT,
    Status.SUBMITTED,
    Status.PUBLISHED,
    Status.CLOSED,
    Status.WITHDRAWN,
)
ATTENTION_STATUSES = frozenset({Status.RETURNED, Status.DRAFT})


def _wants_partial(request: HttpRequest) -> bool:
    # A history restore asks for the whole page (htmx's cache missed), like a request without htmx.
    return bool(request.htmx) and not request.htmx.history_restore_request and not request.htmx.boosted


def _label_filter_choices(form: forms.Form) -> None:
    """Name the empty choice of each facet "Any" (the defaults are dashes and "Unknown"); display only."""
    any_label = _("Any")
    for field in form.fields.values():
        if isinstance(field, forms.NullBooleanField):
            field.widget.choices = [("", any_label), ("true", _("Yes")), ("false", _("No"))]
        elif isinstance(field, forms.ModelChoiceField):
            field.empty_label = any_label
        elif isinstance(field, forms.ChoiceField):
            # django-filter's ChoiceField adds the empty choice itself, with its `empty_label`, when the
            # choices are set: set the label, then the choices again without their empty entry.
            field.empty_label = any_label
            field.choices = [choice for choice in field.choices if choice[0] != ""]
        elif isinstance(field, forms.CharField):
            field.widget.input_type = "search"


@anonymous_rate_limited
def post_list(request: HttpRequest) -> HttpResponse:
    """Published posts with search and facets; htmx swaps only the results, without JS the whole page loads."""
    filterset = PostFilter(request.GET, queryset=post_list_public())
    _label_filter_choices(filterset.form)
    page = Paginator(filterset.qs, settings.POSTS_PAGE_SIZE).get_page(request.GET.get("page"))
    partial = _wants_partial(request)
    context = {"filter": filterset, "page": page, "posts": page.object_list, "partial": partial}
    template = "posts/_results.html" if partial else "posts/list.html"
    response = render(request, template, context)
    # The same URL answers with a fragment or a page: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


def post_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = Actor.for_user(request.user)
    post = get_object_or_404(
        post_list_visible(actor=actor).select_related("owner").prefetch_related("partner_parties"), pk=pk
    )
    can_manage = post_can_manage(actor=actor, post=post)
    contact_left = actor.is_authenticated and post_contact_has_left(post)
    context = {
        "post": post,
        "can_manage": can_manage,
        "actions": post_allowed_actions(actor=actor, post=post),
        "eligible_labels": post_eligibility_labels(list(post.eligible)),
        # The aims chosen in the form were saved but shown nowhere.
        "aim_labels": [Aim(key).label for key in Aim.values if key in post.aims],
        # Contact details are for registered users only; the public reads the post without them.
        "show_contact": actor.is_authenticated,
        # Without a contact email on the post, or with the address of a person who has left, the people who
        # speak for its Party or provider: whom the connection email gives too (the owner was shown before: the
        # secretariat's staff for an import, a focal point who left, and nobody for a provider's offer made
        # through its token).
        "poster_contacts": post_poster_users(post)
        if actor.is_authenticated and (not post.contact_email or contact_left)
        else [],
        # Its managers and the secretariat are asked to change it; the others are not shown the old contact.
        "contact_left": contact_left,
        "contact_hidden": contact_left and not (can_manage or actor.is_secretariat),
        "events": post.events.select_related("actor") if can_manage else None,
        "close_form": CloseForm(),
        # Told in the close and withdraw panels: the other sides of its connections are emailed.
        "connection_count": connection_count_for_post(post=post) if can_manage else 0,
        "perms_moderate": actor.is_secretariat,
        # Its users may still withdraw or close its posts, nothing else: the page does not ask them to edit.
        "provider_deactivated": actor.is_deactivated_provider,
    }
    if actor.is_authenticated:
        action_lost_notice(request)
    response = render(request, "posts/detail.html", context)
    if actor.is_authenticated:
        # Never from the browser's cache: Back after answering a match showed its buttons as unanswered (and the
        # page holds contact details, which a shared computer's cache should not keep).
        add_never_cache_headers(response)
    return response


def _poster_of(request: HttpRequest, actor: Actor):
    """The Party or provider the logged-in poster acts for (the form and the services need the objects)."""
    user = request.user
    return (user.party if actor.party_id else None), (user.provider if actor.provider_id else None)


# What a poster typed into a post's form when their session had ended: kept in the (new, anonymous) session,
# which logging in keeps, and put back into the same form once they are logged in again.
FORM_KEPT_KEY = "posts:form-kept"
FORM_KEPT_SECONDS = 2 * 60 * 60
FORM_KEPT_MAX_BYTES = 200_000  # a full form: a 20,000-character description, escaped, and every other field


def _login_required_keeping_the_form(view):
    """`login_required` for the post form: a POST whose session has ended is not lost. What was typed is kept and
    the form, once its author has logged in again, comes back filled with it (it was empty: a focal point lost a
    whole description to a lunch break)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.method == "POST":
            author = _expired_session_user(request)
            data = request.POST.copy()
            data.pop("csrfmiddlewaretoken", None)
            kept = dict(data.lists())
            if author is not None and len(json.dumps(kept)) <= FORM_KEPT_MAX_BYTES:
                request.session[FORM_KEPT_KEY] = {
                    "path": request.path, "at": time.time(), "user": author, "data": kept
                }  # fmt: skip
                message = _("Your session had ended, so nothing was saved. Log in again: what you typed will be "
                            "back in the form.")  # fmt: skip
            else:
                message = _(
                    "Your session had ended, so nothing was saved. Log in again, then fill in the form."
                )
            messages.warning(request, message)
        return redirect_to_login(request.get_full_path())

    return wrapped


def _expired_session_user(request: HttpRequest) -> str | None:
    """The user whose session the browser's cookie names, if that session was a logged-in one that has expired
    (its row stays until `clearsessions`): only their typed form is kept, and only they get it back. Without
    this, whoever logged in next on that browser got it (another Party's focal point), and anyone could plant
    text in the next user's form, or a session row of a form's size per request."""
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key or len(key) > 40:
        return None
    row = Session.objects.filter(session_key=key).first()
    if row is None:
        return None
    user_id = SessionStore().decode(row.session_data).get(SESSION_KEY)
    return str(user_id) if user_id is not None else None


def _kept_form_data(request: HttpRequest) -> QueryDict | None:
    """The form data kept for this page when the session ended (`_login_required_keeping_the_form`), once, for
    the user who typed it."""
    kept = request.session.get(FORM_KEPT_KEY)
    if not isinstance(kept, dict) or kept.get("path") != request.path:
        return None
    del request.session[FORM_KEPT_KEY]
    if kept.get("user") != str(request.user.pk):
        return None
    if time.time() - float(kept.get("at") or 0) > FORM_KEPT_SECONDS:
        return None
    data = QueryDict(mutable=True)
    for name, values in (kept.get("data") or {}).items():
        data.setlist(name, [str(v) for v in values])
    messages.info(request, _("What you typed before your session ended is back: check it, then save."))
    return data


def _login_required_to_the_post(view):
    """`login_required` for a post's actions (POST only): a user whose session has ended goes back to the post's
    page after logging in, not to this URL (a GET of it was a bare 405 error)."""

    @wraps(view)
    def wrapped(request: HttpRequest, pk: int, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, pk, *args, **kwargs)
        detail = reverse("posts:detail", args=[pk])
        if request.method == "POST":
            note_action_lost(request, detail)
        return redirect_to_login(detail)

    return wrapped


def _submit_requested(request: HttpRequest) -> bool:
    return "save_and_submit" in request.POST


# The form holds contact details (and, after a session ended, what was typed): never kept in a browser's cache.
@never_cache
@_login_required_keeping_the_form
def post_create_view(request: HttpRequest) -> HttpResponse:
    actor = Actor.for_user(request.user)
    if not actor.can_post:
        if actor.is_deactivated_provider:
            raise PermissionDenied(PROVIDER_DEACTIVATED_MESSAGE)
        raise PermissionDenied(_("Only focal points and support providers can create posts."))
    party, provider = _poster_of(request, actor)
    if request.method == "POST":
        form = PostForm(request.POST, party=party, provider=provider)
        if (wait := writes_wait(request)) is not None:
            return _form_too_fast(request, form, {"post": None, "can_submit": True}, wait)
        if form.is_valid():
            post = post_create(actor=actor, data=form.to_post_data())
            submit = partial(post_submit, actor=actor, post=post) if _submit_requested(request) else None
            _say_saved(request, _("Your draft “%(title)s” is saved.") % {"title": post.title}, submit)
            return redirect("posts:detail", pk=post.pk)
    elif (kept := _kept_form_data(request)) is not None:
        form = PostForm(kept, party=party, provider=provider)
    else:
        kind = request.GET.get("kind")
        initial = {"kind": kind} if kind in Post.Kind.values else {}
        form = PostForm(initial=initial, party=party, provider=provider)
    return render(request, "posts/form.html", {"form": form, "post": None, "can_submit": True})


def _managed_post(request: HttpRequest, pk: int, actor: Actor, queryset: QuerySet | None = None) -> Post:
    post = get_object_or_404(queryset if queryset is not None else Post.objects.all(), pk=pk)
    if not post_can_manage(actor=actor, post=post):
        # Another Party's draft or submitted post is not found, as on its page: a 403 would tell that it exists.
        if not post_list_visible(actor=actor).filter(pk=post.pk).exists():
            raise Http404
        raise PermissionDenied(_("You may only act on your own Party's or organisation's posts."))
    return post


@never_cache
@_login_required_keeping_the_form
def post_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
    actor = Actor.for_user(request.user)
    post = _managed_post(request, pk, actor, Post.objects.with_related().prefetch_related("partner_parties"))
    actions = post_allowed_actions(actor=actor, post=post)
    if "edit" not in actions:
        if post.status in TRANSITIONS["edit"] and actor.is_deactivated_provider:
            messages.error(request, str(PROVIDER_DEACTIVATED_MESSAGE))  # the status is not what stops it
        else:
            messages.error(request, str(PostTransitionError("edit", post.status)))
        return redirect("posts:detail", pk=post.pk)
    # Editing never moves a post to another poster: the form validates against the post's own.
    if request.method == "POST":
        form = PostForm(request.POST, party=post.party, provider=post.provider)
        if (wait := writes_wait(request)) is not None:
            return _form_too_fast(request, form, {"post": post, "can_submit": "submit" in actions}, wait)
        if form.is_valid():
            try:
                post_update(
                    actor=actor, post=post, data=form.to_post_data(), opened_at=form.cleaned_data["opened_at"]
                )
            except (PostTransitionError, ValueError) as error:
                messages.error(request, str(error))
                return redirect("posts:detail", pk=post.pk)
            except PostEditConflict as conflict:
                # The form comes back with what the editor typed (nothing is lost) and what the other change
                # made to the fields they left alone (saving again put the old values back), now carrying the
                # post's latest time: saving again, after a look at the post, is a deliberate choice.
                current = (
                    Post.objects.with_related().prefetch_related("partner_parties").get(pk=conflict.post.pk)
                )
                data, taken, both = form.merge_conflict(current)
                form = PostForm(data, party=post.party, provider=post.provider)
                form.is_valid()
                form.add_error(None, str(conflict))
                for name in both:
                    message = _("Changed meanwhile too: yours is kept here. Compare it with the post as it is now "
                                "before saving.")  # fmt: skip
                    form.add_error(name, message)
                context = {
                    "form": form,
                    "post": post,
                    "can_submit": "submit" in actions,
                    "conflict": True,
                    "taken_labels": [form.fields[name].label for name in taken],
                }
                return render(request, "posts/form.html", context, status=409)
            submit = (
                partial(post_submit, actor=actor, post=post)
                if _submit_requested(request) and "submit" in actions
                else None
            )
            _say_saved(request, _("Your changes are saved."), submit)
            return redirect("posts:detail", pk=post.pk)
    elif (kept := _kept_form_data(request)) is not None:
        # Bound as typed, with the time the form was first opened: a change made meanwhile is still a conflict
        # when it is saved.
        form = PostForm(kept, party=post.party, provider=post.provider)
    else:
        form = PostForm(initial=PostForm.initial_for(post), party=post.party, provider=post.provider)
    context = {"form": form, "post": post, "can_submit": "submit" in actions}
    return render(request, "posts/form.html", context)


_SUCCESS = {  # lazy: in the language of the request that shows them, not of the import
    "submit": gettext_lazy(
        "Submitted to the secretariat for review. Everyone will see it in the list of posts once it is published."
    ),
    "recall": gettext_lazy("The post is back in your drafts: edit it, then submit it again."),
    "withdraw": gettext_lazy("The post is withdrawn. It is no longer shown or matched."),
    "close": gettext_lazy("The post is closed. Thank you for recording the outcome."),
}


def _form_too_fast(request: HttpRequest, form: PostForm, context: dict, seconds: int) -> HttpResponse:
    """The post's form again, as it was sent, when its user has spent their changes (`SITE_THROTTLE_WRITES`):
    nothing is saved, nothing typed is lost, and it still carries the time it was first opened (a page of its own
    sent them back to a form fetched afresh, whose save would undo a change made meanwhile)."""
    form.is_valid()
    form.add_error(
        None,
        ngettext(
            "You have sent many changes in a short time: nothing was saved. Wait %(seconds)d second, then save "
            "again.",
            "You have sent many changes in a short time: nothing was saved. Wait %(seconds)d seconds, then save "
            "again.",
            seconds,
        )
        % {"seconds": seconds},
    )
    response = render(request, "posts/form.html", {"form": form, **context}, status=429)
    response["Retry-After"] = str(seconds)
    return response


def _say_saved(request: HttpRequest, saved: str, submit: Callable[[], object] | None) -> None:
    """After a save: say so; with "Save and submit", submit too and say both in one message (or that it is saved,
    and why the submission was refused). It said "Your draft is saved" of a post no longer a draft."""
    if submit is not None:
        try:
            submit()
        except (PostTransitionError, ValueError) as error:
            messages.success(request, saved)
            messages.error(request, str(error))
            return
        messages.success(request, str(_SAVED_AND_SUBMITTED))
        return
    messages.success(request, saved)


_SAVED_AND_SUBMITTED = gettext_lazy(
    "Saved and submitted to the secretariat for review. Everyone will see it in the list of posts once it is "
    "published."
)


def _run_action(request: HttpRequest, action: Callable[[], object], success: str) -> bool:
    """Run a service call; a refused transition or a missing value becomes a message, not an error page."""
    try:
        action()
    except (PostTransitionError, ValueError) as error:
        messages.error(request, str(error))
        return False
    messages.success(request, str(success))
    return True


def _post_action_view(
    action: str, service: Callable[..., Post]
) -> Callable[[HttpRequest, int], HttpResponse]:
    """The view of a life-cycle step that takes nothing but the click (submit, take back, withdraw): POST only,
    for the post's managers; a refusal is a message on the post's page, as is the success."""

    @_login_required_to_the_post
    @require_POST
    @writes_rate_limited
    def view(request: HttpRequest, pk: int) -> HttpResponse:
        actor = Actor.for_user(request.user)
        post = _managed_post(request, pk, actor)
        _run_action(request, lambda: service(actor=actor, post=post), _SUCCESS[action])
        return redirect("posts:detail", pk=post.pk)

    view.__name__ = view.__qualname__ = f"post_{action}_view"
    return view


post_submit_view = _post_action_view("submit", post_submit)
post_recall_view = _post_action_view("recall", post_recall)
post_withdraw_view = _post_action_view("withdraw", post_withdraw)


@_login_required_to_the_post
@writes_rate_limited
def post_close_view(request: HttpRequest, pk: int) -> HttpResponse:
    """GET shows the outcome form (also the fallback when the detail page's form had an error); POST closes."""
    actor = Actor.for_user(request.user)
    post = _managed_post(request, pk, actor)
    if "close" not in post_allowed_actions(actor=actor, post=post):
        messages.error(request, str(PostTransitionError("close", post.status)))
        return redirect("posts:detail", pk=post.pk)
    form = CloseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = form.cleaned_data["outcome"]
        _run_action(request, lambda: post_close(actor=actor, post=post, outcome=outcome), _SUCCESS["close"])
        return redirect("posts:detail", pk=post.pk)
    return render(request, "posts/close.html", {"post": post, "form": form})


def _page_with_count(queryset: QuerySet, count: int, number: str | None) -> Page:
    """A page of `queryset` whose total is already known (from the status counts): no COUNT query per section."""
    paginator = Paginator(queryset, settings.POSTS_PAGE_SIZE)
    paginator.__dict__["count"] = count  # `count` is a cached_property; seed it.
    return paginator.get_page(number)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """A poster's posts grouped by status, what needs attention first; other roles get their starting points."""
    actor = Actor.for_user(request.user)
    # A deactivated provider's users still see its posts, to withdraw or close them.
    if not actor.can_post and not actor.is_deactivated_provider:
        awaiting = post_awaiting_moderation_count() if actor.is_secretariat else None
        changed = post_changed_since_review_count() if actor.is_secretariat else None
        return render(
            request, "posts/dashboard_other.html", {"actor": actor, "awaiting": awaiting, "changed": changed}
        )
    counts = post_status_counts(actor=actor)
    # The dashboard lists titles and dates only: no facet prefetch.
    own = (
        post_list_own(actor=actor).prefetch_related(None).select_related(None).order_by("-updated_at", "-pk")
    )
    sections = []
    for status in DASHBOARD_STATUSES:
        count = counts.get(status, 0)
        if not count:
            continue
        page_param = f"{status}_page"
        page = _page_with_count(own.filter(status=status), count, request.GET.get(page_param))
        if status == Status.PUBLISHED:
            # What each published post has in its matches list: one query per kind, for this page only.
            summaries = match_summaries(posts=page.object_list)
            for post in page.object_list:
                post.match_summary = summaries.get(post.pk, MatchSummary())
        sections.append(
            {
                "status": status,
                "label": SECTION_HEADINGS[status],
                "count": count,
                "page": page,
                "page_param": page_param,
                # Nothing to finish for a deactivated provider, which can no longer submit.
                "attention": status in ATTENTION_STATUSES and actor.can_post,
            }
        )
    poster_name = request.user.party.local_name if actor.party_id else request.user.provider.name
    context = {
        "sections": sections,
        "counts": counts,
        "total": sum(counts.values()),
        "attention_count": sum(counts.get(s, 0) for s in ATTENTION_STATUSES) if actor.can_post else 0,
        "awaiting_count": match_awaiting_count(actor=actor) if counts.get(Status.PUBLISHED) else 0,
        "connection_count": connection_list_for_actor(actor=actor).count() if counts else 0,
        "poster_name": poster_name,
        "can_post_needs": actor.party_id is not None,
        "provider_deactivated": actor.is_deactivated_provider,
    }
    response = render(request, "posts/dashboard.html", context)
    add_never_cache_headers(response)  # its match counts change with each answer (Back showed them stale)
    return response
