"""The secretariat's admin for posts: the moderation queue, content fixes, and the full history of each post.

Every write goes through `posts.services`, never `Model.save()`, so the audit trail and the matching queue
cannot be bypassed from here either:

- Moderation is done with the *publish* and *return with reason* actions (on the list, for several posts at
  once) and the matching buttons on a submitted post's page; they call `post_publish` / `post_return`, and a
  refused transition (publishing a draft...) comes back as an admin message, never a 500.
- The change form edits content only while the life cycle allows an edit (draft, returned, published);
  `save_model` turns the form into a `PostData` and calls `post_update`, and `save_related` does not touch
  the many-to-many fields itself (the service sets them and records them in the history). Status, timestamps,
  owner, reason and outcome are always read-only: they change only through the life cycle.
- Posts are never hard-deleted (no delete permission, no delete action), and nobody adds one here: posts are
  made by their Party or provider, or imported with `manage.py import_posts`.

Access follows the platform's roles (see `apps.parties.admin.SecretariatAdminMixin`).
"""

from __future__ import annotations

from collections.abc import Iterable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from apps.accounts.actors import Actor
from apps.accounts.models import Role
from apps.parties.admin import PresenceFilter, SecretariatAdminMixin, is_secretariat_staff
from apps.parties.models import NAME_FIELDS as PARTY_NAME_FIELDS

from .folding import search_fold
from .forms import OpenedAtField, VisibleTextField
from .languages import form_language_mismatch
from .models import FocusAreaTerm, InstrumentTerm, Post, PostEvent, SectorTerm, SupportTypeTerm
from .post_data import DECLARATIONS, PostData, ReferenceData, post_rules_errors
from .selectors import post_changed_since_review_count, post_eligibility_labels
from .services import (
    TRANSITIONS,
    PostEditConflict,
    PostTransitionError,
    post_mark_reviewed,
    post_publish,
    post_require_provider_takes_posts,
    post_return,
    post_update,
)
from .taxonomies import POST_LANGUAGES, Aim, FinanceInstrument, FocusArea, Sector, SupportType
from .templatetags.post_tags import language_name, usd

# --- taxonomy terms: reference keys fixed by docs/FORMATS.md, so view-only ----------------------------------


class TermInUseFilter(PresenceFilter):
    title = _("in use")
    parameter_name = "in_use"
    lookup = "posts"
    yes_label = _("Used by at least one post")
    no_label = _("Not used yet")


class TaxonomyTermAdmin(SecretariatAdminMixin, admin.ModelAdmin):
    """The keys are a contract with importers and the API, and their labels live in code to be translated."""

    list_display = ("key", "label", "position", "post_count")
    list_filter = (TermInUseFilter,)
    search_fields = ("key",)
    ordering = ("position",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_posts=Count("posts"))

    @admin.display(description=_("posts"), ordering="n_posts")
    def post_count(self, obj) -> int:
        return obj.n_posts

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


for _term_model in (SupportTypeTerm, FocusAreaTerm, SectorTerm, InstrumentTerm):
    admin.site.register(_term_model, TaxonomyTermAdmin)


# --- history ------------------------------------------------------------------------------------------------


# The history's change keys that hold Party or provider ids.
_PARTY_CHANGES = ("party_id", "party", "partner_parties")
_PROVIDER_CHANGES = ("provider_id", "provider")


def _posters_named(events_changes: Iterable[dict]) -> tuple[dict, dict]:
    """The Parties and providers (by id) that these history entries' changes name, in two queries at most."""
    from apps.parties.models import Party, SupportProvider

    party_ids, provider_ids = set(), set()
    for changes in events_changes:
        for name, pair in (changes or {}).items():
            values = [
                v for side in pair for v in (side if isinstance(side, list) else [side]) if isinstance(v, int)
            ]
            if name in _PARTY_CHANGES:
                party_ids.update(values)
            elif name in _PROVIDER_CHANGES:
                provider_ids.update(values)
    parties = Party.objects.in_bulk(party_ids) if party_ids else {}
    providers = SupportProvider.objects.in_bulk(provider_ids) if provider_ids else {}
    return parties, providers


