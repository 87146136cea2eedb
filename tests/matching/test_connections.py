"""A poster's connections page: the matches both sides were interested in, with whom to write to, for every
role; kept when either post leaves the lists of matches."""

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.matching.models import Interest, Match
from apps.matching.selectors import connection_contacts
from apps.matching.services import match_set_interest
from apps.posts.models import Post
from apps.posts.services import post_withdraw

from ..factories import (
    CommitteeFactory,
    FocalPointFactory,
    PostFactory,
    ProviderUserFactory,
    SecretariatFactory,
    SupportProviderFactory,
    UserFactory,
    party,
)

pytestmark = pytest.mark.django_db

URL = "/matches/connections/"


def connect(need: Post, offer: Post, *, score: float = 0.8) -> Match:
    """A connection written straight to the database (both sides interested)."""
    now = timezone.now()
    return Match.objects.create(
        need=need,
        offer=offer,
        score=score,
        explanation={"shared_support_types": ["technology"], "cross_lingual": False},
        need_interest=Interest.INTERESTED,
        offer_interest=Interest.INTERESTED,
        need_interest_at=now,
        offer_interest_at=now,
        connected_at=now,
        # As `match_set_interest` records them when the match connects.
        need_party_id=need.party_id,
        need_provider_id=need.provider_id,
        offer_party_id=offer.party_id,
        offer_provider_id=offer.provider_id,
    )


@pytest.fixture
def kenya(db):
    return FocalPointFactory(username="ken1", party=party("KEN"), email="ken@example.org", first_name="Wanjiru",
                             last_name="Otieno")  # fmt: skip


@pytest.fixture
def japan(db):
    return FocalPointFactory(username="jpn1", party=party("JPN"), email="jpn@example.org")


@pytest.fixture
def pair(db):
    """A Kenyan need connected with a Japanese offer that gives its own contact."""
    need = PostFactory(kind="need", party=party("KEN"), title="Flood warnings for the Tana basin")
    offer = PostFactory(
        kind="offer",
        party=party("JPN"),
        title="River flood forecasting",
        contact_name="Aiko Sato",
        contact_email="aiko@example.jp",
    )
    return connect(need, offer)


def test_anonymous_is_sent_to_log_in(client, pair):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("factory", [UserFactory, CommitteeFactory, SecretariatFactory])
def test_roles_without_posts_have_no_connections_page(client, pair, factory):
    client.force_login(factory())
    response = client.get(URL)
    assert response.status_code == 403
    assert (
        "Only focal points and the users of support providers have connections." in response.content.decode()
    )
    assert "aiko@example.jp" not in response.content.decode()


def test_each_side_sees_the_other_sides_contacts(client, pair, kenya, japan):
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert f'id="connection-{pair.pk}"' in page
    assert "Flood warnings for the Tana basin" in page  # their own post
    assert f'href="{reverse("posts:detail", args=[pair.offer.pk])}"' in page
    assert "River flood forecasting" in page
    assert 'href="mailto:aiko@example.jp"' in page and "Aiko Sato" in page
    assert "ken@example.org" not in page  # their own address is not what they are given

    # The need gives no contact of its own: Japan is given the people who speak for Kenya.
    client.force_login(japan)
    page = client.get(URL).content.decode()
    assert 'href="mailto:ken@example.org"' in page and "Wanjiru Otieno" in page
    assert "aiko@example.jp" not in page


def test_another_partys_focal_point_and_unconnected_matches_are_not_listed(client, pair, kenya):
    brazil = FocalPointFactory(party=party("BRA"))
    client.force_login(brazil)
    page = client.get(URL).content.decode()
    assert "River flood forecasting" not in page and "aiko@example.jp" not in page
    assert "You have no connections yet." in page

    # Only Kenya interested: not a connection yet.
    offer = PostFactory(
        kind="offer", party=party("JPN"), title="Drought index insurance", contact_email="x@jp.org"
    )
    Match.objects.create(
        need=pair.need, offer=offer, score=0.9, explanation={}, need_interest=Interest.INTERESTED
    )
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert "River flood forecasting" in page
    assert "Drought index insurance" not in page and "x@jp.org" not in page


