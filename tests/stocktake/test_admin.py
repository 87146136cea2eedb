"""Snapshots in the admin: the secretariat (superuser or not) reads them; nobody changes or deletes one."""

import pytest
from django.urls import reverse

from apps.accounts.actors import Actor
from apps.stocktake.models import Snapshot
from apps.stocktake.services import snapshot_create

from .conftest import PERIOD

LIST = reverse("admin:stocktake_snapshot_changelist")


@pytest.fixture
def snapshot(secretariat, world) -> Snapshot:
    return snapshot_create(actor=Actor.for_user(secretariat), title="GCNMA 12", **PERIOD)


@pytest.fixture(params=["secretariat", "superuser"])
def staff(request, login, secretariat, admin_user):
    """The secretariat as it works (a staff user with the role, not a superuser), and a superuser."""
    return login(secretariat if request.param == "secretariat" else admin_user)


def test_the_secretariat_lists_and_reads_snapshots(staff, snapshot):
    response = staff.get(LIST)
    assert response.status_code == 200
    assert [s.pk for s in response.context["cl"].result_list] == [snapshot.pk]
    page = staff.get(reverse("admin:stocktake_snapshot_change", args=[snapshot.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "needs_published" in html and "GCNMA 12" in html
    assert page.context["title"] == "View stocktake snapshot"
    assert "snapshot" in staff.get(reverse("admin:index")).content.decode().lower()


def test_a_snapshots_headline_and_filters_read_as_on_its_page(staff, secretariat, world):
    """Labelled and written as the report writes them, in the page's language: not as stored."""
    from apps.stocktake.tables import report_layout

    snapshot = snapshot_create(actor=Actor.for_user(secretariat), title="GCNMA 13",
                               filters={"regional_group": "African States"}, **PERIOD)  # fmt: skip
    url = reverse("admin:stocktake_snapshot_change", args=[snapshot.pk])
    html = staff.get(url).content.decode()
    published = next(
        row for row in report_layout(snapshot.export)["headline"] if row["figure"] == "needs_published"
    )
    assert f"<tr><th scope='row'>Needs published</th><td>{published['value']}</td></tr>" in html.replace(
        '"', "'"
    )
    assert "Regional group: African States" in html
    assert "{&quot;regional_group&quot;" not in html
    staff.cookies["django_language"] = "fr"
    html = staff.get(url).content.decode()
    assert "<th scope='row'>Besoins publiés</th>" in html.replace('"', "'")
    assert "Groupe régional\u00a0: États d’Afrique" in html


def test_nobody_changes_a_snapshot_nor_its_permalink(staff, snapshot):
    url = reverse("admin:stocktake_snapshot_change", args=[snapshot.pk])
    html = staff.get(url).content.decode()
    for name in ("title", "slug", "note", "export", "date_from"):
        assert f'name="{name}"' not in html
    response = staff.post(url, {"title": "Renamed", "slug": "renamed", "note": "edited"})
    assert response.status_code == 403
    snapshot.refresh_from_db()
    assert (snapshot.title, snapshot.slug, snapshot.note) == ("GCNMA 12", "gcnma-12", "")


def test_nobody_adds_or_deletes_a_snapshot(staff, snapshot):
    assert staff.get(reverse("admin:stocktake_snapshot_add")).status_code == 403
    assert staff.get(reverse("admin:stocktake_snapshot_delete", args=[snapshot.pk])).status_code == 403
    assert (
        staff.post(
            reverse("admin:stocktake_snapshot_delete", args=[snapshot.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    response = staff.post(
        LIST, {"action": "delete_selected", "_selected_action": [snapshot.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert Snapshot.objects.filter(pk=snapshot.pk).exists()
    assert staff.get(LIST).context["action_form"] is None  # no action at all: delete was the only one


def test_the_report_page_still_freezes_snapshots(login, secretariat, world):
    response = login(secretariat).post(
        reverse("stocktake:snapshot_create"),
        {"date_from": "2026-01-01", "date_to": "2026-06-30", "title": "GCNMA 13", "note": ""},
    )
    assert response.status_code == 302
    assert Snapshot.objects.filter(title="GCNMA 13").exists()


@pytest.mark.parametrize("role", ["committee", "focal_point"])
def test_other_staff_roles_are_refused(role, request, login, snapshot):
    user = request.getfixturevalue(role)
    user.is_staff = True
    user.save()
    assert login(user).get(LIST).status_code == 403


@pytest.mark.parametrize("n", [1, 5])
def test_snapshot_list_query_count(n, login, secretariat, django_assert_num_queries):
    for i in range(n):
        Snapshot.objects.create(
            title=f"GCNMA {i}", slug=f"gcnma-{i}", export={}, created_by=secretariat, **PERIOD
        )
    client = login(secretariat)
    # 1 session, 2 user, 3 filtered count, 4 total count, 5 the page of snapshots with who froze them
    # (joined), 6-7 the date hierarchy (first and last date, then the days).
    with django_assert_num_queries(7):
        response = client.get(LIST)
    assert len(response.context["cl"].result_list) == n
