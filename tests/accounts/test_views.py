"""Account pages: logging in lands on the dashboard, the profile, and switching the language."""

import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from tests.conftest import skip_or_fail

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _back_to_english():
    """LocaleMiddleware (and the profile view) activate a language for the thread and nothing deactivates it:
    restore the default so that later tests' English messages do not turn French or Arabic."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def test_login_lands_on_the_dashboard(focal_point):
    client = Client()
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert 'name="username"' in page.content.decode()
    response = client.post(reverse("login"), {"username": "fp_ken", "password": "pw-for-tests-1"})
    assert response.status_code == 302
    assert response.url == reverse("dashboard") == "/dashboard/"
    assert "Dashboard: Kenya" in client.get(response.url).content.decode()


def test_login_with_a_wrong_password_shows_the_error(focal_point):
    response = Client().post(reverse("login"), {"username": "fp_ken", "password": "wrong"})
    assert response.status_code == 200
    assert 'class="error-summary"' in response.content.decode()


def test_login_applies_the_preferred_language(focal_point):
    focal_point.preferred_language = "fr"
    focal_point.save()
    response = Client().post(reverse("login"), {"username": "fp_ken", "password": "pw-for-tests-1"})
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"


def test_login_keeps_the_language_chosen_before_it_without_a_preference(focal_point):
    """Every account starts with "Same as the site": logging in deleted the cookie, and a user who had chosen
    French on the login page found the site in English."""
    assert focal_point.preferred_language == ""
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    response = client.post(reverse("login"), {"username": "fp_ken", "password": "pw-for-tests-1"})
    assert response.status_code == 302
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies  # neither deleted nor changed
    assert client.get(reverse("dashboard")).headers["Content-Language"] == "fr"


def test_emails_follow_the_site_language_of_a_user_without_a_preference(
    focal_point, mailoutbox, django_capture_on_commit_callbacks
):
    """Every account starts with "Same as the site": emails went out in English to users who read the site in
    French. The language they log in with, or switch to, is kept for them."""
    from apps.accounts.actors import Actor
    from apps.posts.services import post_return
    from tests.factories import PostFactory, SecretariatFactory, party

    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    client.post(reverse("login"), {"username": "fp_ken", "password": "pw-for-tests-1"})
    focal_point.refresh_from_db()
    assert (focal_point.preferred_language, focal_point.site_language) == ("", "fr")
    assert focal_point.email_language == "fr"
    post = PostFactory(party=party("KEN"), status="submitted", published_at=None, title="Mangroves")
    with django_capture_on_commit_callbacks(execute=True):
        post_return(actor=Actor.for_user(SecretariatFactory()), post=post, reason="Ajoutez le budget.")
    assert [m.subject for m in mailoutbox] == ["Votre annonce vous a été renvoyée\u00a0: Mangroves"]

    # Switching the site's language while logged in moves it too; an unknown language is not kept.
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    client.post(reverse("set_language"), {"language": "xx", "next": "/"})
    focal_point.refresh_from_db()
    assert focal_point.site_language == "en"
    # A preference wins over the site's language.
    focal_point.preferred_language = "fr"
    assert focal_point.email_language == "fr"


def test_switching_language_anonymously_stores_nothing(client, focal_point):
    response = client.post(reverse("set_language"), {"language": "fr", "next": "/posts/"})
    assert response.status_code == 302
    focal_point.refresh_from_db()
    assert focal_point.site_language == ""


def test_logout_is_a_post_and_returns_to_the_list(focal_point, login):
    client = login(focal_point)
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response.url == reverse("posts:list")
    # The list it lands on says so (it said nothing: had the click worked?).
    assert "You are logged out." in client.get(response.url).content.decode()
    assert client.get(reverse("dashboard")).status_code == 302


def test_logging_out_of_the_admin_says_so_too(secretariat, login):
    client = login(secretariat)
    response = client.post(reverse("admin:logout"), follow=True)
    assert "You are logged out." in response.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302


def test_profile_requires_login(client):
    response = client.get(reverse("accounts:profile"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_profile_page_shows_the_users_details(focal_point, login):
    response = login(focal_point).get("/accounts/profile/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Kenya" in html and "Party focal point" in html
    assert 'name="digest_opt_in"' in html and 'name="preferred_language"' in html
    # Browsers may fill in what they know of the user (WCAG 1.3.5).
    for name, token in (("first_name", "given-name"), ("phone", "tel"), ("preferred_language", "language")):
        assert re.search(rf'<(input|select)[^>]*name="{name}"[^>]*autocomplete="{token}"', html) or re.search(
            rf'<(input|select)[^>]*autocomplete="{token}"[^>]*name="{name}"', html
        ), name
    # Role and Party are the secretariat's to change, not the user's.
    assert 'name="role"' not in html and 'name="party"' not in html


def test_the_profile_names_each_language_in_its_own_words(focal_point, login, settings):
    """On a page in a language one does not read, one's own must be findable: "Arabe" was no help."""
    client = login(focal_point)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ru"
    html = client.get(reverse("accounts:profile")).content.decode()
    select = html[
        html.index('name="preferred_language"') : html.index(
            "</select>", html.index('name="preferred_language"')
        )
    ]
    for code, name in [("en", "English"), ("ar", "العربيّة"), ("zh-hans", "简体中文"), ("fr", "français"),
                       ("es", "español")]:  # fmt: skip
        assert re.search(rf'<option value="{code}" lang="{code}"[^>]*>{name}</option>', select), (
            code,
            select,
        )
    assert "Французский" not in select and "Как на сайте" in select  # the rest of the page stays Russian


