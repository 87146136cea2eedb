"""A focal point whose profile says Spanish reads the site in Spanish: its dashboard, the post form, a post's
page, and amounts typed and shown as Spanish writes numbers."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from apps.posts.forms import PostForm
from tests.factories import PostFactory, party

pytestmark = pytest.mark.django_db


@pytest.fixture
def spanish_client(focal_point):
    """Kenya's focal point, logged in through the login page with Spanish as the profile's language."""
    focal_point.preferred_language = "es"
    focal_point.save()
    client = Client()
    response = client.post(reverse("login"), {"username": "fp_ken", "password": "pw-for-tests-1"})
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "es"
    return client


def test_the_dashboard_is_in_spanish(spanish_client):
    PostFactory(status="draft", published_at=None, party=party("KEN"), title="Alerta temprana")
    response = spanish_client.get(reverse("dashboard"))
    html = response.content.decode()
    assert response.headers["Content-Language"] == "es" and '<html lang="es"' in html
    for text in (
        "Panel: Kenya",
        "Publicar una necesidad",
        "Publicar una oferta",
        "Borradores",
        "Terminar y presentar",
    ):
        assert text in html, text
    assert "Post a need" not in html and "Dashboard" not in html
    # The list of statuses writes its colon as Spanish does: none of French's no-break space before it.
    assert re.search(r"</a>: 1\b", html) and "\u00a0:" not in html


def test_the_post_form_is_in_spanish(spanish_client):
    html = spanish_client.get(reverse("posts:create")).content.decode()
    for text in (
        "Nuevo anuncio de Kenya",
        "Tipos de apoyo",
        "Ámbitos prioritarios",
        "Fomento de la capacidad",
        "Desarrollo y transferencia de tecnología",
        "Marque lo que se aplica a la cooperación descrita en este anuncio. La cooperación:",
        "Guardar el borrador",
        "Alemania (DEU)",
    ):
        assert text in html, text
    assert "Types of support" not in html and "Save draft" not in html
    refused = spanish_client.post(reverse("posts:create"), {"kind": "need", "title": ""}).content.decode()
    assert "Título: Este campo es obligatorio." in refused


def test_a_post_page_is_in_spanish(spanish_client):
    post = PostFactory(
        party=party("BOL"),
        support_types=["finance", "technology"],
        amount_usd=Decimal("1250000"),
        published_at=timezone.make_aware(dt.datetime(2026, 3, 15, 9, 30)),
    )
    html = spanish_client.get(reverse("posts:detail", args=[post.pk])).content.decode()
    facts = html.split("<dl", 1)[1].split("</dl>", 1)[0]
    assert "Bolivia (Estado Plurinacional de)" in facts
    assert "Financiación; Desarrollo y transferencia de tecnología" in facts  # no space before the semicolon
    assert (
        "1\u00a0250\u00a0000\u00a0USD" in facts
    )  # Spanish groups thousands with a (no-break) space, USD after
    assert "15 de marzo de 2026" in html
    assert "Detalles" in html and "Tipos de apoyo" in facts and "Details" not in html


def test_a_spanish_page_reads_thousands_grouped_by_points_and_asks_when_it_cannot_tell():
    """Most Spanish writers group thousands with points: "1.250.000" was refused as no number, and "150.000" (a
    hundred and fifty thousand, or 150?) for its three decimal places, which told them nothing useful."""

    def amount(typed: str):
        form = PostForm(
            {"kind": "need", "title": "Alerta", "description": "Estaciones.", "support_types": ["finance"],
             "focus_areas": ["adaptation"], "language": "es", "amount_usd": typed},
            party=party("KEN"),
        )  # fmt: skip
        return form.cleaned_data["amount_usd"] if form.is_valid() else form.errors.as_data()["amount_usd"]

    with translation.override("es"):
        assert amount("1.250.000") == Decimal("1250000")
        assert amount("1.250.000,50") == Decimal("1250000.50")
        assert amount("2.000,5") == Decimal("2000.5")
        assert amount("2 000") == 2000 and amount("2,50") == Decimal("2.50")
        for typed in ("150.000", "2,000"):
            errors = amount(typed)
            assert [error.code for error in errors] == ["ambiguous"], typed
            assert "puede leerse de dos maneras" in errors[0].messages[0]
        assert amount("2.5") == Decimal("2.5")  # a point before other than three digits: a decimal point
    with translation.override("en"):
        # English pages read a point as a decimal point, as before.
        assert "Ensure that there are no more than 2 decimal places." in amount("150.000")[0].messages
        assert amount("1.5") == Decimal("1.5") and amount("1,250,000.50") == Decimal("1250000.50")


def test_a_refused_csrf_check_is_in_spanish_to_its_title():
    """The page's title kept the platform's English name: "No se pudo enviar el formulario · NMA Platform"."""
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="es")
    html = client.post(reverse("login"), {"username": "x", "password": "y"}).content.decode()
    assert "<title>No se pudo enviar el formulario · Plataforma de los ENM</title>" in html
    assert '<html lang="es">' in html and "NMA Platform" not in html


def test_djangos_own_messages_read_as_the_rest_of_the_spanish_pages(spanish_client, client):
    """Django's Spanish said a title of at most 200 characters must have "menos de 200 caracteres" (fewer than
    200), called the password "clave" beside a field labelled "Contraseña", and labelled a field "Contraseña
    nueva (confirmación)", which the form follows with "(obligatorio)"."""
    refused = spanish_client.post(
        reverse("posts:create"), {"kind": "need", "title": "x" * 210}
    ).content.decode()
    assert "Asegúrese de que este valor tenga como máximo 200 caracteres (tiene 210)." in refused
    assert "menos de 200" not in refused
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    login = client.post(reverse("login"), {"username": "nadie", "password": "mal"}).content.decode()
    assert "Introduzca un nombre de usuario y una contraseña correctos." in login
    assert "clave" not in login and "sensibles a mayúsculas" not in login
    admin = client.post("/admin/login/", {"username": "nadie", "password": "mal"}).content.decode()
    assert "Introduzca el nombre de usuario y la contraseña correctos de una cuenta del personal." in admin
    change = spanish_client.get(reverse("accounts:password_change")).content.decode()
    assert "Confirmación de la contraseña nueva" in change and "(confirmación)" not in change
    assert "no puede ser una contraseña de uso común" in change and "clave" not in change