def test_a_connection_stays_when_the_other_post_is_withdrawn(client, pair, kenya, japan):
    post_withdraw(actor=Actor.for_user(japan), post=pair.offer)
    pair.refresh_from_db()
    assert pair.is_active is False  # gone from the lists of matches
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert f'id="connection-{pair.pk}"' in page
    assert "Withdrawn: no longer published." in page
    # Its last wording, to tell the connections apart and to name it when writing; no link to a page that would
    # answer "not found".
    assert "River flood forecasting" in page
    assert reverse("posts:detail", args=[pair.offer.pk]) not in page
    # Whom to write to stays: the contacts were exchanged.
    assert 'href="mailto:aiko@example.jp"' in page


@pytest.mark.parametrize(
    ("status", "said", "title_shown"),
    [
        (Post.Status.CLOSED, "Closed: no longer published.", True),
        (Post.Status.WITHDRAWN, "Withdrawn: no longer published.", True),
        # Taken back by the secretariat, then perhaps submitted again: its wording may be being revised.
        (Post.Status.RETURNED, "Not published at the moment: being revised or reviewed.", False),
        (Post.Status.SUBMITTED, "Not published at the moment: being revised or reviewed.", False),
    ],
)
def test_the_other_posts_wording_once_unpublished(client, pair, kenya, status, said, title_shown):
    Post.objects.filter(pk=pair.offer_id).update(status=status, title="A title as it is now")
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert said in page
    assert ("A title as it is now" in page) is title_shown
    assert reverse("posts:detail", args=[pair.offer.pk]) not in page


def test_a_post_moved_to_another_party_leaves_its_connections_with_the_party_that_made_them(
    client, pair, kenya, japan
):
    """The secretariat may move a post to another Party: the connection, and the contacts it gave, stay with the
    Parties that answered."""
    FocalPointFactory(username="tza1", party=party("TZA"), email="tza@example.org")
    Post.objects.filter(pk=pair.need_id).update(party=party("TZA"), contact_email="new@tza.example.org")
    client.force_login(FocalPointFactory(username="tza2", party=party("TZA")))
    page = client.get(URL).content.decode()
    assert "You have no connections yet." in page and "aiko@example.jp" not in page
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert f'id="connection-{pair.pk}"' in page and 'href="mailto:aiko@example.jp"' in page
    # Japan is told to write to Kenya's people, not to the post's new Party nor to its new contact.
    client.force_login(japan)
    page = client.get(URL).content.decode()
    assert 'href="mailto:ken@example.org"' in page
    assert "tza@example.org" not in page and "new@tza.example.org" not in page
    assert "<bdi>Kenya</bdi></h2>" in page


def test_ones_own_unpublished_post_is_shown_with_its_status(client, pair, kenya, japan):
    post_withdraw(actor=Actor.for_user(kenya), post=pair.need)
    client.force_login(japan)
    assert "Withdrawn: no longer published." in client.get(URL).content.decode()
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert "Flood warnings for the Tana basin" in page  # theirs: its page is visible to them
    assert '<span class="badge badge-withdrawn">Withdrawn</span>' in page
    assert "River flood forecasting" in page


def test_a_contact_who_has_left_gives_way_to_the_partys_focal_points(client, pair, kenya, japan):
    FocalPointFactory(username="aiko", party=party("JPN"), email="aiko@example.jp", is_active=False)
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert "aiko@example.jp" not in page
    assert 'href="mailto:jpn@example.org"' in page


def test_no_contact_at_all_says_the_secretariat_can_help(client, kenya):
    need = PostFactory(kind="need", party=party("KEN"))
    offer = PostFactory(kind="offer", party=party("NOR"), title="Skills for solar technicians")
    connect(need, offer)
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert "Skills for solar technicians" in page
    assert "none given on the post: the secretariat can put you in touch." in page


