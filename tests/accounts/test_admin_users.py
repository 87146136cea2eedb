"""The user admin as the secretariat uses it: a staff user with the secretariat role, not a superuser.

The secretariat manages users but never beyond its own powers (a superuser's account is read-only to it), each
role has exactly the links it needs, and staff status follows the role.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from apps.accounts.forms import ProfileForm
from apps.accounts.models import Role, User
from tests.factories import FocalPointFactory, SecretariatFactory, SupportProviderFactory, UserFactory, party

pytestmark = pytest.mark.django_db

ADD = reverse("admin:accounts_user_add")
NEW_PASSWORD = "a-new-Passw0rd-for-tests"


def change_url(user: User) -> str:
    return reverse("admin:accounts_user_change", args=[user.pk])


def password_url(user: User) -> str:
    return reverse("admin:auth_user_password_change", args=[user.pk])


@pytest.fixture
def staff(login, secretariat):
    """The secretariat's client: staff with the secretariat role, not a superuser (the platform's case)."""
    assert not secretariat.is_superuser
    return login(secretariat)


@pytest.fixture
def root(db):
    return User.objects.create_superuser(
        username="root", email="root@example.org", password="root-Passw0rd-1"
    )


def change_data(user: User, **overrides) -> dict:
    """What the change form posts for the user as stored (and the overrides)."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "organisation": user.organisation,
        "phone": user.phone,
        "role": user.role,
        "party": user.party_id or "",
        "provider": user.provider_id or "",
        "digest_opt_in": "on" if user.digest_opt_in else "",
        "preferred_language": user.preferred_language,
        "is_active": "on" if user.is_active else "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value not in ("", None)}


def add_data(username: str, **fields) -> dict:
    data = {
        "username": username,
        "email": f"{username}@example.org",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        "role": Role.OBSERVER,
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value not in ("", None)}


def field_errors(response, name: str) -> list[str]:
    assert response.status_code == 200, response.status_code
    return list(response.context["adminform"].form.errors.get(name, []))


# --- a superuser's account is out of the secretariat's reach ---------------------------------------------------


