"""Django's own messages that the project's catalogues give themselves (LOCALE_PATHS comes before Django's
catalogues), kept here for `makemessages` to find: never imported, the msgids are Django's.

Django's Spanish says a title of 200 characters at most must have "menos de 200 caracteres" (fewer than 200);
its login errors and password rules call the password "clave" beside fields labelled "Contraseña" ("sensibles
a mayúsculas" for case-sensitive); its confirmation fields read "Contraseña nueva (confirmación) (obligatorio)"
with the form's mark of a required field. The French entries keep Django's French wording.
"""

from django.utils.translation import gettext_noop, ngettext_lazy

MAX_LENGTH = ngettext_lazy(
    "Ensure this value has at most %(limit_value)d character (it has %(show_value)d).",
    "Ensure this value has at most %(limit_value)d characters (it has %(show_value)d).",
    "limit_value",
)

LOGIN_ERRORS = (
    gettext_noop(
        "Please enter a correct %(username)s and password. Note that both fields may be case-sensitive."
    ),
    gettext_noop(
        "Please enter the correct %(username)s and password for a staff account. Note that both fields may be "
        "case-sensitive."
    ),
)

PASSWORD_WORDS = (
    gettext_noop("Password confirmation"),
    gettext_noop("New password confirmation"),
    gettext_noop("Your password can’t be a commonly used password."),
)
