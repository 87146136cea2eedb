"""Factories for the API tests: tokens (with their raw value) and Match rows made directly."""

from __future__ import annotations

import factory
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.matching.models import Match

from ..factories import PostFactory, party


def issue_token(*, scope: str = ApiToken.Scope.READ, issuer=None, name: str = "Partner system", **fields):
    """A token and its raw value, issued as the admin issues it."""
    return ApiToken.objects.issue(name=name, scope=scope, created_by=issuer, **fields)


class MatchFactory(factory.django.DjangoModelFactory):
    """A stored match between a published need (KEN) and a published offer (JPN), as the worker writes it."""

    class Meta:
        model = Match

    need = factory.SubFactory(PostFactory, kind="need")
    offer = factory.SubFactory(PostFactory, kind="offer", party=factory.LazyFunction(lambda: party("JPN")))
    score = 0.72
    lexical = 0.6
    semantic = 0.8
    structured = 0.75
    explanation = factory.LazyFunction(
        lambda: {
            "shared_support_types": ["technology"],
            "top_terms": ["flood", "warning"],
            "cross_lingual": False,
        }
    )
    strong_at = factory.LazyFunction(timezone.now)
