"""The post import format of docs/FORMATS.md: parsing and validating one record into `PostData`.

The import command, the API's bulk import and the API's create/update all read posts in this format, so the
rules live here once; the web form shares the cross-field rules through `post_rules_errors`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from apps.accounts.apis import unsafe_text_problem
from apps.parties.models import ELIGIBILITY_GROUPS, Party, SupportProvider

from .languages import guess_language, language_mismatch
from .models import AMOUNT_TOO_LARGE, DECLARATIONS, DESCRIPTION_MAX_LENGTH, MAX_AMOUNT, TITLE_MAX_LENGTH, Post
from .taxonomies import FACETS, POST_LANGUAGE_CODES, Aim

IMPORT_FIELDS = frozenset(
    {
        "external_id",
        "kind",
        "party",
        "provider",
        "title",
        "description",
        "support_types",
        "focus_areas",
        "sectors",
        "language",
        "amount_usd",
        "instruments",
        "eligible",
        "status",
        # Optional fields beyond the format's core fields, accepted so an export re-imports without loss.
        "aims",
        "partner_parties",
        "involves_iplc",
        "declarations",
        "contact_name",
        "contact_email",
    }
)
# The enums' `.values` build a new list on every access; a large import checks them millions of times.
FACET_KEYS: dict[str, list[str]] = {name: choices.values for name, choices in FACETS.items()}
KINDS = frozenset(Post.Kind.values)
STATUSES = frozenset(Post.Status.values)
AIMS = Aim.values


@dataclass
class PostData:
    """Everything a poster can set on a post, already validated."""

    kind: str
    title: str
    description: str
    support_types: list[str]
    focus_areas: list[str]
    party: Party | None = None
    provider: SupportProvider | None = None
    sectors: list[str] = field(default_factory=list)
    instruments: list[str] = field(default_factory=list)
    language: str = "en"
    amount_usd: Decimal | None = None
    eligible: list[str] = field(default_factory=list)
    aims: list[str] = field(default_factory=list)
    partner_parties: list[Party] = field(default_factory=list)
    involves_iplc: bool = False
    declarations: dict[str, bool] = field(default_factory=dict)
    contact_name: str = ""
    contact_email: str = ""
    external_id: str | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        # Whatever way it came in (form, admin, API, import): a title is one line (`single_line`).
        self.title = single_line(self.title)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    code: str = "invalid"


class PostDataError(Exception):
    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class ReferenceData:
    """Parties and providers held in memory once, so that validating 100,000 lines costs no query per line."""

    def __init__(self) -> None:
        self.parties = {p.iso3: p for p in Party.objects.all()}
        # Deactivated ones too: their posts stay and may be updated; the services refuse them new posts.
        self.providers = {p.short_name.lower(): p for p in SupportProvider.objects.all()}

    def eligibility_key(self, value: str) -> str | None:
        """The canonical form of an `eligible` entry (an ISO3 code or a group name), or None if unknown."""
        upper = value.strip().upper()
        if upper in self.parties:
            return upper
        for group in ELIGIBILITY_GROUPS:
            if group.lower() == value.strip().lower():
                return group
        return None


def post_rules_errors(
    *,
    kind: str,
    party: Any,
    provider: Any,
    eligible: list[str],
    instruments: list[str],
    partner_parties: list,
) -> list[FieldError]:
    """Rules across fields, shared by the import format and the web form."""
    errors = []
    if party is None and provider is None:
        errors.append(FieldError("party", _("A post needs a Party or a support provider."), "required"))
    if party is not None and provider is not None:
        errors.append(FieldError("provider", _("Give a Party or a support provider, not both.")))
    if provider is not None and kind != Post.Kind.OFFER:
        errors.append(FieldError("kind", _("Support providers post offers only.")))
    if kind == Post.Kind.NEED and eligible:
        errors.append(
            FieldError("eligible", _("Only offers restrict who is eligible; a need has no eligibility."))
        )
    if kind == Post.Kind.NEED and instruments:
        errors.append(
            FieldError("instruments", _("Finance instruments describe offers; leave them out of a need."))
        )
    if party is not None and any(p == party for p in partner_parties):
        errors.append(FieldError("partner_parties", _("A partner Party must differ from the posting Party.")))
    return errors


def _bad_text(value: Any) -> str | None:
    """The problem of the first string in a JSON value (its keys included) that cannot be stored."""
    if isinstance(value, str):
        return unsafe_text_problem(value)
    if isinstance(value, dict):
        return next(filter(None, (_bad_text(k) or _bad_text(v) for k, v in value.items())), None)
    if isinstance(value, list):
        return next(filter(None, map(_bad_text, value)), None)
    return None


def _shown(name: str) -> str:
    """A name for a message: as it is, unless it holds what cannot be printed or stored (then escaped)."""
    return name if unsafe_text_problem(name) is None else name.encode("unicode_escape").decode("ascii")


def _list_of_strings(record: dict, name: str, errors: list[FieldError], *, required: bool) -> list[str]:
    value = record.get(name)
    if value is None:
        if required:
            errors.append(FieldError(name, _("This field is required."), "required"))
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(FieldError(name, _("Expected a list of strings.")))
        return []
    if required and not value:
        errors.append(FieldError(name, _("Give at least one value."), "required"))
    return list(dict.fromkeys(value))


def _taxonomy(record: dict, name: str, errors: list[FieldError], *, required: bool) -> list[str]:
    values = _list_of_strings(record, name, errors, required=required)
    known = FACET_KEYS[name]
    unknown = [v for v in values if v not in known]
    if unknown:
        errors.append(
            FieldError(
                name,
                _("Unknown key(s) %(keys)s; expected some of: %(known)s.")
                % {"keys": ", ".join(map(_shown, unknown)), "known": ", ".join(known)},
                "unknown_key",
            )
        )
        return []
    return values


def single_line(text: str) -> str:
    """Line breaks, tabs and runs of spaces as one space: a title is one line (it heads pages and emails'
    subjects, where a line break is not allowed)."""
    return " ".join(text.split())


def subject_title(text: str, limit: int = 80) -> str:
    """A title on one line for an email's subject: cut at a word's end before `limit` characters, with "…"."""
    line = single_line(text)
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:.-–") + "…"


# Letters and symbols that draw nothing: the Hangul fillers and the blank Braille pattern, the usual ways to
# write a "blank" name that passes a check of categories.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_text(value: str) -> bool:
    """Whether the text shows anything: a letter, digit, punctuation mark or symbol. Spaces, zero-width and
    other format characters (U+200B, U+FEFF), combining marks without a letter and the blank glyphs above show
    nothing, and a title of them was taken and shown blank."""
    return any(unicodedata.category(c)[0] in "LNPS" and c not in _BLANK_GLYPHS for c in value)


def _text(record: dict, name: str, errors: list[FieldError], *, max_length: int, required: bool) -> str:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not has_visible_text(value)):
        if required:
            errors.append(FieldError(name, _("This field is required and may not be empty."), "required"))
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(name, _("Expected text.")))
        return ""
    value = value.strip()
    if len(value) > max_length:
        errors.append(
            FieldError(
                name,
                _("At most %(max)d characters (this one has %(n)d).") % {"max": max_length, "n": len(value)},
                "max_length",
            )
        )
    return value


# What the API adds when it returns a post, and the platform alone sets (the id, the life cycle's times, the
# reason for a return and the outcome of a closing, which their own actions take): ignored on input, so that a
# record read from the API can be sent back as it is (PUT, PATCH, the import).
API_READ_ONLY_FIELDS = frozenset(
    {"id", "outcome", "return_reason", "created_at", "updated_at", "submitted_at", "published_at", "returned_at",
     "closed_at", "withdrawn_at"}
)  # fmt: skip

_PADDED_PLATFORM_ID = re.compile(r"post-0[0-9]*")
# An amount given as text (to keep its cents exact): ASCII digits, a point before any decimals.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def parse_post_record(record: Any, refs: ReferenceData, *, default_status: str | None = None) -> PostData:
    """Validate one record of the import format; raise PostDataError naming every bad field."""
    if not isinstance(record, dict):
        raise PostDataError([FieldError("(line)", _("Expected a JSON object."))])
    # Text the database cannot store is the field's only error: the field is read as absent, and what the
    # rest of the checks say about its absence is dropped below.
    text_errors = [
        FieldError(name, problem)
        for name, value in record.items()
        if name in IMPORT_FIELDS and (problem := _bad_text(value))
    ]
    if text_errors:
        bad_fields = {e.field for e in text_errors}
        record = {name: value for name, value in record.items() if name not in bad_fields}
    errors: list[FieldError] = []
    unknown_fields = sorted(_shown(name) for name in set(record) - IMPORT_FIELDS - API_READ_ONLY_FIELDS)
    if unknown_fields:
        errors.append(
            FieldError(unknown_fields[0], _("Unknown field(s): %s.") % ", ".join(unknown_fields), "unknown")
        )

    external_id = record.get("external_id")
    if external_id is not None and (not isinstance(external_id, str) or not external_id.strip()):
        errors.append(FieldError("external_id", _("Expected a non-empty string.")))
        external_id = None
    elif isinstance(external_id, str) and len(external_id.strip()) > 100:
        errors.append(FieldError("external_id", _("At most 100 characters."), "max_length"))
    elif isinstance(external_id, str) and _PADDED_PLATFORM_ID.fullmatch(external_id.strip()):
        # post-0061 would name post 61 too (two names for one post: a batch with both was refused with a
        # misleading message), or else make a new post under a name of the platform's.
        number = int(external_id.strip()[5:])
        errors.append(
            FieldError(
                "external_id", _("Write the post's number without leading zeros: post-%(n)d.") % {"n": number}
            )
        )

    kind = record.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        errors.append(
            FieldError("kind", _("Expected 'need' or 'offer'."), "required" if kind is None else "invalid")
        )

    party = provider = None
    if record.get("party") is not None:
        code = record["party"]
        party = refs.parties.get(code.upper()) if isinstance(code, str) else None
        if party is None:
            errors.append(
                FieldError("party", _("Unknown Party code %r; expected an ISO3 code.") % code, "unknown")
            )
    if record.get("provider") is not None:
        name = record["provider"]
        provider = refs.providers.get(name.lower()) if isinstance(name, str) else None
        if provider is None:
            errors.append(FieldError("provider", _("Unknown support provider %r.") % name, "unknown"))

    title = _text(record, "title", errors, max_length=TITLE_MAX_LENGTH, required=True)
    description = _text(record, "description", errors, max_length=DESCRIPTION_MAX_LENGTH, required=True)
    support_types = _taxonomy(record, "support_types", errors, required=True)
    focus_areas = _taxonomy(record, "focus_areas", errors, required=True)
    sectors = _taxonomy(record, "sectors", errors, required=False)
    instruments = _taxonomy(record, "instruments", errors, required=False)

    # Not given: the language the letters tell (`languages.guess_language`), else English.
    language = record.get("language")
    if language is None or language == "":
        language = guess_language(f"{title} {description}") or "en"
    if not isinstance(language, str) or language.lower() not in POST_LANGUAGE_CODES:
        errors.append(
            FieldError("language", _("Unknown language %r; expected an ISO 639-1 code.") % (language,))
        )
        language = "en"
    else:
        language = language.lower()
        mismatch = language_mismatch(language, f"{title} {description}")
        if mismatch:
            errors.append(FieldError("language", mismatch, "mismatch"))

    amount = record.get("amount_usd")
    amount_usd = None
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
            errors.append(FieldError("amount_usd", _("Expected a number.")))
        elif isinstance(amount, str) and not _DECIMAL_TEXT.fullmatch(amount):
            # Decimal() also reads " 12 ", "1_000", "1e5", "Infinity" and other scripts' digits.
            errors.append(FieldError("amount_usd", _("Expected a number, or its digits as text with a point "
                                                     "before any cents (\"1250000.50\").")))  # fmt: skip
        else:
            try:
                amount_usd = Decimal(str(amount))
                if not amount_usd.is_finite() or (isinstance(amount, float) and not math.isfinite(amount)):
                    raise InvalidOperation
            except InvalidOperation:
                errors.append(FieldError("amount_usd", _("Expected a number.")))
                amount_usd = None
            else:
                if amount_usd < 0:
                    errors.append(FieldError("amount_usd", _("The amount may not be negative."), "min_value"))
                    amount_usd = None
                elif amount_usd > MAX_AMOUNT:
                    errors.append(FieldError("amount_usd", AMOUNT_TOO_LARGE, "max_value"))
                    amount_usd = None
                else:
                    # Only in range: quantizing a huge negative exponent would raise InvalidOperation.
                    amount_usd = amount_usd.quantize(Decimal("0.01"))

    eligible = []
    for value in _list_of_strings(record, "eligible", errors, required=False):
        key = refs.eligibility_key(value)
        if key is None:
            errors.append(
                FieldError(
                    "eligible",
                    _(
                        "Unknown Party code or group %r; expected ISO3 codes, LDC, SIDS or a UN regional group."
                    )
                    % value,
                    "unknown",
                )
            )
        elif key not in eligible:
            eligible.append(key)

    aims = _list_of_strings(record, "aims", errors, required=False)
    if any(a not in AIMS for a in aims):
        errors.append(FieldError("aims", _("Unknown aim; expected some of: %s.") % ", ".join(AIMS)))
    partner_parties = []
    for code in _list_of_strings(record, "partner_parties", errors, required=False):
        partner = refs.parties.get(code.upper())
        if partner is None:
            errors.append(FieldError("partner_parties", _("Unknown Party code %r.") % code, "unknown"))
        else:
            partner_parties.append(partner)

    # null means absent, as for every other optional field (the export writes null for what a post lacks).
    involves_iplc = record.get("involves_iplc")
    if involves_iplc is None:
        involves_iplc = False
    elif not isinstance(involves_iplc, bool):
        errors.append(FieldError("involves_iplc", _("Expected true or false.")))
    declarations = record.get("declarations")
    if declarations is None:
        declarations = {}
    if not isinstance(declarations, dict) or any(
        k not in DECLARATIONS or not isinstance(v, bool) for k, v in declarations.items()
    ):
        errors.append(
            FieldError(
                "declarations", _("Expected an object of true/false for: %s.") % ", ".join(DECLARATIONS)
            )
        )
        declarations = {}
    contact_name = _text(record, "contact_name", errors, max_length=200, required=False)
    contact_email = _text(record, "contact_email", errors, max_length=254, required=False)
    if contact_email:
        try:
            validate_email(contact_email)  # the web form's rule ("@" alone passed the API and the import)
        except ValidationError:
            errors.append(FieldError("contact_email", _("Enter a valid email address.")))

    status = record.get("status", default_status)
    if status is not None and (not isinstance(status, str) or status not in STATUSES):
        errors.append(FieldError("status", _("Unknown status %r.") % (status,)))

    if text_errors:
        errors = [*text_errors, *(e for e in errors if e.field not in bad_fields)]
    if isinstance(kind, str) and kind in KINDS and not any(e.field in ("party", "provider") for e in errors):
        errors.extend(
            post_rules_errors(
                kind=kind,
                party=party,
                provider=provider,
                eligible=eligible,
                instruments=instruments,
                partner_parties=partner_parties,
            )
        )
    if errors:
        raise PostDataError(errors)
    return PostData(
        kind=kind,
        title=title,
        description=description,
        support_types=support_types,
        focus_areas=focus_areas,
        party=party,
        provider=provider,
        sectors=sectors,
        instruments=instruments,
        language=language,
        amount_usd=amount_usd,
        eligible=eligible,
        aims=aims,
        partner_parties=partner_parties,
        involves_iplc=bool(involves_iplc),
        declarations={k: bool(declarations.get(k, False)) for k in DECLARATIONS},
        contact_name=contact_name,
        contact_email=contact_email,
        external_id=external_id.strip() if isinstance(external_id, str) else None,
        status=status,
    )


def post_to_record(post: Post) -> dict:
    """A post in the import format (the API's and the export's representation). Expects `with_related()`."""
    record = {
        "external_id": post.export_id,
        "kind": post.kind,
        "party": post.party.iso3 if post.party_id else None,
        "provider": post.provider.short_name if post.provider_id else None,
        "title": post.title,
        "description": post.description,
        "support_types": [t.key for t in post.support_types.all()],
        "focus_areas": [t.key for t in post.focus_areas.all()],
        "sectors": [t.key for t in post.sectors.all()],
        "language": post.language,
        "amount_usd": float(post.amount_usd) if post.amount_usd is not None else None,
        "instruments": [t.key for t in post.instruments.all()],
        "eligible": list(post.eligible),
        "status": post.status,
    }
    return record
