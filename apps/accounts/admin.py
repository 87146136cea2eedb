"""The secretariat's admin for users (role, Party, provider), partner systems' API tokens and login lockouts.

As for reference data, access follows the platform's roles: only the secretariat (or a superuser) sees these
pages. Nothing is hard-deleted: a user is deactivated and a token revoked, so the audit trail keeps its names.
The secretariat manages users but never beyond its own powers: a superuser's account is read-only to anyone
who is not a superuser (password, username, e-mail, active flag), and only a superuser makes superusers.
Staff status (entering this admin) follows the role: the secretariat and superusers, nobody else. A person who
asks for their data to be erased is anonymised (an action of the user list); the account stays, read-only.
"""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext, pgettext
from django.utils.translation import gettext_lazy as _

from apps.parties.admin import SecretariatAdminMixin
from apps.parties.models import NAME_FIELDS as PARTY_NAME_FIELDS
from apps.posts.selectors import post_count_with_contact

from .actors import Actor
from .forms import password_change_failures_forget, preferred_language_field
from .models import ApiToken, Role, User
from .services import AnonymiseRefused, user_anonymise, user_sessions_end

# The secretariat's workplace says whose it is (Django's default header reads "Django administration").
# Roles decide who may do what (`Actor`, `SecretariatAdminMixin`): Django's groups and per-model permissions are
# not read anywhere, so they are not offered (a secretariat user given "view post" only still had every power).
admin.site.unregister(Group)
admin.site.site_header = _("NMA Platform administration")
admin.site.site_title = _("NMA Platform administration")
admin.site.index_title = _("Secretariat administration")


