"""A focal point's journey in a real headless Chromium: post a need, submit it, the secretariat publishes it,
and the public finds it by searching the list (through htmx) and opens it."""

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
from django.db import connections

from apps.accounts.actors import Actor
from apps.accounts.models import User
from apps.posts.models import Post
from apps.posts.services import post_publish
from tests.conftest import skip_or_fail
from tests.factories import FocalPointFactory, PostFactory, SecretariatFactory, party

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test must still work.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "pw-for-tests-1"
TITLE = "Community flood early warning for the Tana river basin"

# serialized_rollback: the flush after a transactional test empties the reference data that migrations load
# (Parties, taxonomy terms); restoring it keeps this test and the other transactional tests order-independent.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def browser_page():
    # Playwright's wait_for_function polls with an evaluated predicate, which the site's Content-Security-Policy
    # refuses (script-src 'self'): the journeys bypass the policy; its own test below does not.
    yield from _browser_page(bypass_csp=True)


@pytest.fixture
def strict_browser_page():
    """A page that obeys the site's Content-Security-Policy, as a visitor's browser does."""
    yield from _browser_page(bypass_csp=False)


def _browser_page(*, bypass_csp: bool):
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing: install it with `apt-get install chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        skip_or_fail("playwright is not installed")
    profile = tempfile.mkdtemp(prefix="nma-e2e-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, bypass_csp=bypass_csp
        )
        context.set_default_timeout(15_000)
        page = context.pages[0] if context.pages else context.new_page()
        try:
            yield page
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
            # The test's ORM calls ran while Playwright's loop was active, so their connection lives in a context
            # that pytest-django's teardown does not see; close it here or PostgreSQL refuses to drop the test
            # database ("is being accessed by other users").
            connections.close_all()


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def log_out(page) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/posts/$"))


def publish_as_secretariat(page, base_url: str, post: Post) -> None:
    """Publish through the admin's list action, the way the secretariat does it."""
    log_in(page, base_url, "secretariat")
    page.goto(f"{base_url}/admin/posts/post/")
    action_select = page.locator("select[name=action]")
    if action_select.count() == 0 or "publish_selected" not in action_select.inner_html():
        # The admin action is the real path; without it, the service is what the action would call.
        warnings.warn("the admin has no publish action: published through the service", stacklevel=2)
        post_publish(actor=Actor.for_user(User.objects.get(username="secretariat")), post=post)
        return
    page.locator(f"input[name=_selected_action][value='{post.pk}']").check()
    action_select.select_option("publish_selected")
    page.locator("button[name=index]").click()
    page.get_by_text("Published 1 post.").wait_for()


def test_focal_point_posts_a_need_that_the_public_finds(live_server, browser_page):
    page = browser_page
    base_url = live_server.url
    FocalPointFactory(username="fp_ken", party=party("KEN"), password=PASSWORD)
    SecretariatFactory(username="secretariat", password=PASSWORD)

    # The focal point logs in and lands on Kenya's dashboard.
    log_in(page, base_url, "fp_ken")
    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard: Kenya"

    # Create a need as a draft: the taxonomies are labelled checkboxes.
    page.get_by_role("link", name="Post a need").click()
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Description").fill(
        "Automatic river gauges, a forecasting desk at the county office and SMS alerts for 40 villages."
    )
    page.get_by_label("Capacity-building", exact=True).check()
    page.get_by_label("Technology development and transfer").check()
    page.get_by_label("Adaptation, resilience and sustainability").check()
    page.get_by_label("Disaster risk reduction").check()
    page.get_by_label("Amount (USD)").fill("1250000")
    # Offer-only fields are hidden while "Need" is chosen.
    assert page.locator("#fieldset-eligibility").is_hidden()
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r"/posts/\d+/$"))
    assert page.get_by_role("heading", level=1).inner_text() == TITLE
    assert page.get_by_text("USD 1,250,000").is_visible()

    post = Post.objects.get(title=TITLE)
    assert post.status == Post.Status.DRAFT and post.party.iso3 == "KEN"

    # Submit it for review from its page.
    page.get_by_role("button", name="Submit for review").click()
    page.get_by_text("Submitted to the secretariat for review").wait_for()
    post.refresh_from_db()
    assert post.status == Post.Status.SUBMITTED

    # The dashboard lists it under "Submitted".
    page.get_by_role("link", name="Dashboard").click()
    assert TITLE in page.locator("#status-submitted").inner_text()
    log_out(page)

    # Not yet public.
    page.goto(f"{base_url}/posts/")
    assert TITLE not in page.locator("#results").inner_text()

    publish_as_secretariat(page, base_url, post)
    post.refresh_from_db()
    assert post.status == Post.Status.PUBLISHED
    log_out(page)

    # The public searches the list; htmx swaps in the results without reloading the page.
    PostFactory(title="Solar mini-grids for island clinics", party=party("FJI"))
    page.goto(f"{base_url}/posts/")
    assert "2 posts found" in page.locator("#results").inner_text()
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Search", exact=True).fill("Tana")
    page.locator("#results").get_by_text("1 post found").wait_for()
    results = page.locator("#results").inner_text()
    assert TITLE in results and "Solar mini-grids" not in results
    assert page.evaluate("window.__sameDocument") is True, "the search reloaded the whole page"
    # The URL follows the search (shareable, the back button works), without the unused filters.
    page.wait_for_function("window.location.search === '?q=Tana'")

    # The detail page shows the need but not its contacts to an anonymous visitor.
    page.locator("#results").get_by_role("link", name=TITLE).click()
    page.wait_for_url(re.compile(rf"/posts/{post.pk}/$"))
    assert page.get_by_role("heading", level=1).inner_text() == TITLE
    assert page.get_by_text("to see the contact details").is_visible()
    assert page.get_by_role("button", name="Withdraw the post").count() == 0


def test_answering_a_match_keeps_the_keyboard_on_it_and_announces_the_outcome(live_server, browser_page):
    """htmx replaces the match's item (and the button pressed): focus stays on the item, not the page's top, and
    the outcome is read out; each answer button names the match it answers."""
    from apps.matching.models import Match

    page = browser_page
    FocalPointFactory(username="fp_ken", party=party("KEN"), password=PASSWORD)
    need = PostFactory(kind="need", party=party("KEN"), title="Flood warnings for the Tana basin")
    offer = PostFactory(kind="offer", party=party("JPN"), title="River flood forecasting")
    match = Match.objects.create(need=need, offer=offer, score=0.8, explanation={"top_terms": ["flood"]})
    log_in(page, live_server.url, "fp_ken")
    page.wait_for_url(re.compile(r"/dashboard/$"))
    page.goto(f"{live_server.url}/posts/{need.pk}/")
    button = page.get_by_role("button", name="Express interest", exact=True)
    assert button.get_attribute("aria-describedby") == f"match-{match.pk}-title"
    assert page.locator(f"#match-{match.pk}-title").inner_text() == "River flood forecasting"
    page.evaluate("window.__sameDocument = true")
    # Every text written to the announcer: the answer's out-of-band parts (the panel's counts) settle too, and
    # once wrote it three times.
    page.evaluate(
        "window.__announced = [];"
        "new MutationObserver(() => { const t = document.getElementById('match-announcer').textContent;"
        " if (t) window.__announced.push(t); })"
        ".observe(document.getElementById('match-announcer'), {childList: true, characterData: true, subtree: true})"
    )
    button.focus()
    button.press("Enter")
    page.locator(f"#match-{match.pk} .match-actions").get_by_text("You expressed interest.").wait_for()
    page.wait_for_function(f"document.activeElement && document.activeElement.id === 'match-{match.pk}'")
    # Emptied, then set a moment later: the same words as the last answer's are read again.
    page.wait_for_function(
        "document.getElementById('match-announcer').textContent === 'You expressed interest.'"
    )
    page.wait_for_timeout(300)
    assert page.evaluate("window.__announced") == ["You expressed interest."]
    assert page.evaluate("window.__sameDocument") is True, "the answer reloaded the whole page"


def test_the_pages_work_under_the_content_security_policy(live_server, strict_browser_page):
    """The site allows only its own scripts (no inline script, no evaluated code): the list's live filters and
    search, the API's two documentation pages and the admin still work, and the browser reports no violation."""
    page = strict_browser_page
    base_url = live_server.url
    SecretariatFactory(username="secretariat", password=PASSWORD)
    PostFactory(title="Solar mini-grids for island clinics", party=party("FJI"), kind="offer")
    PostFactory(title="Mangrove nurseries for the Lamu coast", party=party("KEN"), kind="need")
    violations = []
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('Content Security Policy violated: ' + e.violatedDirective + ' ' + e.blockedURI))"
    )

    response = page.goto(f"{base_url}/posts/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.evaluate("window.__sameDocument = true")
    # A filter searches as it changes (an event of site.js, where an htmx trigger filter was evaluated code).
    page.get_by_label("Kind").select_option("offer")
    page.locator("#results").get_by_text("1 post found").wait_for()
    assert "Solar mini-grids" in page.locator("#results").inner_text()
    page.get_by_label("Kind").select_option("")
    page.locator("#results").get_by_text("2 posts found").wait_for()
    page.get_by_label("Search", exact=True).fill("Lamu")
    page.locator("#results").get_by_text("1 post found").wait_for()
    assert page.evaluate("window.__sameDocument") is True

    # Swagger UI (its script from ?script, not inline) and Redoc render the schema.
    page.goto(f"{base_url}/api/v1/docs/")
    page.locator(".swagger-ui .info .title").wait_for()
    page.goto(f"{base_url}/api/v1/redoc/")
    page.get_by_role("heading", name=re.compile("NMA Platform")).first.wait_for()

    log_in(page, base_url, "secretariat")
    page.goto(f"{base_url}/admin/posts/post/")
    page.locator("select[name=action]").wait_for()
    # Redoc's "powered by" logo comes from its CDN, which a closed network cannot reach anyway.
    assert [v for v in violations if "cdn.redoc.ly" not in v] == [], violations


def test_the_post_form_keeps_what_the_poster_cannot_see_out_of_the_post(live_server, strict_browser_page):
    """An offer's picks (an instrument, an eligible group and Party) hidden by switching to "Need" blocked the
    save with errors on fields the poster could not see; a list of Parties shows what it has chosen; a field in
    error has the error's border, single-line inputs too. Under the site's Content-Security-Policy."""
    page = strict_browser_page
    FocalPointFactory(username="fp_ken", party=party("KEN"), password=PASSWORD)
    log_in(page, live_server.url, "fp_ken")
    page.wait_for_url(re.compile(r"/dashboard/$"))
    page.goto(f"{live_server.url}/posts/new/?kind=offer")

    # Saved empty: the title's border is the error's (it stayed grey), as the description's.
    page.get_by_role("button", name="Save draft").click()
    page.locator(".error-summary").wait_for()
    border = "el => getComputedStyle(el).borderTopColor + ' ' + getComputedStyle(el).borderTopWidth"
    error_border = page.locator("#id_description").evaluate(border)
    assert error_border.endswith(" 2px")
    assert page.locator("#id_title").evaluate(border) == error_border

    page.get_by_label("Title").fill("Grants for clean cooking")
    page.get_by_label("Description").fill("Grants and training for clean cooking in rural schools.")
    page.get_by_label("Finance", exact=True).check()
    page.get_by_label("Mitigation measures to address climate change", exact=False).check()
    page.get_by_label("Grant", exact=True).check()
    page.get_by_label("Least developed countries (LDC)").check()
    chosen = page.locator("#id_eligible_parties-chosen")
    assert chosen.inner_text() == "None chosen."
    page.get_by_label("Eligible Parties").select_option(["FJI", "FRA"])
    assert chosen.inner_text() == "Chosen: Fiji (FJI), France (FRA)."
    assert chosen.get_attribute("aria-live") == "polite"

    # A need after all: the offer's picks are neither seen nor sent, and the need is saved.
    page.get_by_label("Need", exact=True).check()
    assert page.locator("#fieldset-eligibility").is_hidden()
    assert page.get_by_label("Grant", exact=True).is_disabled()
    # Back to an offer, they are there again; then a need once more, and save.
    page.get_by_label("Offer", exact=True).check()
    assert (
        page.get_by_label("Grant", exact=True).is_checked()
        and not page.get_by_label("Grant", exact=True).is_disabled()
    )
    page.get_by_label("Need", exact=True).check()
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r"/posts/\d+/$"))
    post = Post.objects.get(title="Grants for clean cooking")
    assert post.kind == "need" and post.eligible == [] and not post.instruments.exists()
