"""The secretariat's admin for users (role, Party, provider) and partner systems' API tokens.

As for reference data, access follows the platform's roles: only the secretariat (or a superuser) sees these
pages. Nothing is hard-deleted: a user is deactivated and a token revoked, so the audit trail keeps its names.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.parties.admin import SecretariatAdminMixin

from .models import ApiToken, User


@admin.register(User)
class UserAdmin(SecretariatAdminMixin, DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "get_full_name",
        "role",
        "party",
        "provider",
        "is_active",
        "last_login",
    )
    list_filter = ("role", "is_active", "is_staff", "party__regional_group")
    search_fields = ("username", "email", "first_name", "last_name", "organisation", "party__iso3")
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
        (_("Preferences"), {"fields": ("digest_opt_in", "preferred_language")}),
        (_("Access"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
        (_("Role on the platform"), {"fields": ("role", "party", "provider")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        readonly = ["last_login", "date_joined"]
        if not request.user.is_superuser:
            # The secretariat manages roles, not Django's own superpowers.
            readonly += ["is_superuser", "groups", "user_permissions"]
        return readonly


@admin.register(ApiToken)
class ApiTokenAdmin(SecretariatAdminMixin, admin.ModelAdmin):
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
    search_fields = ("name", "prefix", "party__iso3", "party__name", "provider__short_name")
    list_select_related = ("party", "provider", "created_by")
    actions = ("revoke",)
    date_hierarchy = "created_at"

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ("name", "scope", "party", "provider", "expires_at")
        return (
            "name",
            "prefix",
            "scope",
            "party",
            "provider",
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
        # Who a token speaks for never changes after issue: issue a new token instead.
        return (
            "prefix",
            "scope",
            "party",
            "provider",
            "state",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    @admin.display(description=_("state"))
    def state(self, token: ApiToken) -> str:
        if token.is_revoked:
            return format_html("<strong>{}</strong>", _("revoked"))
        if token.is_expired:
            return _("expired")
        return _("active")

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        raw = None
        if not change:
            raw = obj.set_new_key()
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if raw:
            # The only time the raw token exists outside the partner's system: only its hash is stored.
            messages.warning(
                request,
                format_html(
                    "{} <code>{}</code><br>{}",
                    _("The token for “%(name)s” is:") % {"name": obj.name},
                    raw,
                    _(
                        "Copy it now and give it to the partner: it is stored hashed and cannot be shown again."
                    ),
                ),
            )

    @admin.action(description=_("Revoke the selected tokens (they stop working at once)"))
    def revoke(self, request: HttpRequest, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request,
            ngettext("Revoked %(n)d token.", "Revoked %(n)d tokens.", count) % {"n": count},
            messages.SUCCESS,
        )
