"""factory_boy factories shared by every test package."""

import factory
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.parties.models import Party, SupportProvider
from apps.posts.models import Post


def party(iso3: str) -> Party:
    """A Party from the reference data that the migrations load."""
    return Party.objects.get(iso3=iso3)


class SupportProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SupportProvider
        django_get_or_create = ("short_name",)

    short_name = factory.Sequence(lambda n: f"PROV{n}")
    name = factory.LazyAttribute(lambda o: f"{o.short_name} Climate Fund")
    kind = SupportProvider.Kind.FUND
    contact_email = factory.LazyAttribute(lambda o: f"contact@{o.short_name.lower()}.org")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"User{n}")
    role = Role.OBSERVER
    password = factory.django.Password("pw-for-tests-1")


class FocalPointFactory(UserFactory):
    role = Role.FOCAL_POINT
    party = factory.LazyFunction(lambda: party("KEN"))


class ProviderUserFactory(UserFactory):
    role = Role.PROVIDER
    provider = factory.SubFactory(SupportProviderFactory)


class SecretariatFactory(UserFactory):
    role = Role.SECRETARIAT
    is_staff = True


class CommitteeFactory(UserFactory):
    role = Role.COMMITTEE


class PostFactory(factory.django.DjangoModelFactory):
    """A post written straight to the database (bypassing services): for setting up state in tests."""

    class Meta:
        model = Post
        skip_postgeneration_save = True

    kind = Post.Kind.NEED
    status = Post.Status.PUBLISHED
    party = factory.LazyFunction(lambda: party("KEN"))
    title = factory.Sequence(lambda n: f"Early-warning system for flood-prone districts {n}")
    description = "Hydro-meteorological stations, forecasting capacity and community alerts for river floods."
    language = "en"
    published_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def support_types(self, create, extracted, **kwargs):
        if create:
            self.support_types.set(extracted if extracted is not None else ["technology"])

    @factory.post_generation
    def focus_areas(self, create, extracted, **kwargs):
        if create:
            self.focus_areas.set(extracted if extracted is not None else ["adaptation"])

    @factory.post_generation
    def sectors(self, create, extracted, **kwargs):
        if create and extracted:
            self.sectors.set(extracted)

    @factory.post_generation
    def instruments(self, create, extracted, **kwargs):
        if create and extracted:
            self.instruments.set(extracted)


def offer_of(provider, **kwargs) -> Post:
    """An offer of a support provider, published unless `status` says otherwise (only published and closed posts
    have a publication date)."""
    if kwargs.get("status", Post.Status.PUBLISHED) not in (Post.Status.PUBLISHED, Post.Status.CLOSED):
        kwargs.setdefault("published_at", None)
    return PostFactory(kind="offer", party=None, provider=provider, **kwargs)
