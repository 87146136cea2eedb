"""The post form: bad input becomes a field error (never an exception), good input becomes a PostData."""

from decimal import Decimal

import pytest

from apps.posts.forms import PostForm
from apps.posts.post_data import PostData
from tests.factories import PostFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db


def form_data(**overrides) -> dict:
    data = {
        "kind": "need",
        "title": "Early-warning system for the Tana river basin",
        "description": "Stations, forecasting capacity and community alerts for river floods.",
        "support_types": ["technology", "capacity_building"],
        "focus_areas": ["adaptation"],
        "sectors": ["disaster_risk", "water"],
        "language": "en",
        "amount_usd": "1250000",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def party_form(**overrides) -> PostForm:
    return PostForm(form_data(**overrides), party=party("KEN"))


def provider_form(provider=None, **overrides) -> PostForm:
    return PostForm(form_data(**overrides), provider=provider or SupportProviderFactory(short_name="CTCN"))


def test_valid_need_becomes_post_data():
    form = party_form(
        partner_parties=["UGA", "TZA"],
        aims=["ambition"],
        declares_no_transfer="on",
        involves_iplc="on",
        contact_name="Amina",
        contact_email="amina@example.org",
    )
    assert form.is_valid(), form.errors
    data = form.to_post_data()
    assert isinstance(data, PostData)
    assert data.kind == "need"
    assert data.party == party("KEN") and data.provider is None
    assert data.support_types == ["technology", "capacity_building"]
    assert data.sectors == ["disaster_risk", "water"]
    assert data.amount_usd == Decimal("1250000")
    assert [p.iso3 for p in data.partner_parties] == ["UGA", "TZA"]
    assert data.declarations == {
        "voluntary": False,
        "no_transfer": True,
        "ndc": False,
        "rights": False,
        "safeguards": False,
    }
    assert data.involves_iplc is True
    assert data.eligible == []
    assert data.contact_email == "amina@example.org"


def test_offer_eligibility_combines_groups_and_parties():
    form = party_form(
        kind="offer",
        eligible_groups=["LDC", "SIDS"],
        eligible_parties=["UGA"],
        instruments=["grant"],
        support_types=["finance"],
    )
    assert form.is_valid(), form.errors
    data = form.to_post_data()
    assert data.eligible == ["LDC", "SIDS", "UGA"]
    assert data.instruments == ["grant"]


def test_form_shows_taxonomy_labels_as_choices():
    html = str(PostForm(party=party("KEN"))["support_types"])
    assert 'type="checkbox"' in html
    assert "Technology development and transfer" in html
    assert 'value="capacity_building"' in html
    focus = str(PostForm(party=party("KEN"))["focus_areas"])
    assert "Adaptation, resilience and sustainability" in focus


def test_provider_form_offers_no_need_kind():
    form = PostForm(provider=SupportProviderFactory(short_name="CTCN"))
    assert [value for value, _label in form.fields["kind"].choices] == ["offer"]


def test_partner_choices_exclude_the_posting_party():
    form = PostForm(party=party("KEN"))
    codes = [value for value, _label in form.fields["partner_parties"].choices]
    assert "KEN" not in codes and "UGA" in codes


def test_the_posts_text_fields_carry_its_language():
    """Screen readers read an English post edited on a French page with an English voice."""
    from django.utils import translation

    post = PostFactory(party=party("KEN"), language="en", title="Mangroves")
    with translation.override("fr"):
        form = PostForm(initial=PostForm.initial_for(post), party=party("KEN"))
        assert 'lang="en"' in str(form["title"]) and 'lang="en"' in str(form["description"])
        bound = PostForm(data={"language": "es", "title": "Manglares"}, party=party("KEN"))
        assert 'lang="es"' in str(bound["title"])
        assert "lang=" not in str(PostForm(party=party("KEN"))["title"])  # a new post: the page's language
        assert "lang=" not in str(PostForm(data={"language": "xx"}, party=party("KEN"))["title"])


def test_party_lists_lead_with_the_code_a_narrow_screen_keeps(settings):
    """An option does not wrap: on a 320 px screen "Venezuela (République bolivarienne du) (VEN)" lost its end,
    the code that tells similar names apart. The code comes first; the picks' line names them in full."""
    import re

    from django.utils import translation

    with translation.override("fr"):
        html = str(PostForm(party=party("KEN"))["eligible_parties"])
    options = re.findall(r'<option value="([A-Z]{3})" data-name="([^"]+)">([^<]+)</option>', html)
    assert len(options) == 198
    assert (
        "VEN",
        "Venezuela (République bolivarienne du) (VEN)",
        "VEN – Venezuela (République bolivarienne du)",
    ) in [(code, name.replace("&#x27;", "'"), label.replace("&#x27;", "'")) for code, name, label in options]
    codes = [code for code, _name, _label in options]
    assert codes.index("ZAF") < codes.index("ALB")  # still in the order of the names: Afrique du Sud, Albanie


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"title": "x" * 201}, "title"),
        ({"title": "   "}, "title"),
        ({"description": ""}, "description"),
        ({"description": "   "}, "description"),
        ({"description": "x" * 20_001}, "description"),
        ({"support_types": ["finance", "bribery"]}, "support_types"),
        ({"support_types": []}, "support_types"),
        ({"focus_areas": ["space_travel"]}, "focus_areas"),
        ({"focus_areas": None}, "focus_areas"),
        ({"sectors": ["not_a_sector"]}, "sectors"),
        ({"instruments": ["crypto"], "kind": "offer"}, "instruments"),
        ({"partner_parties": ["XXX"]}, "partner_parties"),
        ({"kind": "offer", "eligible_parties": ["ZZZ"]}, "eligible_parties"),
        ({"kind": "offer", "eligible_groups": ["Atlantis"]}, "eligible_groups"),
        ({"amount_usd": "-5"}, "amount_usd"),
        ({"amount_usd": "lots"}, "amount_usd"),
        ({"amount_usd": "1e30"}, "amount_usd"),
        ({"language": "xx"}, "language"),
        ({"kind": "grant"}, "kind"),
        ({"contact_email": "not-an-email"}, "contact_email"),
    ],
)
def test_bad_input_is_a_field_error(overrides, field):
    form = party_form(**overrides)
    assert not form.is_valid()
    assert field in form.errors, form.errors