def test_provider_users_see_their_organisations_connections_deactivated_or_not(client, kenya):
    provider = SupportProviderFactory(short_name="GCFX")
    user = ProviderUserFactory(provider=provider, email="gcf@example.org")
    need = PostFactory(kind="need", party=party("KEN"), title="Mangrove restoration in Lamu")
    offer = PostFactory(kind="offer", party=None, provider=provider, title="Blue carbon grants")
    match = connect(need, offer)

    client.force_login(user)
    page = client.get(URL).content.decode()
    assert f'id="connection-{match.pk}"' in page and "Mangrove restoration in Lamu" in page
    assert 'href="mailto:ken@example.org"' in page
    client.force_login(kenya)
    assert 'href="mailto:gcf@example.org"' in client.get(URL).content.decode()

    # Deactivated by the secretariat: it answers no more matches, but keeps whom it was put in touch with.
    provider.is_active = False
    provider.save()
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 200
    assert 'href="mailto:ken@example.org"' in response.content.decode()


def test_newest_first_and_paged(client, kenya, settings):
    settings.POSTS_PAGE_SIZE = 2
    need = PostFactory(kind="need", party=party("KEN"))
    matches = []
    for i, iso3 in enumerate(["JPN", "NOR", "DEU"]):
        match = connect(need, PostFactory(kind="offer", party=party(iso3), title=f"Offer number {i}"))
        Match.objects.filter(pk=match.pk).update(connected_at=timezone.now() - timezone.timedelta(days=3 - i))
        matches.append(match)
    client.force_login(kenya)
    first = client.get(URL).content.decode()
    assert first.index("Offer number 2") < first.index("Offer number 1")
    assert "Offer number 0" not in first and "Page 1 of 2" in first
    second = client.get(URL, {"page": 2}).content.decode()
    assert "Offer number 0" in second and "Offer number 2" not in second


def test_queries_do_not_grow_with_the_connections(client, kenya, django_assert_num_queries):
    need = PostFactory(kind="need", party=party("KEN"))
    connect(need, PostFactory(kind="offer", party=party("JPN"), contact_email="a@jp.org"))
    connect(need, PostFactory(kind="offer", party=party("NOR")))
    client.force_login(kenya)
    # 1 session, 2 user, 3 the page of connections (both posts and both posters joined), 4 its count (the
    # paginator's), 5 the posts' returns by the secretariat (whether a title may be shown), 6 the holders of the
    # contact addresses given, 7 the users who speak for the posters without one.
    with django_assert_num_queries(7):
        assert client.get(URL).status_code == 200
    for iso3 in ("DEU", "FRA", "GBR", "CAN"):
        connect(need, PostFactory(kind="offer", party=party(iso3)))
    connect(need, PostFactory(kind="offer", party=party("SWE"), contact_email="b@se.org"))
    with django_assert_num_queries(7):
        assert client.get(URL).status_code == 200


def test_a_match_links_to_its_place_among_the_connections(client, kenya, settings):
    settings.POSTS_PAGE_SIZE = 2
    need = PostFactory(kind="need", party=party("KEN"))
    matches = [connect(need, PostFactory(kind="offer", party=party(iso3))) for iso3 in ("JPN", "NOR", "DEU")]
    client.force_login(kenya)
    oldest = matches[0]  # newest first: the third, on page 2
    response = client.get(URL, {"match": oldest.pk})
    assert response.status_code == 302
    assert response["Location"] == f"{URL}?page=2#connection-{oldest.pk}"
    assert f'id="connection-{oldest.pk}"' in client.get(URL, {"page": 2}).content.decode()
    assert client.get(URL, {"match": matches[2].pk})["Location"] == f"{URL}#connection-{matches[2].pk}"
    # Another Party's connection, an unknown one, or nonsense: the list's first page, without a word of it.
    other = connect(
        PostFactory(kind="need", party=party("BRA")),
        PostFactory(kind="offer", party=party("JPN"), title="Not yours"),
    )
    for value in (str(other.pk), "999999", "abc", "9" * 40, ""):
        assert client.get(URL, {"match": value})["Location"] == URL, value