def _changes_summary(event: PostEvent, *, limit: int | None = 80, named: tuple[dict, dict] | None = None):
    """`field: old → new` lines for an event's changes, fields by their names and Parties and providers by theirs
    (the history stores their ids); texts longer than `limit` shortened (None: in full, as on an entry's own
    page). `named`: the Parties and providers it may name (`_posters_named`), read for several entries at once."""
    if not event.changes:
        return "—"
    parties, providers = named if named is not None else _posters_named([event.changes])
    # Keys of the taxonomies and codes, by the names the form shows (a key that is no longer one, as it is).
    labels = {
        "support_types": dict(SupportType.choices),
        "focus_areas": dict(FocusArea.choices),
        "sectors": dict(Sector.choices),
        "instruments": dict(FinanceInstrument.choices),
        "aims": dict(Aim.choices),
        "language": dict(POST_LANGUAGES),
        "kind": dict(Post.Kind.choices),
    }

    def shown(name: str, value) -> str:
        if value is None or value == "" or value == []:
            return "—"
        table = parties if name in _PARTY_CHANGES else providers if name in _PROVIDER_CHANGES else None
        if table is not None:
            items = value if isinstance(value, list) else [value]
            return ", ".join(str(table[v]) if v in table else str(v) for v in items)
        if isinstance(value, bool):
            return gettext("yes") if value else gettext("no")
        if name in labels:
            items = value if isinstance(value, list) else [value]
            return ", ".join(str(labels[name].get(v, v)) for v in items)
        if isinstance(value, list):
            return ", ".join(map(str, value))
        return str(value)

    def label(name: str) -> str:
        field_name = name.removesuffix("_id")
        try:
            return str(Post._meta.get_field(field_name).verbose_name)
        except FieldDoesNotExist:
            return name.replace("_", " ")

    # One line per field, written as the admin's language writes a colon (French: a no-break space before it).
    line = gettext("%(field)s: %(old)s → %(new)s")
    lines = []
    for name, (old, new) in event.changes.items():
        before, after = _from_first_difference(shown(name, old), shown(name, new), limit)
        lines.append(line % {"field": escape(label(name)), "old": escape(before), "new": escape(after)})
    return mark_safe("<br>".join(lines))


# Characters kept before a long text's first change, so that it is read in its sentence.
_CHANGE_CONTEXT = 30


def _from_first_difference(old: str, new: str, limit: int | None) -> tuple[str, str]:
    """Two versions of a text, each shortened to `limit` characters (None: whole). A long text is shown from a
    little before the first character that differs: cut at its start, an edit past the limit showed the same
    words on both sides ("a sentence added to the description" read as no change at all)."""
    if limit is None or (len(old) <= limit and len(new) <= limit):
        return old, new
    first = next(
        (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new))
    )
    start = max(0, first - _CHANGE_CONTEXT)
    if start and (space := old.rfind(" ", 0, start + 1)) > start - _CHANGE_CONTEXT // 2:
        start = space + 1  # from a word's start, where there is one near

    def cut(text: str) -> str:
        part = text[start:]
        part = part if len(part) <= limit else part[: limit - 1] + "…"
        return ("…" + part) if start else part

    return cut(old), cut(new)


