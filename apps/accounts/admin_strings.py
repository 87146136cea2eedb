"""Django admin titles that the project's French catalogue words differently from Django's own.

Django's French writes "Modification de %s" and "Ajout de %s", which with our models' names reads "Modification
de annonce". The project's catalogue (LOCALE_PATHS) comes before Django's, so these msgids, kept here for
`makemessages` to find, give "Modification de l’objet annonce", as Django's own "Sélectionnez l’objet %s à
changer" does.
"""

from django.utils.translation import gettext_noop

ADMIN_TITLES = (gettext_noop("Change %s"), gettext_noop("Add %s"))
