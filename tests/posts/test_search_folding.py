"""The search compares texts regardless of accents and case (and of Arabic short vowels, alef with hamza, ё),
on both backends, through `Post.search_text`: a copy of title and description folded as the query is, which
every way of writing a post keeps right."""

import importlib
import json
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.urls import reverse

from apps.matching.engine import preprocess_text
from apps.posts import services
from apps.posts.folding import search_fold
from apps.posts.models import Post
from apps.posts.selectors import post_search

from ..factories import PostFactory, party

pytestmark = pytest.mark.django_db

FRENCH = "Alerte précoce aux inondations"
SPANISH = "Sistemas de alerta temprana ante sequías"
TYPED_BARE = "Reseau de stations meteo"  # typed without its accents (Réseau, météo)
ARABIC = "الإِنْذَارُ المُبَكِّرُ بِالفَيَضَانَاتِ"  # with its short vowels, as a careful writer types it
RUSSIAN = "Объём водохранилищ"
ENGLISH = "Solar pumps for irrigation"


@pytest.fixture
def posts():
    PostFactory(title=FRENCH, description="Stations hydrométriques au Sénégal.", language="fr")
    PostFactory(title=SPANISH, description="Pronósticos para el Chaco.", language="es")
    PostFactory(title=TYPED_BARE, description="Donnees ouvertes pour les communes.", language="fr")
    PostFactory(title=ARABIC, description="—", language="ar")
    PostFactory(title=RUSSIAN, description="Мониторинг уровня воды.", language="ru")
    PostFactory(title=ENGLISH, description="Drip irrigation for smallholders.", language="en")


def found(client, q) -> list[str]:
    html = client.get(reverse("posts:list"), {"q": q}).content.decode()
    return [t for t in (FRENCH, SPANISH, TYPED_BARE, ARABIC, RUSSIAN, ENGLISH) if t in html]


@pytest.mark.parametrize(
    ("q", "title"),
    [
        ("precoce", FRENCH),  # typed without accents
        ("alerte precoce", FRENCH),
        ("précoce", FRENCH),  # as written
        ("PRÉCOCE", FRENCH),  # upper case with its accent
        ("PRECOCE", FRENCH),
        ("hydrometriques", FRENCH),  # in the description
        ("senegal", FRENCH),
        ("sequias", SPANISH),
        ("pronosticos chaco", SPANISH),
        ("réseau météo", TYPED_BARE),  # typed with accents the post left out
        ("données", TYPED_BARE),
        ('"alerte precoce"', FRENCH),  # a phrase
        ("alerta -sequias", None),  # an excluded word, typed without its accent, excludes
        ("انذار", ARABIC),  # without short vowels nor hamza
        ("الْفَيَضَانَات", ARABIC),  # with short vowels of its own
        ("объем", RUSSIAN),  # е for ё
        ("ОБЪЁМ", RUSSIAN),
    ],
)
def test_search_ignores_accents_and_case_both_ways(client, posts, q, title):
    assert found(client, q) == ([title] if title else [])


def test_search_of_other_queries_is_unchanged(client, posts):
    assert found(client, "irrigation") == [ENGLISH]
    assert found(client, "alerta") == [SPANISH]
    assert found(client, "водохранилищ") == [RUSSIAN]
    assert found(client, "précoces") == ([FRENCH] if connection.vendor == "postgresql" else [])  # stemming


@pytest.mark.parametrize(
    "text",
    [
        "Alerte PRÉCOCE aux inondations : réseau hydrométrique, Sénégal",
        "Sistemas de alerta temprana ante sequías en el Chaco; capacitación técnica",
        "الإِنْذَارُ المُبَكِّرُ بِالفَيَضَانَاتِ في أَقاليمِ ـ إدارة آبار ٱلمياه ومسؤولية",
        "Объём водохранилищ; мой район, ЙОШКАР-ОЛА, Ёлки",
        "Renewable ﬁnance for ＳＩＤＳ, Đà Nẵng, Ærø, Straße, İzmir",
    ],
)
def test_fold_reads_letters_as_the_matching_engine_does(text):
    """The search and the word model agree on which letters are one (outside Chinese and Japanese, which the
    engine reads as pairs of characters): a word the matching explains a match by is a word the search finds."""
    assert search_fold(text) == preprocess_text(text)


