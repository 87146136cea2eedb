from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _


def _sqlite_fold(sender, connection, **kwargs) -> None:
    """SQLite compares letters regardless of case in ASCII only (ОБУЧЕНИЕ would not find обучение): the search
    folds the texts through this function as it folds the query (`selectors.search_fold`)."""
    if connection.vendor == "sqlite":
        from .selectors import search_fold

        connection.connection.create_function(
            "nma_fold",
            1,
            lambda text: search_fold(text) if isinstance(text, str) else text,
            deterministic=True,
        )


class PostsConfig(AppConfig):
    name = "apps.posts"
    verbose_name = _("Needs and offers")

    def ready(self) -> None:
        connection_created.connect(_sqlite_fold, dispatch_uid="nma_sqlite_fold")
