"""The Party lists are written out in Python (`OptionsInPythonMixin`), not through a template per option: their
HTML must stay exactly what Django's templates write."""

import pytest
from django import forms
from django.utils import translation

from apps.parties.forms import OptionsInPythonMixin, PartyChoiceField, PartySelect
from apps.parties.models import Party
from apps.posts.filters import PostFilter
from apps.posts.forms import PartyListWidget, PostForm

pytestmark = pytest.mark.django_db


def as_django_renders(widget: forms.Widget) -> forms.Widget:
    """A copy of `widget` drawn by Django's templates (`Widget.render`), its options made as the widget makes them."""
    copy = type(widget).__new__(type("Templated", (type(widget),), {"render": forms.Widget.render}))
    copy.__dict__.update(widget.__dict__)
    return copy


def test_the_mixin_writes_what_django_s_templates_write_with_groups_attributes_and_escapes():
    choices = [
        ("", "Any"),
        ('Group <&> "one"', [("a", "A & B"), ("b", '"quoted" <b>')]),
        ("c", "Plain"),
    ]
    attrs = {"id": "id_x", "required": True, "disabled": False, "data-x": '"<&>'}

    class Fast(OptionsInPythonMixin, forms.Select):
        pass

    class FastMultiple(OptionsInPythonMixin, forms.SelectMultiple):
        pass

    for value in (None, "", "b", "c", "missing"):
        assert Fast(choices=choices).render("x", value, attrs) == forms.Select(choices=choices).render(
            "x", value, attrs
        )
    for value in ([], ["a", "c"], ["b"]):
        assert FastMultiple(choices=choices).render("x", value, attrs) == forms.SelectMultiple(
            choices=choices
        ).render("x", value, attrs)


@pytest.mark.parametrize("language", ["en", "fr", "ar"])
def test_the_filter_s_party_list_is_django_s_html(language):
    with translation.override(language):
        field = PostFilter({"party": "KEN"}, queryset=None).form["party"]
        assert isinstance(field.field.widget, PartySelect)
        fast = str(field)
        field.field.widget = as_django_renders(field.field.widget)
        assert str(field) == fast
    assert fast.count("<option") == Party.objects.count() + 1 and 'value="KEN" selected' in fast


def test_the_post_form_s_party_lists_are_django_s_html():
    form = PostForm()
    for name in ("eligible_parties", "partner_parties"):
        widget = form.fields[name].widget
        assert isinstance(widget, PartyListWidget)
        for value in ([], ["KEN", "FJI"]):
            fast = widget.render(name, value, {"id": f"id_{name}"})
            assert as_django_renders(widget).render(name, value, {"id": f"id_{name}"}) == fast
        assert fast.count("<option") == Party.objects.count() and "data-name=" in fast
        assert 'value="KEN" selected data-name="Kenya (KEN)">KEN – Kenya</option>' in fast


def test_the_admin_s_party_field_uses_the_python_list():
    assert isinstance(PartyChoiceField(queryset=Party.objects.all()).widget, PartySelect)


def test_numbers_and_dates_in_labels_are_localised_as_django_s_templates_write_them():
    """A template writes a number or a date as the page's language does ("1,5", "2 janvier 2024"): so must the
    list written in Python, group names included."""
    import datetime
    from decimal import Decimal

    choices = [(1, Decimal("1.5")), (2, datetime.date(2024, 1, 2)), (Decimal("2.5"), [(3, 1234567)])]

    class Fast(OptionsInPythonMixin, forms.Select):
        pass

    for language in ("fr", "ar", "en"):
        with translation.override(language):
            assert Fast(choices=choices).render("x", 1) == forms.Select(choices=choices).render("x", 1)


def test_a_widget_with_templates_of_its_own_is_drawn_by_them():
    class Own(OptionsInPythonMixin, forms.Select):
        option_template_name = "django/forms/widgets/input.html"

    class Templated(forms.Select):
        option_template_name = "django/forms/widgets/input.html"

    choices = [("a", "A")]
    assert Own(choices=choices).render("x", "a") == Templated(choices=choices).render("x", "a")
