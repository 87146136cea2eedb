"""The secretariat's admin for reference data: Parties and the support providers it registers."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from apps.parties.models import Party, SupportProvider
from tests.factories import PostFactory, ProviderUserFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db

PARTIES = reverse("admin:parties_party_changelist")
PROVIDERS = reverse("admin:parties_supportprovider_changelist")


@pytest.fixture
def staff(login, secretariat):
    return login(secretariat)


def results(response) -> list:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_party_search_and_filters(staff):
    assert [p.iso3 for p in results(staff.get(PARTIES, {"q": "Kenya"}))] == ["KEN"]
    assert [p.iso3 for p in results(staff.get(PARTIES, {"q": "fji"}))] == ["FJI"]
    sids = results(staff.get(PARTIES, {"is_sids__exact": "1", "all": ""}))
    assert "FJI" in {p.iso3 for p in sids} and "KEN" not in {p.iso3 for p in sids}
    african = results(
        staff.get(PARTIES, {"regional_group__exact": "African States", "is_ldc__exact": "1", "all": ""})
    )
    assert {p.iso3 for p in african} >= {"SEN", "MWI"} and all(p.is_ldc for p in african)


def test_secretariat_edits_a_party_but_never_deletes_one(staff):
    ken = party("KEN")
    url = reverse("admin:parties_party_change", args=[ken.pk])
    data = {
        "iso3": "KEN",
        "name": "Kenya",
        "regional_group": "African States",
        "is_ldc": "on",
        "paris_agreement_party": "on",
    }
    assert staff.post(url, data).status_code == 302
    ken.refresh_from_db()
    assert ken.is_ldc
    assert staff.get(reverse("admin:parties_party_delete", args=[ken.pk])).status_code == 403
    # Without the delete action no action is left, so the list offers none.
    assert staff.get(PARTIES).context["action_form"] is None


@pytest.mark.parametrize("n", [2, 20])
def test_party_list_query_count(n, staff, django_assert_num_queries):
    # 1 session, 2 user, 3 filtered count, 4 total count, 5 the page of Parties. The filters need no query
    # (choices); no Django permissions are read (the Groups admin, which read them for the sidebar, is gone).
    with django_assert_num_queries(5):
        staff.get(PARTIES, {"q": "a"} if n == 2 else {})


def test_register_a_provider(staff):
    response = staff.post(
        reverse("admin:parties_supportprovider_add"),
        {
            "short_name": "CREWS",
            "name": "Climate Risk and Early Warning Systems initiative",
            "kind": "fund",
            "website": "https://www.crews-initiative.org",
            "contact_email": "secretariat@crews.example.org",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    provider = SupportProvider.objects.get(short_name="CREWS")
    assert provider.is_active and provider.kind == "fund"


def test_deactivate_and_reactivate_providers(staff):
    active = SupportProviderFactory(short_name="GCF")
    other = SupportProviderFactory(short_name="AF")
    response = staff.post(PROVIDERS, {"action": "deactivate", "_selected_action": [active.pk, other.pk]})
    assert response.status_code == 302
    assert set(SupportProvider.objects.values_list("is_active", flat=True)) == {False}
    assert "Deactivated 2 support providers." in str(next(iter(get_messages(response.wsgi_request))))
    assert [p.short_name for p in results(staff.get(PROVIDERS, {"is_active__exact": "0"}))] == ["AF", "GCF"]

    staff.post(PROVIDERS, {"action": "reactivate", "_selected_action": [active.pk]})
    active.refresh_from_db()
    other.refresh_from_db()
    assert active.is_active and not other.is_active
    # An action that changes nothing says so, as a warning.
    for action, expected in (("reactivate", "active already"), ("deactivate", "inactive already")):
        selected = active if action == "reactivate" else other
        response = staff.post(PROVIDERS, {"action": action, "_selected_action": [selected.pk]})
        message = list(get_messages(response.wsgi_request))[-1]
        assert message.level_tag == "warning" and expected in str(message)
    # Some of the selection changed, some was so already: both are said.
    response = staff.post(PROVIDERS, {"action": "deactivate", "_selected_action": [active.pk, other.pk]})
    said = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert ("warning", "1 of the selected providers was inactive already: left as it was.") in said
    assert any(
        level == "success" and text.startswith("Deactivated 1 support provider.") for level, text in said
    )


def test_providers_are_never_deleted(staff):
    provider = SupportProviderFactory()
    assert staff.get(reverse("admin:parties_supportprovider_delete", args=[provider.pk])).status_code == 403
    actions = [n for n, _ in staff.get(PROVIDERS).context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions and "deactivate" in actions


def test_provider_list_shows_counts_and_filters(staff):
    ctcn = SupportProviderFactory(short_name="CTCN")
    SupportProviderFactory(short_name="NDCP")
    ProviderUserFactory(provider=ctcn, username="ctcn_user")
    PostFactory(kind="offer", party=None, provider=ctcn)
    rows = {p.short_name: p for p in results(staff.get(PROVIDERS))}
    assert (rows["CTCN"].n_users, rows["CTCN"].n_posts) == (1, 1)
    assert (rows["NDCP"].n_users, rows["NDCP"].n_posts) == (0, 0)
    assert [p.short_name for p in results(staff.get(PROVIDERS, {"has_users": "no"}))] == ["NDCP"]
    assert [p.short_name for p in results(staff.get(PROVIDERS, {"q": "ctcn"}))] == ["CTCN"]


@pytest.mark.parametrize("n", [2, 20])
def test_provider_list_query_count(n, staff, django_assert_num_queries):
    for i in range(n):
        provider = SupportProviderFactory(short_name=f"P{i}")
        ProviderUserFactory(provider=provider, username=f"pu{i}")
    # 1 session, 2 user, 3 filtered count, 4 total count, 5 the page of providers with their user and post
    # counts as subqueries.
    with django_assert_num_queries(5):
        response = staff.get(PROVIDERS)
    assert len(response.context["cl"].result_list) == n


@pytest.mark.parametrize("role", ["focal_point", "committee", "provider_user", "observer"])
def test_non_staff_get_the_login_page(role, request, login):
    client = login(request.getfixturevalue(role))
    provider = SupportProviderFactory(short_name="GCF")
    for url in (PARTIES, PROVIDERS, reverse("admin:parties_supportprovider_add")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    client.post(PROVIDERS, {"action": "deactivate", "_selected_action": [provider.pk]})
    provider.refresh_from_db()
    assert provider.is_active


def test_staff_without_the_secretariat_role_is_refused(login, committee):
    committee.is_staff = True
    committee.save()
    client = login(committee)
    provider = SupportProviderFactory(short_name="GCF")
    assert client.get(PARTIES).status_code == 403
    assert client.get(PROVIDERS).status_code == 403
    assert (
        client.post(PROVIDERS, {"action": "deactivate", "_selected_action": [provider.pk]}).status_code == 403
    )
    provider.refresh_from_db()
    assert provider.is_active
    assert Party.objects.filter(iso3="KEN").exists()
