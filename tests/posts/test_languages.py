"""The declared language of a post against its text: refused when the letters plainly say otherwise, guessed
when not given, and the form's default follows the page's language. Matching reads a post by this language."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import translation

from apps.posts.forms import PostForm
from apps.posts.languages import guess_language, language_mismatch, latin_language, text_script
from apps.posts.models import Post
from tests.factories import party

from .test_forms import form_data
from .test_import import need, run_failing, write

ARABIC = "نحتاج إلى دعم تقني لإنشاء نظام إنذار مبكر بالفيضانات المفاجئة في المناطق الجبلية جنوب الأردن."
CHINESE = "我们需要建设山洪早期预警系统，包括雨量站、水位监测和预警信息发布平台，以及社区培训。"
JAPANESE = "洪水の早期警報システムを整備するための技術協力と、地域の防災担当者の研修を求めます。"
RUSSIAN = (
    "Мы предлагаем обучение специалистов лесного хозяйства мониторингу лесных пожаров по спутниковым данным."
)
SPANISH = (
    "El Ministerio de Ambiente busca socios para fortalecer el sistema de alerta temprana de inundaciones en la "
    "cuenca del río, con estaciones hidrológicas y la formación de los técnicos de las comunidades."
)
FRENCH = (
    "Le ministère de l'Environnement cherche des partenaires pour la restauration des mangroves et la formation "
    "des comités villageois, avec un suivi des stocks de carbone dans les zones côtières du pays."
)
ENGLISH = (
    "The Ministry of Environment seeks partners to strengthen the flood early-warning system of the river basin, "
    "with hydrological stations and the training of the staff of the national meteorological department."
)


@pytest.mark.parametrize(
    ("text", "script", "guess"),
    [(ARABIC, "arabic", "ar"), (CHINESE, "cjk", "zh"), (JAPANESE, "cjk", "ja"), (RUSSIAN, "cyrillic", "ru"),
     (SPANISH, "latin", "es"), (FRENCH, "latin", "fr"), (ENGLISH, "latin", "en")],
)  # fmt: skip
def test_the_letters_tell_the_script_and_the_language(text, script, guess):
    assert text_script(text) == script
    assert guess_language(text) == guess


@pytest.mark.parametrize(
    "text",
    ["Flood warning", "Sistema de alerta", ENGLISH[:60] + " " + SPANISH[:60], "1234567890 1234567890 -- !!"],
)
def test_a_short_or_mixed_text_says_nothing_of_its_language(text):
    assert latin_language(text) is None
    assert all(language_mismatch(code, text) is None for code in ("en", "es", "fr", "pt"))


@pytest.mark.parametrize(
    ("language", "text", "found"),
    [("en", ARABIC, "Arabic"), ("en", CHINESE, "Chinese"), ("ar", RUSSIAN, "Russian"), ("en", SPANISH, "Spanish"),
     ("es", FRENCH, "French"), ("fr", ENGLISH, "English")],
)  # fmt: skip
def test_a_language_the_text_plainly_is_not_is_refused(language, text, found):
    message = language_mismatch(language, text)
    assert message is not None and found in message


@pytest.mark.parametrize(
    ("language", "text"),
    [("ar", ARABIC), ("fa", ARABIC), ("zh", CHINESE), ("ja", JAPANESE), ("ru", RUSSIAN), ("es", SPANISH),
     ("fr", FRENCH), ("en", ENGLISH), ("sw", ENGLISH), ("de", ENGLISH)],
)  # fmt: skip
def test_a_language_written_in_the_texts_script_passes_unless_its_words_say_otherwise(language, text):
    # Swahili or German on an English text: the Latin check knows the common words of four languages only.
    assert language_mismatch(language, text) is None


@pytest.mark.parametrize(
    ("language", "text"),
    [
        # Half Chinese, half English: a Chinese character weighs as a short word, not as one Latin letter.
        ("zh", CHINESE + " We need to build a flash-flood early-warning system with rain gauges and training."),
        ("zh", "申请绿色气候基金（GCF）Readiness and Preparatory Support Programme 与 UNDP 合作的预警项目。"),
        ("ar", ARABIC + " " + ENGLISH),
        ("ru", RUSSIAN + " " + ENGLISH),
        # French naming English coalitions: its own "la", "des", "et" say it is French.
        ("fr", "Adhésion à la Coalition for Disaster Resilient Infrastructure and the Risk-informed Early Action "
               "Partnership, et formation des services météorologiques et des communes du pays."),
    ],
)  # fmt: skip
def test_a_text_in_two_languages_passes_as_either(language, text):
    assert language_mismatch(language, text) is None


@pytest.mark.parametrize(
    ("text", "guess"),
    [("Necesitamos capacitación de brigadistas en detección temprana de incendios con drones y satélites.", "es"),
     ("Precisamos de formação das equipes para a detecção precoce de incêndios com drones e satélites.", "pt"),
     ("Nous cherchons des partenaires pour la formation des équipes et le suivi des incendies.", "fr")],
)  # fmt: skip
def test_one_sentence_is_enough_to_guess_a_missing_language(text, guess):
    assert guess_language(text) == guess


def test_the_message_names_the_languages_in_the_pages_language():
    with translation.override("fr"):
        message = language_mismatch("en", ARABIC)
    assert "arabe" in message and "anglais" in message


# --- the form, the admin, the API and the import ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_form_refuses_an_arabic_text_declared_english():
    form = PostForm(form_data(title="نظام إنذار مبكر بالفيضانات", description=ARABIC, language="en"),
                    party=party("JOR"))  # fmt: skip
    assert not form.is_valid()
    assert "Arabic" in form.errors["language"][0]
    form = PostForm(form_data(title="نظام إنذار مبكر بالفيضانات", description=ARABIC, language="ar"),
                    party=party("JOR"))  # fmt: skip
    assert form.is_valid(), form.errors


@pytest.mark.django_db
def test_a_new_posts_language_is_the_pages_by_default():
    with translation.override("fr"):
        assert PostForm(party=party("FRA"))["language"].value() == "fr"
    with translation.override("en"):
        assert PostForm(party=party("FRA"))["language"].value() == "en"


@pytest.mark.django_db
def test_the_web_form_shows_the_mismatch_on_the_language_field(focal_point, login):
    client = login(focal_point)
    response = client.post(reverse("posts:create"), form_data(description=SPANISH, language="en"))
    assert response.status_code == 200 and not Post.objects.exists()
    assert "The text seems to be in Spanish, not English" in response.content.decode()


@pytest.mark.django_db
def test_the_import_names_the_line_of_a_wrong_language(tmp_path):
    path = write(
        tmp_path, [need(1), need(2, title="Обучение мониторингу пожаров", description=RUSSIAN, language="en")]
    )
    _message, stderr = run_failing(path)
    assert "line 2: language: The text seems to be in Russian, not English" in stderr
    assert not Post.objects.exists()


@pytest.mark.django_db
def test_text_fields_take_the_direction_of_what_is_typed(focal_point, login, secretariat):
    html = login(focal_point).get(reverse("posts:create")).content.decode()
    assert re.search(r'<input type="text" name="title"[^>]* dir="auto"', html)
    assert re.search(r'<textarea name="description"[^>]* dir="auto"', html)
    post = Post.objects.create(kind="need", party=party("JOR"), title="نظام إنذار", description=ARABIC,
                               language="ar", status="draft")  # fmt: skip
    admin_page = login(secretariat).get(reverse("admin:posts_post_change", args=[post.pk])).content.decode()
    assert re.search(r'<input type="text" name="title"[^>]* dir="auto"', admin_page)
