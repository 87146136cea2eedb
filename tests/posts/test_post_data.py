"""The import format: every kind of bad input names its field, good input becomes a complete PostData."""

from decimal import Decimal

import pytest

from apps.posts.models import Post
from apps.posts.post_data import (
    FieldError,
    PostDataError,
    ReferenceData,
    parse_post_record,
    post_rules_errors,
    post_to_record,
)
from tests.factories import PostFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db


@pytest.fixture
def refs():
    SupportProviderFactory(short_name="CTCN")
    SupportProviderFactory(short_name="OLDFUND", is_active=False)
    return ReferenceData()


def need(**changes) -> dict:
    record = {
        "external_id": "ken-ews-1",
        "kind": "need",
        "party": "KEN",
        "title": "Flood early warning for the lower Tana basin",
        "description": "River gauges, impact-based forecasts and alerts relayed by community volunteers.",
        "support_types": ["technology", "capacity_building"],
        "focus_areas": ["adaptation"],
        "sectors": ["disaster_risk", "water"],
        "language": "en",
        "amount_usd": 3200000,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def offer(**changes) -> dict:
    record = {
        "external_id": "ctcn-ta-1",
        "kind": "offer",
        "provider": "CTCN",
        "title": "Technical assistance for climate services",
        "description": "Network members design hydromet networks and train forecasters.",
        "support_types": ["technology"],
        "focus_areas": ["adaptation"],
        "instruments": ["in_kind"],
        "eligible": ["LDC", "sids", "ken", "African States"],
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def errors_of(record, refs, **kwargs) -> dict[str, FieldError]:
    with pytest.raises(PostDataError) as raised:
        parse_post_record(record, refs, **kwargs)
    return {e.field: e for e in raised.value.errors}


def test_good_need(refs):
    data = parse_post_record(need(), refs)
    assert data.kind == "need"
    assert data.party == party("KEN") and data.provider is None
    assert data.support_types == ["technology", "capacity_building"]
    assert data.amount_usd == Decimal("3200000.00")
    assert data.external_id == "ken-ews-1"
    assert data.status is None
    assert data.declarations == dict.fromkeys(
        ("voluntary", "no_transfer", "ndc", "rights", "safeguards"), False
    )


def test_good_offer_canonicalises_eligibility(refs):
    data = parse_post_record(offer(), refs, default_status="published")
    assert data.provider.short_name == "CTCN"
    assert data.eligible == ["LDC", "SIDS", "KEN", "African States"]
    assert data.status == "published"


def test_lowercase_party_and_language_are_accepted(refs):
    data = parse_post_record(need(party="ken", language="FR"), refs)
    assert data.party.iso3 == "KEN" and data.language == "fr"


@pytest.mark.parametrize(
    ("given", "amount"), [("1250000.50", "1250000.50"), ("12", "12.00"), (12.5, "12.50")]
)
def test_an_amount_as_text_keeps_its_cents(given, amount, refs):
    assert parse_post_record(need(amount_usd=given), refs).amount_usd == Decimal(amount)


def test_null_means_absent(refs):
    data = parse_post_record(need(sectors=None, amount_usd=None, language=None, involves_iplc=None), refs)
    assert (data.sectors, data.amount_usd, data.language, data.involves_iplc) == ([], None, "en", False)


def test_optional_fields(refs):
    data = parse_post_record(
        need(
            aims=["ambition"],
            partner_parties=["uga", "TZA"],
            involves_iplc=True,
            declarations={"voluntary": True, "rights": True},
            contact_name="Wanjiru Kamau",
            contact_email="wk@example.org",
        ),
        refs,
    )
    assert [p.iso3 for p in data.partner_parties] == ["UGA", "TZA"]
    assert data.declarations["voluntary"] and data.declarations["rights"] and not data.declarations["ndc"]
    assert data.involves_iplc and data.contact_email == "wk@example.org"


BAD = [
    # (record changes, field, code or None, words in the message)
    ({"title": "x" * 201}, "title", "max_length", "At most 200 characters (this one has 201)"),
    ({"title": "   "}, "title", "required", "may not be empty"),
    ({"title": ...}, "title", "required", "required"),
    ({"title": 42}, "title", "invalid", "Expected text"),
    ({"description": ""}, "description", "required", "may not be empty"),
    ({"description": "d" * 20_001}, "description", "max_length", "20000"),
    ({"support_types": ["money"]}, "support_types", "unknown_key", "money"),
    ({"support_types": []}, "support_types", "required", "at least one"),
    ({"support_types": "finance"}, "support_types", "invalid", "list of strings"),
    ({"focus_areas": ...}, "focus_areas", "required", "required"),
    ({"focus_areas": ["resilience"]}, "focus_areas", "unknown_key", "resilience"),
    ({"sectors": ["forestry"]}, "sectors", "unknown_key", "forestry"),
    ({"sectors": [1, 2]}, "sectors", "invalid", "list of strings"),
    ({"party": "XXX"}, "party", "unknown", "Unknown Party code 'XXX'"),
    ({"party": 404}, "party", "unknown", "404"),
    ({"party": ...}, "party", "required", "Party or a support provider"),
    ({"kind": "request"}, "kind", "invalid", "'need' or 'offer'"),
    ({"kind": ...}, "kind", "required", "'need' or 'offer'"),
    ({"amount_usd": -5}, "amount_usd", "min_value", "may not be negative"),
    ({"amount_usd": "-5.5"}, "amount_usd", "min_value", "may not be negative"),
    ({"amount_usd": -1e300}, "amount_usd", "min_value", "may not be negative"),
    # As text, its digits only (Decimal read all of these): an exponent, spaces, underscores, other scripts.
    ({"amount_usd": "-1e100000"}, "amount_usd", "invalid", "its digits as text"),
    ({"amount_usd": "1_000"}, "amount_usd", "invalid", "its digits as text"),
    ({"amount_usd": " 12 "}, "amount_usd", "invalid", "its digits as text"),
    ({"amount_usd": "١٢"}, "amount_usd", "invalid", "its digits as text"),
    ({"amount_usd": "12,50"}, "amount_usd", "invalid", "its digits as text"),
    ({"amount_usd": "lots"}, "amount_usd", "invalid", "Expected a number"),
    ({"amount_usd": True}, "amount_usd", "invalid", "Expected a number"),
    ({"amount_usd": [100]}, "amount_usd", "invalid", "Expected a number"),
    ({"amount_usd": "NaN"}, "amount_usd", "invalid", "Expected a number"),
    ({"amount_usd": 1e300}, "amount_usd", "max_value", "under a trillion dollars"),
    ({"language": "xx"}, "language", "invalid", "Unknown language 'xx'"),
    ({"language": 3}, "language", "invalid", "Unknown language"),
    ({"eligible": ["LDC"]}, "eligible", "invalid", "Only offers"),
    ({"instruments": ["grant"]}, "instruments", "invalid", "describe offers"),
    ({"colour": "green", "budget": 1}, "budget", "unknown", "Unknown field(s): budget, colour"),
    ({"external_id": ""}, "external_id", "invalid", "non-empty"),
    ({"external_id": 17}, "external_id", "invalid", "non-empty"),
    ({"external_id": "e" * 101}, "external_id", "max_length", "100"),
    ({"status": "approved"}, "status", "invalid", "Unknown status"),
    ({"aims": ["profit"]}, "aims", "invalid", "Unknown aim"),
    ({"partner_parties": ["ZZZ"]}, "partner_parties", "unknown", "ZZZ"),
    ({"partner_parties": ["KEN"]}, "partner_parties", "invalid", "must differ"),
    ({"involves_iplc": "yes"}, "involves_iplc", "invalid", "true or false"),
    ({"declarations": {"voluntary": "yes"}}, "declarations", "invalid", "true/false"),
    ({"declarations": {"honest": True}}, "declarations", "invalid", "true/false"),
    ({"declarations": []}, "declarations", "invalid", "true/false"),
    ({"contact_email": "not-an-address"}, "contact_email", "invalid", "valid email"),
    ({"provider": "CTCN"}, "provider", "invalid", "not both"),
]


@pytest.mark.parametrize(("changes", "field", "code", "words"), BAD)
def test_bad_need(changes, field, code, words, refs):
    errors = errors_of(need(**changes), refs)
    assert field in errors, errors
    assert errors[field].code == code
    assert words in errors[field].message


BAD_OFFERS = [
    ({"eligible": ["Nordic States"]}, "eligible", "unknown", "'Nordic States'"),
    ({"eligible": ["LDC", "QQQ"]}, "eligible", "unknown", "'QQQ'"),
    ({"eligible": "LDC"}, "eligible", "invalid", "list of strings"),
    ({"instruments": ["bond"]}, "instruments", "unknown_key", "bond"),
    ({"provider": "NOPE"}, "provider", "unknown", "Unknown support provider 'NOPE'"),
    # A provider posting a need.
    ({"kind": "need", "eligible": ..., "instruments": ...}, "kind", "invalid", "offers only"),
]


@pytest.mark.parametrize(("changes", "field", "code", "words"), BAD_OFFERS)
def test_bad_offer(changes, field, code, words, refs):
    errors = errors_of(offer(**changes), refs)
    assert field in errors, errors
    assert errors[field].code == code
    assert words in errors[field].message


@pytest.mark.parametrize("record", [None, [], "need", 3])
def test_not_an_object(record, refs):
    assert list(errors_of(record, refs)) == ["(line)"]


def test_every_bad_field_is_reported_at_once(refs):
    errors = errors_of(need(title="", amount_usd=-1, sectors=["space"], party="ZZZ"), refs)
    assert set(errors) == {"title", "amount_usd", "sectors", "party"}
    message = str(PostDataError(list(errors.values())))
    assert "amount_usd: The amount may not be negative." in message


def test_duplicate_keys_in_lists_are_dropped(refs):
    data = parse_post_record(need(focus_areas=["adaptation", "adaptation"]), refs)
    assert data.focus_areas == ["adaptation"]


def test_reference_data_costs_two_queries(django_assert_num_queries):
    # Parties, active providers: then any number of lines validate without a query.
    with django_assert_num_queries(2):
        refs = ReferenceData()
    with django_assert_num_queries(0):
        for i in range(50):
            parse_post_record(need(external_id=f"n{i}"), refs)


def test_rules_shared_with_the_web_form():
    ken = party("KEN")
    assert (
        post_rules_errors(
            kind="need", party=ken, provider=None, eligible=[], instruments=[], partner_parties=[]
        )
        == []
    )
    fields = {
        e.field
        for e in post_rules_errors(
            kind="need",
            party=None,
            provider=None,
            eligible=["LDC"],
            instruments=["grant"],
            partner_parties=[],
        )
    }
    assert fields == {"party", "eligible", "instruments"}


def test_post_to_record_round_trips(refs):
    post = PostFactory(
        external_id="ken-1",
        amount_usd=Decimal("1500.50"),
        support_types=["finance"],
        focus_areas=["mitigation", "adaptation"],
        sectors=["water"],
    )
    post = Post.objects.with_related().get(pk=post.pk)
    record = post_to_record(post)
    assert record["external_id"] == "ken-1"
    assert record["amount_usd"] == 1500.5
    data = parse_post_record(record, refs)
    assert data.party.iso3 == "KEN"
    assert sorted(data.focus_areas) == ["adaptation", "mitigation"]
    assert data.status == post.status


def test_post_without_external_id_exports_its_platform_id():
    post = PostFactory()
    assert post_to_record(Post.objects.with_related().get(pk=post.pk))["external_id"] == f"post-{post.pk}"


def test_a_title_is_one_line(refs):
    # A title heads pages and emails' subjects, where a line break is not allowed: whitespace runs become one space.
    data = parse_post_record(need(title="  Flood early warning\nfor the\r\n\tTana basin  "), refs)
    assert data.title == "Flood early warning for the Tana basin"
    assert "\n" in parse_post_record(need(description="First line.\nSecond line."), refs).description


def test_a_deactivated_provider_is_known(refs):
    """Its posts stay and the secretariat may update them, so it resolves; the services refuse it new posts
    (tests/accounts/test_deactivated_provider.py)."""
    data = parse_post_record(offer(provider="oldfund"), refs)
    assert data.provider.short_name == "OLDFUND" and not data.provider.is_active


INVISIBLE = ["\u200b\u200b", "\ufeff", "\u0301\u0301", " \u200b\u2060 ", "\u00a0\u3000"]


@pytest.mark.parametrize("blank", INVISIBLE)
@pytest.mark.parametrize("name", ["title", "description"])
def test_text_that_shows_nothing_is_empty(refs, name, blank):
    """Zero-width and format characters, or combining marks without a letter: a post titled so was taken and
    shown blank (API and import)."""
    assert errors_of(need(**{name: blank}), refs)[name].code == "required"


def test_text_with_a_visible_character_among_invisible_ones_is_kept(refs):
    assert parse_post_record(need(title="\u200bé\u200b"), refs).title == "\u200bé\u200b"
    assert parse_post_record(need(title="洪水"), refs).title == "洪水"
    assert parse_post_record(need(title="١٢"), refs).title == "١٢"  # Arabic-Indic digits


@pytest.mark.parametrize("blank", ["\u3164", "\u2800\u2800", "\u115f\u1160", "\uffa0"])
def test_letters_and_symbols_that_draw_nothing_are_empty(refs, blank):
    """The Hangul fillers and the blank Braille pattern are a letter and a symbol by category, and draw nothing."""
    assert errors_of(need(title=blank), refs)["title"].code == "required"
