"""The work programme's taxonomies, with the exact keys of docs/FORMATS.md and translatable labels."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class FocusArea(models.TextChoices):
    ADAPTATION = "adaptation", _("Adaptation, resilience and sustainability")
    MITIGATION = (
        "mitigation",
        _("Mitigation measures to address climate change and contribute to sustainable development"),
    )
    CLEAN_ENERGY = "clean_energy", _("Development of clean energy sources")


class SupportType(models.TextChoices):
    FINANCE = "finance", _("Finance")
    TECHNOLOGY = "technology", _("Technology development and transfer")
    CAPACITY_BUILDING = "capacity_building", _("Capacity-building")


class Sector(models.TextChoices):
    AGRICULTURE_FOOD = "agriculture_food", _("Agriculture and food")
    FORESTS_LAND = "forests_land", _("Forests and land use")
    BIODIVERSITY_ECOSYSTEMS = "biodiversity_ecosystems", _("Biodiversity and ecosystems")
    WATER = "water", _("Water")
    OCEANS_COASTS = "oceans_coasts", _("Oceans and coasts")
    DISASTER_RISK = "disaster_risk", _("Disaster risk reduction")
    HEALTH = "health", _("Health")
    ENERGY_ACCESS = "energy_access", _("Energy access")
    RENEWABLE_ENERGY = "renewable_energy", _("Renewable energy")
    ENERGY_EFFICIENCY = "energy_efficiency", _("Energy efficiency")
    TRANSPORT = "transport", _("Transport")
    CITIES_BUILDINGS = "cities_buildings", _("Cities and buildings")
    INDUSTRY = "industry", _("Industry")
    WASTE = "waste", _("Waste")
    JUST_TRANSITION = "just_transition", _("Just transition")
    POLICY_GOVERNANCE = "policy_governance", _("Policy and governance")


class FinanceInstrument(models.TextChoices):
    GRANT = "grant", _("Grant")
    CONCESSIONAL_LOAN = "concessional_loan", _("Concessional loan")
    GUARANTEE = "guarantee", _("Guarantee")
    RESULTS_BASED_PAYMENT = "results_based_payment", _("Results-based payment")
    DEBT_SWAP = "debt_swap", _("Debt swap")
    IN_KIND = "in_kind", _("In kind")


class Aim(models.TextChoices):
    AMBITION = "ambition", _("Promote mitigation and adaptation ambition")
    PARTICIPATION = (
        "participation",
        _("Enhance public and private sector participation in the implementation of NDCs"),
    )
    COORDINATION = (
        "coordination",
        _("Enable opportunities for coordination across instruments and relevant institutional arrangements"),
    )


# Languages a post can be written in: the six UN languages first, then others common on the platform.
POST_LANGUAGES = [
    ("en", _("English")),
    ("fr", _("French")),
    ("es", _("Spanish")),
    ("ar", _("Arabic")),
    ("zh", _("Chinese")),
    ("ru", _("Russian")),
    ("pt", _("Portuguese")),
    ("sw", _("Swahili")),
    ("id", _("Indonesian")),
    ("hi", _("Hindi")),
    ("bn", _("Bengali")),
    ("vi", _("Vietnamese")),
    ("th", _("Thai")),
    ("tr", _("Turkish")),
    ("fa", _("Persian")),
    ("ur", _("Urdu")),
    ("de", _("German")),
    ("it", _("Italian")),
    ("ja", _("Japanese")),
    ("ko", _("Korean")),
]
POST_LANGUAGE_CODES = frozenset(code for code, _label in POST_LANGUAGES)

# Each taxonomy facet of a post: (field name on Post and in the import format, choices).
FACETS: dict[str, type[models.TextChoices]] = {
    "support_types": SupportType,
    "focus_areas": FocusArea,
    "sectors": Sector,
    "instruments": FinanceInstrument,
}
