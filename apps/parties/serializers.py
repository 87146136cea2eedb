"""API representations of the reference data: Parties, support providers and the taxonomies."""

from rest_framework import serializers

from .models import Party, RegionalGroup, SupportProvider


class PartySerializer(serializers.ModelSerializer):
    regional_group = serializers.ChoiceField(
        choices=[*RegionalGroup.values, ""],
        help_text="UN regional group; empty for the European Union and the Holy See.",
    )
    groups = serializers.SerializerMethodField(help_text="Eligibility groups: regional group, LDC, SIDS.")

    class Meta:
        model = Party
        fields = ["iso3", "name", "regional_group", "is_ldc", "is_sids", "paris_agreement_party", "groups"]

    def get_groups(self, party: Party) -> list[str]:
        return sorted(party.groups)


class ProviderSerializer(serializers.ModelSerializer):
    class Meta:
        model = SupportProvider
        fields = ["short_name", "name", "kind", "website", "is_active"]


class TermSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()


class TaxonomiesSerializer(serializers.Serializer):
    focus_areas = TermSerializer(many=True)
    support_types = TermSerializer(many=True)
    sectors = TermSerializer(many=True)
    instruments = TermSerializer(many=True)
    aims = TermSerializer(many=True)
    languages = TermSerializer(many=True)
    regional_groups = TermSerializer(many=True)
