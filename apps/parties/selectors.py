"""Reads of reference data shared by the other apps."""

from .models import Party


def party_groups_by_iso3() -> dict[str, frozenset[str]]:
    """Every Party's eligibility groups, keyed by ISO3 code, in one query."""
    return {
        party.iso3: party.groups
        for party in Party.objects.only("iso3", "regional_group", "is_ldc", "is_sids")
    }
