"""Django admin words that the project's catalogues give themselves (LOCALE_PATHS comes before every app's
catalogue), kept here for `makemessages` to find.

Django's French writes "Modification de %s" and "Ajout de %s", which with our models' names reads "Modification
de annonce": the project's French gives "Modification de l’objet annonce", as Django's own "Sélectionnez l’objet
%s à changer" does.

django-axes ships French but no Spanish: the words of its page of failed logins (the secretariat unlocks focal
points there) are translated here for Spanish, and given their django-axes wording in French.
"""

from django.utils.translation import gettext_noop

ADMIN_TITLES = (gettext_noop("Change %s"), gettext_noop("Add %s"))

AXES_WORDS = (
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("User Agent"),
    gettext_noop("IP Address"),
    gettext_noop("HTTP Accept"),
    gettext_noop("Path"),
    gettext_noop("Attempt Time"),
    gettext_noop("GET Data"),
    gettext_noop("POST Data"),
    gettext_noop("Failed Logins"),
    gettext_noop("Form Data"),
    gettext_noop("Meta Data"),
)