def test_fold_keeps_the_marks_that_make_letters_of_other_scripts():
    assert search_fold("й") == "й" and search_fold("ئ") == "ئ" and search_fold("ё") == "е"


# --- Every way a title or description is written keeps the search text right ----------------------------


def titles(q: str) -> list[str]:
    return sorted(post_search(Post.objects.all(), q).values_list("title", flat=True))


def test_save_of_a_new_title_only(db):
    post = PostFactory(title="Solar pumps")
    post.title = "Alerte précoce"
    post.save(update_fields=["title"])
    assert titles("precoce") == ["Alerte précoce"] and titles("solar") == []


def test_save_of_a_post_loaded_without_its_search_text(db):
    post_id = PostFactory(title="Solar pumps").pk
    post = Post.objects.only("pk", "title").get(pk=post_id)
    post.title = "Alerte précoce"
    post.save()
    assert titles("precoce") == ["Alerte précoce"] and titles("solar") == []


def test_queryset_update_of_a_title_or_description(db):
    post = PostFactory(title="Solar pumps", description="Drip irrigation.")
    Post.objects.filter(pk=post.pk).update(title="Alerte précoce")
    assert titles("precoce") == ["Alerte précoce"] and titles("solar") == []
    # An expression only the database evaluates, on a filter the update itself changes.
    Post.objects.filter(title="Alerte précoce").update(
        description=Concat(F("description"), Value(" Sécheresse."))
    )
    assert titles("secheresse") == ["Alerte précoce"] and titles("irrigation") == ["Alerte précoce"]


def test_bulk_update_and_bulk_create(db):
    post = PostFactory(title="Solar pumps", description="Drip irrigation.")
    post.description = "Prévisions hydrométéorologiques."
    Post.objects.bulk_update([post], ["description"])
    created = PostFactory.build(title="Sistemas de alerta temprana ante sequías", party=party("BRA"))
    Post.objects.bulk_create([created])
    assert titles("previsions") == ["Solar pumps"] and titles("irrigation") == []
    assert titles("sequias") == ["Sistemas de alerta temprana ante sequías"]


def test_import_creates_and_updates_searchable_posts(tmp_path, monkeypatch):
    monkeypatch.setattr(services, "matching_enqueue", lambda *, post_ids: None)
    record = {
        "external_id": "need-1",
        "kind": "need",
        "party": "SEN",
        "language": "fr",
        "title": "Alerte précoce aux inondations",
        "description": "Stations hydrométriques et formation des techniciens des communes riveraines.",
        "support_types": ["technology"],
        "focus_areas": ["adaptation"],
    }
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    call_command("import_posts", str(path), stdout=StringIO(), stderr=StringIO())
    assert titles("precoce") == ["Alerte précoce aux inondations"]
    record["description"] = "Réseau de pluviomètres et formation des techniciens des communes riveraines."
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    call_command("import_posts", str(path), stdout=StringIO(), stderr=StringIO())
    assert titles("pluviometres") == ["Alerte précoce aux inondations"] and titles("hydrometriques") == []


def test_migration_fills_the_search_text_of_existing_posts(monkeypatch):
    from django.apps import apps

    migration = importlib.import_module("apps.posts.migrations.0010_post_search_text")
    monkeypatch.setattr(migration, "BATCH", 2)  # several rounds
    for n in range(5):
        PostFactory(title=f"Alerte précoce {n}", description="Réseau hydrométrique.")
    Post.objects.update(search_text="")  # as the rows were before the migration
    assert titles("precoce") == []
    # What of the schema editor the fill uses (SQLite's refuses to open inside a test's transaction).
    migration.fill(apps, SimpleNamespace(connection=connection, quote_name=connection.ops.quote_name))
    assert titles("precoce") == [f"Alerte précoce {n}" for n in range(5)]
    assert titles("reseau hydrometrique") == [f"Alerte précoce {n}" for n in range(5)]


# --- what keyboards type: apostrophes, quotation marks, punctuation between words ----------------------------


