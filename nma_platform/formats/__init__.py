"""Number and date formats where the platform writes a language otherwise than Django does (FORMAT_MODULE_PATH):
Django falls back to its own formats for anything not set here."""
