"""Arabic pages read right to left: the page says so, and what runs the other way inside it (names, e-mail
addresses, posts written in English, dates, amounts, the charts) keeps its own order instead of being turned
round by Unicode's bidirectional algorithm."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from apps.posts.templatetags.post_tags import usd
from apps.stocktake.charts import bar_chart
from tests.factories import FocalPointFactory, PostFactory, SupportProviderFactory, party

pytestmark = pytest.mark.django_db


def page(client, url, language="ar"):
    client.cookies["django_language"] = language
    return client.get(url).content.decode()


def test_an_arabic_page_is_right_to_left_and_an_english_one_left_to_right(client):
    arabic = page(client, reverse("posts:list"))
    assert '<html lang="ar" dir="rtl"' in arabic and "<h1>الاحتياجات والعروض</h1>" in arabic
    assert '<html lang="en" dir="ltr"' in page(client, reverse("posts:list"), "en")


def test_a_posters_name_is_isolated_from_the_arabic_around_it(client):
    """ "CTCN · 300000" ran as one left-to-right stretch: the amount came before the provider's name."""
    provider = SupportProviderFactory(short_name="CTCN")
    PostFactory(kind="offer", party=None, provider=provider, title="Early warning", amount_usd=300000)
    html = page(client, reverse("posts:list"))
    card = html[html.index('class="post-card"') :]
    assert re.search(r"<bdi>\s*CTCN[^<]*</bdi>", card)
    # The post's own words carry their direction (an English title on an Arabic page starts at the left).
    assert re.search(r'<a href="[^"]+" lang="en" dir="auto">Early warning</a>', card)


def test_an_amount_keeps_its_digits_together_on_arabic_pages():
    """Django's Arabic groups no digits; a plain space would let a right-to-left line reverse the groups, a
    no-break one (a number separator to Unicode) keeps them in order."""
    with translation.override("ar"):
        assert usd(1250000) == "1\u00a0250\u00a0000\u00a0دولار أمريكي"
        assert usd("2.5") == "2,50\u00a0دولار أمريكي"
    with translation.override("en"):
        assert usd(1250000) == "USD 1,250,000"


def test_contact_names_and_addresses_keep_their_direction(login):
    kenya = party("KEN")
    FocalPointFactory(username="fp_ken", party=kenya, first_name="Wanjiru", last_name="Kamau")
    post = PostFactory(party=kenya, contact_name="Amina Odhiambo", contact_email="amina@example.org")
    client = login(FocalPointFactory(username="fp_fji", party=party("FJI")))
    html = page(client, reverse("posts:detail", args=[post.pk]))
    assert "<dd><bdi>Amina Odhiambo</bdi></dd>" in html
    assert '<a href="mailto:amina@example.org" dir="ltr">amina@example.org</a>' in html


def test_the_post_form_writes_names_in_their_own_direction(login):
    client = login(FocalPointFactory(username="fp_ken", party=party("KEN")))
    html = page(client, reverse("posts:create"))
    assert re.search(r'<input type="text" name="contact_name"[^>]* dir="auto"', html)
    assert re.search(r'<input type="email" name="contact_email"[^>]* dir="ltr"', html)


def test_the_stocktake_period_keeps_its_dates_left_to_right_in_an_arabic_sentence(login, committee):
    """After Arabic words, "2026-01-01" showed as "01-01-2026": its digits count as Arabic numbers, which a
    hyphen does not join."""
    client = login(committee)
    query = "?date_from=2026-01-01&date_to=2026-06-30"
    arabic = page(client, reverse("stocktake:summary") + query)
    assert (
        'الفترة: من <bdi dir="ltr">2026-01-01</bdi> إلى <bdi dir="ltr">2026-06-30</bdi> (يشمل اليومين كليهما).'
        in arabic
    )
    assert "Period: 2026-01-01 to 2026-06-30 (both included)." in page(
        client, reverse("stocktake:summary") + query, "en"
    )


def test_charts_are_drawn_left_to_right_on_any_page():
    """On a right-to-left page the SVG inherited direction: rtl, and its legend's names ran over their swatches."""
    with translation.override("ar"):
        svg = bar_chart(chart_id="c", title="t", desc="d", labels=["التكيف"], series=[("الاحتياجات", [3])])
    assert re.match(r'<svg [^>]*direction="ltr"', svg)


