"""An edit form filled before someone else changed the post is not saved over that change: the editor sees why,
keeps what they typed, and saves again knowingly. On the site, in the admin and in the service."""

import re

import pytest
from django.http import QueryDict
from django.urls import reverse

from apps.accounts.actors import Actor
from apps.posts.models import Post
from apps.posts.post_data import ReferenceData, parse_post_record, post_to_record
from apps.posts.services import PostEditConflict, post_mark_reviewed, post_update
from tests.factories import PostFactory, SecretariatFactory, party

from .test_admin import change_url, staff  # noqa: F401 - staff is a fixture
from .test_admin import form_data as admin_form_data

pytestmark = pytest.mark.django_db


def edited(post: Post, **changes):
    record = {**post_to_record(post), **changes}
    return parse_post_record(record, ReferenceData())


def hidden_opened_at(html: str) -> str:
    return re.search(r'<input type="hidden" name="opened_at" value="([^"]+)"', html).group(1)


def test_the_service_refuses_a_form_older_than_the_post(focal_point):
    post = PostFactory(party=party("KEN"), title="Solar pumps", amount_usd=1000)
    opened_at = post.updated_at
    post_update(actor=Actor.for_user(SecretariatFactory()), post=post, data=edited(post, amount_usd=999999))
    with pytest.raises(PostEditConflict, match="changed this post after you opened it"):
        post_update(actor=Actor.for_user(focal_point), post=Post.objects.get(pk=post.pk),
                    data=edited(post, title="Solar pumps for Turkana"), opened_at=opened_at)  # fmt: skip
    post.refresh_from_db()
    assert (post.title, post.amount_usd) == ("Solar pumps", 999999)
    # Without `opened_at` (the API, the import: whole records, no form) the latest write wins, as before.
    post_update(
        actor=Actor.for_user(focal_point), post=post, data=edited(post, title="Solar pumps for Turkana")
    )


def test_the_web_form_keeps_the_editors_text_and_saves_it_when_they_confirm(focal_point, login):
    post = PostFactory(party=party("KEN"), title="Solar pumps", description="Pumps.", amount_usd=1000)
    client = login(focal_point)
    page = client.get(reverse("posts:edit", args=[post.pk])).content.decode()
    opened_at = hidden_opened_at(page)
    # Meanwhile the secretariat corrects the amount.
    post_update(actor=Actor.for_user(SecretariatFactory(username="sam", first_name="Sam", last_name="Sec")),
                post=post, data=edited(post, amount_usd=999999))  # fmt: skip
    from .test_views import form_data

    mine = form_data(title="Solar pumps for Turkana", description="Pumps and training.", amount_usd="1000",
                     opened_at=opened_at)  # fmt: skip
    response = client.post(reverse("posts:edit", args=[post.pk]), mine)
    assert response.status_code == 409
    html = response.content.decode()
    assert "changed this post after you opened it" in html and 'class="error-summary"' in html
    assert "Solar pumps for Turkana" in html and "Pumps and training." in html  # nothing typed is lost
    post.refresh_from_db()
    assert (post.title, post.amount_usd) == ("Solar pumps", 999999)
    # The form now carries the post's latest time: saving again is a deliberate choice, and goes through.
    mine["opened_at"] = hidden_opened_at(html)
    assert client.post(reverse("posts:edit", args=[post.pk]), mine).status_code == 302
    post.refresh_from_db()
    assert post.title == "Solar pumps for Turkana"


def test_an_editor_who_changed_the_post_in_another_tab_is_told_so(focal_point, login):
    """ "fp_ken changed this post after you opened it", to fp_ken, who had saved it from another tab."""
    post = PostFactory(party=party("KEN"), title="Solar pumps", description="Pumps.", amount_usd=1000)
    client = login(focal_point)
    first_tab = hidden_opened_at(client.get(reverse("posts:edit", args=[post.pk])).content.decode())
    from .test_views import form_data

    second = form_data(title="Solar pumps (tab 2)", opened_at=first_tab)
    assert client.post(reverse("posts:edit", args=[post.pk]), second).status_code == 302
    # The secretariat reviews that change meanwhile: a review changes nothing in the post, and is not who did.
    post_mark_reviewed(
        actor=Actor.for_user(SecretariatFactory(username="sam")), post=Post.objects.get(pk=post.pk)
    )
    response = client.post(reverse("posts:edit", args=[post.pk]), form_data(title="Solar pumps (tab 1)",
                                                                             opened_at=first_tab))  # fmt: skip
    assert response.status_code == 409
    html = response.content.decode()
    assert "You changed this post in another tab or window after you opened this form." in html
    assert focal_point.username not in html.split('class="error-summary"')[1].split("</div>")[0]
    # The post as it is now is one click away, without leaving the form.
    assert f'<a href="{reverse("posts:detail", args=[post.pk])}" target="_blank" rel="noopener">' in html
    post.refresh_from_db()
    assert post.title == "Solar pumps (tab 2)"


