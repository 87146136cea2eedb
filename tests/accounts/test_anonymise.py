"""Erasing a person at their request (`accounts.services.user_anonymise`, the user list's "Anonymise" action): their
personal data leaves the account, the posts' contacts and the history, while the Party's posts, matches and the
stocktake's figures stay as they were."""

from __future__ import annotations

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.actors import ANONYMOUS, Actor
from apps.accounts.models import ApiToken, User
from apps.accounts.services import AnonymiseRefused, user_anonymise
from apps.matching.models import Interest, Match
from apps.matching.services import connection_notice_send, digest_send_all
from apps.posts import services as post_services
from apps.posts.models import Post, PostEvent
from apps.posts.post_data import PostData
from apps.stocktake.selectors import stocktake_export
from tests.api.factories import MatchFactory, issue_token
from tests.factories import (
    CommitteeFactory,
    FocalPointFactory,
    PostFactory,
    ProviderUserFactory,
    SecretariatFactory,
    UserFactory,
    party,
)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:accounts_user_changelist")


@pytest.fixture
def person(db):
    """A focal point of Kenya who asks to be erased; Kenya keeps another focal point."""
    FocalPointFactory(username="fp_ken_stays", first_name="Amina", last_name="Otieno")
    return FocalPointFactory(
        username="jwanjiru", first_name="Jane", last_name="Wanjiru", email="jane.wanjiru@env.go.ke",
        phone="+254 700 000 000", organisation="Ministry of Environment", preferred_language="fr",
    )  # fmt: skip


@pytest.fixture
def posts(person, secretariat):
    """Kenya's posts naming her as the contact (her address; her name beside a shared mailbox), one naming
    another person, a namesake's post of another Party, and her change of a contact in the history."""
    fp = Actor.for_user(person)

    def need(**contact) -> PostData:
        return PostData(kind="need", party=party("KEN"), title="Flood early warning for the Tana basin",
                        description="River gauges and SMS alerts.", support_types=["technology"],
                        focus_areas=["adaptation"], **contact)  # fmt: skip

    own = post_services.post_create(
        actor=fp, data=need(contact_name="Jane Wanjiru", contact_email="other@env.go.ke")
    )
    # She then gives her own address: the history holds her name and address as the new values.
    own = post_services.post_update(
        actor=fp, post=own, data=need(contact_name="J. Wanjiru", contact_email="Jane.Wanjiru@env.go.ke")
    )
    shared = PostFactory(party=party("KEN"), contact_name="jane  wanjiru", contact_email="climate@env.go.ke")
    someone_else = PostFactory(
        party=party("KEN"), contact_name="Amina Otieno", contact_email="amina@env.go.ke"
    )
    namesake = PostFactory(party=party("BRA"), contact_name="Jane Wanjiru", contact_email="jw@mma.gov.br")
    offer = PostFactory(kind="offer", party=party("JPN"), contact_email="jica@example.org")
    return {"own": own, "shared": shared, "someone_else": someone_else, "namesake": namesake, "offer": offer}


def test_the_account_keeps_no_personal_data_and_its_sessions_end(person, posts, secretariat, login):
    browser = login(person)
    assert browser.get(reverse("accounts:profile")).status_code == 200
    joined = person.date_joined

    user = user_anonymise(actor=Actor.for_user(secretariat), user=person)

    user.refresh_from_db()
    assert user.username == f"anonymised-{user.pk}" and str(user) == user.username
    assert (user.first_name, user.last_name, user.email, user.phone, user.organisation) == (
        "",
        "",
        "",
        "",
        "",
    )
    assert (user.preferred_language, user.site_language, user.last_login) == ("", "", None)
    assert not user.is_active and not user.digest_opt_in and not user.has_usable_password()
    assert user.anonymised_at is not None
    # What the records need stays: the role, the Party, when they joined.
    assert (user.role, user.party.iso3, user.date_joined) == ("focal_point", "KEN", joined)
    # The session opened before is over at its next request.
    assert browser.get(reverse("accounts:profile")).status_code == 302


