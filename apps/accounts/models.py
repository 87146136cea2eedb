"""Users and the role each plays: a focal point acts for one Party, a provider user for one organisation."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    FOCAL_POINT = "focal_point", _("Party focal point")
    PROVIDER = "provider", _("Support provider")
    SECRETARIAT = "secretariat", _("Secretariat")
    COMMITTEE = "committee", _("Committee member")
    # A registered user with no role yet; may read what the public reads, plus contact details.
    OBSERVER = "observer", _("Observer")


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
        _("daily match digest"), default=True, help_text=_("Send me a daily email of new strong matches.")
    )
    preferred_language = models.CharField(_("preferred language"), max_length=10, blank=True)

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
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

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
        return self.is_active and (self.is_focal_point or self.is_provider_user)

    @property
    def can_read_stocktake(self) -> bool:
        return self.is_active and (self.is_committee or self.is_secretariat)
