"""The secretariat's admin for reference data: Parties and the support providers it registers.

Access follows the platform's roles, not Django's per-model permissions: the admin site already admits only
active staff users, and these pages further require the secretariat role (or a superuser), so a staff
account that is really a focal point or a committee member can neither read nor change reference data here.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Case, Count, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from apps.matching.services import matching_party_groups_changed

from .forms import PartyChoiceField
from .models import ELIGIBILITY_GROUPS, NAME_FIELDS, Party, SupportProvider, reading_order


def is_secretariat_staff(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and getattr(user, "is_secretariat", False))


class SecretariatAdminMixin:
    """Give the secretariat (and only it) view/add/change rights; nothing here is ever hard-deleted. A Party is
    chosen from a list in the page's language and alphabetical order."""

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.related_model is Party:
            kwargs.setdefault("form_class", PartyChoiceField)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_secretariat_staff(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_secretariat_staff(request)

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return is_secretariat_staff(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_secretariat_staff(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Posts and users point at these rows (PROTECT); retiring a provider is deactivation.
        return False

    def update_each_logged(
        self,
        request: HttpRequest,
        queryset,
        *,
        where: dict,
        values: dict,
        message: str,
        already: Callable[[int], str] | None = None,
    ) -> int:
        """An action's change of many rows (deactivate, revoke...) with a change entry in the admin's history
        for each row, as an edit writes one: who, when, what. Each row is updated only if it still matches
        `where`, so one changed meanwhile by someone else is neither counted nor logged twice. `already(n)`:
        the warning that n of the rows selected were left as they were (said when some others changed)."""
        selected = queryset.count()
        count = 0
        for obj in queryset.filter(**where):
            if type(obj).objects.filter(pk=obj.pk, **where).update(**values):
                count += 1
                self.log_change(request, obj, message)
        if already is not None and 0 < count < selected:
            self.message_user(request, already(selected - count), messages.WARNING)
        return count


class PartyAdminForm(forms.ModelForm):
    """A new Party's code may not be an eligibility group's name (an offer's `eligible: ["LDC"]` would then mean
    both); no two Parties share a name, in any language."""

    class Meta:
        model = Party
        fields = ("iso3", *NAME_FIELDS, "regional_group", "is_ldc", "is_sids", "paris_agreement_party")

    def clean_iso3(self) -> str:
        code = self.cleaned_data.get("iso3") or ""
        if code in ELIGIBILITY_GROUPS:
            raise forms.ValidationError(
                gettext(
                    "%(code)s names a group of Parties in offers' eligibility lists: choose another code."
                ),
                params={"code": code},
                code="group_name",
            )
        return code

    def clean(self):
        cleaned = super().clean()
        others = Party.objects.exclude(pk=self.instance.pk) if self.instance.pk else Party.objects.all()
        for field in NAME_FIELDS:
            name = (cleaned.get(field) or "").strip()
            if not name:
                continue
            # Against every language's names: a Party without a name in one language is shown there by `name`.
            same_name = Q()
            for other_field in NAME_FIELDS:
                same_name |= Q(**{f"{other_field}__iexact": name})
            clash = others.filter(same_name).first()
            if clash is not None:
                self.add_error(
                    field,
                    gettext("%(party)s already has this name: two Parties would read the same.")
                    % {"party": f"{clash.name} ({clash.iso3})"},
                )
        return cleaned


@admin.register(Party)
class PartyAdmin(SecretariatAdminMixin, admin.ModelAdmin):
    form = PartyAdminForm
    list_display = ("iso3", *NAME_FIELDS, "regional_group", "is_ldc", "is_sids", "paris_agreement_party")
    list_display_links = ("iso3", "name")
    list_filter = ("regional_group", "is_ldc", "is_sids", "paris_agreement_party")
    search_fields = ("iso3", *NAME_FIELDS)
    ordering = ("name",)
    list_per_page = 50

    def get_ordering(self, request: HttpRequest):
        """The Party pickers of other pages (autocomplete) list Parties as a reader looks them up in the page's
        language (`reading_order`: "Afrique du Sud" before "Albanie" in French, "Sudáfrica" among the S's in
        Spanish), as the other Party lists do."""
        if getattr(request.resolver_match, "url_name", None) != "autocomplete":
            return super().get_ordering(request)
        names = sorted(
            Party.objects.only("pk", *NAME_FIELDS), key=lambda party: reading_order(party.local_name)
        )
        place = Case(*(When(pk=party.pk, then=Value(i)) for i, party in enumerate(names)),
                     default=Value(len(names)), output_field=IntegerField())  # fmt: skip
        return (place, "name")

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ()
        # Posts' eligible lists, the API's filters and imports name the Party by its code: never renamed.
        return ("iso3",)

    def save_model(self, request: HttpRequest, obj: Party, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and {"regional_group", "is_ldc", "is_sids"} & set(form.changed_data):
            queued = matching_party_groups_changed(party_id=obj.pk)
            if queued:
                self.message_user(
                    request,
                    ngettext(
                        "Its groups changed: its published need is being matched again.",
                        "Its groups changed: its %(count)d published needs are being matched again.",
                        queued,
                    )
                    % {"count": queued},
                    messages.INFO,
                )


def _count_of(model, field: str) -> Coalesce:
    """How many `model` rows point at the provider through `field`, as a correlated subquery."""
    rows = model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)


class PresenceFilter(admin.SimpleListFilter):
    """A yes/no filter on whether rows have something: a related row, or a value in a nullable field
    (`lookup`, e.g. "users" or "connected_at"); subclasses name it and word the two answers."""

    lookup = ""
    yes_label = _("Yes")
    no_label = _("No")

    def lookups(self, request, model_admin):
        return [("yes", self.yes_label), ("no", self.no_label)]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(**{f"{self.lookup}__isnull": False}).distinct()
        if self.value() == "no":
            return queryset.filter(**{f"{self.lookup}__isnull": True})
        return queryset


class ProviderUsersFilter(PresenceFilter):
    title = _("user accounts")
    parameter_name = "has_users"
    lookup = "users"
    yes_label = _("Has user accounts")
    no_label = _("No user account yet")


@admin.register(SupportProvider)
class SupportProviderAdmin(SecretariatAdminMixin, admin.ModelAdmin):
    list_display = ("short_name", "name", "kind", "is_active", "user_count", "post_count", "created_at")
    list_display_links = ("short_name", "name")
    list_filter = ("is_active", "kind", ProviderUsersFilter)
    search_fields = ("short_name", "name", "contact_email", "website")
    readonly_fields = ("created_at",)
    # A website typed without a scheme is https (Django 6's default; says so now, without a warning).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fields = ("short_name", "name", "kind", "website", "contact_email", "is_active", "created_at")
    actions = ("deactivate", "reactivate")

    def get_queryset(self, request):
        # Both counts as correlated subqueries in the page's query: no join fan-out, and the changelist's
        # COUNT(*) queries leave unused subquery annotations out (a joined Count would be counted too).
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_users=_count_of(get_user_model(), "provider"),
                n_posts=_count_of(apps.get_model("posts", "Post"), "provider"),
            )
        )

    @admin.display(description=_("users"), ordering="n_users")
    def user_count(self, obj: SupportProvider) -> int:
        return obj.n_users

    @admin.display(description=_("posts"), ordering="n_posts")
    def post_count(self, obj: SupportProvider) -> int:
        return obj.n_posts

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return self.readonly_fields
        # Imports, the API and partners' systems name the provider by its short name: never renamed.
        return ("short_name", *self.readonly_fields)

    @admin.action(description=_("Deactivate the selected providers (no new offers or imports)"))
    def deactivate(self, request: HttpRequest, queryset) -> None:
        count = self.update_each_logged(
            request,
            queryset,
            where={"is_active": True},
            values={"is_active": False},
            message=gettext("Deactivated: its users and write tokens may only withdraw or close its posts."),
            already=lambda n: (
                ngettext(
                    "%(n)d of the selected providers was inactive already: left as it was.",
                    "%(n)d of the selected providers were inactive already: left as they were.",
                    n,
                )
                % {"n": n}
            ),
        )
        if not count:
            self.message_user(request, gettext("The selected providers were inactive already: nothing changed."),
                              messages.WARNING)  # fmt: skip
            return
        self.message_user(
            request,
            ngettext(
                "Deactivated %(n)d support provider. Its published offers stay until withdrawn (its users "
                "and write tokens may still withdraw or close them).",
                "Deactivated %(n)d support providers. Their published offers stay until withdrawn (their "
                "users and write tokens may still withdraw or close them).",
                count,
            )
            % {"n": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Reactivate the selected providers"))
    def reactivate(self, request: HttpRequest, queryset) -> None:
        count = self.update_each_logged(
            request,
            queryset,
            where={"is_active": False},
            values={"is_active": True},
            message=gettext("Reactivated: its users and write tokens post again."),
            already=lambda n: (
                ngettext(
                    "%(n)d of the selected providers was active already: left as it was.",
                    "%(n)d of the selected providers were active already: left as they were.",
                    n,
                )
                % {"n": n}
            ),
        )
        if not count:
            self.message_user(request, gettext("The selected providers were active already: nothing changed."),
                              messages.WARNING)  # fmt: skip
            return
        self.message_user(
            request,
            ngettext("Reactivated %(n)d support provider.", "Reactivated %(n)d support providers.", count)
            % {"n": count},
            messages.SUCCESS,
        )
