"""Number and date formats where the site writes a language differently from Django's own (FORMAT_MODULE_PATH):
only the settings given here change, the others stay Django's."""