class ReadOnlyMixin:
    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PostEventInline(ReadOnlyMixin, admin.TabularInline):
    """The post's full history on its page, oldest first so it reads as a story."""

    model = PostEvent
    fields = ("created_at", "action", "from_status", "to_status", "actor_label", "changes_summary", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False
    # To the entry's own page, which gives its changed texts whole.
    show_change_link = True
    verbose_name_plural = _("History (every change, who made it and when)")

    def has_view_permission(self, request, obj=None) -> bool:
        return is_secretariat_staff(request)

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("created_at", "id")

    @admin.display(description=_("changes"))
    def changes_summary(self, obj: PostEvent):
        # The Parties and providers the whole history names, read once for the page (an inline is made afresh
        # for each request), not once an entry.
        named = getattr(self, "_named", None)
        if named is None or named[0] != obj.post_id:
            changes = (
                PostEvent.objects.filter(post_id=obj.post_id)
                .exclude(changes={})
                .values_list("changes", flat=True)
            )
            named = self._named = (obj.post_id, _posters_named(changes))
        return _changes_summary(obj, named=named[1])


@admin.register(PostEvent)
class PostEventAdmin(ReadOnlyMixin, SecretariatAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "post_link", "action", "from_status", "to_status", "actor_label", "note")
    list_filter = ("action", "to_status", "post__kind", "created_at")
    search_fields = ("post__title", "post__external_id", "actor_label", "note")
    list_select_related = ("post",)
    fields = (
        "created_at",
        "post_link",
        "action",
        "from_status",
        "to_status",
        "actor_account",
        "actor_label",
        "acting_as",
        "changes_summary",
        "note",
    )
    readonly_fields = fields
    # The history table grows without bound; an exact total count on every page view is not worth a scan.
    show_full_result_count = False

    # Both the account and the name kept as text are "actor" on the model: told apart here.
    @admin.display(description=_("actor's account"))
    def actor_account(self, obj: PostEvent):
        if obj.actor is None:
            return "—"
        url = reverse("admin:accounts_user_change", args=[obj.actor_id])
        return format_html('<a href="{}">{}</a>', url, obj.actor)

    @admin.display(description=_("acting as"))
    def acting_as(self, obj: PostEvent):
        """The role the entry was made in (not recorded before entries kept it)."""
        return Role(obj.actor_role).label if obj.actor_role in Role.values else "—"

    @admin.display(description=_("post"), ordering="post__title")
    def post_link(self, obj: PostEvent):
        url = reverse("admin:posts_post_change", args=[obj.post_id])
        return format_html('<a href="{}">{}</a>', url, obj.post.title)

    @admin.display(description=_("changes"))
    def changes_summary(self, obj: PostEvent):
        return _changes_summary(obj, limit=None)  # the entry's own page: the texts as they were, in full


# --- posts --------------------------------------------------------------------------------------------------


def titled_boolean_filter(title) -> type[admin.BooleanFieldListFilter]:
    """A yes/no filter titled by a noun phrase: the admin writes "By <title>", which a field named by a sentence
    ("Indigenous Peoples and local communities take part") made unreadable, in French above all."""

    class TitledBooleanFilter(admin.BooleanFieldListFilter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = title

    return TitledBooleanFilter


class LanguageFilter(admin.SimpleListFilter):
    """The languages posts are written in, by name (the field stores ISO codes)."""

    title = _("language")
    parameter_name = "language"

    def lookups(self, request, model_admin):
        used = set(Post.objects.order_by().values_list("language", flat=True).distinct())
        return [(code, label) for code, label in POST_LANGUAGES if code in used]

    def queryset(self, request, queryset):
        return queryset.filter(language=self.value()) if self.value() else queryset


class ModerationQueueFilter(admin.SimpleListFilter):
    """The secretariat's work list: submitted posts, oldest first (see PostAdmin.get_ordering)."""

    title = _("moderation")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [
            ("submitted", _("Awaiting moderation (oldest first)")),
            ("changed", _("Published, changed by their posters since review (oldest first)")),
        ]

    def queryset(self, request, queryset):
        if self.value() == "submitted":
            return queryset.filter(status=Post.Status.SUBMITTED)
        if self.value() == "changed":
            return queryset.filter(changed_since_review_at__isnull=False)
        return queryset


class DeclarationsFilter(admin.SimpleListFilter):
    """The posts that make every Article 6.8 declaration, or not: what a moderator reads before publishing."""

    title = _("Article 6.8 declarations")
    parameter_name = "declarations"

    def lookups(self, request, model_admin):
        return [("all", _("All made")), ("missing", _("Some not made"))]

    def queryset(self, request, queryset):
        every = Q(**{f"declares_{key}": True for key in DECLARATIONS})
        if self.value() == "all":
            return queryset.filter(every)
        if self.value() == "missing":
            return queryset.exclude(every)
        return queryset


def _day_cell(moment) -> str:
    """A time as its day in the site's time zone (YYYY-MM-DD, as the site writes dates), the whole time in its
    `title` and `datetime`; "—" for none."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        local.strftime("%Y-%m-%d %H:%M %Z"),
        local.strftime("%Y-%m-%d"),
    )


def _in_queue(request: HttpRequest) -> bool:
    return (
        request.GET.get(ModerationQueueFilter.parameter_name) == "submitted"
        or request.GET.get("status__exact") == Post.Status.SUBMITTED
    )


def _in_changed(request: HttpRequest) -> bool:
    return request.GET.get(ModerationQueueFilter.parameter_name) == "changed"


CONTENT_FIELDS = (
    "kind",
    "party",
    "provider",
    "title",
    "description",
    "language",
    "support_types",
    "focus_areas",
    "sectors",
    "instruments",
    "amount_usd",
    "eligible",
    "aims",
    "partner_parties",
    "involves_iplc",
    *(f"declares_{key}" for key in DECLARATIONS),
    "contact_name",
    "contact_email",
)
LIFE_CYCLE_FIELDS = (
    "status",
    "external_id",
    "owner",
    "return_reason",
    "outcome",
    "created_at",
    "updated_at",
    "submitted_at",
    "published_at",
    "returned_at",
    "closed_at",
    "withdrawn_at",
    "changed_since_review_at",
    "matching_pending",
)


class EligibleField(forms.CharField):
    """The stored list (`["KEN", "LDC"]`) typed as comma-separated text.

    The form's initial value is the list and what comes back is text: compared as they are, an unchanged
    field always looked changed (a "changed" history entry and admin log for a save that changed nothing).
    """

    @staticmethod
    def entries(value) -> list[str]:
        items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
        return [item.strip().casefold() for item in items if item and item.strip()]

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return value

    def has_changed(self, initial, data) -> bool:
        if self.disabled:
            return False
        return self.entries(initial) != self.entries(data)


class PostAdminForm(forms.ModelForm):
    """The content a secretariat may fix; validated with the same cross-field rules as the import and the
    web form, then saved by `post_update`."""

    language = forms.ChoiceField(label=capfirst(_("language")), choices=POST_LANGUAGES)
    aims = forms.MultipleChoiceField(
        label=capfirst(_("aims of Article 6.8")),
        choices=Aim.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    eligible = EligibleField(
        label=capfirst(_("eligible Parties and groups")),
        required=False,
        help_text=_(
            "Offers only. ISO3 codes and group names (LDC, SIDS, a UN regional group), separated by commas; "
            "empty means every Party."
        ),
    )

    # When the post was last changed as this form was filled (see the web form's field of the same name).
    opened_at = OpenedAtField()

    class Meta:
        model = Post
        fields = CONTENT_FIELDS
        # Text that shows nothing (zero-width or format characters only) is empty, as on the site and the API.
        field_classes = {"title": VisibleTextField, "description": VisibleTextField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "opened_at" in self.fields:
            self.fields["opened_at"].initial = self.instance.updated_at

    def clean_eligible(self) -> list[str]:
        refs = ReferenceData()
        keys: list[str] = []
        for value in filter(None, (v.strip() for v in self.cleaned_data["eligible"].split(","))):
            key = refs.eligibility_key(value)
            if key is None:
                raise forms.ValidationError(
                    gettext("Unknown Party code or group %(value)s."), params={"value": repr(value)}
                )
            if key not in keys:
                keys.append(key)
        return keys

    def clean(self):
        cleaned = super().clean()
        if "kind" not in self.fields:
            return cleaned
        opened_at = cleaned.get("opened_at")
        if self.instance.pk is not None and opened_at is not None and opened_at != self.instance.updated_at:
            # Another admin, the poster or an import changed the post since this form was filled: saving it
            # would put their values back without a word. The form shown again carries the post's latest time,
            # so that saving it again (after a look at the post) goes through.
            self.data = self.data.copy()
            self.data["opened_at"] = self.instance.updated_at.isoformat()
            raise forms.ValidationError(str(PostEditConflict(self.instance, getattr(self, "actor", None))))
        for error in post_rules_errors(
            kind=cleaned.get("kind"),
            party=cleaned.get("party"),
            provider=cleaned.get("provider"),
            eligible=cleaned.get("eligible") or [],
            instruments=[t.key for t in cleaned.get("instruments") or []],
            partner_parties=list(cleaned.get("partner_parties") or []),
        ):
            self.add_error(error.field if error.field in self.fields else None, error.message)
        try:
            post_require_provider_takes_posts(
                cleaned.get("provider"), self.instance if self.instance.pk is not None else None
            )
        except PermissionDenied as error:
            self.add_error("provider", str(error))
        mismatch = form_language_mismatch(cleaned)
        if mismatch and "language" in self.fields:
            self.add_error("language", mismatch)
        return cleaned

    def to_post_data(self) -> PostData:
        cleaned = self.cleaned_data
        return PostData(
            kind=cleaned["kind"],
            title=cleaned["title"],
            description=cleaned["description"],
            support_types=[t.key for t in cleaned["support_types"]],
            focus_areas=[t.key for t in cleaned["focus_areas"]],
            party=cleaned.get("party"),
            provider=cleaned.get("provider"),
            sectors=[t.key for t in cleaned.get("sectors") or []],
            instruments=[t.key for t in cleaned.get("instruments") or []],
            language=cleaned["language"],
            amount_usd=cleaned.get("amount_usd"),
            eligible=cleaned.get("eligible") or [],
            aims=cleaned.get("aims") or [],
            partner_parties=list(cleaned.get("partner_parties") or []),
            involves_iplc=cleaned.get("involves_iplc", False),
            declarations={key: bool(cleaned.get(f"declares_{key}")) for key in DECLARATIONS},
            contact_name=cleaned.get("contact_name", ""),
            contact_email=cleaned.get("contact_email", ""),
            external_id=self.instance.external_id,
        )


class ReturnReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for returning (the owner sees it and edits the post accordingly)"),
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        max_length=5000,
    )


@admin.register(Post)
class PostAdmin(SecretariatAdminMixin, admin.ModelAdmin):
    form = PostAdminForm
    change_list_template = "admin/posts/post/change_list.html"
    change_form_template = "admin/posts/post/change_form.html"
    list_display = ("title", "kind", "status", "poster_code", "language_name", "submitted_on", "published_on")
    list_filter = (
        ModerationQueueFilter,
        "status",
        "kind",
        "party__regional_group",
        "party__is_ldc",
        "party__is_sids",
        "support_types",
        "focus_areas",
        LanguageFilter,
        DeclarationsFilter,
        ("involves_iplc", titled_boolean_filter(_("Indigenous Peoples and local communities"))),
        ("matching_pending", titled_boolean_filter(_("matching pending"))),
    )
    search_fields = (
        "title",
        "external_id",
        "party__iso3",
        *(f"party__{field}" for field in PARTY_NAME_FIELDS),
        "provider__short_name",
        "provider__name",
        # The posts that name a person (one who left, or asked to be erased, or to see what is held on them).
        "contact_name",
        "contact_email",
    )
    list_select_related = ("party", "provider")
    autocomplete_fields = ("party", "provider", "partner_parties")
    actions = ("publish_selected", "return_selected", "mark_reviewed_selected")

    def get_queryset(self, request):
        # Not the search text (a second copy of title and description) for every row.
        return super().get_queryset(request).defer("search_text")

    def get_search_results(self, request, queryset, search_term):
        """Also the posts whose title or description holds the term as the site's search reads them (`precoce`
        finds « Alerte précoce »): the admin's own lookups compare accents as typed."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        folded = search_fold(search_term.strip())
        if folded:
            found = found | queryset.filter(search_text__contains=folded)
        return found, may_have_duplicates

    inlines = (PostEventInline,)
    fieldsets = (
        (None, {"fields": ("kind", "party", "provider", "title", "description", "language", "opened_at")}),
        (
            _("Taxonomy"),
            {"fields": ("support_types", "focus_areas", "sectors", "instruments", "aims")},
        ),
        (_("Amount and eligibility"), {"fields": ("amount_usd", "eligible", "partner_parties")}),
        (
            _("Article 6.8 declarations"),
            {"fields": ("involves_iplc", *(f"declares_{key}" for key in DECLARATIONS))},
        ),
        (_("Contact"), {"fields": ("contact_name", "contact_email")}),
        (_("Life cycle"), {"fields": LIFE_CYCLE_FIELDS}),
    )

    # --- permissions: no adding, no deleting -------------------------------------------------------------

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # --- list -------------------------------------------------------------------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        # Who fills it: an edit conflict with their own change from another tab says so (PostEditConflict).
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": Actor.for_user(request.user)})

    def get_list_display(self, request):
        # The list of changed posts shows what it is ordered by: since when each has waited for review.
        if _in_changed(request):
            return (*self.list_display[:-2], "published_at", "changed_since_review_at")
        return self.list_display

    def get_ordering(self, request):
        if _in_queue(request):
            return ("submitted_at", "id")
        if _in_changed(request):
            return ("changed_since_review_at", "id")
        return super().get_ordering(request)

    @admin.display(description=_("language"), ordering="language")
    def language_name(self, obj: Post) -> str:
        return language_name(obj.language)

    # Days in the list, the time on hover: a date and a time each took a wide column, and at 1280 px the list
    # scrolled sideways with "Published at" out of sight.
    @admin.display(description=_("submitted on"), ordering="submitted_at")
    def submitted_on(self, obj: Post) -> str:
        return _day_cell(obj.submitted_at)

    @admin.display(description=_("published on"), ordering="published_at")
    def published_on(self, obj: Post) -> str:
        return _day_cell(obj.published_at)

    @admin.display(description=_("Party or provider"), ordering="party__iso3")
    def poster_code(self, obj: Post) -> str:
        return obj.party.iso3 if obj.party_id else obj.provider.short_name

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "queue_count": Post.objects.filter(status=Post.Status.SUBMITTED).count(),
            "queue_param": ModerationQueueFilter.parameter_name,
            "in_queue": _in_queue(request),
            "changed_count": post_changed_since_review_count(),
            "in_changed": _in_changed(request),
            "shown_at": timezone.now().isoformat(),
        }
        return super().changelist_view(request, extra_context)

    # --- change form: content only while editable, saved through post_update ---------------------------

    # Read only (a post being moderated, closed or withdrawn), these fields are shown as the site shows them
    # (USD 1,250,000; English; the aims' and groups' names), not as the database holds them (1250000.00; en;
    # ["ambition"]).
    SHOWN = {
        "amount_usd": "amount_shown",
        "language": "language_shown",
        "aims": "aims_shown",
        "eligible": "eligible_shown",
    }

    def get_readonly_fields(self, request, obj=None):
        if obj is None or obj.status not in TRANSITIONS["edit"]:
            return (*(self.SHOWN.get(f, f) for f in CONTENT_FIELDS), *LIFE_CYCLE_FIELDS)
        return LIFE_CYCLE_FIELDS

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if "amount_shown" not in self.get_readonly_fields(request, obj):
            return fieldsets
        return [
            (name, {**options, "fields": tuple(self.SHOWN.get(f, f) for f in options["fields"])})
            for name, options in fieldsets
        ]

    @admin.display(description=Post._meta.get_field("amount_usd").verbose_name)
    def amount_shown(self, obj: Post) -> str:
        return usd(obj.amount_usd) or "—"

    @admin.display(description=capfirst(_("language")))
    def language_shown(self, obj: Post) -> str:
        return language_name(obj.language)

    @admin.display(description=capfirst(_("aims of Article 6.8")))
    def aims_shown(self, obj: Post) -> str:
        labels = dict(Aim.choices)
        return ", ".join(str(labels.get(aim, aim)) for aim in obj.aims) or "—"

    @admin.display(description=capfirst(_("eligible Parties and groups")))
    def eligible_shown(self, obj: Post) -> str:
        if obj.kind != Post.Kind.OFFER:
            return "—"
        return ", ".join(post_eligibility_labels(list(obj.eligible))) or gettext("Every Party")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in ("title", "description") and field is not None:
            field.widget.attrs["dir"] = "auto"  # right-to-left text typed and shown as such
        return field

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name in ("support_types", "focus_areas", "sectors", "instruments"):
            kwargs["widget"] = forms.CheckboxSelectMultiple
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj: Post, form: PostAdminForm, change: bool) -> None:
        if not change or not form.has_changed() or "kind" not in form.fields:
            return
        # post_update re-reads the row under a lock and applies the data; `obj` (already mutated by the form)
        # is only used afterwards by the admin for its message and log entry.
        post_update(actor=Actor.for_user(request.user), post=obj, data=form.to_post_data())

    def save_related(self, request, form, formsets, change) -> None:
        # Deliberately saves nothing: post_update already set the many-to-many fields (and recorded them in
        # the history), and the only inline, the history, is read-only. The admin's change message still
        # reads what each formset saved, so say "nothing".
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        post = self.get_object(request, object_id) if object_id else None
        extra_context = {
            **(extra_context or {}),
            "can_moderate": False,
            "can_take_back": False,
            # When the page was shown: its Publish and Return refuse a post submitted again since (`_seen_at`).
            "seen_at": timezone.now().isoformat(),
        }
        if post is not None:
            can_change = self.has_change_permission(request, post)
            extra_context["can_moderate"] = post.status == Post.Status.SUBMITTED and can_change
            # A publication can be taken back: returned to its owner with the reason (`post_return`).
            extra_context["can_take_back"] = post.status == Post.Status.PUBLISHED and can_change
            if post.status not in TRANSITIONS["edit"]:
                # Nothing on the form is editable (see get_readonly_fields): offer no Save button, and call
                # the page what it is.
                extra_context.update(
                    show_save=False,
                    show_save_and_continue=False,
                    title=gettext("View %s") % self.opts.verbose_name,
                )
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except PostTransitionError as error:
            # The post moved on (e.g. its owner submitted it) while the form was open: nothing was saved.
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # --- moderation: list actions, and buttons on a submitted post's page --------------------------------

    def _moderate(self, request, posts, call) -> int:
        """Apply one service call to each post; report each refusal as a message. Returns the successes."""
        done = 0
        actor = Actor.for_user(request.user)
        for post in posts:
            try:
                moderated = call(actor, post)
            except (PostTransitionError, PermissionDenied, ValueError) as error:
                message = gettext("“%(title)s”: %(error)s") % {"title": post.title, "error": error}
                self.message_user(request, message, messages.ERROR)
            else:
                done += 1
                # In the admin's own history ("Recent actions", the post's History button) too, not only in the
                # post's history below the form.
                if moderated.status == Post.Status.RETURNED and post.status == Post.Status.PUBLISHED:
                    message = gettext("Publication taken back; returned to its owner: %(reason)s") % {
                        "reason": moderated.return_reason
                    }
                elif moderated.status == Post.Status.RETURNED:
                    message = gettext("Returned to its owner: %(reason)s") % {
                        "reason": moderated.return_reason
                    }
                else:
                    message = gettext("Published.")
                self.log_change(request, moderated, message)
        return done

    def _seen_at(self, request, name: str):
        """When the page the secretariat decides from was shown (a hidden field, or a parameter: `name`), or None
        after saying to show it again (a form of another page, or of an older version)."""
        try:
            seen_at = parse_datetime(request.POST.get(name) or request.GET.get(name) or "")
        except ValueError:  # well formed, but no such time (month 13)
            seen_at = None
        if seen_at is None or timezone.is_naive(seen_at):
            message = (
                gettext("Show the list again, then decide.")
                if name == "shown_at"
                else gettext("Show the page again, then decide.")
            )
            self.message_user(request, message, messages.ERROR)
            return None
        return seen_at

    def _gone_from_the_list(self, request, queryset) -> None:
        """Say so when selected posts are no longer in the list the action runs on (the queue's filter: taken
        back by their posters, or decided by someone else since the list was shown): the action skips them."""
        if request.POST.get("select_across") == "1":  # every post of the list, whichever were ticked
            return
        gone = len(set(request.POST.getlist(ACTION_CHECKBOX_NAME))) - queryset.count()
        if gone > 0:
            message = ngettext(
                "%(n)d of the selected posts is no longer in this list (taken back by its poster, or decided "
                "meanwhile): nothing was done to it. Show the list again.",
                "%(n)d of the selected posts are no longer in this list (taken back by their posters, or decided "
                "meanwhile): nothing was done to them. Show the list again.",
                gone,
            ) % {"n": gone}
            self.message_user(request, message, messages.WARNING)

    @admin.action(description=_("Publish the selected posts"), permissions=["change"])
    def publish_selected(self, request, queryset) -> None:
        # What the list showed: a post submitted again since (taken back by its poster and changed) is refused.
        seen_at = self._seen_at(request, "shown_at")
        if seen_at is None:
            return
        self._gone_from_the_list(request, queryset)
        done = self._moderate(
            request,
            queryset.order_by("submitted_at", "id"),
            lambda a, p: post_publish(actor=a, post=p, seen_at=seen_at),
        )
        if done:
            self.message_user(
                request,
                ngettext("Published %(n)d post.", "Published %(n)d posts.", done) % {"n": done},
                messages.SUCCESS,
            )

    @admin.action(description=_("Mark the changes of the selected posts as reviewed"), permissions=["change"])
    def mark_reviewed_selected(self, request, queryset) -> None:
        done = 0
        actor = Actor.for_user(request.user)
        try:
            shown_at = parse_datetime(request.POST.get("shown_at") or "")
        except ValueError:  # well formed, but no such time (month 13)
            shown_at = None
        if shown_at is None or timezone.is_naive(shown_at):  # a form of another page, or of an older version
            self.message_user(request, gettext("Show the list again, then mark the changes."), messages.ERROR)
            return
        # Only the selected posts with changes waiting: selecting the whole list is no mistake.
        waiting = list(
            queryset.filter(changed_since_review_at__isnull=False).order_by("changed_since_review_at", "id")
        )
        if not waiting:
            self.message_user(
                request,
                gettext("None of the selected posts has changes waiting for review."),
                messages.WARNING,
            )
        for post in waiting:
            try:
                post_mark_reviewed(actor=actor, post=post, seen_at=shown_at)
            except (PermissionDenied, ValueError) as error:
                message = gettext("“%(title)s”: %(error)s") % {"title": post.title, "error": error}
                self.message_user(request, message, messages.ERROR)
            else:
                done += 1
                self.log_change(request, post, gettext("Changes reviewed."))
        if done:
            self.message_user(
                request,
                ngettext("Marked the changes of %(n)d post as reviewed.",
                         "Marked the changes of %(n)d posts as reviewed.", done) % {"n": done},
                messages.SUCCESS,
            )  # fmt: skip

    @admin.action(description=_("Return the selected posts with a reason…"), permissions=["change"])
    def return_selected(self, request, queryset):
        posts = list(queryset.order_by("submitted_at", "id"))
        if "apply" not in request.POST:
            # From the list: posts that left it since it was shown are said here, and the reason's page
            # carries only those still in it.
            self._gone_from_the_list(request, queryset)
            if not posts:
                return None
        form = ReturnReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            seen_at = self._seen_at(request, "shown_at")  # the list's time, carried by the reason's page
            if seen_at is None:
                return None
            self._gone_from_the_list(request, queryset)  # left the list while its reason was typed
            done = self._moderate(
                request, posts, lambda a, p: post_return(actor=a, post=p, reason=reason, seen_at=seen_at)
            )
            if done:
                self.message_user(
                    request,
                    ngettext(
                        "Returned %(n)d post to its owner.", "Returned %(n)d posts to their owners.", done
                    )
                    % {"n": done},
                    messages.SUCCESS,
                )
            return None
        # The intermediate page: the action posts back to the changelist with the reason and "apply".
        return self._return_page(request, posts, form, selected=True)

    def _return_page(self, request, posts, form, *, selected: bool) -> TemplateResponse:
        taking_back = not selected and posts[0].status == Post.Status.PUBLISHED
        if taking_back:
            title = gettext("Take back the publication of “%s”") % posts[0].title
        elif len(posts) == 1:
            title = gettext("Return a post to its owner")
        else:
            title = gettext("Return posts to their owners")
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "taking_back": taking_back,
            # Cancel goes back to where the posts were chosen: the queue when they were all in it.
            "from_queue": all(p.status == Post.Status.SUBMITTED for p in posts),
            "opts": self.model._meta,
            "posts": posts,
            "form": form,
            "selected": selected,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "not_returnable": [p for p in posts if p.status not in TRANSITIONS["return"]],
            "published": [p for p in posts if p.status == Post.Status.PUBLISHED],
            # When the posts were shown: the list's time for its action, else the post's page's (a parameter of
            # its link), else now.
            "shown_at": request.POST.get("shown_at")
            or request.GET.get("seen_at")
            or request.POST.get("seen_at")
            or timezone.now().isoformat(),
        }
        return TemplateResponse(request, "admin/posts/post/return_reason.html", context)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/publish/",
                self.admin_site.admin_view(self.publish_view),
                name="posts_post_publish",
            ),
            path(
                "<path:object_id>/return/",
                self.admin_site.admin_view(self.return_view),
                name="posts_post_return",
            ),
            *super().get_urls(),
        ]

    def _post_for_moderation(self, request, object_id) -> Post:
        # get_object answers None for an id that is not a number, as for a missing post: both are a 404.
        post = self.get_object(request, unquote(object_id))
        if post is None:
            raise Http404(gettext("No such post."))
        if not self.has_change_permission(request, post):
            raise PermissionDenied
        return post

    def _change_url(self, post: Post) -> str:
        return reverse("admin:posts_post_change", args=[post.pk])

    def publish_view(self, request, object_id) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        post = self._post_for_moderation(request, object_id)
        seen_at = self._seen_at(request, "seen_at")
        if seen_at is None:
            return HttpResponseRedirect(self._change_url(post))
        if self._moderate(request, [post], lambda a, p: post_publish(actor=a, post=p, seen_at=seen_at)):
            self.message_user(request, gettext("Published “%s”.") % post.title, messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(post))

    def return_view(self, request, object_id) -> HttpResponse:
        post = self._post_for_moderation(request, object_id)
        form = ReturnReasonForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            seen_at = self._seen_at(request, "seen_at")
            if seen_at is None:
                return HttpResponseRedirect(self._change_url(post))
            call = lambda a, p: post_return(actor=a, post=p, reason=reason, seen_at=seen_at)  # noqa: E731
            if self._moderate(request, [post], call):
                message = (
                    gettext("Took back the publication of “%s” and returned it to its owner.")
                    if post.status == Post.Status.PUBLISHED
                    else gettext("Returned “%s” to its owner.")
                )
                self.message_user(request, message % post.title, messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(post))
        return self._return_page(request, [post], form, selected=False)