def test_profile_edit(focal_point, login):
    client = login(focal_point)
    response = client.post(
        reverse("accounts:profile"),
        {
            "first_name": "Amina",
            "last_name": "Odhiambo",
            "organisation": "Ministry of Environment",
            "phone": "+254 20 000 000",
            "preferred_language": "fr",
            # digest_opt_in left out: an unticked box opts out.
        },
    )
    assert response.status_code == 302 and response.url == reverse("accounts:profile")
    focal_point.refresh_from_db()
    assert (focal_point.first_name, focal_point.last_name) == ("Amina", "Odhiambo")
    assert focal_point.organisation == "Ministry of Environment"
    assert focal_point.phone == "+254 20 000 000"
    assert focal_point.preferred_language == "fr"
    assert focal_point.digest_opt_in is False
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"

    response = client.post(reverse("accounts:profile"), {"first_name": "Amina", "digest_opt_in": "on"})
    focal_point.refresh_from_db()
    assert focal_point.digest_opt_in is True
    assert focal_point.preferred_language == ""
    # "Same as the site": the French cookie goes, and the next page is in the site's language again.
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == ""
    assert '<html lang="en"' in client.get(reverse("accounts:profile")).content.decode()


def test_saving_the_profile_leaves_what_a_worker_wrote_meanwhile(focal_point, login, monkeypatch):
    from django.utils import timezone

    from apps.accounts.forms import ProfileForm

    client = login(focal_point)
    sent = timezone.now()
    clean = ProfileForm.clean

    def digest_sent_meanwhile(form):
        # The digest records its send after the request loaded the user and before the profile is saved.
        type(focal_point).objects.filter(pk=focal_point.pk).update(digest_sent_through=sent)
        return clean(form)

    monkeypatch.setattr(ProfileForm, "clean", digest_sent_meanwhile)
    response = client.post(reverse("accounts:profile"), {"first_name": "Amina"})
    assert response.status_code == 302
    focal_point.refresh_from_db()
    assert focal_point.digest_sent_through == sent and focal_point.first_name == "Amina"


def test_profile_refuses_an_unknown_language_and_cannot_change_the_role(focal_point, login):
    response = login(focal_point).post(
        reverse("accounts:profile"), {"preferred_language": "klingon", "role": "secretariat"}
    )
    assert response.status_code == 200
    assert "preferred_language" in response.context["form"].errors
    focal_point.refresh_from_db()
    assert focal_point.role == "focal_point" and focal_point.preferred_language == ""


def test_role_is_not_changed_by_a_tampered_profile_post(focal_point, login):
    login(focal_point).post(reverse("accounts:profile"), {"first_name": "X", "role": "secretariat"})
    focal_point.refresh_from_db()
    assert focal_point.role == "focal_point" and focal_point.first_name == "X"


def test_language_switcher_lists_every_language(client):
    html = client.get("/").content.decode()
    assert f'action="{reverse("set_language")}"' in html
    for code, _name in settings.LANGUAGES:
        assert f'<option value="{code}" lang="{code}"' in html


