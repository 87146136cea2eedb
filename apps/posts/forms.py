"""The web form of a need or an offer: taxonomies as labelled choices, turned into a `PostData` for the services.

Field-level checks are Django's (lengths, choices, numbers); the rules across fields are the import format's
`post_rules_errors`, so the form and the import refuse the same posts.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import datetime
from decimal import Decimal

from django import forms
from django.http import QueryDict
from django.utils import formats
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from apps.parties.forms import OptionsInPythonMixin
from apps.parties.models import (
    GROUP_LDC,
    GROUP_SIDS,
    NAME_FIELDS,
    Party,
    RegionalGroup,
    SupportProvider,
    reading_order,
)

from .languages import form_language_mismatch
from .models import AMOUNT_TOO_LARGE, DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH, Post
from .post_data import DECLARATIONS, MAX_AMOUNT, PostData, has_visible_text, post_rules_errors
from .taxonomies import (
    POST_LANGUAGE_CODES,
    POST_LANGUAGES,
    Aim,
    FinanceInstrument,
    FocusArea,
    Sector,
    SupportType,
)


def _comparable(value):
    """A field's value (initial or cleaned) in one form for comparison: lists unordered, text without the
    browser's \r\n, an amount without its trailing zeros, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted(str(item) for item in value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value).replace("\r\n", "\n").strip()


def field_fingerprints(values: dict, names) -> dict[str, str]:
    """Short hashes of the fields' values: enough to tell whether a value changed, without the text."""
    return {
        name: hashlib.sha256(
            json.dumps(_comparable(values.get(name)), ensure_ascii=False).encode()
        ).hexdigest()[:16]
        for name in names
    }


def _put(data, name: str, value) -> None:
    """Write an initial value into form data as a browser would post it."""
    if isinstance(value, bool):
        if value:
            data[name] = "on"
        else:
            data.pop(name, None)
    elif isinstance(value, (list, tuple)):
        data.setlist(name, [str(item) for item in value])
    else:
        data[name] = "" if value is None else str(value)


class OpenedValuesField(forms.Field):
    """A hidden field: `field_fingerprints` of the post as the form was filled (JSON). Bookkeeping only; a value
    that is not such a JSON object is no fingerprint (an old form: the conflict then merges nothing)."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value):
        return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value

    def to_python(self, value) -> dict[str, str] | None:
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value or "null")
        except ValueError:
            return None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            return None
        return parsed

    def has_changed(self, initial, data) -> bool:
        return False


class OpenedAtField(forms.Field):
    """A hidden field holding when the post being edited was last changed, to the microsecond, as the form was
    filled (ISO 8601): bookkeeping, never a change of the post itself."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value):
        return value.isoformat() if isinstance(value, datetime) else value

    def to_python(self, value) -> datetime | None:
        if isinstance(value, datetime) or value in (None, ""):
            return value or None
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return None  # not a time this form wrote: saved without the check, as a form of old would be
        return parsed if parsed.tzinfo is not None else None

    def has_changed(self, initial, data) -> bool:
        return False


ELIGIBILITY_GROUP_CHOICES = [
    *RegionalGroup.choices,
    (GROUP_LDC, _("Least developed countries (LDC)")),
    (GROUP_SIDS, _("Small island developing States (SIDS)")),
]
# Where an error of `post_rules_errors` is shown: its field name there -> the form field(s) it belongs to.
RULE_ERROR_FIELDS = {
    "kind": ("kind",),
    "eligible": ("eligible_groups", "eligible_parties"),
    "instruments": ("instruments",),
    "partner_parties": ("partner_parties",),
}
DECLARATION_LABELS = {
    "voluntary": Post._meta.get_field("declares_voluntary").verbose_name,
    "no_transfer": Post._meta.get_field("declares_no_transfer").verbose_name,
    "ndc": Post._meta.get_field("declares_ndc").verbose_name,
    "rights": Post._meta.get_field("declares_rights").verbose_name,
    "safeguards": Post._meta.get_field("declares_safeguards").verbose_name,
}


def _checkboxes(choices, label, *, required: bool, help_text: str = "") -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=label,
        choices=choices,
        required=required,
        widget=forms.CheckboxSelectMultiple,
        help_text=help_text,
    )


