"""Every write of the admin, posted (not only its pages read) by those who may not: staff without the
secretariat role, a deactivated secretariat user, and the other roles without staff status. And what the
secretariat itself may not do: delete a lockout past its unlock, anonymise a superuser, read matches by a
model permission."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import ApiToken, Role, User
from apps.parties.models import Party, SupportProvider
from apps.posts.models import Post
from tests.api.factories import issue_token
from tests.factories import FocalPointFactory, PostFactory, SecretariatFactory, party

pytestmark = pytest.mark.django_db
S = Post.Status
STRAY = ["staff_focal_point", "staff_committee", "deactivated_secretariat"]


@pytest.fixture
def stray(request, focal_point, committee, secretariat):
    """A staff flag without the secretariat role, or a secretariat user deactivated (its session still stored)."""

    def make(kind: str) -> User:
        user = {"staff_focal_point": focal_point, "staff_committee": committee}.get(kind, secretariat)
        if kind == "deactivated_secretariat":
            User.objects.filter(pk=user.pk).update(is_active=False)
        else:
            User.objects.filter(pk=user.pk).update(is_staff=True)
        return user

    return make


def assert_refused(kind: str, response) -> None:
    if kind == "deactivated_secretariat":  # no longer logged in: the admin's login page
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login")), response
    else:
        assert response.status_code == 403, response


def lockout() -> AccessAttempt:
    return AccessAttempt.objects.create(
        username="fp_bra", ip_address="10.0.0.1", failures_since_start=5, user_agent="test", get_data="",
        post_data="", http_accept="", path_info="/",
    )  # fmt: skip


@pytest.mark.parametrize("kind", STRAY)
def test_the_moderation_writes_are_refused(kind, stray, login):
    draft = PostFactory(status=S.DRAFT, published_at=None, title="Old")
    submitted = PostFactory(status=S.SUBMITTED, published_at=None, submitted_at=timezone.now())
    changed = PostFactory(title="Published", changed_since_review_at=timezone.now())
    client = login(stray(kind))
    now = timezone.now().isoformat()
    changelist = reverse("admin:posts_post_changelist")
    form = {
        "kind": "need", "party": party("KEN").pk, "title": "New", "description": "Changed.", "language": "en",
        "support_types": ["technology"], "focus_areas": ["adaptation"],
    }  # fmt: skip
    responses = [
        client.post(reverse("admin:posts_post_change", args=[draft.pk]), form),
        client.post(reverse("admin:posts_post_publish", args=[submitted.pk]), {"seen_at": now}),
        client.post(
            reverse("admin:posts_post_return", args=[submitted.pk]), {"reason": "No.", "seen_at": now}
        ),
        client.post(
            changelist, {"action": "publish_selected", "_selected_action": [submitted.pk], "shown_at": now}
        ),
        client.post(
            changelist,
            {
                "action": "return_selected",
                "_selected_action": [changed.pk],
                "apply": "1",
                "reason": "No.",
                "shown_at": now,
            },
        ),
        client.post(changelist, {"action": "mark_reviewed_selected", "_selected_action": [changed.pk]}),
    ]
    for response in responses:
        assert_refused(kind, response)
    for post in (draft, submitted, changed):
        post.refresh_from_db()
    assert (draft.title, submitted.status, changed.status) == ("Old", S.SUBMITTED, S.PUBLISHED)
    assert changed.changed_since_review_at is not None


@pytest.mark.parametrize("kind", STRAY)
def test_the_accounts_tokens_and_reference_data_writes_are_refused(kind, stray, login, provider_user):
    provider = provider_user.provider
    token, _raw = issue_token(issuer=SecretariatFactory(username="issuer"), name="Reader")
    person = FocalPointFactory(username="person", party=party("JPN"), email="person@example.org")
    client = login(stray(kind))
    new_password = {"password1": "New-pass-123!x", "password2": "New-pass-123!x", "usable_password": "true"}
    responses = [
        client.post(
            reverse("admin:accounts_user_change", args=[person.pk]),
            {
                "username": "person",
                "email": "person@example.org",
                "role": Role.SECRETARIAT,
                "is_active": "on",
            },
        ),
        client.post(reverse("admin:auth_user_password_change", args=[person.pk]), new_password),
        client.post(
            reverse("admin:accounts_user_changelist"),
            {"action": "anonymise", "_selected_action": [person.pk], "apply": "1"},
        ),
        client.post(
            reverse("admin:accounts_user_add"),
            {"username": "mole", "email": "mole@example.org", "role": Role.SECRETARIAT, **new_password},
        ),
        client.post(
            reverse("admin:accounts_apitoken_add"),
            {"name": "Mine", "scope": "write", "party": party("KEN").pk},
        ),
        client.post(reverse("admin:accounts_apitoken_change", args=[token.pk]), {"name": "Renamed"}),
        client.post(
            reverse("admin:accounts_apitoken_changelist"),
            {"action": "revoke", "_selected_action": [token.pk]},
        ),
        client.post(reverse("admin:parties_party_change", args=[party("KEN").pk]), {"name": "Changed"}),
        client.post(reverse("admin:parties_supportprovider_change", args=[provider.pk]), {"name": "Changed"}),
        client.post(
            reverse("admin:parties_supportprovider_changelist"),
            {"action": "deactivate", "_selected_action": [provider.pk]},
        ),
        client.post(reverse("admin:parties_supportprovider_add"), {"short_name": "NEW", "name": "New"}),
    ]
    for response in responses:
        assert_refused(kind, response)
    person.refresh_from_db()
    token.refresh_from_db()
    provider.refresh_from_db()
    assert (person.role, person.username, person.is_active) == (Role.FOCAL_POINT, "person", True)
    assert not User.objects.filter(username="mole").exists()
    assert (ApiToken.objects.count(), token.name, token.revoked_at) == (1, "Reader", None)
    assert Party.objects.get(iso3="KEN").name != "Changed"
    assert provider.is_active and provider.name != "Changed"
    assert not SupportProvider.objects.filter(short_name="NEW").exists()


@pytest.mark.parametrize("kind", ["staff_focal_point", "staff_committee"])
def test_lockouts_are_not_unlocked_by_other_staff(kind, stray, login):
    row = lockout()
    client = login(stray(kind))
    assert (
        client.post(
            "/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": [row.pk]}
        ).status_code
        == 403
    )
    assert client.post(f"/admin/axes/accessattempt/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AccessAttempt.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize("role", ["focal_point", "committee", "observer", "provider_user"])
def test_the_other_roles_posting_to_the_admin_get_its_login_page(role, request, login, secretariat):
    person = FocalPointFactory(username="person", party=party("JPN"))
    token, _raw = issue_token(issuer=secretariat)
    submitted = PostFactory(status=S.SUBMITTED, published_at=None, submitted_at=timezone.now())
    row = lockout()
    client = login(request.getfixturevalue(role))
    now = timezone.now().isoformat()
    for url, data in [
        (reverse("admin:accounts_user_changelist"),
         {"action": "anonymise", "_selected_action": [person.pk], "apply": "1"}),
        (reverse("admin:accounts_apitoken_add"), {"name": "Mine", "scope": "read"}),
        (reverse("admin:accounts_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}),
        ("/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": [row.pk]}),
        (reverse("admin:posts_post_publish", args=[submitted.pk]), {"seen_at": now}),
        (reverse("admin:posts_post_return", args=[submitted.pk]), {"reason": "No.", "seen_at": now}),
    ]:  # fmt: skip
        response = client.post(url, data)
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login")), url
    person.refresh_from_db()
    token.refresh_from_db()
    submitted.refresh_from_db()
    assert (person.anonymised_at, token.revoked_at, submitted.status) == (None, None, S.SUBMITTED)
    assert AccessAttempt.objects.filter(pk=row.pk).exists() and ApiToken.objects.count() == 1


def test_a_lockout_leaves_only_by_unlock(secretariat, login):
    """Django's delete page removed the row without what unlock does (forget the wrong current passwords, record
    whom it unlocked): it is not offered."""
    row = lockout()
    client = login(secretariat)
    assert client.get(f"/admin/axes/accessattempt/{row.pk}/delete/").status_code == 403
    assert client.post(f"/admin/axes/accessattempt/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AccessAttempt.objects.filter(pk=row.pk).exists()
    client.post("/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": [row.pk]})
    assert not AccessAttempt.objects.exists()


def test_a_model_permission_does_not_open_the_matching_pages(focal_point, login):
    """The admin goes by role: a staff focal point given "view match" (in a shell) still does not read matches."""
    User.objects.filter(pk=focal_point.pk).update(is_staff=True)
    focal_point.user_permissions.add(Permission.objects.get(codename="view_match"))
    client = login(focal_point)
    for url in ("/admin/matching/match/", "/admin/matching/rebuildrun/", "/admin/matching/textmodelversion/"):
        assert client.get(url).status_code == 403, url


def test_the_admins_action_does_not_let_the_secretariat_anonymise_a_superuser(secretariat, login):
    root = User.objects.create_superuser(username="root", email="root@example.org", password="root-Pw-1x")
    response = login(secretariat).post(
        reverse("admin:accounts_user_changelist"),
        {"action": "anonymise", "_selected_action": [root.pk], "apply": "1"},
        follow=True,
    )
    assert response.status_code == 200
    assert "root" in " ".join(str(m) for m in response.context["messages"])
    root.refresh_from_db()
    assert root.is_superuser and root.email == "root@example.org" and root.anonymised_at is None