def test_switching_language_sets_the_cookie_and_the_page_language(client):
    response = client.post(reverse("set_language"), {"language": "fr", "next": "/posts/"})
    assert response.status_code == 302 and response.url == "/posts/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    html = client.get("/posts/").content.decode()
    assert '<html lang="fr"' in html


def test_languages_offered_are_those_with_a_catalogue(client):
    """A page is never declared in a language it is not written in: every interface language but English (the
    source) has its catalogue, and a language without one (Hebrew, written right to left, here) is refused, the
    page staying English."""
    for code, _name in settings.LANGUAGES:
        if code != "en":
            assert catalogue(code).is_file(), code
    html = client.get("/").content.decode()
    assert '<option value="he"' not in html
    client.post(reverse("set_language"), {"language": "he", "next": "/posts/"})
    html = client.get("/posts/").content.decode()
    assert '<html lang="en"' in html and 'dir="rtl"' not in html


# The interface languages with a catalogue (every one but English, the source).
TRANSLATED_LANGUAGES = [code for code, _name in settings.LANGUAGES if code != "en"]


def catalogue(code: str) -> Path:
    """The catalogue of a language code: locale/zh_Hans for zh-hans."""
    return Path(settings.BASE_DIR) / "locale" / translation.to_locale(code) / "LC_MESSAGES" / "django.po"


_PO_ESCAPE = re.compile(r"\\(.)")
_PO_ESCAPES = {"n": "\n", "t": "\t"}
_PO_LINE = re.compile(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?) "(.*)"$|^"(.*)"$')


def po_entries_from_text(text: str) -> dict[tuple[str | None, str, str | None], tuple[str, ...]]:
    """A catalogue's translated entries: (msgctxt, msgid, msgid_plural) -> the msgstrs, unescaped; fuzzy entries,
    which gettext does not use, are left out (so is the header)."""
    entries = {}
    for block in text.split("\n\n"):
        if "#, fuzzy" in block or "#~ " in block:
            continue
        fields: dict[str, str] = {}
        last = None
        for line in block.splitlines():
            found = _PO_LINE.match(line)
            if found is None:
                continue
            if found.group(1):
                last = found.group(1)
                fields[last] = found.group(2)
            elif last is not None:
                fields[last] += found.group(3)
        fields = {
            key: _PO_ESCAPE.sub(lambda m: _PO_ESCAPES.get(m[1], m[1]), value) for key, value in fields.items()
        }
        if fields.get("msgid"):
            strings = tuple(value for key, value in sorted(fields.items()) if key.startswith("msgstr"))
            if any(strings):
                entries[(fields.get("msgctxt"), fields["msgid"], fields.get("msgid_plural"))] = strings
    return entries


def po_entries(path: Path) -> dict[tuple[str | None, str, str | None], tuple[str, ...]]:
    return po_entries_from_text(path.read_text(encoding="utf-8"))


def test_french_and_spanish_are_interface_languages():
    assert {"fr", "es"} <= set(TRANSLATED_LANGUAGES)