def test_posts_lose_her_contact_and_keep_everything_else(person, posts, secretariat):
    before = {
        key: (post.status, post.title, post.published_at, post.party_id, post.owner_id)
        for key, post in posts.items()
    }
    user_anonymise(actor=Actor.for_user(secretariat), user=person)

    fresh = {key: Post.objects.get(pk=post.pk) for key, post in posts.items()}
    assert {
        key: (post.status, post.title, post.published_at, post.party_id, post.owner_id)
        for key, post in fresh.items()
    } == before
    # Her address, and the name given with it.
    assert (fresh["own"].contact_name, fresh["own"].contact_email) == ("", "")
    # Her name beside a shared mailbox of her Party (whatever its case and spaces): the mailbox stays.
    assert (fresh["shared"].contact_name, fresh["shared"].contact_email) == ("", "climate@env.go.ke")
    # Other people, and a namesake of another Party, are left alone.
    assert fresh["someone_else"].contact_name == "Amina Otieno"
    assert (fresh["namesake"].contact_name, fresh["namesake"].contact_email) == (
        "Jane Wanjiru",
        "jw@mma.gov.br",
    )
    assert fresh["offer"].contact_email == "jica@example.org"
    # Each erasure is in the post's history, by the secretariat, without the values; an API mirror sees it.
    entry = fresh["own"].events.first()
    assert entry.action == "updated" and entry.actor_id == secretariat.pk
    assert entry.changes == {"contact_name": ["[erased]", ""], "contact_email": ["[erased]", ""]}
    assert "erased at the person's request" in entry.note
    assert fresh["own"].updated_at > posts["own"].updated_at
    assert fresh["shared"].changed_since_review_at is None  # the secretariat's own change: nothing to review
    assert not fresh["someone_else"].events.exists()


def test_the_history_no_longer_names_her(person, posts, secretariat):
    user_anonymise(actor=Actor.for_user(secretariat), user=person)

    label = f"anonymised-{person.pk}"
    events = PostEvent.objects.filter(post=posts["own"]).order_by("created_at", "id")
    assert [event.actor_label for event in events] == [label, label, "secretariat"]
    change = events[1].changes
    assert change["contact_email"] == ["other@env.go.ke", "[erased]"]
    assert change["contact_name"] == ["[erased]", "[erased]"]
    text = " ".join(str(event.changes) + event.actor_label + event.note for event in PostEvent.objects.all())
    for trace in ("jwanjiru", "Jane.Wanjiru@", "jane.wanjiru@", "J. Wanjiru"):
        assert trace not in text


def test_the_admin_history_and_failed_logins_no_longer_name_her(person, secretariat):
    user_type = ContentType.objects.get_for_model(User)
    LogEntry.objects.create(user=secretariat, content_type=user_type, object_id=str(person.pk),
                            object_repr=str(person), action_flag=CHANGE, change_message="[]")  # fmt: skip
    attempt_type = ContentType.objects.get_for_model(AccessAttempt)
    for who in ("jwanjiru", "jwanjiru2", "JANE.WANJIRU@env.go.ke"):
        LogEntry.objects.create(user=secretariat, content_type=attempt_type, object_id="1",
                                object_repr=f"Lockout of {who} from 10.0.0.1", action_flag=3)  # fmt: skip
    for typed in ("jwanjiru", "JANE.WANJIRU@env.go.ke", "someone"):
        AccessAttempt.objects.create(username=typed, ip_address="10.0.0.1", failures_since_start=2,
                                     user_agent=typed, get_data="", post_data="")  # fmt: skip

    user_anonymise(actor=Actor.for_user(secretariat), user=person)

    label = f"anonymised-{person.pk}"
    assert LogEntry.objects.get(content_type=user_type).object_repr == label
    assert sorted(LogEntry.objects.filter(content_type=attempt_type).values_list("object_repr", flat=True)) == [
        f"Lockout of {label} from 10.0.0.1", f"Lockout of {label} from 10.0.0.1",
        "Lockout of jwanjiru2 from 10.0.0.1"]  # fmt: skip
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["someone"]


def test_matches_connections_and_the_stocktake_are_unchanged(person, posts, secretariat):
    match = MatchFactory(need=posts["own"], offer=posts["offer"], need_interest=Interest.INTERESTED,
                         offer_interest=Interest.INTERESTED, connected_at=timezone.now())  # fmt: skip
    Post.objects.filter(pk=posts["own"].pk).update(status="published", published_at=timezone.now())
    today = timezone.now().date()
    period = {"date_from": today - dt.timedelta(days=30), "date_to": today}
    figures = stocktake_export(**period, filters={})

    user_anonymise(actor=Actor.for_user(secretariat), user=person)

    assert Match.objects.get(pk=match.pk).connected_at == match.connected_at
    assert stocktake_export(**period, filters={}) == figures  # Kenya still has a focal point