def test_a_chart_scrolls_in_a_left_to_right_frame_below_its_caption(login, committee):
    """On a phone a chart scrolls sideways in its frame. In a right-to-left frame it opened on the chart's far
    end (the axis and the first labels out of sight to the left), and the caption, inside the frame, scrolled
    away with the chart."""
    html = page(login(committee), reverse("stocktake:report") + "?date_from=2026-01-01&date_to=2026-06-30")
    frames = re.findall(
        r'<figure class="chart-figure"><figcaption id="([\w-]+)">[^<]+</figcaption><span id="[\w-]+" hidden>[^<]+</span>'
        r'<div class="chart-scroll" role="region" aria-labelledby="([\w-]+) [\w-]+" tabindex="0" dir="ltr">\s*<svg ',
        html,
    )
    assert len(frames) == html.count('<svg class="chart"') == 5
    assert all(caption == label for caption, label in frames) and len({caption for caption, _ in frames}) == 5


def test_the_profile_isolates_the_username_and_writes_a_phone_left_to_right(login):
    client = login(FocalPointFactory(username="fp_ken", party=party("KEN"), email="fp@example.org"))
    html = page(client, reverse("accounts:profile"))
    assert "<dd><bdi>fp_ken</bdi></dd>" in html and "<dd><bdi>fp@example.org</bdi></dd>" in html
    assert re.search(r'<input type="tel" name="phone"[^>]* dir="ltr"', html)
    assert re.search(r'<input type="text" name="organisation"[^>]* dir="auto"', html)


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("١٢٥٠٠٠٠", Decimal("1250000")),  # Arabic-Indic digits
        ("١٬٢٥٠٬٠٠٠", Decimal("1250000")),  # and Arabic's own thousands separator
        ("٢٥٠٠٫٥٠", Decimal("2500.50")),  # and its decimal separator: a phone's Arabic keypad types it
        ("١٬٢٥٠٬٠٠٠٫٥", Decimal("1250000.5")),
        ("١,٢٥٠,٠٠٠", Decimal("1250000")),  # Arabic-Indic digits grouped by commas, as 1,250,000 is read
        ("۱۲۵۰", Decimal("1250")),  # Persian digits
        ("1 250 000,50", Decimal("1250000.50")),  # as an Arabic page writes an amount
        ("1250000.50", Decimal("1250000.50")),  # as the edit form shows a saved amount
    ],
)
def test_an_arabic_page_reads_amounts_typed_with_arabic_digits_and_separators(typed, amount):
    """An Arabic keypad types ٠-٩ with ٫ for the decimal point and ٬ between thousands: "٢٥٠٠٫٥٠" was refused as
    no number at all, whose digits were typed right."""
    from tests.posts.test_forms import party_form

    with translation.override("ar"):
        form = party_form(amount_usd=typed)
        assert form.is_valid(), form.errors
        assert form.cleaned_data["amount_usd"] == amount


@pytest.mark.parametrize("typed", ["١٬٢٥", "٠٬٥٠٠", "١٢٬٥٠٬٠٠٠", "١٬٢٥٠,٥٠", "١٫٢٥٠٫٠٠", "1.250٫5", "10²"])
def test_an_amount_with_misplaced_arabic_separators_is_asked_again_not_guessed(typed):
    from tests.posts.test_forms import party_form

    with translation.override("ar"):
        form = party_form(amount_usd=typed)
        assert not form.is_valid() and len(form.errors["amount_usd"]) == 1, (typed, form.errors)


def test_a_chinese_page_reads_full_width_digits_and_commas():
    """A Chinese input method types full-width signs: "１，２５０，０００" was refused as no number."""
    from tests.posts.test_forms import party_form

    with translation.override("zh-hans"):
        for typed, amount in (("１，２５０，０００", 1250000), ("１２５０．５", Decimal("1250.5"))):
            form = party_form(amount_usd=typed)
            assert form.is_valid(), form.errors
            assert form.cleaned_data["amount_usd"] == amount


def test_a_return_reason_keeps_its_own_direction_wherever_its_owner_reads_it(login):
    """The secretariat's reason, in English, on an Arabic page: its full stop was drawn first ('.site')."""
    user = FocalPointFactory(username="fp_fji_rtl", party=party("FJI"))
    post = PostFactory(
        party=party("FJI"), status="returned", published_at=None, return_reason="Add the budget for the site."
    )
    client = login(user)
    reason = r'dir="auto">Add the budget for the site\.<'
    assert re.search(reason, page(client, reverse("posts:detail", args=[post.pk])))
    assert re.search(reason, page(client, reverse("posts:edit", args=[post.pk])))
    dashboard = page(client, reverse("posts:dashboard"))
    assert re.search(reason, dashboard)
    # On a phone the reason is in view: the column next to the title, not the last one off-screen.
    returned = dashboard[dashboard.index('id="status-returned-title"') :]
    headers = re.findall(r'<th scope="col">([^<]+)</th>', returned[: returned.index("</thead>")])
    assert headers[1] == "سبب الإعادة"
