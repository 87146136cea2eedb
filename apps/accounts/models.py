"""Users and the role each plays: a focal point acts for one Party, a provider user for one organisation."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    FOCAL_POINT = "focal_point", _("Party focal point")
    PROVIDER = "provider", _("Support provider")
    SECRETARIAT = "secretariat", _("Secretariat")
    COMMITTEE = "committee", _("Committee member")
    # A registered user with no role yet; may read what the public reads, plus contact details.
    OBSERVER = "observer", _("Observer")


# The links each role must have: (needs a Party, needs a provider); any other link is refused.
ROLE_LINKS = {
    Role.FOCAL_POINT: (True, False),
    Role.PROVIDER: (False, True),
}


def role_link_errors(*, role: str, has_party: bool, has_provider: bool) -> dict[str, str]:
    """The field errors of a user whose Party and provider do not fit the role (empty when they fit).

    The database refuses such rows too (the constraints below); this gives the forms a clear message on the
    field to fix, before the constraint's own message could surface.
    """
    needs_party, needs_provider = ROLE_LINKS.get(role, (False, False))
    errors = {}
    if needs_party and not has_party:
        errors["party"] = _("A focal point acts for a Party: choose it.")
    elif has_party and not needs_party:
        errors["party"] = (
            _("A support provider user acts for its provider, not for a Party: leave the Party empty.")
            if role == Role.PROVIDER
            else _("Only a focal point acts for a Party: leave the Party empty for this role.")
        )
    if needs_provider and not has_provider:
        errors["provider"] = _("A support provider user acts for a provider: choose it.")
    elif has_provider and not needs_provider:
        errors["provider"] = (
            _("A focal point acts for its Party, not for a support provider: leave the provider empty.")
            if role == Role.FOCAL_POINT
            else _(
                "Only a support provider user acts for a provider: leave the provider empty for this role."
            )
        )
    return errors


class User(AbstractUser):
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.OBSERVER)
    party = models.ForeignKey(
        "parties.Party",
        verbose_name=_("Party"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="focal_points",
        help_text=_("The Party a focal point acts for."),
    )
    provider = models.ForeignKey(
        "parties.SupportProvider",
        verbose_name=_("support provider"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="users",
        help_text=_("The organisation a provider user acts for."),
    )
    organisation = models.CharField(_("organisation or ministry"), max_length=200, blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    digest_opt_in = models.BooleanField(
        _("daily match digest"),
        default=True,
        help_text=_("Send me a daily email of new strong matches and of the matches awaiting my answer."),
    )
    preferred_language = models.CharField(_("preferred language"), max_length=10, blank=True)
    # The language the user last chose or logged in with on the site, for emails when they prefer none ("Same as
    # the site"): a French-speaking focal point who never set a preference is written to in French.
    site_language = models.CharField(
        _("language last used on the site"), max_length=10, blank=True, editable=False
    )
    # How far the daily digest has covered this user: the matches that became strong up to this moment were in
    # a digest sent to them (or there were none). Moved only with a sent digest, so a retry or a second run
    # sends nothing twice and a late run picks up where the last one stopped. Null: no digest yet.
    digest_sent_through = models.DateTimeField(
        _("match digest sent through"), null=True, blank=True, editable=False
    )
    # When the secretariat erased this person's personal data at their request (`services.user_anonymise`): the
    # row stays, under a pseudonym, so that the Party's posts, their history and the stocktake keep their figures.
    anonymised_at = models.DateTimeField(_("anonymised at"), null=True, blank=True, editable=False)

    @property
    def email_language(self) -> str:
        """The language to write to this user in: their preference, else the site's language they last used."""
        languages = {code for code, _name in settings.LANGUAGES}
        for code in (self.preferred_language, self.site_language):
            if code in languages:
                return code
        return settings.LANGUAGE_CODE

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            # The role decides which link a user has; the database refuses inconsistent rows.
            models.CheckConstraint(
                condition=~Q(role="focal_point") | (Q(party__isnull=False) & Q(provider__isnull=True)),
                name="focal_point_has_party",
            ),
            models.CheckConstraint(
                condition=~Q(role="provider") | (Q(provider__isnull=False) & Q(party__isnull=True)),
                name="provider_user_has_provider",
            ),
            # Secretariat, committee members and observers act for nobody: a link left over from an earlier
            # role would be misleading in the admin and in every export of users.
            models.CheckConstraint(
                condition=Q(role__in=["focal_point", "provider"])
                | (Q(party__isnull=True) & Q(provider__isnull=True)),
                name="other_roles_have_no_link",
            ),
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def clean(self) -> None:
        super().clean()
        errors = role_link_errors(
            role=self.role, has_party=self.party_id is not None, has_provider=self.provider_id is not None
        )
        # Password resets, connection emails and digests go by address: one address, one account.
        if self.email and User.objects.filter(email__iexact=self.email).exclude(pk=self.pk).exists():
            errors["email"] = _(
                "Another account uses this email address: password resets would reach both. Give each "
                "person their own address."
            )
        if errors:
            raise ValidationError(errors)

    @property
    def is_focal_point(self) -> bool:
        return self.role == Role.FOCAL_POINT

    @property
    def is_provider_user(self) -> bool:
        return self.role == Role.PROVIDER

    @property
    def is_secretariat(self) -> bool:
        return self.is_active and (self.role == Role.SECRETARIAT or self.is_superuser)

    @property
    def is_committee(self) -> bool:
        return self.role == Role.COMMITTEE

    @property
    def can_post(self) -> bool:
        # A provider the secretariat deactivated no longer posts (its users may still take its posts down).
        return self.is_active and (
            self.is_focal_point
            or (self.is_provider_user and self.provider is not None and self.provider.is_active)
        )

    @property
    def can_read_stocktake(self) -> bool:
        return self.is_active and (self.is_committee or self.is_secretariat)