def test_an_anonymised_person_gets_no_email_and_is_nobody_s_contact(person, posts, secretariat):
    partner = FocalPointFactory(username="fp_jpn", party=party("JPN"), email="fp@mofa.go.jp")
    Post.objects.filter(pk=posts["own"].pk).update(status="published", published_at=timezone.now())
    match = MatchFactory(need=posts["own"], offer=posts["offer"], need_interest=Interest.INTERESTED,
                         offer_interest=Interest.INTERESTED, connected_at=timezone.now())  # fmt: skip
    user_anonymise(actor=Actor.for_user(secretariat), user=person)
    mail.outbox.clear()

    connection_notice_send(match_id=match.pk)
    digest_send_all(now=timezone.now() + dt.timedelta(minutes=5))

    recipients = sorted(address for message in mail.outbox for address in message.to)
    assert recipients == ["fp@mofa.go.jp", "fp_ken_stays@example.org"]
    # Japan is given Kenya's remaining focal point as the contact, not her.
    (to_partner,) = [m for m in mail.outbox if m.to == [partner.email]]
    assert "fp_ken_stays@example.org" in to_partner.body and "wanjiru" not in to_partner.body.lower()
    assert [address for address in to_partner.reply_to if "wanjiru" in address.lower()] == []


def test_tokens_she_issued_keep_working_for_their_partner(secretariat, login):
    """A token belongs to a partner system, not to the person who issued it: it names the pseudonym."""
    issuer = SecretariatFactory(username="issuer", first_name="Ida", last_name="Issuer")
    token, raw = issue_token(scope=ApiToken.Scope.WRITE, issuer=issuer, party=party("KEN"))
    user_anonymise(actor=Actor.for_user(secretariat), user=issuer)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/posts/?status=draft").status_code == 200
    token.refresh_from_db()
    assert str(token.created_by) == f"anonymised-{issuer.pk}"


# --- who may do it ------------------------------------------------------------------------------------------


def _token_actor(scope, **poster):
    token, _raw = issue_token(scope=scope, **poster)
    return Actor.for_token(token)


@pytest.mark.parametrize(
    "make_actor",
    [
        lambda: ANONYMOUS,
        lambda: Actor.for_user(FocalPointFactory(username="fp_other")),
        lambda: Actor.for_user(FocalPointFactory(username="fp_bra", party=party("BRA"))),
        lambda: Actor.for_user(ProviderUserFactory(username="prov")),
        lambda: Actor.for_user(CommitteeFactory(username="cttee")),
        lambda: Actor.for_user(UserFactory(username="obs")),
        lambda: Actor.for_user(SecretariatFactory(username="gone", is_active=False)),
        lambda: _token_actor(ApiToken.Scope.READ),
        lambda: _token_actor(ApiToken.Scope.STOCKTAKE),
        lambda: _token_actor(ApiToken.Scope.WRITE, party=party("KEN")),
    ],
    ids=["anonymous", "focal-point-same-party", "focal-point-other-party", "provider-user", "committee",
         "observer", "deactivated-secretariat", "read-token", "stocktake-token", "write-token"],
)  # fmt: skip
def test_only_the_secretariat_anonymises(person, posts, make_actor):
    with pytest.raises(PermissionDenied):
        user_anonymise(actor=make_actor(), user=person)
    person.refresh_from_db()
    assert person.is_active and person.email == "jane.wanjiru@env.go.ke" and person.anonymised_at is None
    assert Post.objects.get(pk=posts["own"].pk).contact_email == "Jane.Wanjiru@env.go.ke"


def test_not_ones_own_account_nor_twice(secretariat):
    actor = Actor.for_user(secretariat)
    with pytest.raises(AnonymiseRefused):
        user_anonymise(actor=actor, user=secretariat)
    other = SecretariatFactory(username="other_staff")
    user_anonymise(actor=actor, user=other)
    with pytest.raises(AnonymiseRefused):
        user_anonymise(actor=actor, user=other)


def test_only_a_superuser_anonymises_a_superuser(secretariat):
    root = User.objects.create_superuser(username="root", email="root@example.org", password="root-Pw-1x")
    boss = User.objects.create_superuser(username="boss", email="boss@example.org", password="boss-Pw-1x")
    with pytest.raises(PermissionDenied):
        user_anonymise(actor=Actor.for_user(secretariat), user=root)
    user = user_anonymise(actor=Actor.for_user(boss), user=root)
    assert not user.is_superuser and not user.is_staff and user.email == ""


# --- the admin's action -------------------------------------------------------------------------------------


def _action(client: Client, *users: User, apply: bool = True):
    data = {"action": "anonymise", "_selected_action": [u.pk for u in users]}
    if apply:
        data["apply"] = "Anonymise"
    return client.post(CHANGELIST, data)


