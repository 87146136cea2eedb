from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _


def _sqlite_casefold(sender, connection, **kwargs) -> None:
    """SQLite compares letters regardless of case in ASCII only (ОБУЧЕНИЕ would not find обучение): the search
    casefolds both sides through this function (`selectors.post_search`)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "nma_casefold",
            1,
            lambda text: text.casefold() if isinstance(text, str) else text,
            deterministic=True,
        )


class PostsConfig(AppConfig):
    name = "apps.posts"
    verbose_name = _("Needs and offers")

    def ready(self) -> None:
        connection_created.connect(_sqlite_casefold, dispatch_uid="nma_sqlite_casefold")
