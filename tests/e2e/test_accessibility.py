"""What screen-reader, keyboard and phone users meet on the list and post pages, in a real headless Chromium."""

import re

import pytest
from django.conf import settings

from tests.factories import FocalPointFactory, PostFactory, SecretariatFactory, party

from .test_focal_point_flow import (
    browser_page,  # noqa: F401 - the fixture
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ARABIC_TITLE = "نظام إنذار مبكر بالفيضانات المفاجئة في وادي موسى"
LONG_WORD = "Гидрометеорологическиеавтоматизированныеинформационноизмерительныесистемы"


def test_the_list_announces_its_count_and_next_takes_the_keyboard_to_the_new_results(
    live_server,
    browser_page,  # noqa: F811
):
    page = browser_page
    for n in range(settings.POSTS_PAGE_SIZE + 2):
        PostFactory(title=f"Flood early warning {n}", kind="offer" if n % 2 else "need")
    page.goto(f"{live_server.url}/posts/")
    total = settings.POSTS_PAGE_SIZE + 2
    # The list itself is not a live region: a change of filter would read every card again.
    assert page.locator("#results").get_attribute("aria-live") is None
    history = page.evaluate("history.length")

    page.get_by_label("Kind").select_option("offer")
    page.locator("#results").get_by_text(f"{total // 2} posts found").wait_for()
    page.locator("#results-announcer").get_by_text(f"{total // 2} posts found").wait_for()
    assert page.evaluate("history.length") == history, "a filter added a step to the browser's history"
    assert "kind=offer" in page.url  # the address still says what is shown, to share or bookmark
    page.get_by_label("Kind").select_option("")
    page.locator("#results-announcer").get_by_text(f"{total} posts found").wait_for()

    next_link = page.get_by_role("link", name="Next")
    next_link.focus()
    next_link.press("Enter")
    page.locator("#results").get_by_text("Page 2 of 2", exact=True).wait_for()
    page.wait_for_function(
        "document.activeElement && document.activeElement.classList.contains('results-count')"
    )
    # What a screen reader reads there says which page this is.
    assert page.evaluate("document.activeElement.textContent") == f"{total} posts found, page 2 of 2"


def test_arabic_text_runs_right_to_left_and_long_words_stay_on_a_phones_screen(
    live_server,
    browser_page,  # noqa: F811
):
    page = browser_page
    post = PostFactory(
        title=ARABIC_TITLE,
        language="ar",
        party=party("JOR"),
        description="نحتاج إلى دعم تقني لإنشاء نظام إنذار مبكر. "
        + LONG_WORD
        + " https://example.org/"
        + "a" * 120,
    )
    PostFactory(title=LONG_WORD + LONG_WORD, language="ru", party=party("RUS"))
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{live_server.url}/posts/{post.pk}/")
    assert page.evaluate("getComputedStyle(document.getElementById('post-title')).direction") == "rtl"
    assert page.evaluate("getComputedStyle(document.querySelector('.description')).direction") == "rtl"
    for path in (f"/posts/{post.pk}/", "/posts/"):
        page.goto(f"{live_server.url}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px screen"
    assert re.search("Гидрометеорологические", page.locator("#results").inner_text())


def test_a_failed_search_says_so_on_the_page_and_to_screen_readers(
    live_server,
    browser_page,  # noqa: F811
):
    page = browser_page
    PostFactory(title="Flood early warning", kind="need")
    page.goto(f"{live_server.url}/posts/")
    # The server fails the live search (the full page itself loaded).
    page.route(re.compile(r".*/posts/\?.*"), lambda route: route.fulfill(status=500, body="boom"))
    page.get_by_label("Kind").select_option("offer")
    message = "The request failed: try again, or reload the page."
    page.locator("#results .request-failed").get_by_text(message).wait_for()
    assert page.locator("#results-announcer").inner_text() == message


def test_the_search_box_waits_for_an_input_method_to_finish_composing(
    live_server,
    browser_page,  # noqa: F811
):
    """Pinyin typed into the box is not yet the query: it searched for "tai'yang" and announced no results before
    the characters were chosen. It searches once they are."""
    page = browser_page
    PostFactory(title="太阳能微电网培训", language="zh", party=party("CHN"))
    PostFactory(title="Flood early warning")
    page.goto(f"{live_server.url}/posts/")
    asked = []
    page.on("request", lambda request: asked.append(request.url) if "q=" in request.url else None)
    page.locator("#id_q").focus()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "tai'yang", "selectionStart": 8, "selectionEnd": 8})
    page.wait_for_timeout(1200)  # three times the search's delay
    assert asked == [], asked
    assert "2 posts found" in page.locator("#results").inner_text()
    cdp.send("Input.insertText", {"text": "太阳能"})  # the candidate chosen: the composition ends
    page.locator("#results").get_by_text("1 post found").wait_for()
    assert page.locator("#results").get_by_text("太阳能微电网培训").count() == 1
    assert all("tai" not in url for url in asked) and len(asked) == 1, asked
    # Typing without an input method still searches as it goes.
    page.locator("#id_q").fill("flood")
    page.locator("#results").get_by_text("Flood early warning").wait_for()