def test_connection_contacts_as_the_email_gives_them(kenya, japan):
    provider = SupportProviderFactory(short_name="ADAPTF")
    ProviderUserFactory(provider=provider, email="b@fund.org", first_name="Bea", last_name="B")
    ProviderUserFactory(provider=provider, email="a@fund.org", first_name="Al", last_name="A")
    ProviderUserFactory(provider=provider, email="gone@fund.org", is_active=False)
    given = PostFactory(
        kind="offer", party=party("JPN"), contact_name="Aiko", contact_email=" Aiko@Example.jp "
    )
    left = PostFactory(kind="offer", party=party("JPN"), contact_email="left@example.jp")
    UserFactory(email="LEFT@example.jp", is_active=False)
    by_provider = PostFactory(kind="offer", party=None, provider=provider)
    need = PostFactory(kind="need", party=party("KEN"))
    contacts = connection_contacts((p, p.party_id, p.provider_id) for p in (given, left, by_provider, need))
    assert contacts == {
        given.pk: [("Aiko", " Aiko@Example.jp ")],
        left.pk: [(japan.get_full_name(), "jpn@example.org")],
        by_provider.pk: [("Al A", "a@fund.org"), ("Bea B", "b@fund.org")],
        need.pk: [("Wanjiru Otieno", "ken@example.org")],
    }


def test_the_dashboard_and_the_match_point_to_the_connections(client, pair, kenya, japan):
    client.force_login(kenya)
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert "You have 1 connection:" in dashboard and f'href="{URL}"' in dashboard
    page = client.get(reverse("posts:detail", args=[pair.need.pk]), {"matches": "connected"}).content.decode()
    assert f'href="{URL}?match={pair.pk}#connection-{pair.pk}"' in page

    # Another Party without any connection: no such line.
    client.force_login(FocalPointFactory(party=party("BRA")))
    PostFactory(kind="need", party=party("BRA"))
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert "You have" not in dashboard and URL not in dashboard


def test_the_connection_email_links_to_the_connections(kenya, japan, django_capture_on_commit_callbacks):
    need = PostFactory(kind="need", party=party("KEN"))
    offer = PostFactory(kind="offer", party=party("JPN"))
    match = Match.objects.create(need=need, offer=offer, score=0.7, explanation={})
    with django_capture_on_commit_callbacks(execute=True):
        match_set_interest(actor=Actor.for_user(kenya), match=match, interest="interested")
        match_set_interest(actor=Actor.for_user(japan), match=match, interest="interested")
    assert len(mail.outbox) == 2
    match.refresh_from_db()  # who made it, recorded as it connected
    assert (match.need_party_id, match.need_provider_id, match.offer_party_id, match.offer_provider_id) == (
        party("KEN").pk,
        None,
        party("JPN").pk,
        None,
    )
    for message in mail.outbox:
        assert f"All your connections: {django_settings.SITE_URL}{URL}\n" in message.body


def test_the_ended_connection_note_links_to_the_connections_for_its_owner_only(client, pair, kenya, japan):
    post_withdraw(actor=Actor.for_user(japan), post=pair.offer)
    url = reverse("posts:detail", args=[pair.need.pk])
    client.force_login(kenya)
    page = client.get(url, {"matches": "connected"}).content.decode()
    assert "connection has ended" in page and f'href="{URL}"' in page
    client.force_login(SecretariatFactory())  # sees the post's matches, has no connections page
    page = client.get(url, {"matches": "connected"}).content.decode()
    assert f'href="{URL}"' not in page


# --- the end of a connection ---------------------------------------------------------------------------------