def test_need_with_eligibility_is_refused_on_the_eligibility_field():
    form = party_form(kind="need", eligible_groups=["LDC"])
    assert not form.is_valid()
    assert form.errors["eligible_groups"] == [
        "Only offers restrict who is eligible; a need has no eligibility."
    ]
    form = party_form(kind="need", eligible_parties=["UGA"])
    assert not form.is_valid()
    assert "eligible_parties" in form.errors


def test_need_with_instruments_is_refused():
    form = party_form(kind="need", instruments=["grant"])
    assert not form.is_valid()
    assert "instruments" in form.errors


def test_provider_posting_a_need_is_refused_on_kind():
    form = provider_form(kind="need")
    assert not form.is_valid()
    assert "kind" in form.errors


def test_provider_offer_is_valid():
    provider = SupportProviderFactory(short_name="CTCN")
    form = provider_form(provider, kind="offer", eligible_groups=["African States"])
    assert form.is_valid(), form.errors
    data = form.to_post_data()
    assert data.provider == provider and data.party is None
    assert data.eligible == ["African States"]


def test_partner_party_same_as_poster_is_refused():
    # Not offered as a choice, so a tampered POST is refused as an unknown choice.
    form = party_form(partner_parties=["KEN"])
    assert not form.is_valid()
    assert "partner_parties" in form.errors


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("1250000", Decimal("1250000")),
        ("1,250,000", Decimal("1250000")),
        ("1 250 000", Decimal("1250000")),
        ("1\u202f250\u00a0000", Decimal("1250000")),  # French grouping: narrow and plain no-break spaces
        ("1,250,000.50", Decimal("1250000.50")),
        (" 2500.5 ", Decimal("2500.5")),
        # A decimal comma, as French writes it: a comma before one or two final digits is never a group.
        ("2 000 000,50", Decimal("2000000.50")),
        ("1,25", Decimal("1.25")),
        ("7,5", Decimal("7.5")),
    ],
)
def test_amounts_may_be_typed_with_grouped_digits(typed, amount):
    form = party_form(amount_usd=typed)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount_usd"] == amount


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("12,50,000", "in digits"),  # a misplaced group: not guessed
        ("1,2345", "in digits"),
        ("1,250,00", "in digits"),
        ("a lot", "in digits"),
        ("999999999999999999", "number of zeros"),
        ("-5", "greater than or equal to 0"),
    ],
)
def test_an_amount_that_cannot_be_read_gets_one_clear_message(typed, words):
    errors = party_form(amount_usd=typed).errors["amount_usd"]
    assert len(errors) == 1 and words in errors[0], errors