@pytest.mark.parametrize(
    ("code", "texts"),
    [
        ("fr", ("Besoins et offres", "Se connecter", "Aller au contenu principal", "Rechercher")),
        ("es", ("Necesidades y ofertas", "Iniciar sesión", "Ir al contenido principal", "Buscar")),
        ("zh-hans", ("需求与供给", "登录", "跳至主要内容", "搜索", "非市场方法平台")),
        ("ru", ("Потребности и предложения", "Войти", "Перейти к основному содержанию", "Поиск")),
        ("ar", ("الاحتياجات والعروض", "تسجيل الدخول", "الانتقال إلى المحتوى الرئيسي", "بحث", 'dir="rtl"')),
    ],
)
def test_each_catalogue_translates_the_pages(client, tmp_path, settings, code, texts):
    """The catalogue as its .po says, compiled here (a committed .mo could lag behind its .po)."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        skip_or_fail("msgfmt (GNU gettext) is missing: install it with `apt-get install gettext`")
    # In the directory Django looks in: zh_Hans for zh-hans.
    target = tmp_path / translation.to_locale(code) / "LC_MESSAGES"
    target.mkdir(parents=True)
    subprocess.run([msgfmt, "--check", "-o", target / "django.mo", catalogue(code)], check=True)
    # Changing LOCALE_PATHS makes Django drop its cached catalogues.
    settings.LOCALE_PATHS = [tmp_path]
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = code
    html = client.get(reverse("posts:list")).content.decode()
    assert f'<html lang="{code}"' in html
    for text in texts:
        assert text in html
    assert "Needs and offers" not in html


@pytest.mark.parametrize("code", TRANSLATED_LANGUAGES)
def test_the_committed_compiled_catalogue_is_the_po_compiled(code):
    """The site reads the committed .mo: a .po translated but not compiled leaves pages in English."""
    msgunfmt = shutil.which("msgunfmt")
    if msgunfmt is None:
        skip_or_fail("msgunfmt (GNU gettext) is missing: install it with `apt-get install gettext`")
    compiled = catalogue(code).with_suffix(".mo")
    shipped = subprocess.run([msgunfmt, str(compiled)], check=True, capture_output=True, text=True).stdout
    assert po_entries_from_text(shipped) == po_entries(catalogue(code))


# What focal points, providers and Committee members read: pages, e-mails, form and matching messages. (The
# Django admin's own field names and the API's messages are for the secretariat and partner systems, in English.)
USER_FACING = (
    "templates/",
    "apps/matching/views.py",
    "apps/matching/services.py",
    "apps/matching/notifications.py",
    "apps/matching/templatetags/",
    "apps/posts/views.py",
    "apps/posts/forms.py",
    "apps/accounts/forms.py",
    "apps/accounts/views.py",
    "apps/accounts/models.py",  # the profile form's labels and the role names
    "apps/stocktake/",  # the Committee's report: its figures, tables and charts
    "apps/posts/services.py",  # the life cycle's refusals, shown as messages
    "apps/posts/filters.py",
    "apps/parties/models.py",
)


@pytest.mark.parametrize("code", TRANSLATED_LANGUAGES)
def test_catalogue_leaves_nothing_a_user_reads_untranslated(code):
    msgattrib = shutil.which("msgattrib")
    if msgattrib is None:
        skip_or_fail("msgattrib (GNU gettext) is missing: install it with `apt-get install gettext`")
    source = catalogue(code)
    missing = []
    for flag in ("--untranslated", "--only-fuzzy"):
        entries = subprocess.run(
            [msgattrib, flag, "--no-wrap", str(source)], check=True, capture_output=True, text=True
        ).stdout.split("\n\n")
        for entry in entries:
            refs = " ".join(line[3:] for line in entry.splitlines() if line.startswith("#: "))
            if any(place in refs for place in USER_FACING):
                missing.append(next(line for line in entry.splitlines() if line.startswith("msgid")))
    assert missing == []


def test_french_catalogue_keeps_its_signs_on_the_line_of_their_word(settings):
    """French puts a space before : ; ? and !: a no-break one, or a narrow screen sends the sign alone to the
    next line. Labels carry their colon inside the translated string, so French can space it."""
    source = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES" / "django.po"
    # Each msgstr with its continuation lines (long ones are wrapped).
    msgstrs = [
        "".join(re.findall(r'"(.*)"', block))
        for block in re.findall(
            r'^msgstr(?:\[\d\])? ".*"\n(?:".*"\n)*', source.read_text(encoding="utf-8"), re.M
        )
    ]
    assert len(msgstrs) > 500
    assert [m for m in msgstrs if re.search(r" [:;?!]", m)] == []
    # Inside « », no-break spaces too: "Clôturer «" ended a line at 320 px, the title on the next.
    assert [m for m in msgstrs if re.search(r"«[^\u00a0]|[^\u00a0]»", m)] == []
    assert any("«\u00a0%(title)s\u00a0»" in m for m in msgstrs)
    assert "Mots en commun\u00a0:" in msgstrs and "Types d\u2019appui en commun\u00a0:" in msgstrs


# What a translation must carry over as it is: Python's and str.format's placeholders, and HTML tags.
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sdr]|%[sdr]|%%|\{[a-z_]*\}|</?[a-z]+(?: [^>]*)?>")


def plural_form_numbers(code: str) -> dict[int, set[int]]:
    """Each plural form of a catalogue -> the numbers below 1,000 it is used for, by its Plural-Forms rule:
    French's first form serves 0 and 1, Arabic's first 0 alone and its second 1 alone, Chinese's one form every
    number, Russian's first 1, 21, 31..."""
    header = "".join(re.findall(r'"(.*)"', catalogue(code).read_text(encoding="utf-8").split("\n\n", 1)[0]))
    formula = re.search(r"plural=(.+?);?\\n", header).group(1)
    plural = gettext.c2py(formula)
    forms: dict[int, set[int]] = {}
    for n in range(1000):
        forms.setdefault(plural(n), set()).add(n)
    return forms


