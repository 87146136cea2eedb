"""Factories for the stocktake tests: matches written straight to the database, as the worker writes them."""

import factory

from apps.matching.models import Match
from tests.factories import PostFactory


class MatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Match

    need = factory.SubFactory(PostFactory)
    offer = factory.SubFactory(PostFactory, kind="offer")
    score = 0.5

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # created_at is auto_now_add: set the historical value after the insert, as a migration would.
        created_at = kwargs.pop("created_at", None)
        match = super()._create(model_class, *args, **kwargs)
        if created_at is not None:
            model_class.objects.filter(pk=match.pk).update(created_at=created_at)
            match.created_at = created_at
        return match