def test_chinese_table_labels_stay_whole_and_the_admins_buttons_clear_the_title(
    live_server,
    browser_page,  # noqa: F811
):
    """Chinese breaks between any two characters: the dashboard's "Edit and submit again" stood as a column of
    seven characters on a phone. And the admin's buttons, floated up, covered the end of a post's title."""
    page = browser_page
    FocalPointFactory(username="fp_ken", party=party("KEN"))
    SecretariatFactory(username="secretariat")
    PostFactory(
        status="returned",
        published_at=None,
        return_reason="金额有误：请核对项目预算。",
        title="Solar mini-grids",
    )
    published = PostFactory(
        title="Flood early-warning systems for the coastal villages of Mombasa and Kilifi"
    )
    log_in(page, live_server.url, "fp_ken")
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server.url}])
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{live_server.url}/dashboard/")
    # Lines its first text takes (a box per line; the link's visually hidden title after it is not counted).
    lines = (
        "e => { const r = document.createRange(); r.selectNodeContents(e.firstChild);"
        " return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }"
    )
    link = page.get_by_role("link", name=re.compile("^编辑并再次提交"))
    assert link.evaluate(lines) == 1
    for header in page.locator("th").all():
        assert header.evaluate(lines) == 1, header.inner_text()
    assert page.get_by_role("cell", name="需求").first.evaluate(lines) == 1

    page.context.clear_cookies()
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, live_server.url, "secretariat")
    page.goto(f"{live_server.url}/admin/posts/post/{published.pk}/change/")
    title = page.locator("#content > h2").bounding_box()
    tools = page.locator(".object-tools").bounding_box()
    assert tools["y"] >= title["y"] + title["height"], (title, tools)


def test_an_answer_refused_for_its_pace_says_so_on_the_match(
    live_server,
    browser_page,  # noqa: F811
    settings,
):
    """Past the user's budget of changes, an htmx answer said only "The request failed"."""
    from apps.matching.models import Match

    page = browser_page
    settings.SITE_THROTTLE_WRITES = "1/minute"
    FocalPointFactory(username="fp_ken", party=party("KEN"))
    need = PostFactory(kind="need", party=party("KEN"), title="Flood warnings for the Tana basin")
    first, second = (
        Match.objects.create(need=need, offer=PostFactory(kind="offer", party=party(code)), score=score)
        for code, score in (("JPN", 0.8), ("NOR", 0.7))
    )
    log_in(page, live_server.url, "fp_ken")
    page.goto(f"{live_server.url}/posts/{need.pk}/")
    page.locator(f"#match-{first.pk}").get_by_role("button", name="Express interest", exact=True).click()
    page.locator(f"#match-{first.pk} .match-actions").get_by_text("You expressed interest.").wait_for()
    page.locator(f"#match-{second.pk}").get_by_role("button", name="Express interest", exact=True).click()
    message = "Many changes in a short time: nothing was saved. Try again in a few seconds."
    page.locator(f"#match-{second.pk} .request-failed").get_by_text(message).wait_for()
    second.refresh_from_db()
    assert second.need_interest == ""