def test_plural_forms_are_read_from_each_language_s_rule(tmp_path, monkeypatch):
    rules = {
        "fr": "nplurals=2; plural=(n > 1);",
        "ru": "nplurals=4; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<12 || n%100>14) ? 1 : "
        "n%10==0 || (n%10>=5 && n%10<=9) || (n%100>=11 && n%100<=14)? 2 : 3);",
        "ar": "nplurals=6; plural=n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5;",
        "zh": "nplurals=1; plural=0;",
    }
    for code, rule in rules.items():
        (tmp_path / code).mkdir()
        # Wrapped as makemessages writes a long header line.
        (tmp_path / code / "django.po").write_text(
            f'msgid ""\nmsgstr ""\n"Plural-Forms: {rule[:30]}"\n"{rule[30:]}\\n"\n\n'
        )
    monkeypatch.setitem(globals(), "catalogue", lambda code: tmp_path / code / "django.po")
    french, russian, arabic, chinese = (plural_form_numbers(code) for code in rules)
    assert french[0] == {0, 1} and 2 in french[1]
    assert {1, 21, 101} <= russian[0] and 11 not in russian[0] and {2, 3, 4, 22} <= russian[1]
    assert (arabic[0], arabic[1], arabic[2]) == ({0}, {1}, {2}) and {3, 10} <= arabic[3]
    assert chinese == {0: set(range(1000))}


@pytest.mark.parametrize("code", TRANSLATED_LANGUAGES)
def test_catalogue_keeps_every_placeholder(code):
    """A lost %(title)s raises when the page is drawn, a lost <a> tag loses the link: every translation (each
    plural form) holds its source's placeholders and tags, no more, no fewer. The source of a plural form is the
    msgid for a form of one (and zero: French), else the msgid_plural; a form for one number alone (Arabic's
    zero, one and two, Spanish's one) may write the number as a word, leaving its placeholder out."""
    entries = po_entries(catalogue(code))
    assert len(entries) > 900
    numbers = plural_form_numbers(code)
    wrong = []
    for (_context, msgid, msgid_plural), strings in entries.items():
        for form, translated in enumerate(strings):
            found = _PLACEHOLDER.findall(translated)
            if msgid_plural is None:
                expected = _PLACEHOLDER.findall(msgid)
            else:
                used_for = numbers.get(form, set())  # none: Russian's fourth form, for fractions
                expected = _PLACEHOLDER.findall(msgid if used_for and used_for <= {0, 1} else msgid_plural)
                if len(used_for) == 1:
                    expected = [p for p in expected if p not in _COUNTS]
                    found = [p for p in found if p not in _COUNTS]
            if sorted(expected) != sorted(found):
                wrong.append((msgid, translated))
    assert wrong == []


@pytest.mark.parametrize("code", TRANSLATED_LANGUAGES)
def test_values_a_message_quotes_for_the_api_stay_as_the_api_takes_them(code):
    """ "Choose 'interested' or 'dismissed'." tells an API client what to send: translated ("«интересует» или
    «отклонено»"), the words it names are refused."""
    quoted = re.compile(r"'([a-z_]+)'")
    wrong = [
        (msgid, translated)
        for (_context, msgid, _plural), strings in po_entries(catalogue(code)).items()
        for translated in strings
        if any(value not in translated for value in quoted.findall(msgid))
    ]
    assert wrong == []


# The placeholders of a plural's number, which a form for one alone may leave out.
_COUNTS = frozenset({"%(count)s", "%(count)d", "%(n)s", "%(n)d", "%d", "%s"})


