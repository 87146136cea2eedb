"""Choosing a Party: named in the page's language, in the order a reader looks names up (`reading_order`)."""

from __future__ import annotations

from django import forms

from .models import reading_order


class ReadingOrderMixin:
    """For a ModelChoiceIterator of Parties: the blank choice first (without a query: widgets peek at it), then
    the Parties sorted by their label in the page's language (the query sorts by the English name)."""

    def __iter__(self):
        choices = super().__iter__()
        for choice in choices:
            if choice[0] == "":
                yield choice
                continue
            yield from sorted([choice, *choices], key=lambda c: reading_order(str(c[1])))
            return


class _PartyChoices(ReadingOrderMixin, forms.models.ModelChoiceIterator):
    pass


class PartyChoiceField(forms.ModelChoiceField):
    iterator = _PartyChoices