def test_withdrawing_a_post_tells_the_other_side_once(pair, kenya, japan, django_capture_on_commit_callbacks):
    FocalPointFactory(username="ken2", party=party("KEN"), email="ken2@example.org", preferred_language="fr")
    FocalPointFactory(
        username="ken3", party=party("KEN"), email="ken3@example.org", preferred_language="zh-hans"
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_withdraw(actor=Actor.for_user(japan), post=pair.offer)
    assert sorted(m.to[0] for m in mail.outbox) == [
        "ken2@example.org",
        "ken3@example.org",
        "ken@example.org",
    ]  # not Japan
    chinese = next(m for m in mail.outbox if m.to == ["ken3@example.org"]).body
    assert "：http" in chinese and "： " not in chinese  # no space after a full-width colon
    assert "(Japon) mise en relation" in next(m for m in mail.outbox if m.to == ["ken2@example.org"]).body
    english = next(m for m in mail.outbox if m.to == ["ken@example.org"])
    # Named by the recipient's own post, and without saying who withdrew it (its poster, the secretariat, an
    # import) nor its title (which may have been taken back and revised).
    assert english.subject == "Connection ended: Flood warnings for the Tana basin"
    assert (
        'The post of Japan connected with your post "Flood warnings for the Tana basin" has been withdrawn.'
        in english.body
    )
    assert (
        "The contacts you exchanged are still yours to use" not in english.body
    )  # never emailed (a test row)
    assert f"{django_settings.SITE_URL}{URL}?match={pair.pk}\n" in english.body
    french = next(m for m in mail.outbox if m.to == ["ken2@example.org"])
    assert french.subject.startswith("Fin de la mise en relation") and "Japon" in french.body
    pair.refresh_from_db()
    assert pair.end_notified_at is not None
    # Sent once: the task again, the sweep, or the other side leaving too tell nobody more.
    from apps.matching.services import connection_ended_send, connection_ended_sweep

    assert connection_ended_send(match_id=pair.pk) == 0 and connection_ended_sweep() == 0
    with django_capture_on_commit_callbacks(execute=True):
        post_withdraw(actor=Actor.for_user(kenya), post=pair.need)
    assert len(mail.outbox) == 3


def test_closing_a_post_tells_the_other_side_it_was_closed(
    pair, kenya, japan, django_capture_on_commit_callbacks
):
    from apps.posts.services import post_close

    with django_capture_on_commit_callbacks(execute=True):
        post_close(actor=Actor.for_user(kenya), post=pair.need, outcome="Funded by the national budget.")
    (message,) = mail.outbox
    assert message.to == ["jpn@example.org"]
    assert (
        'The post of Kenya connected with your post "River flood forecasting" has been closed.'
        in message.body
    )


def test_a_post_that_left_without_its_task_is_told_by_the_sweep(
    pair, kenya, japan, django_capture_on_commit_callbacks
):
    """A broker away when the post was withdrawn, or a post withdrawn by an import or the secretariat: the
    sweep sends the news once the post has been gone a little while."""
    from datetime import timedelta

    from apps.matching.services import connection_ended_sweep

    with django_capture_on_commit_callbacks(execute=False):
        post_withdraw(actor=Actor.for_user(japan), post=pair.offer)  # the task never queued
    closed = PostFactory(kind="offer", party=party("NOR"), title="Solar skills", status="published")
    other = connect(pair.need, closed)
    Post.objects.filter(pk=closed.pk).update(status="closed")  # as an import would: no service, no task
    assert connection_ended_sweep() == 0 and mail.outbox == []  # not yet: the task may be on its way
    Post.objects.filter(pk__in=[pair.offer_id, closed.pk]).update(
        updated_at=timezone.now() - timedelta(minutes=3)
    )
    assert connection_ended_sweep() == 2
    assert [m.subject for m in mail.outbox] == ["Connection ended: Flood warnings for the Tana basin"] * 2
    assert Match.objects.filter(pk__in=[pair.pk, other.pk], end_notified_at__isnull=True).count() == 0


def test_the_withdraw_and_close_panels_say_the_other_side_will_be_told(client, pair, kenya):
    client.force_login(kenya)
    page = client.get(reverse("posts:detail", args=[pair.need.pk])).content.decode()
    assert "This post has a connection: the other side will be emailed that it was withdrawn." in page
    assert "This post has a connection: the other side will be emailed that it was closed." in page
    Post.objects.filter(pk=pair.offer_id).update(status="withdrawn")  # nobody left to tell
    page = client.get(reverse("posts:detail", args=[pair.need.pk])).content.decode()
    assert "will be emailed" not in page


def test_the_contacts_line_says_exchanged_only_once_they_were_emailed(pair, kenya, japan,
                                                                      django_capture_on_commit_callbacks):  # fmt: skip
    Match.objects.filter(pk=pair.pk).update(connection_notified_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        post_withdraw(actor=Actor.for_user(japan), post=pair.offer)
    (message,) = mail.outbox
    assert "The contacts you exchanged are still yours to use" in message.body


def test_both_posts_ended_before_the_news_went_nobody_is_told(
    pair, kenya, japan, django_capture_on_commit_callbacks
):
    from apps.matching.services import connection_ended_send

    with django_capture_on_commit_callbacks(execute=False):
        post_withdraw(actor=Actor.for_user(japan), post=pair.offer)
        post_withdraw(actor=Actor.for_user(kenya), post=pair.need)
    assert connection_ended_send(match_id=pair.pk) == 0 and mail.outbox == []
    pair.refresh_from_db()
    assert pair.end_notified_at is not None  # nobody left to tell: not tried again by each sweep


def test_a_post_moved_then_withdrawn_is_announced_as_the_partys_that_connected(
    client, pair, kenya, japan, django_capture_on_commit_callbacks
):
    """The secretariat moves Kenya's need to Tanzania, which withdraws it: Japan hears that Kenya's post ended
    (the one it connected with); Tanzania's panel announces nothing, the connection is not its own."""
    tanzania = FocalPointFactory(username="tza", party=party("TZA"), email="tza@example.org")
    Post.objects.filter(pk=pair.need_id).update(party=party("TZA"))
    client.force_login(tanzania)
    assert "will be emailed" not in client.get(reverse("posts:detail", args=[pair.need_id])).content.decode()
    need = Post.objects.get(pk=pair.need_id)
    with django_capture_on_commit_callbacks(execute=True):
        post_withdraw(actor=Actor.for_user(tanzania), post=need)
    (message,) = mail.outbox
    assert message.to == ["jpn@example.org"]
    assert (
        'The post of Kenya connected with your post "River flood forecasting" has been withdrawn.'
        in message.body
    )


def test_ones_own_post_moved_since_is_shown_as_the_other_is(client, pair, kenya):
    """Moved to Tanzania and returned for changes, Kenya's old need is Tanzania's draft now: Kenya keeps its
    connection, without the new wording nor a link to a page that is no longer Kenya's."""
    from apps.posts.models import PostEvent

    Post.objects.filter(pk=pair.need_id).update(
        party=party("TZA"), status="returned", title="TZA draft title"
    )
    PostEvent.objects.create(post_id=pair.need_id, action="returned", actor_label="secretariat")
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert f'id="connection-{pair.pk}"' in page
    assert "Moved by the secretariat to another Party or provider since." in page
    assert "TZA draft title" not in page and reverse("posts:detail", args=[pair.need_id]) not in page
    assert "River flood forecasting" in page


def test_a_post_taken_back_since_the_connection_keeps_its_wording_hidden_once_withdrawn(client, pair, kenya):
    """The secretariat took Japan's offer back (for its content, say), it was revised, then withdrawn: its
    current title was never published, or is the one taken down."""
    from apps.posts.models import PostEvent

    PostEvent.objects.create(post_id=pair.offer_id, action="returned", actor_label="secretariat")
    Post.objects.filter(pk=pair.offer_id).update(status="withdrawn", title="A title never published")
    client.force_login(kenya)
    page = client.get(URL).content.decode()
    assert "Withdrawn: no longer published." in page and "A title never published" not in page
    # Taken back before the connection was made: its title since is one the other side saw.
    PostEvent.objects.filter(post_id=pair.offer_id).update(
        created_at=pair.connected_at - timezone.timedelta(days=1)
    )
    assert "A title never published" in client.get(URL).content.decode()


def test_a_connection_made_without_its_posters_is_filled_by_the_sweep(client, pair, kenya, japan):
    """Made by a process still on the code of before posters were recorded (during an upgrade)."""
    from apps.matching.tasks import sweep_pending

    Match.objects.filter(pk=pair.pk).update(
        need_party=None, need_provider=None, offer_party=None, offer_provider=None
    )
    client.force_login(kenya)
    assert f'id="connection-{pair.pk}"' not in client.get(URL).content.decode()
    sweep_pending()
    assert f'id="connection-{pair.pk}"' in client.get(URL).content.decode()
