"""Codes other data refer to (a Party's ISO3, a provider's short name) are validated and never renamed in the
admin; switching a provider on or off is in its history."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from apps.parties.models import Party, SupportProvider
from tests.factories import SupportProviderFactory, party

pytestmark = pytest.mark.django_db

PROVIDERS = reverse("admin:parties_supportprovider_changelist")


@pytest.fixture
def staff(login, secretariat):
    return login(secretariat)


def party_data(**fields) -> dict:
    data = {"iso3": "XKX", "name": "Kosovo", "regional_group": "", "paris_agreement_party": "on"}
    data.update(fields)
    return data


def provider_data(**fields) -> dict:
    data = {"short_name": "CREWS", "name": "Climate Risk and Early Warning Systems", "kind": "fund"}
    data.update(fields)
    return data


def errors_of(response, field: str) -> str:
    assert response.status_code == 200, response.status_code
    return " ".join(response.context["adminform"].form.errors.get(field, []))


@pytest.mark.parametrize("code", ["ke", "ken", "k3n", "12", "KE", "K N", "KEn"])
def test_a_party_code_is_three_capital_letters(staff, code):
    response = staff.post(reverse("admin:parties_party_add"), party_data(iso3=code))
    assert "Three capital letters" in errors_of(response, "iso3")
    assert not Party.objects.filter(name="Kosovo").exists()


def test_a_new_party_with_a_good_code(staff):
    response = staff.post(reverse("admin:parties_party_add"), party_data())
    assert response.status_code == 302
    assert Party.objects.get(iso3="XKX").name == "Kosovo"


def test_a_party_code_is_not_a_groups_name(staff):
    """`eligible: ["LDC"]` names the group of least developed countries: no Party may be called LDC too."""
    response = staff.post(reverse("admin:parties_party_add"), party_data(iso3="LDC", name="Fake LDC"))
    assert "LDC names a group of Parties in offers' eligibility lists" in errors_of(response, "iso3")
    assert not Party.objects.filter(iso3="LDC").exists()


def test_two_parties_do_not_share_a_name(staff):
    party("KEN")
    for fields, field in (
        ({"name": "kenya"}, "name"),
        ({"name_fr": "Kenya"}, "name_fr"),
        ({"name_es": "KENYA"}, "name_es"),
    ):
        response = staff.post(reverse("admin:parties_party_add"), party_data(**fields))
        assert "Kenya (KEN) already has this name" in errors_of(response, field), fields
    assert not Party.objects.filter(iso3="XKX").exists()
    # Saving a Party under its own name is no clash.
    ken = Party.objects.get(iso3="KEN")
    url = reverse("admin:parties_party_change", args=[ken.pk])
    response = staff.post(
        url,
        party_data(
            iso3="KEN", name="Kenya", name_fr="Kenya", name_es="Kenya", regional_group="African States"
        ),
    )
    assert response.status_code == 302
    # Another Party's name in another language is a clash too: on a page without a name in that language
    # (`name` stands in), both would read the same.
    response = staff.post(reverse("admin:parties_party_add"), party_data(name_es="Kenya"))
    assert "Kenya (KEN) already has this name" in errors_of(response, "name_es")
    response = staff.post(reverse("admin:parties_party_add"), party_data(name_fr="Federación de Rusia"))
    assert "Russian Federation (RUS) already has this name" in errors_of(response, "name_fr")


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_the_party_picker_lists_parties_in_the_pages_language_order(staff, language):
    staff.cookies["django_language"] = language
    response = staff.get(
        reverse("admin:autocomplete"), {"app_label": "posts", "model_name": "post", "field_name": "party"}
    )
    names = [item["text"] for item in response.json()["results"]]
    assert len(names) == 20  # a page
    from apps.parties.models import reading_order

    def by_name(text: str) -> str:
        return reading_order(text.rsplit(" (", 1)[0])

    assert names == sorted(names, key=by_name)
    if language == "fr":
        assert (
            names.index("Afrique du Sud (ZAF)")
            < names.index("Albanie (ALB)")
            < names.index("Allemagne (DEU)")
        )
    elif language == "es":
        assert names[:3] == ["Afganistán (AFG)", "Albania (ALB)", "Alemania (DEU)"]
        assert names.index("Arabia Saudita (SAU)") < names.index("Argelia (DZA)")
    else:
        assert names[:3] == ["Afghanistan (AFG)", "Albania (ALB)", "Algeria (DZA)"]
    searched = staff.get(
        reverse("admin:autocomplete"),
        {"app_label": "posts", "model_name": "post", "field_name": "party", "term": "gui"},
    ).json()["results"]
    texts = [item["text"] for item in searched]
    assert texts == sorted(texts, key=by_name) and len(texts) >= 4


def test_a_party_code_is_never_renamed(staff):
    ken = party("KEN")
    url = reverse("admin:parties_party_change", args=[ken.pk])
    assert 'name="iso3"' not in staff.get(url).content.decode()
    response = staff.post(url, party_data(iso3="KEX", name="Kenya", regional_group="African States"))
    assert response.status_code == 302
    ken.refresh_from_db()
    assert (ken.iso3, ken.name) == ("KEN", "Kenya")


@pytest.mark.parametrize("name", ["Green Fund", "-GCF", "GCF-", "GCF/2", "ÉCO", "a,b"])
def test_a_provider_short_name_is_one_word(staff, name):
    response = staff.post(reverse("admin:parties_supportprovider_add"), provider_data(short_name=name))
    assert "Letters and digits" in errors_of(response, "short_name")
    assert not SupportProvider.objects.exists()


@pytest.mark.parametrize("name", ["CTCN", "IRENA-CIP", "AfDB", "UN_Habitat", "GIZ.2"])
def test_good_provider_short_names(staff, name):
    response = staff.post(reverse("admin:parties_supportprovider_add"), provider_data(short_name=name))
    assert response.status_code == 302
    assert SupportProvider.objects.get().short_name == name


def test_provider_short_names_are_unique_in_any_case(staff):
    # Imports and the API find a provider by its short name in any case: "ctcn" would be CTCN.
    SupportProviderFactory(short_name="CTCN")
    response = staff.post(reverse("admin:parties_supportprovider_add"), provider_data(short_name="ctcn"))
    assert "regardless of case" in errors_of(response, "short_name")
    assert SupportProvider.objects.count() == 1


def test_a_provider_short_name_is_never_renamed(staff):
    provider = SupportProviderFactory(short_name="CTCN")
    url = reverse("admin:parties_supportprovider_change", args=[provider.pk])
    assert 'name="short_name"' not in staff.get(url).content.decode()
    response = staff.post(url, provider_data(short_name="CTCN2", name="Climate Technology Centre"))
    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.short_name, provider.name) == ("CTCN", "Climate Technology Centre")


def test_deactivation_and_reactivation_are_in_each_providers_history(staff, secretariat):
    gcf = SupportProviderFactory(short_name="GCF")
    af = SupportProviderFactory(short_name="AF")
    inactive = SupportProviderFactory(short_name="OLD", is_active=False)
    staff.post(PROVIDERS, {"action": "deactivate", "_selected_action": [gcf.pk, af.pk, inactive.pk]})
    entries = LogEntry.objects.filter(content_type__model="supportprovider")
    assert sorted(int(e.object_id) for e in entries) == sorted([gcf.pk, af.pk])  # OLD was already inactive
    for entry in entries:
        assert (entry.user, entry.action_flag) == (secretariat, CHANGE)
        assert entry.get_change_message().startswith("Deactivated")

    staff.post(PROVIDERS, {"action": "reactivate", "_selected_action": [gcf.pk]})
    history = staff.get(reverse("admin:parties_supportprovider_history", args=[gcf.pk])).content.decode()
    assert "Deactivated" in history and "Reactivated" in history and secretariat.username in history
    assert "added via this admin site" not in history  # Django's text for an empty history