def test_the_placeholder_check_sees_a_lost_placeholder():
    translated = "Bonjour,"  # "%(name)s" lost
    assert sorted(_PLACEHOLDER.findall("Hello %(name)s,")) != sorted(_PLACEHOLDER.findall(translated))
    assert _PLACEHOLDER.findall('<a href="%(url)s">Log in</a> %%') == ['<a href="%(url)s">', "</a>", "%%"]


def test_spanish_catalogue_writes_spanish_punctuation():
    """Spanish opens a question with ¿ and an exclamation with ¡, and puts no space (not even French's no-break
    one) before : ; ? or !; its plural is English's (one, and everything else)."""
    source = catalogue("es")
    text = source.read_text(encoding="utf-8")
    assert '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"' in text
    msgstrs = [string for strings in po_entries(source).values() for string in strings]
    assert len(msgstrs) > 900
    assert [m for m in msgstrs if re.search(r"[ \u00a0\u202f][:;?!]", m)] == []
    # Every question or exclamation is opened (a link's "?next=" is no question).
    assert [m for m in msgstrs if m.replace("?next=", "").count("?") != m.count("¿")] == []
    assert [m for m in msgstrs if m.count("!") != m.count("¡")] == []
    assert [m for m in msgstrs if re.search("[«»’]", m)] == []  # French signs
    assert "¿Olvidó su contraseña?" in msgstrs and "Palabras en común:" in msgstrs
    assert "Describa el resultado: ¿cómo se atendió la necesidad o se aprovechó la oferta?" in msgstrs


def test_spanish_catalogue_uses_the_uns_words():
    """The UNFCCC's Spanish: Partes, coordinador nacional (national focal point), enfoques no relacionados con el
    mercado, fomento de la capacidad, financiación, balance."""
    strings = {
        msgid: strings[0] for (_context, msgid, _plural), strings in po_entries(catalogue("es")).items()
    }
    assert (
        strings["Parties"] == "Partes" and strings["Party focal point"] == "Coordinador nacional de una Parte"
    )
    assert strings["Non-market approaches"] == "Enfoques no relacionados con el mercado"
    assert strings["Capacity-building"] == "Fomento de la capacidad"
    assert strings["Technology development and transfer"] == "Desarrollo y transferencia de tecnología"
    assert strings["Finance"] == "Financiación" and strings["Stocktake"] == "Balance"
    committee = "Comité de Glasgow sobre los Enfoques No Relacionados con el Mercado"
    assert [s for s in strings.values() if "Glasgow" in s] and all(
        committee in s for s in strings.values() if "Glasgow" in s
    )
    # One word for a focal point throughout: no "punto focal" beside "coordinador nacional".
    assert [s for s in strings.values() if "punto focal" in s.lower()] == []
    assert not [s for s in strings.values() if re.search(r"\bcoordinador(es)?\b(?! nacional)", s)]


def test_russian_catalogue_writes_russian_typography():
    """Russian quotes with «ёлочки», sets a dash with spaces and puts no space before : ; ? or !; its plurals have
    four forms (1, 21...; 2-4, 22-24...; 5-20...; fractions), the fourth a copy of the third."""
    entries = po_entries(catalogue("ru"))
    assert len(entries) > 900
    msgstrs = [string for strings in entries.values() for string in strings]
    assert [m for m in msgstrs if re.search(r"[“”„]", m)] == []
    assert [m for m in msgstrs if m.count("«") != m.count("»")] == []
    spaced = [
        (msgid, m)
        for (_c, msgid, _p), strings in entries.items()
        for m in strings
        if re.search(r"\s[:;?!]", m)
    ]
    assert [(msgid, m) for msgid, m in spaced if not re.search(r"\s[:;?!]", msgid)] == []
    assert [m for m in msgstrs if " - " in m] == []
    plurals = [strings for (_c, _m, plural), strings in entries.items() if plural]
    assert plurals and all(len(strings) == 4 and strings[3] == strings[2] for strings in plurals)
    assert "Забыли пароль?" in msgstrs and "Общие слова:" in msgstrs


