"""A support provider the secretariat deactivated: its users and write tokens may still take its posts down
(withdraw, close), as the deactivation message promises, and are told why anything else is refused."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.posts.models import Post
from tests.api.factories import MatchFactory
from tests.factories import CommitteeFactory, PostFactory, ProviderUserFactory, SupportProviderFactory
from tests.posts.test_admin import form_data

pytestmark = pytest.mark.django_db

S = Post.Status
API = "/api/v1/posts/"
DEACTIVATED = "deactivated this support provider"


@pytest.fixture
def gcf(db):
    return SupportProviderFactory(short_name="GCF")


@pytest.fixture
def gcf_user(gcf):
    return ProviderUserFactory(username="gcf_user", provider=gcf)


@pytest.fixture
def gcf_token(gcf, secretariat) -> str:
    _token, raw = ApiToken.objects.issue(
        name="GCF portal", scope="write", provider=gcf, created_by=secretariat
    )
    return raw


def offer(provider, **fields) -> Post:
    return PostFactory(kind=Post.Kind.OFFER, party=None, provider=provider, **fields)


@pytest.fixture
def posts(gcf):
    """GCF's offers, one of another provider; then GCF is deactivated."""
    made = {
        "published": offer(gcf, title="Adaptation grants"),
        "published_2": offer(gcf, title="Concessional loans"),
        "draft": offer(gcf, title="Draft grants", status=S.DRAFT, published_at=None),
        "other": offer(SupportProviderFactory(short_name="AF"), title="AF grants"),
    }
    gcf.is_active = False
    gcf.save()
    return made


@pytest.fixture(params=["token", "session"])
def caller(request, gcf_token, gcf_user) -> APIClient:
    """The deactivated provider through its write token, or its user's browser session."""
    client = APIClient()
    if request.param == "token":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {gcf_token}")
    else:
        client.force_login(gcf_user)
    return client


def message_of(response) -> str:
    return " ".join(error["message"] for error in response.json()["errors"])


# --- API -----------------------------------------------------------------------------------------------------