# --- API tokens for partner systems ------------------------------------------------------------------------

API_TOKEN_PREFIX_LENGTH = 8
# Never write last_used_at more often than this: a partner's sync loop must not cost one UPDATE per request.
API_TOKEN_TOUCH_SECONDS = 60


def api_token_hash(raw: str) -> str:
    """The stored form of a token. A plain sha256 is enough: the key is 256 random bits, not a password."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def issue(
        self,
        *,
        name: str,
        scope: str,
        created_by: "User | None",
        party=None,
        provider=None,
        expires_at=None,
        sees_contacts: bool = False,
    ) -> tuple["ApiToken", str]:
        """Create a token and return it with its raw value, which is never stored and cannot be shown again."""
        token = self.model(
            name=name,
            scope=scope,
            party=party,
            provider=provider,
            expires_at=expires_at,
            created_by=created_by,
            sees_contacts=sees_contacts,
        )
        raw = token.set_new_key()
        token.full_clean()
        token.save()
        return token, raw

    def usable(self) -> "ApiTokenQuerySet":
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )


class ApiToken(models.Model):
    """A partner system's credential, issued and revoked by the secretariat.

    The raw token is `nma_<prefix>_<secret>`. Only the prefix (to find the row, not secret) and the sha256 of
    the whole token are stored, so a leaked database does not leak working tokens.
    """

    class Scope(models.TextChoices):
        READ = "read", _("Read: published posts and reference data")
        WRITE = "write", _("Write: posts of one Party or support provider")
        # The committee's and the secretariat's reporting scripts: read, plus the stocktake figures.
        STOCKTAKE = "stocktake", _("Read and stocktake figures (committee and secretariat reporting)")

    name = models.CharField(
        _("name"), max_length=100, help_text=_("Which system uses it, e.g. 'Kenya MRV registry'.")
    )
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, editable=False)
    scope = models.CharField(_("scope"), max_length=10, choices=Scope.choices, default=Scope.READ)
    party = models.ForeignKey(
        "parties.Party",
        verbose_name=_("Party"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_tokens",
        help_text=_("Write tokens: the Party the system posts for."),
    )
    provider = models.ForeignKey(
        "parties.SupportProvider",
        verbose_name=_("support provider"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_tokens",
        help_text=_("Write tokens: the provider the system posts for."),
    )
    created_by = models.ForeignKey(
        User,
        verbose_name=_("issued by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="issued_api_tokens",
    )
    created_at = models.DateTimeField(_("issued at"), auto_now_add=True)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Leave empty for a token that does not expire.")
    )
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    # Personal data only where the partner system needs it: a post's contact (a person's name and address).
    sees_contacts = models.BooleanField(
        _("sees contact details"),
        default=False,
        help_text=_(
            "Whether the system receives the contact name and email of the posts it reads (personal data: tick it "
            "only if it needs them to put people in touch). A write token always receives those of its own posts."
        ),
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        constraints = [
            # A write token speaks for exactly one Party or provider; a read token for nobody.
            models.CheckConstraint(
                condition=(
                    Q(scope="write")
                    & (
                        (Q(party__isnull=False) & Q(provider__isnull=True))
                        | (Q(party__isnull=True) & Q(provider__isnull=False))
                    )
                )
                | (~Q(scope="write") & Q(party__isnull=True) & Q(provider__isnull=True)),
                name="api_token_scope_matches_poster",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def clean(self) -> None:
        # Errors name a field, so the form shows them there and skips the database constraint's own message.
        has_party, has_provider = self.party_id is not None, self.provider_id is not None
        if self.scope == self.Scope.WRITE:
            if has_party == has_provider:
                raise ValidationError(
                    {
                        "provider" if has_party else "party": _(
                            "A write token acts for exactly one Party or one support provider: choose one."
                        )
                    }
                )
        elif has_party or has_provider:
            raise ValidationError(
                {
                    "party" if has_party else "provider": _(
                        "Only a write token acts for a Party or a support provider: leave it empty."
                    )
                }
            )

    def set_new_key(self) -> str:
        """Give the token a fresh random key; return the raw value (the caller shows it once)."""
        self.prefix = secrets.token_hex(API_TOKEN_PREFIX_LENGTH // 2)
        raw = f"nma_{self.prefix}_{secrets.token_urlsafe(32)}"
        self.key_hash = api_token_hash(raw)
        return raw

    def matches(self, raw: str) -> bool:
        return hmac.compare_digest(self.key_hash, api_token_hash(raw))

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_revoked and not self.is_expired

    def touch(self) -> None:
        """Record a use, at most once a minute (a conditional UPDATE, so concurrent requests write once)."""
        now = timezone.now()
        if (
            self.last_used_at is not None
            and (now - self.last_used_at).total_seconds() < API_TOKEN_TOUCH_SECONDS
        ):
            return
        threshold = now - timedelta(seconds=API_TOKEN_TOUCH_SECONDS)
        ApiToken.objects.filter(pk=self.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=threshold)
        ).update(last_used_at=now)
        self.last_used_at = now


class SentEmail(models.Model):
    """An email the platform sent to one person for one occasion (`key`, e.g. connection:<match>:<user>), recorded
    in the transaction that sends it (`apps.accounts.emails.send_once`): a retry after a failure sends it, a retry
    after a success (another recipient's failure, a task run twice) does not send it again."""

    key = models.CharField(_("occasion"), max_length=200, unique=True)
    sent_at = models.DateTimeField(_("sent at"), auto_now_add=True)

    class Meta:
        verbose_name = _("email sent")
        verbose_name_plural = _("emails sent")

    def __str__(self) -> str:
        return self.key
