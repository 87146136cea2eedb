"""Frozen stocktake reports: what the Committee was shown at a meeting, kept even if posts change later."""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class Snapshot(models.Model):
    """The export of one report (period, filters, every figure) as it stood when the secretariat froze it."""

    title = models.CharField(_("title"), max_length=200, help_text=_("For example: GCNMA 12, June 2026."))
    slug = models.SlugField(_("permalink name"), max_length=120, unique=True)
    date_from = models.DateField(_("from"))
    date_to = models.DateField(_("to"))
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    # The export contract exactly ({"period": ..., "figures": [...]}), so the permalink, the downloads and
    # the comparison with the next snapshot read the same frozen numbers.
    export = models.JSONField(_("figures"))
    note = models.TextField(_("note"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("frozen by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="stocktake_snapshots",
    )
    created_at = models.DateTimeField(_("frozen at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("stocktake snapshot")
        verbose_name_plural = _("stocktake snapshots")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(date_from__lte=models.F("date_to")), name="snapshot_period_order"
            )
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("stocktake:snapshot", kwargs={"slug": self.slug})
