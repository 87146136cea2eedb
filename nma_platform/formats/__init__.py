"""Number and date formats where the platform writes a language otherwise than Django does (FORMAT_MODULE_PATH):
only the settings given here change, the others stay Django's."""