def test_the_secretariat_confirms_then_anonymises(person, posts, secretariat, login):
    staff = login(secretariat)
    page = _action(staff, person, apply=False)
    assert page.status_code == 200
    text = page.content.decode()
    assert "jwanjiru" in text and "This cannot be undone." in text
    person.refresh_from_db()
    assert person.anonymised_at is None  # nothing happens before the confirmation

    response = _action(staff, person)
    assert response.status_code == 302
    person.refresh_from_db()
    assert person.anonymised_at is not None and person.email == ""
    entry = LogEntry.objects.filter(object_id=str(person.pk)).latest("action_time")
    assert entry.object_repr == f"anonymised-{person.pk}" and "erased" in entry.get_change_message()
    assert "Anonymised 1 user." in staff.get(CHANGELIST).content.decode()
    # The account is now a record: it can be looked at, not changed (nor reactivated).
    change = reverse("admin:accounts_user_change", args=[person.pk])
    assert staff.get(change).status_code == 200
    assert (
        staff.post(change, {"username": "back", "is_active": "on", "role": "focal_point"}).status_code == 403
    )
    person.refresh_from_db()
    assert not person.is_active


def test_the_action_refuses_ones_own_account_and_a_superuser_with_a_message(person, secretariat, login):
    root = User.objects.create_superuser(username="root", email="root@example.org", password="root-Pw-1x")
    staff = login(secretariat)
    response = _action(staff, secretariat, root, person)
    assert response.status_code == 302
    text = staff.get(CHANGELIST).content.decode()
    assert "cannot anonymise your own account" in text and "Only a superuser anonymises a superuser" in text
    assert "Anonymised 1 user." in text
    secretariat.refresh_from_db()
    root.refresh_from_db()
    assert secretariat.is_active and root.is_active and root.anonymised_at is None


@pytest.mark.parametrize("role", ["focal_point", "provider_user", "committee", "observer"])
def test_no_other_role_reaches_the_action(role, person, login, request):
    client = login(request.getfixturevalue(role))
    response = _action(client, person)
    assert response.status_code == 302 and "/admin/login/" in response.url
    person.refresh_from_db()
    assert person.anonymised_at is None and person.is_active


def test_staff_without_the_secretariat_role_is_refused(person, login):
    client = login(CommitteeFactory(username="staff_committee", is_staff=True))
    assert _action(client, person).status_code == 403
    person.refresh_from_db()
    assert person.anonymised_at is None


def test_anonymous_visitors_and_api_tokens_do_not_reach_the_action(person, client, secretariat):
    _token, raw = issue_token(scope=ApiToken.Scope.WRITE, issuer=secretariat, party=party("KEN"))
    for caller in (client, Client(HTTP_AUTHORIZATION=f"Bearer {raw}")):
        response = _action(caller, person)
        assert response.status_code == 302 and "/admin/login/" in response.url
    person.refresh_from_db()
    assert person.anonymised_at is None


def test_her_sessions_are_deleted_not_only_refused(person, secretariat, login):
    """The new password hash refused her sessions at their next request, but their rows stayed (her id, what
    the session held) until they expired and the daily task deleted them; deactivation deletes them at once."""
    from django.contrib.sessions.models import Session

    login(person)
    kept = login(FocalPointFactory(username="fp_ken_other"))
    assert Session.objects.count() == 2
    user_anonymise(actor=Actor.for_user(secretariat), user=person)
    assert Session.objects.count() == 1
    assert kept.get(reverse("accounts:profile")).status_code == 200


def test_her_name_leaves_the_history_of_another_partys_post_that_gave_her_address(person, secretariat):
    """Japan's offer gave her address, with her name: the post lost both, but an earlier change of the name
    alone (the address already hers) kept her name in its history, which Japan's focal points read."""
    sec = Actor.for_user(secretariat)

    def offer(name: str) -> PostData:
        return PostData(kind="offer", party=party("JPN"), title="Flood forecasting software",
                        description="Software and training.", support_types=["technology"],
                        focus_areas=["adaptation"], contact_name=name,
                        contact_email="jane.wanjiru@env.go.ke")  # fmt: skip

    post = post_services.post_create(actor=sec, data=offer("Jane Wanjiru"))
    post = post_services.post_update(actor=sec, post=post, data=offer("Dr Jane Wanjiru (KEN)"))
    post = post_services.post_update(actor=sec, post=post, data=offer("Jane  Wanjiru"))

    user_anonymise(actor=sec, user=person)

    post.refresh_from_db()
    assert (post.contact_name, post.contact_email) == ("", "")
    changes = [
        e.changes for e in PostEvent.objects.filter(post=post).order_by("created_at", "id") if e.changes
    ]
    # Her name as the account writes it (another form of it, as free text, is not recognised).
    assert [c["contact_name"] for c in changes[:2]] == [
        ["[erased]", "Dr Jane Wanjiru (KEN)"],
        ["Dr Jane Wanjiru (KEN)", "[erased]"],
    ]
