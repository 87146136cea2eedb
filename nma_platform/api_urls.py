"""The versioned REST API, mounted under /api/v1/ (each app keeps its endpoints in its own apis.py)."""

urlpatterns: list = []
