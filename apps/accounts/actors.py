"""Who is acting: a logged-in user or a partner system's API token, seen the same way by every service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from .models import Role

if TYPE_CHECKING:
    from .models import ApiToken, User


# What a deactivated provider's users and write tokens are told when they try anything but taking its posts
# down (in the API and the services).
PROVIDER_DEACTIVATED_MESSAGE = _(
    "The secretariat has deactivated this support provider: its users and write tokens may still withdraw or "
    "close its posts, nothing else."
)
# What a deactivated provider's users and write tokens may still do to its posts: take them down.
TAKE_DOWN_ACTIONS = frozenset({"close", "withdraw"})


@dataclass(frozen=True)
class Actor:
    role: str
    label: str
    party_id: int | None = None
    provider_id: int | None = None
    # The user to record in the audit trail; for a token, the secretariat user who issued it.
    user: User | None = None
    token_id: int | None = None
    can_write: bool = True
    # A partner system's token issued without contact details (`ApiToken.sees_contacts`); people always see them.
    sees_contacts: bool = True

    @classmethod
    def for_user(cls, user: User) -> Actor:
        if not user.is_authenticated or not user.is_active:
            return ANONYMOUS
        role = Role.SECRETARIAT if user.is_superuser else user.role
        return cls(
            role=role,
            label=user.get_username(),
            party_id=user.party_id if role == Role.FOCAL_POINT else None,
            provider_id=user.provider_id if role == Role.PROVIDER else None,
            user=user,
            # A provider the secretariat deactivated keeps reading but no longer writes.
            can_write=not (role == Role.PROVIDER and user.provider_id and not user.provider.is_active),
        )

    @classmethod
    def for_token(cls, token: ApiToken) -> Actor:
        """A partner system's token as an Actor.

        A write token acts as a focal point of its Party or as a user of its provider; a read token reads like
        a registered observer; a stocktake token reads like a committee member (the stocktake figures too).
        Read and stocktake tokens never write. The audit trail records the secretariat user who issued the
        token and names the token, so every change made through the API can be traced to one partner system.
        """
        from .models import ApiToken

        if not token.is_usable:
            return ANONYMOUS
        label = f"API token “{token.name}” ({token.prefix})"
        common = {
            "label": label,
            "user": token.created_by,
            "token_id": token.pk,
            "sees_contacts": token.sees_contacts,
        }
        if token.scope == ApiToken.Scope.WRITE and token.party_id is not None:
            return cls(role=Role.FOCAL_POINT, party_id=token.party_id, **common)
        if token.scope == ApiToken.Scope.WRITE and token.provider_id is not None:
            # A provider the secretariat deactivated keeps reading but no longer writes.
            return cls(
                role=Role.PROVIDER,
                provider_id=token.provider_id,
                can_write=token.provider.is_active,
                **common,
            )
        if token.scope == ApiToken.Scope.STOCKTAKE:
            return cls(role=Role.COMMITTEE, can_write=False, **common)
        return cls(role=Role.OBSERVER, can_write=False, **common)

    @property
    def is_secretariat(self) -> bool:
        return self.role == Role.SECRETARIAT and self.can_write

    @property
    def can_post(self) -> bool:
        return self.can_write and (
            (self.role == Role.FOCAL_POINT and self.party_id is not None)
            or (self.role == Role.PROVIDER and self.provider_id is not None)
        )

    @property
    def is_deactivated_provider(self) -> bool:
        """A user or write token of a support provider the secretariat deactivated: it reads, and may still
        take its own posts down (withdraw, close) as the deactivation promises, but writes nothing else."""
        return self.role == Role.PROVIDER and self.provider_id is not None and not self.can_write

    @property
    def can_read_stocktake(self) -> bool:
        return self.role in (Role.SECRETARIAT, Role.COMMITTEE)

    @property
    def is_authenticated(self) -> bool:
        return self.role != "anonymous"

    def reads_contacts(self, *, own: bool = False) -> bool:
        """Whether a post's contact details are for this actor: never the public's; a token's if it was issued
        with them, or for `own` posts (those it may manage: a write token's PUT must not blank a contact it
        was never shown)."""
        return self.is_authenticated and (self.sees_contacts or own)

    def acts_for(self, *, party_id: int | None, provider_id: int | None) -> bool:
        """Whether this actor speaks for the given poster (never for another Party or provider)."""
        if party_id is not None:
            return self.party_id == party_id
        if provider_id is not None:
            return self.provider_id == provider_id
        return False


ANONYMOUS = Actor(role="anonymous", label="anonymous", can_write=False)
SYSTEM = Actor(role=Role.SECRETARIAT, label="system")
