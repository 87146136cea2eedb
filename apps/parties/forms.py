"""Choosing a Party: named in the page's language, in the order a reader looks names up (`reading_order`)."""

from __future__ import annotations

from django import forms

from .models import reading_order


def _name_order(choice) -> str:
    """A Party's choice by its name in the page's language, not by its label: "Guinea (GIN)" read with its code
    came after "Guinea-Bissau (GNB)" and "Guinea Ecuatorial (GNQ)", and "Niger (NER)" after "Nigeria (NGA)"."""
    party = getattr(choice[0], "instance", None)
    return reading_order(party.local_name if party is not None else str(choice[1]))


class ReadingOrderMixin:
    """For a ModelChoiceIterator of Parties: the blank choice first (without a query: widgets peek at it), then
    the Parties sorted by their name in the page's language (the query sorts by the English name)."""

    def __iter__(self):
        choices = super().__iter__()
        for choice in choices:
            if choice[0] == "":
                yield choice
                continue
            yield from sorted([choice, *choices], key=_name_order)
            return


class _PartyChoices(ReadingOrderMixin, forms.models.ModelChoiceIterator):
    pass


class PartyChoiceField(forms.ModelChoiceField):
    iterator = _PartyChoices