@admin.register(User)
class UserAdmin(SecretariatAdminMixin, DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "full_name",
        "role",
        "party",
        "provider",
        "is_active",
        "last_login",
    )
    list_filter = ("role", "is_active", "is_staff", "party__regional_group")

    @admin.display(description=_("name"), ordering="last_name")
    def full_name(self, user: User) -> str:
        return user.get_full_name()

    search_fields = (
        "username", "email", "first_name", "last_name", "organisation", "party__iso3",
        *(f"party__{field}" for field in PARTY_NAME_FIELDS), "provider__short_name",
    )  # fmt: skip
    list_select_related = ("party", "provider")
    autocomplete_fields = ()
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email", "organisation", "phone")}),
        (
            _("Role on the platform"),
            {
                "fields": ("role", "party", "provider"),
                "description": _(
                    "A focal point acts for one Party, a provider user for one support provider; the other "
                    "roles have neither."
                ),
            },
        ),
        (_("Preferences"), {"fields": ("digest_opt_in", "preferred_language", "site_language")}),
        (
            _("Access"),
            {
                "fields": ("is_active", "is_staff", "is_superuser"),
                "description": _(
                    "Staff status follows the role: secretariat users (and superusers) enter this "
                    "administration, nobody else. The role decides what a user may do: every secretariat "
                    "user has all of the secretariat's powers."
                ),
            },
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined", "anonymised_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
        (
            _("Role on the platform"),
            {
                "fields": ("role", "party", "provider"),
                "description": _(
                    "A focal point acts for one Party, a provider user for one support provider; the other "
                    "roles have neither. A secretariat user enters this administration."
                ),
            },
        ),
    )

    actions = ("anonymise",)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # Changing a superuser (its password above all) would hand their powers to whoever changes it.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        # An anonymised account is a record, not a person any more: reactivating it, or giving it a name or an
        # address, would undo the erasure.
        if obj is not None and obj.anonymised_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # The password's widget links to a form this user may not open.
            fieldsets = [
                (name, {**options, "fields": [f for f in options["fields"] if f != "password"]})
                for name, options in fieldsets
            ]
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        # Staff status is not set by hand: see save_model.
        readonly = ["is_staff", "last_login", "date_joined", "site_language", "anonymised_at"]
        if not request.user.is_superuser:
            # The secretariat manages roles, not Django's own superpowers.
            readonly += ["is_superuser"]
        return readonly

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "preferred_language":
            # The same choices as the user's own profile form (free text accepted anything).
            return preferred_language_field(help_text=_("The language of the user's pages and emails."))
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "email" and field is not None:
            # Without one, a user can never reset a password nor hear of a connection.
            field.required = True
        return field

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:
        # Every page of this admin requires the secretariat role, so staff status is useful to the secretariat
        # (and superusers) only, and a new secretariat user must not need a second edit to get in.
        obj.is_staff = obj.role == Role.SECRETARIAT or obj.is_superuser
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            user_sessions_end(user=obj)  # else reactivating them would bring their sessions back
            # A person who left: their posts still show their address and connection emails still give it.
            count = post_count_with_contact(email=obj.email)
            if count:
                self.message_user(
                    request,
                    ngettext(
                        "%(n)d open post gives %(email)s as its contact: ask the Party or provider to change it "
                        "(or anonymise the person, if they asked to be erased).",
                        "%(n)d open posts give %(email)s as their contact: ask the Party or provider to change them "
                        "(or anonymise the person, if they asked to be erased).",
                        count,
                    )
                    % {"n": count, "email": obj.email},
                    messages.WARNING,
                )
            # Their tokens belong to partner systems, which a person leaving does not cut off: said, not done.
            tokens = ApiToken.objects.usable().filter(created_by=obj).count()
            if tokens:
                self.message_user(
                    request,
                    ngettext(
                        "%(n)d API token this person issued keeps working: it belongs to a partner system. Revoke "
                        "it in API tokens if it should stop.",
                        "%(n)d API tokens this person issued keep working: they belong to partner systems. Revoke "
                        "them in API tokens if they should stop.",
                        tokens,
                    )
                    % {"n": tokens},
                    messages.INFO,
                )

    @admin.action(description=_("Anonymise the selected users (erase their personal data)…"),
                  permissions=["change"])  # fmt: skip
    def anonymise(self, request: HttpRequest, queryset) -> TemplateResponse | None:
        """At the person's request: an intermediate page says what is erased and what stays; "apply" erases."""
        users = list(queryset.select_related("party", "provider").order_by("pk"))
        if "apply" not in request.POST:
            context = {
                **self.admin_site.each_context(request),
                "title": _("Anonymise users"),
                "opts": self.model._meta,
                "users": users,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/accounts/user/anonymise.html", context)
        actor = Actor.for_user(request.user)
        done = 0
        for user in users:
            shown = str(user)
            try:
                user = user_anonymise(actor=actor, user=user)
            except (PermissionDenied, AnonymiseRefused) as error:
                self.message_user(request, gettext("%(label)s: %(error)s") % {"label": shown, "error": error},
                                  messages.ERROR)  # fmt: skip
                continue
            done += 1
            # Under the pseudonym: the history does not name whom it erased.
            self.log_change(
                request, user, gettext("Anonymised at the person's request: personal data erased.")
            )
        if done:
            self.message_user(
                request,
                ngettext("Anonymised %(n)d user.", "Anonymised %(n)d users.", done) % {"n": done},
                messages.SUCCESS,
            )
        return None


class ApiTokenAdminForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("name", "scope", "party", "provider", "sees_contacts", "expires_at")

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if "expires_at" in self.changed_data and expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError(
                _("Give a time in the future, or leave it empty. To stop a token now, revoke it."),
                code="past",
            )
        return expires_at


@admin.register(ApiToken)
class ApiTokenAdmin(SecretariatAdminMixin, admin.ModelAdmin):
    form = ApiTokenAdminForm
    list_display = (
        "name",
        "prefix",
        "scope",
        "party",
        "provider",
        "state",
        "expires_at",
        "last_used_at",
        "created_by",
        "created_at",
    )
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = (
        "name", "prefix", "party__iso3", *(f"party__{field}" for field in PARTY_NAME_FIELDS), "provider__short_name"
    )  # fmt: skip
    list_select_related = ("party", "provider", "created_by")
    actions = ("revoke",)
    date_hierarchy = "created_at"

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ("name", "scope", "party", "provider", "sees_contacts", "expires_at")
        return (
            "name",
            "prefix",
            "scope",
            "party",
            "provider",
            "sees_contacts",
            "expires_at",
            "state",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ()
        # Who a token speaks for, and what it is given, never change after issue: issue a new token instead.
        return (
            "prefix",
            "scope",
            "party",
            "provider",
            "sees_contacts",
            "state",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    @admin.display(description=_("state"))
    def state(self, token: ApiToken) -> str:
        if token.is_revoked:
            return format_html("<strong>{}</strong>", pgettext("API token", "revoked"))
        if token.is_expired:
            return pgettext("API token", "expired")
        # In context: the word agrees with what it describes where a language has genders (un jeton actif).
        return pgettext("API token", "active")

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        raw = None
        if not change:
            raw = obj.set_new_key()
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if raw:
            request._issued_token = raw  # for `response_add`, the one page that shows it

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None) -> HttpResponse:
        """The raw token in the body of the answer to the POST: the only time it exists outside the partner's
        system (only its hash is stored). Not a message: those travel in a cookie, seen by every proxy."""
        raw = getattr(request, "_issued_token", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Token issued"),
            "token": obj,
            "raw": raw,
            "shown_as": _("The token for “%(name)s” is:") % {"name": obj.name},
            "copy_now": _(
                "Copy it now and give it to the partner: it is stored hashed and cannot be shown again."
            ),
        }
        response = TemplateResponse(request, "admin/accounts/apitoken/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke the selected tokens (they stop working at once)"))
    def revoke(self, request: HttpRequest, queryset) -> None:
        count = self.update_each_logged(
            request,
            queryset,
            where={"revoked_at__isnull": True},
            values={"revoked_at": timezone.now()},
            message=gettext("Revoked the token: it stops working at once."),
            already=lambda n: (
                ngettext(
                    "%(n)d of the selected tokens was revoked already: left as it was.",
                    "%(n)d of the selected tokens were revoked already: left as they were.",
                    n,
                )
                % {"n": n}
            ),
        )
        if not count:
            self.message_user(request, gettext("The selected tokens were revoked already: nothing changed."),
                              messages.WARNING)  # fmt: skip
            return
        self.message_user(
            request,
            ngettext("Revoked %(n)d token.", "Revoked %(n)d tokens.", count) % {"n": count},
            messages.SUCCESS,
        )


@admin.register(AccessAttempt)
class LoginLockoutAdmin(SecretariatAdminMixin, AxesAccessAttemptAdmin):
    """Failed logins per user name and client address (django-axes, AXES_* settings): the secretariat sees who is
    locked out and unlocks a focal point who cannot wait, by forgetting the failures (the count starts again)."""

    actions = ["unlock"]

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # The record of the failures is read-only: it is forgotten (unlocked) or left to expire.
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Only through "unlock", which also forgets the wrong current passwords and records whom it unlocked:
        # Django's delete page did neither.
        return False

    @admin.action(description=_("Unlock: forget the selected failed attempts"))
    def unlock(self, request: HttpRequest, queryset) -> None:
        rows = list(queryset)
        # In the admin's history like every other change: who unlocked whom (the account and the address, not
        # the row's own "Attempted Access: <time>"), and when.
        content_type = ContentType.objects.get_for_model(AccessAttempt)
        LogEntry.objects.bulk_create(
            LogEntry(
                user_id=request.user.pk,
                content_type_id=content_type.pk,
                object_id=str(row.pk),
                object_repr=(
                    gettext("Lockout of %(user)s from %(address)s")
                    % {"user": row.username or "?", "address": row.ip_address or "?"}
                )[:200],
                action_flag=DELETION,
                change_message=gettext("Unlocked: %(n)d failed attempts forgotten.")
                % {"n": row.failures_since_start},
            )
            for row in rows
        )
        AccessAttempt.objects.filter(pk__in=[row.pk for row in rows]).delete()
        # Their wrong current passwords on the password change too (counted per user, not per address).
        names = {row.username for row in rows if row.username}
        password_change_failures_forget(User.objects.filter(username__in=names).values_list("pk", flat=True))
        self.message_user(
            request,
            ngettext("Unlocked %(n)d entry.", "Unlocked %(n)d entries.", len(rows)) % {"n": len(rows)},
            messages.SUCCESS,
        )