def test_api_withdraw_and_close_still_work(caller, posts):
    response = caller.post(f"{API}{posts['published'].pk}/withdraw/", format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "withdrawn"
    response = caller.post(
        f"{API}{posts['published_2'].pk}/close/", {"outcome": "Taken up by Kenya."}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "closed"
    response = caller.post(f"{API}{posts['draft'].pk}/withdraw/", format="json")
    assert response.status_code == 200


def test_api_take_down_is_for_its_own_posts_only(caller, posts):
    response = caller.post(f"{API}{posts['other'].pk}/withdraw/", format="json")
    assert response.status_code == 403
    posts["other"].refresh_from_db()
    assert posts["other"].status == S.PUBLISHED


def test_api_other_writes_say_the_provider_is_deactivated(caller, posts):
    published, draft = posts["published"], posts["draft"]
    body = {
        "kind": "offer",
        "provider": "GCF",
        "title": "New grants",
        "description": "Grants for adaptation.",
        "support_types": ["finance"],
        "focus_areas": ["adaptation"],
    }
    refused = [
        caller.post(API, body, format="json"),
        caller.patch(f"{API}{published.pk}/", {"title": "Renamed"}, format="json"),
        caller.put(f"{API}{published.pk}/", body, format="json"),
        caller.post(f"{API}{draft.pk}/submit/", format="json"),
        caller.post(f"{API}import/", {"items": [{**body, "external_id": "gcf-1"}]}, format="json"),
        caller.post(
            f"/api/v1/matches/{MatchFactory(offer=published).pk}/interest/",
            {"interest": "interested"},
            format="json",
        ),
    ]
    for response in refused:
        assert response.status_code == 403, (response.request["PATH_INFO"], response.content)
        assert DEACTIVATED in message_of(response)
        assert "this token reads" not in message_of(response)
    published.refresh_from_db()
    draft.refresh_from_db()
    assert (published.title, published.status, draft.status) == ("Adaptation grants", S.PUBLISHED, S.DRAFT)
    assert not Post.objects.filter(title="New grants").exists()


def test_a_reactivated_provider_writes_again(caller, posts, gcf):
    gcf.is_active = True
    gcf.save()
    response = caller.patch(f"{API}{posts['draft'].pk}/", {"title": "Draft grants, revised"}, format="json")
    assert response.status_code == 200


def test_a_session_user_that_only_reads_is_not_told_about_a_token(posts):
    client = APIClient()
    client.force_login(CommitteeFactory(username="committee_member"))
    response = client.post(f"{API}{posts['other'].pk}/withdraw/", format="json")
    assert response.status_code == 403
    assert "token" not in message_of(response) and "your account reads" in message_of(response)
    match = MatchFactory()
    response = client.post(f"/api/v1/matches/{match.pk}/interest/", {"interest": "interested"}, format="json")
    assert response.status_code == 403 and "token" not in message_of(response)


def test_a_read_token_is_still_told_it_reads(posts, secretariat):
    _token, raw = ApiToken.objects.issue(name="Reader", scope="read", created_by=secretariat)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.post(f"{API}{posts['other'].pk}/withdraw/", format="json")
    assert response.status_code == 403 and "this token reads" in message_of(response)


# --- web -----------------------------------------------------------------------------------------------------


@pytest.fixture
def web(login, gcf_user, posts):
    return login(gcf_user)


def test_dashboard_says_the_provider_is_deactivated_and_lists_its_posts(web, posts):
    html = web.get(reverse("posts:dashboard")).content.decode()
    assert "The secretariat has deactivated" in html
    assert "ask the secretariat to register you" not in html
    assert posts["published"].title in html and posts["draft"].title in html
    assert reverse("posts:create") not in html  # no "Post an offer"
    assert reverse("posts:edit", args=[posts["draft"].pk]) not in html  # no "Finish and submit"


def test_post_page_offers_only_taking_it_down(web, posts):
    page = web.get(reverse("posts:detail", args=[posts["published"].pk]))
    assert page.context["actions"] == frozenset({"close", "withdraw"})
    html = page.content.decode()
    assert reverse("posts:withdraw", args=[posts["published"].pk]) in html
    assert reverse("posts:edit", args=[posts["published"].pk]) not in html
    draft_page = web.get(reverse("posts:detail", args=[posts["draft"].pk]))
    assert draft_page.context["actions"] == frozenset({"withdraw"})


def test_post_page_does_not_ask_a_deactivated_provider_to_edit(web, posts, gcf):
    """ "Edit the post ... then submit it again" and "add one by editing it" asked for what it can no longer do."""
    returned = offer(gcf, title="Readiness grants", status=S.RETURNED, published_at=None,
                     return_reason="Add the amounts.", contact_email="", contact_name="")  # fmt: skip
    html = web.get(reverse("posts:detail", args=[returned.pk])).content.decode()
    assert "Edit the post to address this" not in html and "add one by editing it" not in html
    assert "you may withdraw or close this post, or ask the secretariat to reactivate it" in html
    # No contact on the post: its users are given instead, as the connection email gives them.
    assert "Users of the organisation" in html and "add one by editing it" not in html


def test_web_withdraw_and_close(web, posts):
    response = web.post(reverse("posts:withdraw", args=[posts["published"].pk]))
    assert response.status_code == 302
    response = web.post(reverse("posts:close", args=[posts["published_2"].pk]), {"outcome": "Taken up."})
    assert response.status_code == 302
    statuses = dict(Post.objects.filter(provider__short_name="GCF").values_list("title", "status"))
    assert statuses["Adaptation grants"] == S.WITHDRAWN and statuses["Concessional loans"] == S.CLOSED


def test_web_other_writes_are_refused(web, posts):
    draft = posts["draft"]
    assert web.get(reverse("posts:create")).status_code == 403
    assert web.post(reverse("posts:submit", args=[draft.pk])).status_code == 403
    response = web.get(reverse("posts:edit", args=[draft.pk]))
    assert response.status_code == 302  # back to the post with a message: it cannot be edited
    assert web.post(reverse("posts:withdraw", args=[posts["other"].pk])).status_code == 403
    draft.refresh_from_db()
    assert draft.status == S.DRAFT
    # The public list offers no "post" button either.
    assert reverse("posts:create") not in web.get(reverse("posts:list")).content.decode()


def test_an_active_provider_user_is_unaffected(login, gcf_user, gcf):
    draft = offer(gcf, title="Draft", status=S.DRAFT, published_at=None)
    client = login(gcf_user)
    html = client.get(reverse("posts:dashboard")).content.decode()
    assert "The secretariat has deactivated" not in html and reverse("posts:create") in html
    actions = client.get(reverse("posts:detail", args=[draft.pk])).context["actions"]
    assert actions == frozenset({"edit", "submit", "withdraw"})


def test_web_refusals_say_why_on_a_page_of_the_site(web, posts):
    """A 403 is the site's page with the refusal's own message, not a bare "403 Forbidden"."""
    draft = posts["draft"]
    # Its own match is shown to it (not a 404, as to a stranger), and answering it is refused, saying why.
    match = MatchFactory(offer=posts["published"])
    for response in (
        web.get(reverse("posts:create")),
        web.post(reverse("posts:submit", args=[draft.pk])),
        web.post(reverse("matching:interest", args=[match.pk]), {"interest": "interested"}),
    ):
        html = response.content.decode()
        assert response.status_code == 403
        assert DEACTIVATED in html, html
        assert 'class="site-nav"' in html
    # Editing a published offer is refused for the provider's state, not for the post's status.
    response = web.get(reverse("posts:edit", args=[posts["published"].pk]), follow=True)
    html = response.content.decode()
    assert DEACTIVATED in html and "status does not allow" not in html


def _offer_record(external_id: str, title: str) -> dict:
    return {
        "external_id": external_id, "kind": "offer", "provider": "GCF", "title": title,
        "description": "Grants for adaptation projects in vulnerable countries.", "support_types": ["finance"],
        "focus_areas": ["adaptation"],
    }  # fmt: skip


def test_the_secretariat_still_updates_a_deactivated_providers_posts_but_adds_none(posts, secretariat):
    """Its provider is found (it was "unknown" once deactivated), its posts updated; a new one is refused."""
    from apps.accounts.actors import Actor
    from apps.posts import services
    from apps.posts.post_data import ReferenceData, parse_post_record

    actor, refs = Actor.for_user(secretariat), ReferenceData()
    existing = posts["published"]
    Post.objects.filter(pk=existing.pk).update(external_id="gcf-1")
    update = parse_post_record(_offer_record("gcf-1", "Adaptation grants, second window"), refs)
    result = services.post_import(actor=actor, items=[update])
    existing.refresh_from_db()
    assert result.updated == 1 and existing.title == "Adaptation grants, second window"
    new = parse_post_record(_offer_record("gcf-2", "Loss and damage grants"), refs)
    problems = services.post_import_check(actor=actor, items=[new])
    assert [(index, error.field) for index, error in problems] == [(0, "provider")]
    assert "GCF is deactivated" in problems[0][1].message
    client = APIClient()
    client.force_login(secretariat)
    response = client.post(API, _offer_record("gcf-3", "Readiness grants"), format="json")
    assert response.status_code == 403 and "GCF is deactivated" in message_of(response)
    assert not Post.objects.filter(external_id__in=["gcf-2", "gcf-3"]).exists()


def test_its_user_is_told_why_the_import_is_refused(posts, gcf_user, tmp_path):
    """`import_posts --as` said "only ... support providers can" to a support provider's user: the reason is the
    deactivation, and what is still allowed is said with it."""
    import json
    from io import StringIO

    from django.core.management import CommandError, call_command

    path = tmp_path / "gcf.jsonl"
    path.write_text(json.dumps({**_offer_record("gcf-1", "Adaptation grants"), "status": "withdrawn"}) + "\n")
    with pytest.raises(
        CommandError, match=r"deactivated their support provider, GCF.*may still withdraw or close"
    ):
        call_command("import_posts", str(path), "--as", "gcf_user", stdout=StringIO(), stderr=StringIO())


# --- The secretariat: a deactivated provider gets no post by a move or a publication -----------------------


def test_publishing_a_deactivated_providers_submission_is_refused_in_the_admin(gcf, secretariat, client):
    submitted = offer(gcf, title="Resilience grants", status=S.SUBMITTED, published_at=None)
    gcf.is_active = False
    gcf.save()
    client.force_login(secretariat)
    seen = {"seen_at": timezone.now().isoformat()}  # as the post's page sends it
    response = client.post(reverse("admin:posts_post_publish", args=[submitted.pk]), seen, follow=True)
    assert response.status_code == 200
    assert "GCF is deactivated: its posts are not published. Reactivate it first." in response.text
    submitted.refresh_from_db()
    assert submitted.status == S.SUBMITTED and submitted.published_at is None
    # Reactivated, it is published.
    gcf.is_active = True
    gcf.save()
    client.post(reverse("admin:posts_post_publish", args=[submitted.pk]), seen)
    submitted.refresh_from_db()
    assert submitted.status == S.PUBLISHED


def test_the_services_refuse_publishing_for_a_deactivated_provider(posts, gcf, secretariat):
    from django.core.exceptions import PermissionDenied

    from apps.accounts.actors import Actor
    from apps.posts import services

    actor = Actor.for_user(secretariat)
    submitted = offer(gcf, title="Readiness grants", status=S.SUBMITTED, published_at=None)
    with pytest.raises(PermissionDenied, match="GCF is deactivated: its posts are not published"):
        services.post_publish(actor=actor, post=submitted)
    submitted.refresh_from_db()
    assert submitted.status == S.SUBMITTED
    # Taking a publication back and returning still work: they take posts down.
    services.post_return(actor=actor, post=posts["published"], reason="Outdated amounts.")
    posts["published"].refresh_from_db()
    assert posts["published"].status == S.RETURNED


def test_an_import_does_not_publish_a_deactivated_providers_post(posts, gcf, secretariat):
    from apps.accounts.actors import Actor
    from apps.posts import services
    from apps.posts.post_data import ReferenceData, parse_post_record

    actor, refs = Actor.for_user(secretariat), ReferenceData()
    submitted = offer(
        gcf, title="Readiness grants", status=S.SUBMITTED, published_at=None, external_id="gcf-9"
    )
    item = parse_post_record({**_offer_record("gcf-9", "Readiness grants"), "status": "published"}, refs)
    problems = services.post_import_check(actor=actor, items=[item])
    assert [(index, error.field) for index, error in problems] == [(0, "status")]
    assert "GCF is deactivated: its posts are not published" in problems[0][1].message
    submitted.refresh_from_db()
    assert submitted.status == S.SUBMITTED
    # A published post of the provider re-imported as published (no change of status) is fine.
    Post.objects.filter(pk=posts["published"].pk).update(external_id="gcf-1")
    same = parse_post_record({**_offer_record("gcf-1", "Adaptation grants"), "status": "published"}, refs)
    assert services.post_import_check(actor=actor, items=[same]) == []


def test_a_post_is_not_moved_to_a_deactivated_provider(posts, gcf, secretariat, client):
    """Neither in the admin (an error on the field) nor through the service (the API, the import)."""
    from django.core.exceptions import PermissionDenied

    from apps.accounts.actors import Actor
    from apps.posts import services
    from apps.posts.post_data import ReferenceData, parse_post_record

    other = posts["other"]
    client.force_login(secretariat)
    url = reverse("admin:posts_post_change", args=[other.pk])
    response = client.post(url, {**form_data(client, url), "provider": str(gcf.pk)})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "GCF is deactivated: it takes no new posts." in str(errors["provider"])
    other.refresh_from_db()
    assert other.provider.short_name == "AF"
    refs = ReferenceData()
    Post.objects.filter(pk=other.pk).update(external_id="af-1")
    moved = parse_post_record({**_offer_record("af-1", "AF grants")}, refs)
    problems = services.post_import_check(actor=Actor.for_user(secretariat), items=[moved])
    assert [(index, error.field) for index, error in problems] == [(0, "provider")]
    with pytest.raises(PermissionDenied, match="GCF is deactivated"):
        services.post_update(actor=Actor.for_user(secretariat), post=other, data=moved)
    other.refresh_from_db()
    assert other.provider.short_name == "AF"


def test_a_deactivated_providers_users_are_not_emailed_to_edit_a_returned_post(
    posts, gcf, gcf_user, secretariat
):
    from django.core import mail

    from apps.accounts.actors import Actor
    from apps.posts.notifications import moderation_notify
    from apps.posts.services import post_return

    post_return(actor=Actor.for_user(secretariat), post=posts["published"], reason="Outdated amounts.")
    moderation_notify(post_id=posts["published"].pk, event="returned")
    (email,) = [m for m in mail.outbox if m.to == [gcf_user.email]]
    assert "Change it and submit it again" not in email.body and "/edit/" not in email.body
    assert "you may withdraw or close this post, or ask the secretariat to reactivate it" in email.body
