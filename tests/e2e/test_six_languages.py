"""Every interface language on a phone, in a real headless Chromium: no page is wider than the screen (a long
Russian word, an Arabic page laid out right to left, Chinese that breaks anywhere), with every disclosure open."""

import pytest
from django.utils import timezone

from apps.matching.models import Match
from tests.factories import CommitteeFactory, FocalPointFactory, PostFactory, party

from .test_focal_point_flow import browser_page, log_in  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LANGUAGES = ("en", "ar", "zh-hans", "fr", "ru", "es")
PHONE = 360

WIDTH = """() => {
    document.querySelectorAll("details").forEach((d) => { d.open = true; });
    return [document.documentElement.scrollWidth, window.innerWidth, document.documentElement.dir];
}"""


def widths(page, base_url: str, paths: list[str]) -> dict:
    """Per language and path: (page width, screen width, direction)."""
    found = {}
    for language in LANGUAGES:
        page.context.add_cookies([{"name": "django_language", "value": language, "url": base_url}])
        for path in paths:
            response = page.goto(f"{base_url}{path}")
            assert response.status == 200, (language, path, response.status)
            found[(language, path)] = tuple(page.evaluate(WIDTH))
    return found


def test_no_page_is_wider_than_a_phone_in_any_language(live_server, browser_page):  # noqa: F811
    page = browser_page
    page.set_viewport_size({"width": PHONE, "height": 800})
    FocalPointFactory(username="focal", party=party("KEN"))
    CommitteeFactory(username="committee")
    need = PostFactory(
        kind="need",
        party=party("KEN"),
        title="Community flood early warning for the Tana river basin",
        aims=["ambition", "coordination"],
    )
    offer = PostFactory(
        kind="offer",
        party=party("RUS"),
        language="ru",
        # A long word, as Russian compounds and codes are: it must wrap, not widen the page.
        title="Обучение специалистов гидрометеорологическихавтоматизированныхинформационных служб",
        description="Курсы повышения квалификации для специалистов гидрометеорологических служб. " * 3,
        contact_name="Отдел международного сотрудничества Росгидромета",
        contact_email="international.cooperation.department@meteorological-service.example.org",
    )
    Match.objects.create(
        need=need,
        offer=offer,
        score=0.62,
        lexical=0.41,
        semantic=0.7,
        structured=0.8,
        alignment=0.5,
        # A connection, so that the connections page lists it with the long address to write to.
        need_interest="interested",
        offer_interest="interested",
        connected_at=timezone.now(),
        need_party=party("KEN"),
        offer_party=party("RUS"),
        explanation={
            "shared_support_types": ["technology"],
            "shared_focus_areas": ["adaptation"],
            "cross_lingual": True,
            "need_language": "en",
            "offer_language": "ru",
            "related_terms": ["hydrometeorological", "training", "forecasting"],
            "terms_language": "en",
        },
    )

    log_in(page, live_server.url, "focal")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    found = widths(
        page,
        live_server.url,
        ["/posts/", f"/posts/{need.pk}/", "/posts/new/?kind=need", "/dashboard/", "/matches/connections/"],
    )
    page.context.clear_cookies()
    log_in(page, live_server.url, "committee")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    found |= widths(page, live_server.url, ["/stocktake/", "/stocktake/summary/"])

    too_wide = {key: value for key, value in found.items() if value[0] > value[1]}
    assert too_wide == {}
    assert {key[0]: value[2] for key, value in found.items()} == {
        "en": "ltr", "ar": "rtl", "zh-hans": "ltr", "fr": "ltr", "ru": "ltr", "es": "ltr"
    }  # fmt: skip