def test_the_admin_says_when_the_change_was_the_editors_own(staff, secretariat):  # noqa: F811
    post = PostFactory(party=party("KEN"), title="Solar pumps", description="Pumps.", amount_usd=1000)
    first_tab = admin_form_data(staff, change_url(post))
    second_tab = {**first_tab, "title": "Solar pumps (tab 2)"}
    assert staff.post(change_url(post), second_tab).status_code == 302
    response = staff.post(change_url(post), {**first_tab, "title": "Solar pumps (tab 1)"})
    assert response.status_code == 200
    assert (
        "You changed this post in another tab or window after you opened this form."
        in response.content.decode()
    )


def test_the_admin_refuses_a_stale_change_form(staff, secretariat, focal_point):  # noqa: F811
    post = PostFactory(party=party("KEN"), title="Solar pumps", description="Pumps.", amount_usd=1000)
    data = admin_form_data(staff, change_url(post))
    post_update(
        actor=Actor.for_user(focal_point), post=post, data=edited(post, description="Pumps, and more.")
    )
    data["title"] = "Solar pumps (checked)"
    response = staff.post(change_url(post), data)
    assert response.status_code == 200  # the form again, with the reason
    assert "changed this post after you opened it" in response.content.decode()
    post.refresh_from_db()
    assert (post.title, post.description) == ("Solar pumps", "Pumps, and more.")
    # The form shown again carries the post's latest time: saving it again is deliberate, and goes through
    # (it was refused again and again). Here the admin first takes the poster's description in.
    data["opened_at"] = hidden_opened_at(response.content.decode())
    data["description"] = "Pumps, and more."
    assert staff.post(change_url(post), data).status_code == 302
    post.refresh_from_db()
    assert (post.title, post.description) == ("Solar pumps (checked)", "Pumps, and more.")


def as_posted(form) -> QueryDict:
    """What a browser posts for a form as the page shows it (its initial values)."""
    data = QueryDict(mutable=True)
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, (list, tuple)):
            data.setlist(name, [str(v) for v in value])
        else:
            data[name] = "" if value is None else str(value)
    return data


def test_saving_again_after_a_conflict_keeps_the_other_tabs_changes_to_fields_left_alone(focal_point, login):
    """Tab 1 changed the contact and saved; tab 2, opened before, changed the amount: its 409 form still held
    the old contact, and saving it again put that back without a word."""
    post = PostFactory(party=party("KEN"), title="Solar pumps", amount_usd=1000, contact_name="Amina")
    client = login(focal_point)
    url = reverse("posts:edit", args=[post.pk])
    tab1 = as_posted(client.get(url).context["form"])
    tab2 = as_posted(client.get(url).context["form"])
    tab1["contact_name"] = "Wanjiru"
    tab1["title"] = "Solar pumps (tab 1)"
    assert client.post(url, tab1).status_code == 302
    tab2["amount_usd"] = "2500"
    tab2["title"] = "Solar pumps (tab 2)"
    response = client.post(url, tab2)
    assert response.status_code == 409
    form = response.context["form"]
    # The contact, left alone in tab 2, is tab 1's now; the amount is tab 2's; the title, changed in both,
    # stays tab 2's and is named.
    assert form["contact_name"].value() == "Wanjiru"
    assert form["amount_usd"].value() == "2500" and form["title"].value() == "Solar pumps (tab 2)"
    assert list(form.errors) == ["__all__", "title"]
    assert form.errors["title"] == [
        "Changed meanwhile too: yours is kept here. Compare it with the post as it is now before saving."
    ]
    html = response.content.decode()
    assert (
        "What the other change made to fields you had not changed is now in the form: Contact name." in html
    )
    assert client.post(url, form.data).status_code == 302  # saved again as shown
    post.refresh_from_db()
    assert (post.contact_name, post.amount_usd, post.title) == ("Wanjiru", 2500, "Solar pumps (tab 2)")


def test_a_conflict_on_a_form_without_fingerprints_keeps_the_editors_data_as_before(focal_point, login):
    """A form opened before this release (no fingerprints) merges nothing: the editor's data comes back."""
    post = PostFactory(party=party("KEN"), contact_name="Amina")
    client = login(focal_point)
    url = reverse("posts:edit", args=[post.pk])
    old_form = as_posted(client.get(url).context["form"])
    old_form.pop("opened_values")
    other = as_posted(client.get(url).context["form"])
    other["contact_name"] = "Wanjiru"
    client.post(url, other)
    response = client.post(url, old_form)
    assert response.status_code == 409
    assert response.context["form"]["contact_name"].value() == "Amina"
    assert "is now in the form" not in response.content.decode()
