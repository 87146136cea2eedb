"""Reading the Party lists of a page, for the tests of Party names in each interface language."""

import re

from apps.parties.models import reading_order


def by_name(label: str) -> str:
    """A Party's label ("Guinea (GIN)", "Гвинея (GIN)") in the order of its name, its code aside."""
    return reading_order(label.rsplit(" (", 1)[0])


def parties_in_filter(html: str) -> list[tuple[str, str]]:
    """The (ISO3 code, label) options of the posts' filter's Party list."""
    select = re.search(r'<select name="party"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.findall(r'<option value="([A-Z]{3})"[^>]*>([^<]*)</option>', select)