@pytest.mark.parametrize("typed", ["0,001", "0,500"])
def test_a_lone_zero_before_a_comma_is_no_group_of_thousands(typed):
    """ "0,001" was read as 1 dollar (a group of thousands): it is a decimal, with more places than cents."""
    form = party_form(amount_usd=typed)
    assert not form.is_valid()
    assert "amount_usd" in form.errors


def test_on_a_page_with_a_decimal_comma_an_amount_that_reads_two_ways_is_asked_again():
    """On a French page, "2,000" was saved as USD 2,000, where a French reader means 2; in English it is two
    thousand. Spaces, a decimal point or cents after the comma are read as before."""
    from django.utils import translation

    with translation.override("fr"):
        errors = party_form(amount_usd="2,000").errors.as_data()["amount_usd"]
        assert [error.code for error in errors] == ["ambiguous"]
        assert "(2\u00a0000 ou 2000)" in errors[0].messages[0]
        for typed, amount in (
            ("2 000", 2000),
            ("2,50", Decimal("2.50")),
            ("1,250,000.50", Decimal("1250000.50")),
            ("2,000,000", 2_000_000),  # can only be two million
        ):
            form = party_form(amount_usd=typed)
            assert form.is_valid(), form.errors
            assert form.cleaned_data["amount_usd"] == amount
    with translation.override("en"):
        form = party_form(amount_usd="2,000")
        assert form.is_valid(), form.errors
        assert form.cleaned_data["amount_usd"] == 2000


def test_the_amount_box_takes_grouped_digits_in_a_browser():
    """A number box (type=number) refuses "1,250,000" in the browser, before the server could read it."""
    html = str(party_form()["amount_usd"])
    assert 'type="text"' in html and 'inputmode="decimal"' in html


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Short title", "Short title"),
        ("Planned relocation of climate-threatened communities: standards and participation of the people moved",
         "Planned relocation of climate-threatened communities: standards and…"),
        ("x" * 100, "x" * 79 + "…"),
        ("A title\nwith a break", "A title with a break"),
    ],
)  # fmt: skip
def test_an_email_subject_cuts_a_title_at_a_words_end(title, expected):
    from apps.posts.post_data import subject_title

    got = subject_title(title)
    assert got == expected and len(got) <= 80


def test_a_text_over_its_limit_is_refused_with_its_length_not_cut_by_the_browser():
    """The page's maxlength made a browser cut a long paste at the limit, silently: the server says it instead."""
    form = party_form(description="x" * 20_001)
    assert "maxlength" not in str(form["description"]) and "maxlength" not in str(form["title"])
    assert not form.is_valid()
    assert form.errors["description"] == ["Ensure this value has at most 20000 characters (it has 20001)."]


@pytest.mark.parametrize("blank", ["\u200b\u200b", "\ufeff", "\u0301"])
def test_a_title_or_description_that_shows_nothing_is_required(blank):
    form = party_form(title=blank, description=blank)
    assert not form.is_valid()
    assert form.errors["title"] == ["This field is required."]
    assert form.errors["description"] == ["This field is required."]


def test_an_outcome_that_shows_nothing_is_required():
    from apps.posts.forms import CloseForm

    form = CloseForm({"outcome": "\u200b \u2060"})
    assert not form.is_valid() and form.errors["outcome"] == ["This field is required."]
    assert CloseForm({"outcome": "Funded."}).is_valid()
