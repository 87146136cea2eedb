"""The secretariat's admin for posts: moderation queue and actions, content edits through the services,
history, search, query counts, and who may use any of it."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from apps.posts.models import Post, PostEvent
from tests.factories import CommitteeFactory, PostFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db

S = Post.Status
LIST_URL = reverse("admin:posts_post_changelist")


def change_url(post: Post) -> str:
    return reverse("admin:posts_post_change", args=[post.pk])


@pytest.fixture
def staff(login, secretariat):
    """The secretariat's logged-in client (a staff user with the secretariat role, not a superuser)."""
    return login(secretariat)


def submitted(title: str, days_ago: int, **kwargs) -> Post:
    return PostFactory(
        title=title,
        status=S.SUBMITTED,
        published_at=None,
        submitted_at=timezone.now() - timedelta(days=days_ago),
        **kwargs,
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def seen() -> dict[str, str]:
    """What the admin's pages send with a decision: when the list (`shown_at`) or the post's page (`seen_at`)
    was shown. A post submitted again since is not decided on unread (test_recall.py)."""
    now = timezone.now().isoformat()
    return {"shown_at": now, "seen_at": now}


# --- moderation queue ---------------------------------------------------------------------------------------


def test_moderation_queue_lists_submitted_posts_oldest_first(staff):
    middle = submitted("Middle", 5)
    oldest = submitted("Oldest", 9)
    newest = submitted("Newest", 1)
    PostFactory(title="Already published")
    PostFactory(title="Still a draft", status=S.DRAFT)

    response = staff.get(LIST_URL, {"queue": "submitted"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [oldest, middle, newest]
    # The status filter is the same queue, in the same order.
    response = staff.get(LIST_URL, {"status__exact": "submitted"})
    assert list(response.context["cl"].result_list) == [oldest, middle, newest]


def test_posts_list_links_to_the_queue_with_its_size(staff):
    submitted("A", 2)
    submitted("B", 1)
    PostFactory()
    response = staff.get(LIST_URL)
    assert response.status_code == 200
    assert "Moderation queue: 2 posts waiting" in response.content.decode()
    assert "?queue=submitted" in response.content.decode()


def test_admin_pages_say_in_which_time_zone_their_times_are(staff):
    post = PostFactory()
    for url in (LIST_URL, change_url(post), reverse("admin:index")):
        html = staff.get(url).content.decode()
        assert '<footer id="footer"><p class="help">Times are shown in UTC.</p></footer>' in html, url
        assert "<title>" in html and "NMA Platform administration</title>" in html  # the rest of base_site
        assert "/static/css/admin.css" in html  # which places the footer in the content column


def test_publish_action_goes_through_the_service(staff, secretariat):
    first, second = submitted("First", 3), submitted("Second", 2)
    response = staff.post(
        LIST_URL, {"action": "publish_selected", "_selected_action": [first.pk, second.pk], **seen()}
    )
    assert response.status_code == 302
    for post in (first, second):
        post.refresh_from_db()
        assert post.status == S.PUBLISHED and post.published_at is not None
        # Through post_publish: history with the secretariat as actor, and handed to matching.
        event = post.events.get()
        assert (event.action, event.actor, event.from_status) == ("published", secretariat, S.SUBMITTED)
        assert post.matching_pending
        # And in the admin's own history ("Recent actions", the History button), as the README says.
        entry = LogEntry.objects.get(object_id=str(post.pk), content_type__model="post")
        assert (entry.user, entry.get_change_message()) == (secretariat, "Published.")
    assert "Published 2 posts." in messages_of(response)


def test_publishing_a_draft_is_reported_not_a_500(staff):
    draft = PostFactory(title="Draft on solar pumps", status=S.DRAFT)
    ok = submitted("Ready", 2)
    response = staff.post(
        LIST_URL, {"action": "publish_selected", "_selected_action": [draft.pk, ok.pk], **seen()}
    )
    assert response.status_code == 302
    messages = messages_of(response)
    assert "“Draft on solar pumps”: A draft post cannot be published." in messages
    assert "Published 1 post." in messages
    draft.refresh_from_db()
    ok.refresh_from_db()
    assert (draft.status, ok.status) == (S.DRAFT, S.PUBLISHED)
    assert not draft.events.exists()


def test_return_action_asks_for_the_reason_first(staff, secretariat):
    post = submitted("Mangroves", 4)
    data = {"action": "return_selected", "_selected_action": [post.pk], **seen()}

    page = staff.post(LIST_URL, data)
    assert page.status_code == 200
    assert page.templates[0].name == "admin/posts/post/return_reason.html"
    html = page.content.decode()
    assert 'name="reason"' in html and "Mangroves" in html
    assert '<label for="id_reason"' in html
    post.refresh_from_db()
    assert post.status == S.SUBMITTED

    # Submitting the page without a reason shows it again with the error; nothing changes.
    page = staff.post(LIST_URL, {**data, "apply": "1", "reason": "   "})
    assert page.status_code == 200
    assert "This field is required." in page.content.decode()
    post.refresh_from_db()
    assert post.status == S.SUBMITTED

    response = staff.post(LIST_URL, {**data, "apply": "1", "reason": "Add the sites and the budget."})
    assert response.status_code == 302
    post.refresh_from_db()
    assert post.status == S.RETURNED
    assert post.return_reason == "Add the sites and the budget."
    event = post.events.get()
    assert (event.action, event.actor, event.note) == (
        "returned",
        secretariat,
        "Add the sites and the budget.",
    )
    assert "Returned 1 post to its owner." in messages_of(response)


def test_returning_a_withdrawn_post_is_refused_with_a_message(staff):
    post = PostFactory(title="Old offer", status=S.WITHDRAWN)
    response = staff.post(
        LIST_URL,
        {
            "action": "return_selected",
            "_selected_action": [post.pk],
            "apply": "1",
            "reason": "Why not",
            **seen(),
        },
    )
    assert response.status_code == 302
    assert "“Old offer”: A withdrawn post cannot be returned." in messages_of(response)
    post.refresh_from_db()
    assert post.status == S.WITHDRAWN


def test_buttons_on_a_submitted_posts_page(staff, secretariat):
    post = submitted("Early warning", 2)
    page = staff.get(change_url(post))
    html = page.content.decode()
    assert reverse("admin:posts_post_publish", args=[post.pk]) in html
    assert reverse("admin:posts_post_return", args=[post.pk]) in html
    # Content is read-only while in moderation, and there is nothing to save.
    assert 'name="title"' not in html and 'name="_save"' not in html

    return_url = reverse("admin:posts_post_return", args=[post.pk])
    assert staff.get(return_url).status_code == 200
    response = staff.post(return_url, {"reason": "Name the river basins.", **seen()})
    assert response.status_code == 302
    post.refresh_from_db()
    assert (post.status, post.return_reason) == (S.RETURNED, "Name the river basins.")

    other = submitted("Mini-grids", 1)
    publish_url = reverse("admin:posts_post_publish", args=[other.pk])
    assert staff.get(publish_url).status_code == 405
    response = staff.post(publish_url, seen())
    assert response.status_code == 302
    other.refresh_from_db()
    assert other.status == S.PUBLISHED
    assert other.events.get().actor == secretariat


def test_publish_button_on_a_draft_reports_the_error(staff):
    draft = PostFactory(status=S.DRAFT)
    response = staff.post(reverse("admin:posts_post_publish", args=[draft.pk]), seen(), follow=True)
    assert response.status_code == 200
    assert "A draft post cannot be published." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == S.DRAFT


# --- content edits go through post_update --------------------------------------------------------------------


def form_data(client, url) -> dict:
    """The change form's current values, as the browser would post them back."""
    page = client.get(url)
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        if value is True:
            data[name] = "on"
        elif isinstance(value, (list, tuple)):
            data[name] = [str(v) for v in value]
        else:
            data[name] = str(value)
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
    data["_save"] = "Save"
    return data


def test_editing_content_records_history_and_rematches(staff, secretariat):
    post = PostFactory(
        title="Solar pumps for farmers",
        kind=Post.Kind.OFFER,
        support_types=["technology"],
        focus_areas=["clean_energy"],
        matching_pending=False,
    )
    data = form_data(staff, change_url(post))
    data.update(
        title="Solar pumps for smallholder farmers",
        sectors=["agriculture_food", "renewable_energy"],
        eligible="ldc, SIDS, bgd",
        instruments=["in_kind"],
    )
    response = staff.post(change_url(post), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    post.refresh_from_db()
    assert post.title == "Solar pumps for smallholder farmers"
    assert post.eligible == ["LDC", "SIDS", "BGD"]
    assert post.status == S.PUBLISHED
    assert post.matching_pending
    event = post.events.get()
    assert (event.action, event.actor) == ("updated", secretariat)
    assert event.changes["title"] == ["Solar pumps for farmers", "Solar pumps for smallholder farmers"]
    assert event.changes["sectors"] == [[], ["agriculture_food", "renewable_energy"]]
    assert event.changes["eligible"] == [[], ["LDC", "SIDS", "BGD"]]


def test_a_title_edited_in_the_admin_is_one_line(staff):
    post = PostFactory(title="Solar pumps", kind=Post.Kind.OFFER, support_types=["technology"],
                       focus_areas=["clean_energy"])  # fmt: skip
    data = form_data(staff, change_url(post))
    data.update(title="Solar pumps\r\nfor smallholder farmers")
    assert staff.post(change_url(post), data).status_code == 302
    post.refresh_from_db()
    assert post.title == "Solar pumps for smallholder farmers"


def test_saving_an_unchanged_form_writes_no_history(staff):
    post = PostFactory(status=S.DRAFT, published_at=None)
    response = staff.post(change_url(post), form_data(staff, change_url(post)))
    assert response.status_code == 302
    assert not post.events.exists()


def test_edit_form_applies_the_shared_rules(staff):
    post = PostFactory(status=S.DRAFT, title="A need", published_at=None)
    data = form_data(staff, change_url(post))
    data.update(title="A need with eligibility", eligible="LDC", instruments=["grant"])
    response = staff.post(change_url(post), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Only offers restrict who is eligible" in str(errors["eligible"])
    assert "leave them out of a need" in str(errors["instruments"])
    data.update(eligible="Atlantis", instruments=[])
    response = staff.post(change_url(post), data)
    assert "Unknown Party code or group" in str(response.context["adminform"].form.errors["eligible"])
    post.refresh_from_db()
    assert post.title == "A need" and not post.events.exists()


def test_status_and_life_cycle_fields_are_read_only(staff):
    post = PostFactory(status=S.DRAFT, published_at=None)
    form = staff.get(change_url(post)).context["adminform"].form
    for name in (
        "status",
        "owner",
        "return_reason",
        "outcome",
        "published_at",
        "matching_pending",
        "external_id",
    ):
        assert name not in form.fields
    assert "title" in form.fields


# --- history ------------------------------------------------------------------------------------------------


def test_history_inline_on_the_post_page(staff, secretariat, focal_point):
    from apps.accounts.actors import Actor
    from apps.posts.services import post_publish, post_submit

    post = PostFactory(status=S.DRAFT, title="Koshi lake sensors", published_at=None)
    post_submit(actor=Actor.for_user(focal_point), post=post)
    post_publish(actor=Actor.for_user(secretariat), post=post)
    PostEvent.objects.filter(post=post, action="submitted").update(
        changes={
            "title": ["Old", "New"],
            "support_types": [["technology"], ["technology", "capacity_building"]],
            "language": ["en", "fr"],
            "sectors": [[], ["retired_key"]],
        }
    )

    html = staff.get(change_url(post)).content.decode()
    assert "History (every change, who made it and when)" in html
    assert "fp_ken" in html and "secretariat" in html
    assert "Submitted" in html and "Published" in html
    assert "title: Old → New" in html
    # Taxonomy keys and language codes by the names the form shows them by.
    assert (
        "types of support: Technology development and transfer → Technology development and transfer, "
        in html
    )
    assert "language: English → French" in html
    assert "sectors: — → retired_key" in html  # a key that is no longer one, as it is
    # Read-only: no way to add, change or delete a history entry from the post page.
    assert "events-0-DELETE" not in html and "Add another post history entry" not in html


def test_history_has_its_own_read_only_list(staff, secretariat):
    post = PostFactory(title="Blue carbon inventory")
    PostEvent.objects.create(post=post, action="published", to_status="published", actor_label="secretariat")
    PostEvent.objects.create(post=PostFactory(title="Other"), action="created", actor_label="fp_ken")
    url = reverse("admin:posts_postevent_changelist")
    response = staff.get(url, {"q": "Blue carbon"})
    assert response.status_code == 200
    assert [e.post for e in response.context["cl"].result_list] == [post]
    response = staff.get(url, {"action__exact": "created"})
    assert [e.actor_label for e in response.context["cl"].result_list] == ["fp_ken"]
    event = post.events.get()
    assert staff.get(reverse("admin:posts_postevent_add")).status_code == 403
    assert staff.get(reverse("admin:posts_postevent_delete", args=[event.pk])).status_code == 403
    page = staff.get(reverse("admin:posts_postevent_change", args=[event.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    # Statuses by their labels, in the admin's language (they showed as codes: "published").
    staff.cookies["django_language"] = "fr"
    french = staff.get(url, {"q": "Blue carbon"}).content.decode()
    assert '<td class="field-to_status">Publiée</td>' in french
    from django.utils import translation

    with translation.override("en"):
        assert str(event) == "Published by secretariat"
    with translation.override("fr"):
        assert str(event) == "Publiée par secretariat"


# --- never deleted, never added here ------------------------------------------------------------------------


def test_posts_cannot_be_deleted_or_added(staff):
    post = PostFactory()
    response = staff.get(LIST_URL)
    actions = [name for name, _label in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert {"publish_selected", "return_selected"} <= set(actions)
    assert staff.get(reverse("admin:posts_post_delete", args=[post.pk])).status_code == 403
    assert staff.post(reverse("admin:posts_post_delete", args=[post.pk]), {"post": "yes"}).status_code == 403
    assert staff.get(reverse("admin:posts_post_add")).status_code == 403
    assert Post.objects.filter(pk=post.pk).exists()


# --- search, filters and query counts -----------------------------------------------------------------------


def test_search(staff):
    tana = PostFactory(title="Flood warning on the Tana river", external_id="ken-ews-7")
    bgd = PostFactory(title="Salt-tolerant rice", party=party("BGD"))
    PostFactory(title="Something else")
    for query, expected in [("Tana", [tana]), ("ken-ews-7", [tana]), ("BGD", [bgd]), ("Bangladesh", [bgd])]:
        response = staff.get(LIST_URL, {"q": query})
        assert list(response.context["cl"].result_list) == expected, query
    # Accents and case aside, in the title or the description, as the site's search reads them.
    sahel = PostFactory(title="Alerte précoce au Sahel", description="Systèmes d'ALERTE pour les éleveurs")
    for query in ("precoce", "PRÉCOCE", "eleveurs", "alerte precoce"):
        assert list(staff.get(LIST_URL, {"q": query}).context["cl"].result_list) == [sahel], query


def test_filters(staff):
    fiji = PostFactory(party=party("FJI"), kind=Post.Kind.OFFER, focus_areas=["mitigation"])
    PostFactory(party=party("KEN"))
    assert list(staff.get(LIST_URL, {"party__is_sids__exact": "1"}).context["cl"].result_list) == [fiji]
    assert list(staff.get(LIST_URL, {"kind__exact": "offer"}).context["cl"].result_list) == [fiji]
    assert list(staff.get(LIST_URL, {"focus_areas__key__exact": "mitigation"}).context["cl"].result_list) == [
        fiji
    ]


@pytest.mark.parametrize("n", [3, 30])
def test_changelist_query_count(n, staff, django_assert_num_queries):
    for i in range(n):
        PostFactory(title=f"Post {i}", party=party(["KEN", "FJI", "BRA"][i % 3]))
    PostFactory(kind=Post.Kind.OFFER, party=None, provider=SupportProviderFactory())
    # 1 session, 2 user, 3 queue count and 4 changed-since-review count (the links above the list; each from
    # its own index, where one query would read every post), 5-6 the support types' and focus areas' filter
    # choices, 7 filtered count, 8 total count, 9 the page of posts joined with Party and provider, 10 the
    # distinct languages for the language filter.
    with django_assert_num_queries(10):
        response = staff.get(LIST_URL)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == n + 1


@pytest.mark.parametrize("n", [3, 30])
def test_history_list_query_count(n, staff, django_assert_num_queries):
    for i in range(n):
        PostEvent.objects.create(post=PostFactory(), action="created", actor_label=f"user{i}")
    # 1 session, 2 user, 3 filtered count (no total count: show_full_result_count is off for the
    # ever-growing history), 4 the page of events joined with their post. The to_status filter lists the
    # statuses' labels from their choices, no query.
    with django_assert_num_queries(4):
        response = staff.get(reverse("admin:posts_postevent_changelist"))
    assert response.status_code == 200


def test_history_names_parties_and_fields_and_keeps_whole_texts_on_the_entrys_page(staff):
    post = PostFactory(status=S.DRAFT, published_at=None)
    long_text = "Earlier description. " * 10
    event = PostEvent.objects.create(
        post=post,
        action="updated",
        actor_label="sam",
        changes={
            "party_id": [party("FJI").pk, party("UGA").pk],
            "partner_parties": [[], [party("TZA").pk, party("KEN").pk]],
            "description": [long_text, "New."],
            "involves_iplc": [False, True],
        },
    )
    html = staff.get(change_url(post)).content.decode()
    assert "Party: Fiji (FJI) → Uganda (UGA)" in html  # was "party_id: 62 → 185"
    assert "partner Parties: — → United Republic of Tanzania (TZA), Kenya (KEN)" in html
    assert "Indigenous Peoples and local communities take part: no → yes" in html
    assert long_text not in html and long_text[:60] in html  # shortened in the table
    entry = staff.get(reverse("admin:posts_postevent_change", args=[event.pk])).content.decode()
    assert long_text.strip() in entry  # the whole earlier text, on the entry's own page


def test_a_long_text_changed_past_its_start_shows_the_change_and_links_to_the_whole(staff):
    """Both versions were cut at 80 characters: a sentence added to a long description showed the same words on
    each side of the arrow, and the entry had no link to its own page."""
    post = PostFactory(status=S.DRAFT, published_at=None)
    before = "Community early-warning sirens for the villages along the lower Tana river, with SMS alerts in Swahili."
    after = before + " Budget: USD 250,000 over two years."
    event = PostEvent.objects.create(
        post=post, action="updated", actor_label="fp_ken", changes={"description": [before, after]}
    )
    html = staff.get(change_url(post)).content.decode()
    line = re.search(r"description: (.*?) → (.*?)(?:<br>|</td>|</p>)", html).groups()
    assert line[0] != line[1], line
    assert line[0].startswith("…") and "in Swahili." in line[0]
    assert "Budget: USD 250,000" in line[1]
    assert reverse("admin:posts_postevent_change", args=[event.pk]) in html  # the entry whole, one click away


def test_a_long_chinese_text_changed_in_its_middle(staff):
    from apps.posts.admin import _from_first_difference

    before = "斐济政府愿与太平洋岛国分享沿海社区预警系统的经验，" * 5
    after = before[:100] + "并提供为期两周的培训" + before[100:]
    old, new = _from_first_difference(before, after, 80)
    assert old != new and "并提供为期两周的培训" in new and "并提供" not in old
    assert old.startswith("…") and len(old) <= 81 and len(new) <= 81
    assert _from_first_difference("short", "shorter", 80) == ("short", "shorter")
    assert _from_first_difference(before, after, None) == (before, after)


def test_change_page_query_count_does_not_grow_with_history(staff, django_assert_max_num_queries):
    post = PostFactory(status=S.DRAFT, published_at=None)
    PostEvent.objects.bulk_create(
        [
            PostEvent(post=post, action="updated", actor_label=f"u{i}", changes={"title": ["a", "b"]})
            for i in range(40)
        ]
    )
    with django_assert_max_num_queries(30):
        response = staff.get(change_url(post))
    assert response.content.decode().count("title: a → b") == 40


def test_change_page_query_count_does_not_grow_with_history_naming_parties(
    staff, django_assert_max_num_queries
):
    """Entries that move a post between Parties or change its partners name Parties by id: the page reads them
    for the whole history at once."""
    post = PostFactory(status=S.DRAFT, published_at=None)
    kenya, uganda = party("KEN"), party("UGA")
    PostEvent.objects.bulk_create(
        [
            PostEvent(post=post, action="updated", actor_label=f"u{i}",
                      changes={"party_id": [kenya.pk, uganda.pk], "partner_parties": [[], [kenya.pk]]})
            for i in range(60)
        ]
    )  # fmt: skip
    with django_assert_max_num_queries(30):
        response = staff.get(change_url(post))
    html = response.content.decode()
    assert html.count("Party: Kenya (KEN) → Uganda (UGA)") == 60
    assert html.count("partner Parties: — → Kenya (KEN)") == 60


def test_taxonomy_terms_are_listed_and_searchable_but_fixed(staff):
    PostFactory(sectors=["water"])
    url = reverse("admin:posts_sectorterm_changelist")
    response = staff.get(url, {"q": "water"})
    assert [t.key for t in response.context["cl"].result_list] == ["water"]
    in_use = staff.get(url, {"in_use": "yes"}).context["cl"].result_list
    assert [t.key for t in in_use] == ["water"]
    assert staff.get(reverse("admin:posts_sectorterm_add")).status_code == 403
    page = staff.get(reverse("admin:posts_sectorterm_change", args=["water"]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


# --- who may use the admin ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["focal_point", "committee", "provider_user", "observer"])
def test_non_staff_get_the_login_page(role, request, login):
    client = login(request.getfixturevalue(role))
    post = submitted("Queue item", 1)
    for url in (LIST_URL, change_url(post), reverse("admin:index")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    response = client.post(LIST_URL, {"action": "publish_selected", "_selected_action": [post.pk], **seen()})
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    response = client.post(reverse("admin:posts_post_publish", args=[post.pk]), seen())
    assert response["Location"].startswith(reverse("admin:login"))
    post.refresh_from_db()
    assert post.status == S.SUBMITTED


def test_anonymous_gets_the_login_page(client):
    response = client.get(LIST_URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_staff_flag_without_the_secretariat_role_is_not_enough(login, focal_point):
    """A committee member or a focal point marked staff by mistake still cannot moderate."""
    post = submitted("Queue item", 1)
    for user in (CommitteeFactory(username="staff_committee", is_staff=True), focal_point):
        user.is_staff = True
        user.save()
        client = login(user)
        assert client.get(LIST_URL).status_code == 403
        assert client.get(change_url(post)).status_code == 403
        response = client.post(
            LIST_URL, {"action": "publish_selected", "_selected_action": [post.pk], **seen()}
        )
        assert response.status_code == 403
        assert client.post(reverse("admin:posts_post_publish", args=[post.pk]), seen()).status_code == 403
        assert (
            client.post(
                reverse("admin:posts_post_return", args=[post.pk]), {"reason": "x", **seen()}
            ).status_code
            == 403
        )
        # The admin index lists none of the platform's models for them.
        assert "Posts" not in client.get(reverse("admin:index")).content.decode()
    post.refresh_from_db()
    assert post.status == S.SUBMITTED
    assert not post.events.exists()


def test_yes_no_filters_are_titled_by_what_they_filter(staff):
    """The admin writes "By <title>": a field named by a sentence read "Par Des peuples autochtones … y
    participent" in French."""
    staff.cookies["django_language"] = "fr"
    html = staff.get(LIST_URL).content.decode()
    assert "Par Peuples autochtones et communautés locales" in html
    assert "y participent" not in html.split('id="changelist-filter"')[1]
    iplc = PostFactory(involves_iplc=True, title="With IPLC")
    PostFactory(involves_iplc=False, title="Without")
    found = staff.get(LIST_URL, {"involves_iplc__exact": "1"}).context["cl"].result_list
    assert [p.pk for p in found] == [iplc.pk]


def test_the_admin_refuses_an_amount_above_the_ceiling_as_every_other_way_in(staff):
    """The admin saved USD 50 trillion, which the site, the API and the import refuse."""
    post = PostFactory(amount_usd=1000)
    data = form_data(staff, change_url(post))
    data["amount_usd"] = "50000000000000"
    response = staff.post(change_url(post), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["amount_usd"] == [
        "That is more than any post could need or offer (under a trillion dollars): check the number of zeros."
    ]
    post.refresh_from_db()
    assert post.amount_usd == 1000


def test_a_title_or_description_that_shows_nothing_is_refused_in_the_admin(staff):
    """Zero-width characters only: empty, as on the site, the API and the import (a reviewer stored one)."""
    post = PostFactory(title="Solar pumps for farmers")
    data = {**form_data(staff, change_url(post)), "title": "\u200b\u2060", "description": "\ufeff"}
    response = staff.post(change_url(post), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["title"] == ["This field is required."] and errors["description"] == [
        "This field is required."
    ]
    post.refresh_from_db()
    assert post.title == "Solar pumps for farmers"
