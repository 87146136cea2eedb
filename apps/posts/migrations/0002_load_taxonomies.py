"""Loads the taxonomy keys of the work programme, so every fresh database can take posts."""

from django.db import migrations

# Frozen here (not imported from taxonomies.py) so the migration replays the same way forever.
TERMS = {
    "SupportTypeTerm": ["finance", "technology", "capacity_building"],
    "FocusAreaTerm": ["adaptation", "mitigation", "clean_energy"],
    "SectorTerm": [
        "agriculture_food", "forests_land", "biodiversity_ecosystems", "water", "oceans_coasts", "disaster_risk",
        "health", "energy_access", "renewable_energy", "energy_efficiency", "transport", "cities_buildings",
        "industry", "waste", "just_transition", "policy_governance",
    ],
    "InstrumentTerm": ["grant", "concessional_loan", "guarantee", "results_based_payment", "debt_swap", "in_kind"],
}


def load(apps, schema_editor):
    for model_name, keys in TERMS.items():
        model = apps.get_model("posts", model_name)
        model.objects.bulk_create(
            [model(key=key, position=i) for i, key in enumerate(keys)], ignore_conflicts=True
        )


class Migration(migrations.Migration):
    dependencies = [("posts", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