# "1,250,000" (thousands grouped by commas) or "1 250 000" (by spaces, as in French): what people type.
# Digits grouped by commas, as English writes thousands; never from a lone 0 ("0,001" is no thousand).
_GROUPED = re.compile(r"[1-9]\d{0,2}(,\d{3})+(\.\d+)?")
# A comma before one or two final digits can only be a decimal comma (French and others): "2 000 000,50".
_DECIMAL_COMMA = re.compile(r"\d+,\d{1,2}")
# Digits grouped by points, as Spanish (and some French) writers group thousands: "1.250.000" or "1.250.000,50".
_POINT_GROUPED = re.compile(r"[1-9]\d{0,2}(\.\d{3})+(,\d{1,2})?")
_SPACES = re.compile(r"[\s\u00a0\u202f_]")
# A digit of any script: Arabic-Indic (١٢٥٠), Persian (۱۲۵۰), full width (１２５０), as a keypad in that script types it.
_ANY_DIGIT = re.compile(r"\d")
# What a Chinese input method types for a comma and a point (full width).
_FULL_WIDTH_SIGNS = str.maketrans({"\uff0c": ",", "\uff0e": ".", "\u3000": " "})
# Arabic's own separators, which an Arabic keypad types with its digits: ٫ before decimals, ٬ between thousands.
# They cannot be mistaken for each other as a comma and a point can.
_ARABIC_DECIMAL, _ARABIC_THOUSANDS = "\u066b", "\u066c"


