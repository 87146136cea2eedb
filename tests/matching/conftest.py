"""Fixtures for the matching tests: the engine switched on, a clean per-process cache, a small corpus."""

import pytest

from apps.accounts.actors import Actor
from apps.matching import pipeline
from apps.posts import services
from apps.posts.post_data import ReferenceData, parse_post_record

from ..factories import SupportProviderFactory


@pytest.fixture(autouse=True)
def _fresh_matching_state(settings):
    # Each test has its own database, so a model or index cached by an earlier test would be wrong here.
    pipeline.index_reset()
    settings.MATCHING_AUTORUN = True
    settings.MATCHING_FLOOR = 0.05
    yield
    pipeline.index_reset()


CORPUS = [
    # (external_id, kind, party/provider, support types, focus areas, sectors, language, title, description)
    (
        "n-flood",
        "need",
        "KEN",
        ["technology"],
        ["adaptation"],
        ["disaster_risk", "water"],
        "en",
        "Flood early-warning system for the Tana river basin",
        "We need automatic river gauges, rainfall radar and a forecasting model so that villages along the Tana "
        "receive flood warnings by SMS at least 48 hours ahead. Training of hydrologists is part of the request.",
    ),
    (
        "n-solar",
        "need",
        "NPL",
        ["finance", "capacity_building"],
        ["clean_energy"],
        ["renewable_energy", "energy_access"],
        "en",
        "Solar mini-grids for remote mountain villages",
        "Nepal seeks grant finance and technician training to build solar mini-grids with battery storage for "
        "off-grid villages, with a tariff model that local cooperatives can run.",
    ),
    (
        "n-foret",
        "need",
        "COD",
        ["finance"],
        ["mitigation"],
        ["forests_land", "biodiversity_ecosystems"],
        "fr",
        "Protection des forêts avec les peuples autochtones",
        "La République démocratique du Congo cherche un financement pour protéger les forêts tropicales avec les "
        "peuples autochtones et les communautés locales, par la cartographie des terres et la surveillance.",
    ),
    (
        "o-warn",
        "offer",
        "JPN",
        ["technology", "capacity_building"],
        ["adaptation"],
        ["disaster_risk"],
        "en",
        "Early-warning systems for river floods",
        "Japan offers river gauges, flood forecasting software and training of hydrologists so that communities "
        "receive early warnings of floods by mobile phone.",
    ),
    (
        "o-grid",
        "offer",
        "DEU",
        ["finance"],
        ["clean_energy"],
        ["renewable_energy"],
        "en",
        "Grants for solar mini-grids and rural electrification",
        "Germany provides grants for solar mini-grids with batteries in remote villages, including tariff design "
        "and cooperative management.",
    ),
    (
        "o-forest",
        "offer",
        "NOR",
        ["finance"],
        ["mitigation"],
        ["forests_land"],
        "en",
        "Results-based finance for rainforest protection with Indigenous Peoples",
        "Norway offers results-based payments for protecting tropical rainforests together with Indigenous Peoples "
        "and local communities, supporting land mapping and forest monitoring.",
    ),
    (
        "o-kenya",
        "offer",
        "KEN",
        ["technology"],
        ["adaptation"],
        ["disaster_risk"],
        "en",
        "Kenyan flood forecasting know-how",
        "Kenya shares its own flood early-warning software for river basins.",
    ),
]


def make_post(external_id, kind, poster, support_types, focus_areas, sectors, language, title, description,
              *, status="published", eligible=None):  # fmt: skip
    record = {
        "external_id": external_id,
        "kind": kind,
        "party": poster,
        "title": title,
        "description": description,
        "support_types": support_types,
        "focus_areas": focus_areas,
        "sectors": sectors,
        "language": language,
        "status": status,
    }
    if eligible is not None:
        record["eligible"] = eligible
    data = parse_post_record(record, ReferenceData())
    return services.post_create(actor=SECRETARIAT_ACTOR, data=data)


SECRETARIAT_ACTOR = Actor(role="secretariat", label="tests")


@pytest.fixture
def corpus(db, django_capture_on_commit_callbacks):
    """The small corpus above, published through the services (so matching runs as in production)."""
    SupportProviderFactory(short_name="CTCN")
    posts = {}
    for row in CORPUS:
        # Each post's on-commit hand-off runs the (eager) matching task, as a worker would after the commit.
        with django_capture_on_commit_callbacks(execute=True):
            posts[row[0]] = make_post(*row)
    for post in posts.values():
        post.refresh_from_db()
    return posts