def test_the_secretariat_cannot_change_a_superusers_password(staff, root):
    assert staff.get(password_url(root)).status_code == 403
    response = staff.post(password_url(root), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 403
    root.refresh_from_db()
    assert root.check_password("root-Passw0rd-1")


def test_the_secretariat_cannot_change_a_superusers_account(staff, root):
    response = staff.post(
        change_url(root),
        change_data(root, username="taken", email="mine@example.org", is_active="", role=Role.SECRETARIAT),
    )
    assert response.status_code == 403
    root.refresh_from_db()
    assert (root.username, root.email, root.is_active) == ("root", "root@example.org", True)


def test_a_superusers_page_is_view_only_to_the_secretariat(staff, root):
    response = staff.get(change_url(root))
    assert response.status_code == 200
    assert response.context["title"] == "View user"
    html = response.content.decode()
    assert 'name="username"' not in html and 'name="is_active"' not in html
    assert "password/" not in html  # no link to a form it may not open


def test_the_secretariat_still_manages_other_users_passwords(staff):
    focal_point = FocalPointFactory(username="fp_reset")
    assert staff.get(password_url(focal_point)).status_code == 200
    response = staff.post(
        password_url(focal_point),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302
    focal_point.refresh_from_db()
    assert focal_point.check_password(NEW_PASSWORD)


def test_a_superuser_still_manages_superusers(client, root):
    other = User.objects.create_superuser(username="root2", email="r2@example.org", password="x-Passw0rd-1")
    client.force_login(root)
    assert client.get(password_url(other)).status_code == 200
    response = client.post(change_url(other), change_data(other, email="new@example.org", is_superuser="on"))
    assert response.status_code == 302
    other.refresh_from_db()
    assert other.email == "new@example.org"


def test_the_secretariat_grants_neither_superuser_nor_staff_status(staff):
    observer = UserFactory(username="someone")
    response = staff.post(change_url(observer), change_data(observer, is_superuser="on", is_staff="on"))
    assert response.status_code == 302
    observer.refresh_from_db()
    assert not observer.is_superuser and not observer.is_staff
    html = staff.get(change_url(observer)).content.decode()
    assert 'name="is_superuser"' not in html and 'name="is_staff"' not in html


# --- staff status follows the role --------------------------------------------------------------------------


def test_a_new_secretariat_user_enters_the_admin_at_once(staff, login):
    response = staff.post(ADD, add_data("new_sec", role=Role.SECRETARIAT))
    assert response.status_code == 302, response.context["adminform"].form.errors
    new = User.objects.get(username="new_sec")
    assert new.role == Role.SECRETARIAT and new.is_staff and not new.is_superuser
    assert login(new).get(reverse("admin:accounts_user_changelist")).status_code == 200


@pytest.mark.parametrize("role", [Role.OBSERVER, Role.COMMITTEE])
def test_other_roles_never_get_staff_status(staff, role):
    assert staff.post(ADD, add_data("new_user", role=role)).status_code == 302
    assert not User.objects.get(username="new_user").is_staff


def test_staff_status_follows_a_change_of_role(staff):
    colleague = SecretariatFactory(username="colleague")
    assert colleague.is_staff
    response = staff.post(change_url(colleague), change_data(colleague, role=Role.COMMITTEE))
    assert response.status_code == 302
    colleague.refresh_from_db()
    assert colleague.role == Role.COMMITTEE and not colleague.is_staff
    staff.post(change_url(colleague), change_data(colleague, role=Role.SECRETARIAT))
    colleague.refresh_from_db()
    assert colleague.is_staff


def test_a_superuser_keeps_staff_status_whatever_its_role(client, root):
    client.force_login(root)
    response = client.post(ADD, add_data("boss", role=Role.OBSERVER))
    assert response.status_code == 302
    boss = User.objects.get(username="boss")
    assert not boss.is_staff
    client.post(change_url(boss), change_data(boss, is_superuser="on"))
    boss.refresh_from_db()
    assert boss.is_superuser and boss.is_staff


# --- each role has exactly the links it needs ---------------------------------------------------------------

ROLE_CASES = [
    # role, Party?, provider?, the field in error, words of its message
    (Role.FOCAL_POINT, False, False, "party", "A focal point acts for a Party"),
    (Role.FOCAL_POINT, True, True, "provider", "leave the provider empty"),
    (Role.PROVIDER, False, False, "provider", "A support provider user acts for a provider"),
    (Role.PROVIDER, True, True, "party", "leave the Party empty"),
    (Role.COMMITTEE, True, True, "party", "Only a focal point acts for a Party"),
    (Role.COMMITTEE, False, True, "provider", "Only a support provider user acts for a provider"),
    (Role.SECRETARIAT, True, False, "party", "Only a focal point acts for a Party"),
    (Role.OBSERVER, False, True, "provider", "Only a support provider user acts for a provider"),
]


def post_new_user(staff, role, with_party: bool, with_provider: bool):
    """The admin's add form for user "new_user" in this role, with Kenya and a provider or without them."""
    provider = SupportProviderFactory(short_name="GCF")
    return staff.post(
        ADD,
        add_data(
            "new_user",
            role=role,
            party=party("KEN").pk if with_party else "",
            provider=provider.pk if with_provider else "",
        ),
    )


@pytest.mark.parametrize(("role", "with_party", "with_provider", "field", "words"), ROLE_CASES)
def test_the_add_form_refuses_links_that_do_not_fit_the_role(
    staff, role, with_party, with_provider, field, words
):
    response = post_new_user(staff, role, with_party, with_provider)
    assert any(words in error for error in field_errors(response, field))
    html = response.content.decode()
    assert "Constraint" not in html and "is violated" not in html
    assert not User.objects.filter(username="new_user").exists()


@pytest.mark.parametrize(
    ("role", "with_party", "with_provider"),
    [
        (Role.FOCAL_POINT, True, False),
        (Role.PROVIDER, False, True),
        (Role.SECRETARIAT, False, False),
        (Role.COMMITTEE, False, False),
        (Role.OBSERVER, False, False),
    ],
)
def test_the_add_form_takes_each_role_with_its_links(staff, role, with_party, with_provider):
    response = post_new_user(staff, role, with_party, with_provider)
    assert response.status_code == 302
    user = User.objects.get(username="new_user")
    assert (user.role, user.party_id is not None, user.provider_id is not None) == (
        role,
        with_party,
        with_provider,
    )


def test_changing_the_role_does_not_leave_the_old_party(staff, focal_point):
    response = staff.post(change_url(focal_point), change_data(focal_point, role=Role.COMMITTEE))
    assert any("Only a focal point acts for a Party" in e for e in field_errors(response, "party"))
    assert "is violated" not in response.content.decode()
    focal_point.refresh_from_db()
    assert focal_point.role == Role.FOCAL_POINT
    response = staff.post(change_url(focal_point), change_data(focal_point, role=Role.COMMITTEE, party=""))
    assert response.status_code == 302
    focal_point.refresh_from_db()
    assert (focal_point.role, focal_point.party) == (Role.COMMITTEE, None)


def test_a_provider_user_becoming_a_focal_point_needs_a_party_and_no_provider(staff, provider_user):
    response = staff.post(change_url(provider_user), change_data(provider_user, role=Role.FOCAL_POINT))
    assert field_errors(response, "party") and field_errors(response, "provider")
    response = staff.post(
        change_url(provider_user),
        change_data(provider_user, role=Role.FOCAL_POINT, party=party("BRA").pk, provider=""),
    )
    assert response.status_code == 302
    provider_user.refresh_from_db()
    assert (provider_user.party, provider_user.provider) == (party("BRA"), None)


def test_the_database_refuses_links_for_other_roles(db):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(username="committee_with_party", role=Role.COMMITTEE, party=party("KEN"))


# --- preferred language: the profile's choices --------------------------------------------------------------


def test_preferred_language_is_a_choice_of_the_sites_languages(staff, focal_point, settings):
    response = staff.post(change_url(focal_point), change_data(focal_point, preferred_language="klingon"))
    assert field_errors(response, "preferred_language")
    focal_point.refresh_from_db()
    assert focal_point.preferred_language == ""

    form = staff.get(change_url(focal_point)).context["adminform"].form
    admin_choices = [code for code, _label in form.fields["preferred_language"].choices]
    profile_choices = [code for code, _label in ProfileForm().fields["preferred_language"].choices]
    assert admin_choices == profile_choices == ["", *(code for code, _name in settings.LANGUAGES)]

    response = staff.post(change_url(focal_point), change_data(focal_point, preferred_language="fr"))
    assert response.status_code == 302
    focal_point.refresh_from_db()
    assert focal_point.preferred_language == "fr"


# --- the admin says whose it is, and what was done ----------------------------------------------------------


def test_the_admin_is_branded(staff):
    html = staff.get(reverse("admin:index")).content.decode()
    assert "NMA Platform administration" in html
    assert "Django administration" not in html


def test_changes_to_users_are_in_the_history(staff, secretariat, focal_point):
    staff.post(change_url(focal_point), change_data(focal_point, organisation="Ministry of Environment"))
    entry = LogEntry.objects.get(object_id=str(focal_point.pk))
    assert entry.user == secretariat


def test_a_new_user_needs_an_email_address_of_their_own(staff, focal_point):
    """Without one a user can never reset a password; with another's, resets and matches reach both."""
    response = staff.post(ADD, add_data("no_email", email=""))
    assert field_errors(response, "email") and not User.objects.filter(username="no_email").exists()
    response = staff.post(ADD, add_data("twin", email=focal_point.email.upper()))
    assert any("Another account uses this email address" in e for e in field_errors(response, "email"))
    assert not User.objects.filter(username="twin").exists()
    assert staff.post(ADD, add_data("own_email")).status_code == 302


def test_django_permissions_and_groups_are_not_offered_as_they_decide_nothing(client, root, staff):
    """The role decides: a secretariat user given only "view post" still had every power, while the user page
    offered groups and per-model permissions as if they limited it."""
    client.force_login(root)
    observer = UserFactory(username="someone_else")
    html = client.get(change_url(observer)).content.decode()
    assert 'name="user_permissions"' not in html and 'name="groups"' not in html
    assert "every secretariat user has all of the secretariat's powers" in html
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:index") + "auth/group/" not in index
    assert client.get("/admin/auth/group/").status_code == 404


@pytest.mark.parametrize(
    ("language", "reset", "lockouts"),
    [("ar", "إعادة تعيين كلمة المرور", "حظر تسجيل الدخول"), ("zh-hans", "重置密码", "登录锁定")],
)
def test_the_admin_speaks_the_pages_language_where_djangos_catalogues_fall_short(
    staff, language, reset, lockouts
):
    """Django 5.2's Arabic catalogue lacks its newer account messages ("Reset password" was English on an Arabic
    page); django-axes' section was "AXES" in every language."""
    user = FocalPointFactory(username="fp_ken_lang", party=party("KEN"))
    staff.cookies["django_language"] = language
    page = staff.get(change_url(user)).content.decode()
    assert reset in page and "Reset password" not in page
    index = staff.get(reverse("admin:index")).content.decode()
    assert lockouts in index and ">Axes<" not in index