@pytest.fixture
def typed_posts():
    return {
        "straight": PostFactory(
            title="Accès à l'eau potable", description="Forages et pompes.", language="fr"
        ),
        "curly": PostFactory(
            title="Qualité de l’eau des rivières", description="Laboratoires.", language="fr"
        ),
        "phrase": PostFactory(title="Systèmes d’alerte précoce", description="Sirènes, SMS.", language="fr"),
        "chinese": PostFactory(
            title="太阳能微电网培训", description="为乡村技术人员提供培训。", language="zh"
        ),
        "english": PostFactory(title="Flood and drought early warning", description="Gauges.", language="en"),
    }


@pytest.mark.parametrize("q", ["l'eau", "l’eau", "l‘eau", "lʼeau", "L’EAU"])
def test_either_apostrophe_finds_both(typed_posts, q):
    assert titles(q) == sorted(["Accès à l'eau potable", "Qualité de l’eau des rivières"])


@pytest.mark.parametrize(
    "q", ['"alerte précoce"', "« alerte précoce »", "«alerte précoce»", "“alerte précoce”"]
)
def test_a_phrase_in_any_quotation_marks(typed_posts, q):
    assert titles(q) == ["Systèmes d’alerte précoce"]


@pytest.mark.parametrize(
    "q", ["太阳能 培训", "太阳能，培训", "太阳能、培训", "太阳能,培训", "“太阳能微电网”", "「太阳能」"]
)
def test_chinese_terms_apart_by_its_punctuation(typed_posts, q):
    assert titles(q) == ["太阳能微电网培训"]


@pytest.mark.parametrize("q", ["flood, drought", "(flood) drought", "drought; flood"])
def test_punctuation_between_words_is_no_part_of_them(typed_posts, q):
    assert titles(q) == ["Flood and drought early warning"]


def test_the_migration_refolds_the_apostrophes_of_existing_posts():
    from django.apps import apps
    from django.db.models.functions import Replace

    migration = importlib.import_module("apps.posts.migrations.0016_search_text_apostrophes")
    curly = [
        PostFactory(title=f"Qualité de l’eau {n}", description="Rivières d‘ici, lʼest.") for n in range(3)
    ]
    plain = PostFactory(title="Accès à l'eau", description="Forages.")
    folded = {p.pk: p.search_text for p in Post.objects.all()}
    # As stored before the fold knew the typographic apostrophes.
    Post.objects.filter(pk__in=[p.pk for p in curly]).update(
        search_text=Replace(F("search_text"), Value("'"), Value("’"))
    )
    assert Post.objects.filter(search_text__contains="’").count() == 3
    migration.refold(apps, SimpleNamespace(connection=connection))
    assert {p.pk: p.search_text for p in Post.objects.all()} == folded  # as the fold now writes them
    assert titles("l'eau") == titles("l’eau") == sorted([plain.title, *(p.title for p in curly)])


@pytest.mark.parametrize(
    ("q", "terms"),
    [
        ("c++", [("c++", False)]),
        ("flood -M&E", [("flood", False), ("m&e", True)]),
        ("1.5°C u.s.", [("1.5°c", False), ("u.s.", False)]),
        ("covid\u201119", [("covid\u201019", False)]),  # a non-breaking hyphen, folded as a hyphen, kept
        ("flood,drought (sahel)", [("flood", False), ("drought", False), ("sahel", False)]),
        ("太阳能，培训", [("太阳能", False), ("培训", False)]),
        ("-“alerte précoce”", [("alerte precoce", True)]),
    ],
)
def test_the_terms_searched_within_the_texts(q, terms):
    """What the search looks for within the texts (SQLite, and a query in another script on PostgreSQL): split on
    every sign, c++ searched "c" (nearly every post) and `flood -M&E` excluded every post holding an m."""
    from apps.posts.selectors import _QUOTES, _within_terms

    assert _within_terms(search_fold(q).translate(_QUOTES)) == terms


def test_chinese_words_typed_without_a_space_are_found(typed_posts, django_assert_max_num_queries):
    """太阳能培训 (solar energy, training) cut into pairs (太阳, 能培, 训) found nothing: 能培 is in no text. Then the
    posts holding each of its characters are found; pairs that find something are kept (a second query only
    when they find nothing)."""
    assert titles("太阳能培训") == ["太阳能微电网培训"]
    assert titles("风能发电培训") == []  # 风, 发 are in no post
    with django_assert_max_num_queries(2):  # whether its pairs find posts, then the posts
        assert len(post_search(Post.objects.all(), "电网培训")) == 1  # 电网, 培训: found by its pairs