def test_russian_catalogue_uses_the_uns_words():
    """The UNFCCC's Russian: Стороны, координационный центр, нерыночные подходы, укрепление потенциала,
    разработка и передача технологий, финансирование, предотвращение изменения климата, подведение итогов; a
    need is a потребность, an offer a предложение, a post an объявление, a match a совпадение."""
    strings = {
        msgid: strings[0] for (_context, msgid, _plural), strings in po_entries(catalogue("ru")).items()
    }
    assert strings["Parties"] == "Стороны" and strings["Party focal point"] == "Координационный центр Стороны"
    assert strings["Non-market approaches"] == "Нерыночные подходы"
    assert strings["Capacity-building"] == "Укрепление потенциала"
    assert strings["Technology development and transfer"] == "Разработка и передача технологий"
    assert strings["Finance"] == "Финансирование" and strings["Stocktake"] == "Подведение итогов"
    assert (
        strings["Mitigation"] == "Предотвращение изменения климата" and strings["Adaptation"] == "Адаптация"
    )
    assert (strings["Need"], strings["Offer"], strings["post"], strings["match"]) == (
        "Потребность", "Предложение", "объявление", "совпадение"
    )  # fmt: skip
    committee = re.compile(r"Глазговск\w+ комитет\w* по нерыночным подходам")
    assert [s for s in strings.values() if "Глазго" in s] and all(
        committee.search(s) for s in strings.values() if "Глазго" in s
    )
    # One word for each: no "фокальный центр", no "смягчение" beside "предотвращение изменения климата".
    assert [s for s in strings.values() if re.search(r"фокальн|смягчени|митигаци", s, re.I)] == []
    # Article 6.8 as the Paris Agreement's Russian text cites it.
    assert strings["Aims of Article 6.8"] == "Цели пункта 8 статьи 6"
    assert [s for s in strings.values() if "6.8" in s] == []


def test_arabic_catalogue_uses_the_uns_words_and_arabic_punctuation():
    """The UNFCCC's Arabic: الأطراف, جهة الاتصال (focal point) throughout, النُهج غير السوقية, بناء القدرات,
    تطوير التكنولوجيا ونقلها, التقييم (stocktake); Arabic commas, semicolons and question marks in Arabic
    sentences, Western digits as the rest of the site; six plural forms."""
    source = catalogue("ar")
    assert "nplurals=6;" in source.read_text(encoding="utf-8")
    entries = po_entries(source)
    strings = {msgid: translated[0] for (_context, msgid, _plural), translated in entries.items()}
    assert strings["Parties"] == "الأطراف" and strings["Party focal point"] == "جهة الاتصال لطرف"
    assert (
        strings["Non-market approaches"] == "النُهج غير السوقية"
        and strings["Capacity-building"] == "بناء القدرات"
    )
    assert strings["Technology development and transfer"] == "تطوير التكنولوجيا ونقلها"
    assert strings["Finance"] == "التمويل" and strings["Stocktake"] == "التقييم"
    assert strings["Adaptation"] == "التكيف" and strings["Mitigation"] == "التخفيف"
    committee = "لجنة غلاسكو المعنية بالنُهج غير السوقية"
    glasgow = [s for s in strings.values() if "غلاسكو" in s]
    assert glasgow and all(committee in s for s in glasgow)
    msgstrs = [s for translated in entries.values() for s in translated]
    # One word for each: no "جهة التنسيق" beside "جهة الاتصال", no "حصيلة" beside "التقييم".
    assert [s for s in msgstrs if "جهة التنسيق" in s or "حصيلة" in s] == []
    arabic = re.compile(r"[\u0621-\u064a]")
    # ? ; , next to an Arabic word are Arabic signs (the yesno filter's "Yes,No" keeps its comma, it splits by it).
    assert [s for s in msgstrs if re.search(r"[\u0621-\u064a] ?[?;,]", s) and s != "نعم,لا"] == []
    assert [s for s in msgstrs if re.search("[\u0660-\u0669]", s)] == []  # Western digits
    assert "هل نسيت كلمة مرورك؟" in msgstrs and "؛ " in msgstrs and all(arabic.search(s) for s in glasgow)


def test_the_language_switcher_offers_spanish_named_in_spanish(client):
    html = client.get("/").content.decode()
    assert '<option value="es" lang="es">español</option>' in html
    response = client.post(reverse("set_language"), {"language": "es", "next": "/posts/"})
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "es"
    html = client.get("/posts/").content.decode()
    assert '<html lang="es"' in html and "Necesidades y ofertas" in html
    assert '<option value="es" lang="es" selected>español</option>' in html
