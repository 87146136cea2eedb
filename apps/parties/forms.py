"""Choosing a Party: named in the page's language, in the order a reader looks names up (`reading_order`)."""

from __future__ import annotations

from django import forms
from django.utils.formats import localize
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime

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


def _attributes(attrs: dict) -> str:
    """Django's `django/forms/widgets/attrs.html`: ` name="value"`, a bare name for True, nothing for False."""
    return "".join(
        f" {conditional_escape(name)}" if value is True else format_html(' {}="{}"', name, str(value))
        for name, value in attrs.items()
        if value is not False
    )


def _as_shown(value):
    """`value` as a template shows it (`{{ value }}`): a number or a date in the page's language, a datetime in
    the current time zone; text as it is."""
    return localize(template_localtime(value))


class OptionsInPythonMixin:
    """A Select or SelectMultiple written out in Python, as Django's templates write it (select.html and
    select_option.html, whitespace included: the line end that ends select_option.html too). The ~200 Parties
    drawn through a template per option took 34 ms of the posts' list page; so written, 17 ms (most of it the
    choices' query), and the page a quarter less."""

    def render(self, name, value, attrs=None, renderer=None) -> SafeString:
        if (self.template_name, self.option_template_name) != (
            forms.Select.template_name,
            forms.Select.option_template_name,
        ):
            # A widget drawn by templates of its own: written out here, they would silently be left out.
            return super().render(name, value, attrs, renderer)
        widget = self.get_context(name, value, attrs)["widget"]
        out = [format_html('<select name="{}"', widget["name"]), _attributes(widget["attrs"]), ">"]
        for group_name, options, _index in widget["optgroups"]:
            if group_name:
                out.append(format_html('\n  <optgroup label="{}">', _as_shown(group_name)))
            for option in options:
                out.append(format_html('\n  <option value="{}"', str(option["value"])))
                out += [
                    _attributes(option["attrs"]),
                    format_html(">{}</option>\n", _as_shown(option["label"])),
                ]
            if group_name:
                out.append("\n  </optgroup>")
        out.append("\n</select>")
        return mark_safe("".join(out))


class PartySelect(OptionsInPythonMixin, forms.Select):
    pass


class PartyChoiceField(forms.ModelChoiceField):
    iterator = _PartyChoices
    widget = PartySelect