class AmountField(forms.DecimalField):
    """A decimal amount in US dollars that also takes digits grouped by commas or spaces and a decimal comma
    ("1,250,000", "1 250 000,50"; a text box with a numeric keyboard on phones: a browser's number box refuses
    "1,250,000" before the server sees it). Digits may be typed in another script (Arabic-Indic ٢٥٠٠٫٥٠, full
    width １，２５０), as a phone's keypad in the page's language types them."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})

    def widget_attrs(self, widget):
        # Not the number box's step/min/max, which a text box does not use.
        return {}

    def to_python(self, value):
        if isinstance(value, str):
            value = _ANY_DIGIT.sub(lambda digit: str(unicodedata.decimal(digit.group())), value)
            value = _SPACES.sub("", value.translate(_FULL_WIDTH_SIGNS))
            if _ARABIC_DECIMAL in value or _ARABIC_THOUSANDS in value:
                return super().to_python(self._arabic_separators(value))
            decimal_comma = formats.get_format("DECIMAL_SEPARATOR") == ","
            if _GROUPED.fullmatch(value):
                if value.count(",") == 1 and "." not in value and decimal_comma:
                    # On a page whose language writes a decimal comma, "2,000" may be two or two thousand
                    # ("2,000,000" can only be two million).
                    raise self._ambiguous(value)
                value = value.replace(",", "")
            elif decimal_comma and _POINT_GROUPED.fullmatch(value):
                # Most Spanish writers group thousands with points: "1.250.000" was refused as no number, and
                # "150.000" (a hundred and fifty thousand, or 150) for its three decimal places. With two groups,
                # or cents after a comma, the points can only group thousands; one group is asked again, as
                # "2,000" is.
                if value.count(".") == 1 and "," not in value:
                    raise self._ambiguous(value)
                value = value.replace(".", "").replace(",", ".")
            elif _DECIMAL_COMMA.fullmatch(value):
                value = value.replace(",", ".")
        return super().to_python(value)

    def _arabic_separators(self, value: str) -> str:
        """An amount written with ٫ and ٬: grouped by threes as "1,250,000.50" is (a misplaced group is not
        guessed), and with no comma or point beside them."""
        if "," in value or "." in value:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        value = value.replace(_ARABIC_THOUSANDS, ",").replace(_ARABIC_DECIMAL, ".")
        if "," in value and not _GROUPED.fullmatch(value):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return value.replace(",", "")

    @staticmethod
    def _ambiguous(value: str) -> forms.ValidationError:
        return forms.ValidationError(
            _("“%(value)s” can be read two ways: write thousands with a space or nothing between them (2 000 or "
              "2000), and cents after a comma (2,50)."),
            code="ambiguous", params={"value": value},
        )  # fmt: skip


class PartyListWidget(OptionsInPythonMixin, forms.SelectMultiple):
    """A list of the ~200 Parties. A plain click, or an arrow key, replaces what was picked, and the picks are
    scrolled out of sight: site.js writes them out below the list (`data-chosen`), and a screen reader hears
    them change."""

    def __init__(self, attrs=None):
        super().__init__({"size": 8, "data-chosen": _("Chosen: %(names)s."), "data-none-chosen": _("None chosen."),
                          **(attrs or {})})  # fmt: skip

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        """Each Party as "VEN – Venezuela (…)": a list option does not wrap, and on a narrow screen the end of a
        long name is cut off, which held the code that tells similar names apart. The line of picks names
        them as everywhere else (`data-name`: "Venezuela (…) (VEN)")."""
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        code, text = str(value), str(label)
        option["attrs"]["data-name"] = text
        option["label"] = f"{code} – {text.removesuffix(f' ({code})')}"
        return option


class VisibleTextField(forms.CharField):
    """Text that must show something: only spaces, zero-width characters or lone combining marks are empty (a
    required field says so), as the API and the import read them (`has_visible_text`)."""

    def to_python(self, value):
        value = super().to_python(value)
        return value if has_visible_text(value) else self.empty_value


class PostForm(forms.Form):
    """A need or an offer of one poster (a Party or a support provider, fixed by the caller)."""

    kind = forms.ChoiceField(label=_("Kind"), choices=Post.Kind.choices, widget=forms.RadioSelect)
    # dir="auto": Arabic (or any right-to-left text) is typed and shown right to left, on a page in English.
    title = VisibleTextField(
        label=_("Title"), max_length=TITLE_MAX_LENGTH, widget=forms.TextInput(attrs={"dir": "auto"})
    )
    description = VisibleTextField(
        label=_("Description"),
        max_length=DESCRIPTION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 8, "dir": "auto"}),
        help_text=_("What is needed or offered, where, for whom and by when."),
    )
    support_types = _checkboxes(SupportType.choices, _("Types of support"), required=True)
    focus_areas = _checkboxes(FocusArea.choices, _("Focus areas"), required=True)
    sectors = _checkboxes(Sector.choices, _("Sectors"), required=False)
    instruments = _checkboxes(
        FinanceInstrument.choices,
        _("Finance instruments"),
        required=False,
        help_text=_("Offers of finance only."),
    )
    eligible_groups = _checkboxes(
        ELIGIBILITY_GROUP_CHOICES,
        _("Eligible groups"),
        required=False,
        help_text=_("Offers only. Leave eligibility empty to open the offer to every Party."),
    )
    eligible_parties = forms.MultipleChoiceField(
        label=_("Eligible Parties"),
        required=False,
        help_text=_("Offers only. Hold Ctrl (or Cmd) to choose several; on a touch screen, tap each."),
        widget=PartyListWidget,
    )
    partner_parties = forms.MultipleChoiceField(
        label=_("Partner Parties"),
        required=False,
        help_text=_(
            "Other Parties taking part (welcome, never required). Hold Ctrl (or Cmd) to choose several; on a "
            "touch screen, tap each."
        ),
        widget=PartyListWidget,
    )
    aims = _checkboxes(Aim.choices, _("Aims of Article 6.8"), required=False)
    declares_voluntary = forms.BooleanField(label=DECLARATION_LABELS["voluntary"], required=False)
    declares_no_transfer = forms.BooleanField(label=DECLARATION_LABELS["no_transfer"], required=False)
    declares_ndc = forms.BooleanField(label=DECLARATION_LABELS["ndc"], required=False)
    declares_rights = forms.BooleanField(label=DECLARATION_LABELS["rights"], required=False)
    declares_safeguards = forms.BooleanField(label=DECLARATION_LABELS["safeguards"], required=False)
    involves_iplc = forms.BooleanField(
        label=_("Indigenous Peoples and local communities take part"), required=False
    )
    language = forms.ChoiceField(label=_("Language of the text"), choices=POST_LANGUAGES, initial="en")
    amount_usd = AmountField(
        label=_("Amount (USD)"),
        required=False,
        min_value=Decimal(0),
        max_value=MAX_AMOUNT,
        decimal_places=2,  # no max_digits: MAX_AMOUNT bounds them, with one message rather than two
        help_text=_("Amount needed or offered, in US dollars, e.g. 1250000; leave empty if not known."),
        error_messages={
            "invalid": _("Enter the amount in digits, e.g. 1250000 or 1,250,000."),
            "max_value": AMOUNT_TOO_LARGE,
        },
    )
    # When the post being edited was last changed, as the form was filled: saving checks that it still is
    # (`post_update`'s `opened_at`), so that an older form does not silently undo a newer change.
    opened_at = OpenedAtField()
    # A fingerprint of each field's value as the form was filled (`field_fingerprints`): after a conflict, what
    # the other change touched and this editor did not is taken into the form (`merge_conflict`).
    opened_values = OpenedValuesField()
    # A name is written in its own script whatever the page's (a Latin name on an Arabic page starts at the left);
    # an address always runs left to right.
    contact_name = forms.CharField(
        label=_("Contact name"), max_length=200, required=False, widget=forms.TextInput(attrs={"dir": "auto"})
    )
    contact_email = forms.EmailField(
        label=_("Contact email"), required=False, widget=forms.EmailInput(attrs={"dir": "ltr"})
    )

    def __init__(
        self,
        *args,
        party: Party | None = None,
        provider: SupportProvider | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.party = party
        self.provider = provider
        # One query for both Party lists; the choices also validate tampered codes.
        parties = sorted(Party.objects.only("iso3", *NAME_FIELDS), key=lambda p: reading_order(p.local_name))
        self.parties_by_iso3 = {p.iso3: p for p in parties}
        party_choices = [(p.iso3, str(p)) for p in parties]  # in the page's language and alphabetical order
        self.fields["eligible_parties"].choices = party_choices
        self.fields["partner_parties"].choices = [
            choice for choice in party_choices if party is None or choice[0] != party.iso3
        ]
        # No maxlength in the page: a browser cuts a longer paste at the limit without a word (a 25,000-character
        # description was saved cut); the server's error says how long it is and how long it may be.
        for name in ("title", "description"):
            self.fields[name].widget.attrs.pop("maxlength", None)
        # The error summary lists fields in this order: the order of the page's fieldsets.
        self.order_fields([field.name for _key, _legend, fields in self.fieldsets() for field in fields])
        # A new post's text is most likely in the language of the page: French on a French page.
        page_language = (get_language() or "en").split("-")[0]
        if "language" not in self.initial and page_language in POST_LANGUAGE_CODES:
            self.fields["language"].initial = page_language
        # The post's own text, read out in its language (an English post edited on a French page, say).
        text_language = self.data.get("language") if self.is_bound else self.initial.get("language")
        if text_language in POST_LANGUAGE_CODES:
            for name in ("title", "description"):
                self.fields[name].widget.attrs["lang"] = text_language
        if provider is not None:
            # A support provider posts offers only: the form does not even offer 'need'.
            self.fields["kind"].choices = [(Post.Kind.OFFER, Post.Kind.OFFER.label)]
            self.fields["kind"].initial = self.initial["kind"] = Post.Kind.OFFER  # even from ?kind=need

    @classmethod
    def initial_for(cls, post: Post) -> dict:
        """The form's initial values for editing a post (expects `with_related()` and partner_parties)."""
        groups = {value for value, _label in ELIGIBILITY_GROUP_CHOICES}
        initial = {
            "opened_at": post.updated_at,
            "kind": post.kind,
            "title": post.title,
            "description": post.description,
            "support_types": [t.key for t in post.support_types.all()],
            "focus_areas": [t.key for t in post.focus_areas.all()],
            "sectors": [t.key for t in post.sectors.all()],
            "instruments": [t.key for t in post.instruments.all()],
            "eligible_groups": [code for code in post.eligible if code in groups],
            "eligible_parties": [code for code in post.eligible if code not in groups],
            "partner_parties": [p.iso3 for p in post.partner_parties.all()],
            "aims": list(post.aims),
            "involves_iplc": post.involves_iplc,
            "language": post.language,
            # Whole dollars without ".00", which read as an English decimal point on a French page.
            "amount_usd": (
                post.amount_usd.quantize(1)
                if post.amount_usd is not None and post.amount_usd == post.amount_usd.to_integral_value()
                else post.amount_usd
            ),
            "contact_name": post.contact_name,
            "contact_email": post.contact_email,
        }
        for key in DECLARATIONS:
            initial[f"declares_{key}"] = getattr(post, f"declares_{key}")
        initial["opened_values"] = field_fingerprints(initial, cls.content_field_names())
        return initial

    @classmethod
    def content_field_names(cls) -> list[str]:
        """The fields that hold the post (not the bookkeeping of when and what the form was opened on)."""
        return [name for name in cls.base_fields if name not in ("opened_at", "opened_values")]

    def merge_conflict(self, current: Post) -> tuple[QueryDict, list[str], list[str]]:
        """After a conflict (this valid form, opened on an older version of `current`): the data to show again.

        A field the other change touched and this editor did not takes the post's current value (saving again
        would silently have put the old one back); one both changed keeps this editor's and is named. Returns
        (the data, as the form would post it, the fields taken from the post, the fields both changed);
        without the fingerprints of an old form, the editor's data as it is and no field named."""
        base = self.cleaned_data.get("opened_values")
        data = self.data.copy()
        now = self.initial_for(current)
        data["opened_at"] = now["opened_at"].isoformat()
        data["opened_values"] = json.dumps(now["opened_values"], separators=(",", ":"))
        if not base:
            return data, [], []
        names = self.content_field_names()
        mine = field_fingerprints(self.cleaned_data, names)
        theirs = now["opened_values"]
        taken, both = [], []
        for name in names:
            if base.get(name) is None or theirs[name] == base[name] or theirs[name] == mine[name]:
                continue  # the other change left it, or made it what this editor typed
            if mine[name] == base[name]:
                taken.append(name)
                _put(data, name, now[name])
            else:
                both.append(name)
        return data, taken, both

    def clean(self):
        cleaned = super().clean()
        mismatch = form_language_mismatch(cleaned)
        if mismatch:
            self.add_error("language", mismatch)
        kind = cleaned.get("kind")
        if kind is None:
            return cleaned
        for error in post_rules_errors(
            kind=kind,
            party=self.party,
            provider=self.provider,
            eligible=self._eligible(cleaned),
            instruments=cleaned.get("instruments", []),
            partner_parties=self._partner_parties(cleaned),
        ):
            targets = [
                name
                for name in RULE_ERROR_FIELDS.get(error.field, ())
                if name in self.fields and cleaned.get(name)
            ] or [name for name in RULE_ERROR_FIELDS.get(error.field, ())[:1] if name in self.fields]
            if not targets:
                self.add_error(None, error.message)
            for name in targets:
                self.add_error(name, error.message)
        return cleaned

    def _eligible(self, cleaned: dict) -> list[str]:
        return list(
            dict.fromkeys([*cleaned.get("eligible_groups", []), *cleaned.get("eligible_parties", [])])
        )

    def _partner_parties(self, cleaned: dict) -> list[Party]:
        return [self.parties_by_iso3[code] for code in cleaned.get("partner_parties", [])]

    def to_post_data(self) -> PostData:
        """The validated form as the services' input; call only after `is_valid()`."""
        cleaned = self.cleaned_data
        return PostData(
            kind=cleaned["kind"],
            title=cleaned["title"],
            description=cleaned["description"],
            support_types=cleaned["support_types"],
            focus_areas=cleaned["focus_areas"],
            party=self.party,
            provider=self.provider,
            sectors=cleaned["sectors"],
            instruments=cleaned["instruments"],
            language=cleaned["language"],
            amount_usd=cleaned["amount_usd"],
            eligible=self._eligible(cleaned),
            aims=cleaned["aims"],
            partner_parties=self._partner_parties(cleaned),
            involves_iplc=cleaned["involves_iplc"],
            declarations={key: cleaned[f"declares_{key}"] for key in DECLARATIONS},
            contact_name=cleaned["contact_name"],
            contact_email=cleaned["contact_email"],
        )

    # Groups of fields the template renders as fieldsets, so the page reads in the order a poster thinks.
    def fieldsets(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        def bound(*names: str) -> list[forms.BoundField]:
            return [self[name] for name in names]

        return [
            ("about", _("About the post"), bound("kind", "title", "description", "language")),
            (
                "taxonomy",
                _("What and where"),
                bound("support_types", "focus_areas", "sectors", "amount_usd", "instruments"),
            ),
            (
                "eligibility",
                _("Who may receive it (offers only)"),
                bound("eligible_groups", "eligible_parties"),
            ),
            ("partners", _("Partners and participation"), bound("partner_parties", "involves_iplc")),
            (
                "declarations",
                _("Article 6.8 aims and declarations"),
                bound(
                    "aims",
                    "declares_voluntary",
                    "declares_no_transfer",
                    "declares_ndc",
                    "declares_rights",
                    "declares_safeguards",
                ),
            ),
            ("contact", _("Contact"), bound("contact_name", "contact_email")),
        ]


class CloseForm(forms.Form):
    outcome = VisibleTextField(
        label=_("Outcome"),
        max_length=DESCRIPTION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "dir": "auto"}),
        help_text=_("How was the need met or the offer taken up? Who took part?"),
    )
