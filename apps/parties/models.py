"""Parties to the UNFCCC, the groups used for eligibility, and registered support providers."""

import functools
import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import get_language, pgettext_lazy
from django.utils.translation import gettext_lazy as _


class RegionalGroup(models.TextChoices):
    # The values are the UN's own names, which the import format's `eligible` field uses verbatim.
    AFRICAN = "African States", _("African States")
    ASIA_PACIFIC = "Asia-Pacific States", _("Asia-Pacific States")
    EASTERN_EUROPEAN = "Eastern European States", _("Eastern European States")
    LATIN_AMERICAN_CARIBBEAN = "Latin American and Caribbean States", _("Latin American and Caribbean States")
    WESTERN_EUROPEAN_OTHER = "Western European and other States", _("Western European and other States")


# Groups a Party can belong to besides its regional group.
GROUP_LDC = "LDC"
GROUP_SIDS = "SIDS"
ELIGIBILITY_GROUPS = frozenset([*RegionalGroup.values, GROUP_LDC, GROUP_SIDS])


# Posts' `eligible` lists, the API's filters and every import name a Party by this code.
iso3_validator = RegexValidator(
    r"^[A-Z]{3}$",
    _(
        "Three capital letters: the Party's ISO 3166-1 alpha-3 code, such as KEN (EUU for the European Union)."
    ),
    code="invalid_iso3",
)
# Imports and the API name a provider by its short name (docs/FORMATS.md), compared without regard to case: one word
# of letters and digits, with dots, hyphens or underscores inside.
short_name_validator = RegexValidator(
    r"^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$",
    _(
        "Letters and digits, with dots, hyphens or underscores between them and no spaces, such as CTCN or "
        "IRENA-CIP: imports and the API name the provider by it."
    ),
    code="invalid_short_name",
)


# The interface languages (settings.LANGUAGES) in which a Party carries the UN's short name (UNTERM), shown on the
# pages in that language; English pages, the API and the exports keep `name`.
LOCAL_NAME_FIELDS = {"fr": "name_fr", "es": "name_es", "ar": "name_ar", "zh": "name_zh", "ru": "name_ru"}
# Every field a Party's name is in: the admin's searches and its name clash check look in all of them.
NAME_FIELDS = ("name", *LOCAL_NAME_FIELDS.values())


def name_field(language: str | None = None) -> str:
    """The field of Party names in `language` (the active language when None): `name_fr` for French (fr, fr-ca...),
    `name_es` for Spanish, `name_zh` for Chinese (zh-hans...), `name` for English and any other."""
    code = (language if language is not None else get_language()) or ""
    return LOCAL_NAME_FIELDS.get(code.split("-")[0].lower(), "name")


# Arabic: the definite article that UN lists pass over ("الأردن" among the alifs: أردن), the short vowels and
# other marks, and the forms of alif (أ إ آ ٱ) that dictionaries file as a plain alif.
_ARABIC_ARTICLE = re.compile(r"(^|\s)ال(?=\w{2})")
_ARABIC_ALIFS = str.maketrans("أإآٱ", "اااا")
# Russian files ё with е, as dictionaries do (Unicode puts it after я).
_RUSSIAN_YO = str.maketrans("ёЁ", "еЕ")


@functools.lru_cache(maxsize=8192)
def reading_order(name: str) -> str:
    """A key that sorts names as a reader looks them up, accents, case, spaces and hyphens aside: "Égypte" with
    the E's, "Guinée-Bissau" before "Guinée équatoriale", as the UN lists them. Chinese names sort by their
    pinyin (阿富汗 a fu han first), Arabic ones by their letters with the article "ال" aside and every alif
    alike, Russian ones by their letters (й after и, as the alphabet has them, ё with е). Remembered per name
    (a page's Party list sorts the same ~200 names each time: 25 ms in Chinese, pinyin and all)."""
    if _HAN.search(name):
        name = " ".join(pinyin_syllables(name))
    name = _ARABIC_ARTICLE.sub(r"\1", name).translate(_ARABIC_ALIFS).translate(_RUSSIAN_YO)
    key = []
    for character in unicodedata.normalize("NFC", name):
        if "LATIN" in unicodedata.name(character, ""):
            # é -> e, ç -> c; a letter with no plain form (ø, ß as ss) keeps its NFKD letters.
            key.extend(
                part for part in unicodedata.normalize("NFKD", character) if not unicodedata.combining(part)
            )
        elif not unicodedata.combining(character):  # Arabic short vowels, a Cyrillic letter's combining marks
            key.append(character)
    return "".join(character for character in "".join(key).casefold() if character.isalnum())


_HAN = re.compile(r"[\u3400-\u9fff]")


# Transliterated names that pypinyin's general dictionary reads as ordinary words would, wrongly: 泊 is bó in
# 尼泊尔 (pypinyin's pō put Nepal after Nicaragua), 佛 fó in 佛得角, 都 dū in 洪都拉斯, 塞 sài in the names of
# Cyprus, Senegal, Serbia..., 蒙 měng in 蒙古. Each phrase is read as written here (a syllable per character),
# wherever it appears in a name; the rest of the name is left to pypinyin. A name read wrongly is fixed by adding
# its phrase here (as short as tells it apart), not by a rule for the character, which reads otherwise elsewhere.
NAME_READINGS = {
    "尼泊尔": "ni2 bo2 er3",
    "佛得角": "fo2 de2 jiao3",
    "洪都拉斯": "hong2 du1 la1 si1",
    "朝鲜": "chao2 xian3",
    "蒙古": "meng3 gu3",
    "缅甸": "mian3 dian4",
    "乌干达": "wu1 gan1 da2",
    "乌拉圭": "wu1 la1 gui1",
    "阿塞拜疆": "a1 sai4 bai4 jiang1",
    "埃塞俄比亚": "ai1 sai4 e2 bi3 ya4",
    "黑塞哥维那": "hei1 sai4 ge1 wei2 na4",
    "塞浦路斯": "sai4 pu3 lu4 si1",
    "塞内加尔": "sai4 nei4 jia1 er3",
    "塞尔维亚": "sai4 er3 wei2 ya4",
    "塞舌尔": "sai4 she2 er3",
    "塞拉利昂": "sai4 la1 li4 ang2",
}
_NAME_READING = re.compile("|".join(sorted(NAME_READINGS, key=len, reverse=True)))


def pinyin_syllables(name: str) -> list[str]:
    """The pinyin of a Chinese name, a syllable per character, with its tone as a digit (a1, fu4, han4): other
    characters pass through. The phrases of NAME_READINGS are read as given there."""
    from pypinyin import Style, lazy_pinyin

    syllables: list[str] = []
    start = 0
    for found in _NAME_READING.finditer(name):
        if found.start() > start:
            syllables += lazy_pinyin(
                name[start : found.start()], style=Style.TONE3, neutral_tone_with_five=True
            )
        syllables += NAME_READINGS[found.group()].split()
        start = found.end()
    if start < len(name):
        syllables += lazy_pinyin(name[start:], style=Style.TONE3, neutral_tone_with_five=True)
    return syllables


class Party(models.Model):
    iso3 = models.CharField(_("ISO3 code"), max_length=3, unique=True, validators=[iso3_validator])
    name = models.CharField(_("name"), max_length=120)
    # The UN's short names (UNTERM) in French and Spanish, shown on pages in that language (LOCAL_NAME_FIELDS).
    name_fr = models.CharField(_("name in French"), max_length=120, blank=True)
    name_es = models.CharField(_("name in Spanish"), max_length=120, blank=True)
    # And in Arabic, Chinese and Russian, the other official languages of the UN.
    name_ar = models.CharField(_("name in Arabic"), max_length=120, blank=True)
    name_zh = models.CharField(_("name in Chinese"), max_length=120, blank=True)
    name_ru = models.CharField(_("name in Russian"), max_length=120, blank=True)
    # Blank for the European Union and the Holy See, which sit in no UN regional group.
    regional_group = models.CharField(
        _("UN regional group"), max_length=40, choices=RegionalGroup.choices, blank=True
    )
    is_ldc = models.BooleanField(_("least developed country"), default=False)
    is_sids = models.BooleanField(_("small island developing State"), default=False)
    paris_agreement_party = models.BooleanField(_("Party to the Paris Agreement"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("Party")
        verbose_name_plural = _("Parties")

    def __str__(self) -> str:
        return f"{self.local_name} ({self.iso3})"

    @property
    def local_name(self) -> str:
        """The name in the language of the page (French, Spanish, Arabic, Chinese, Russian) where it has one,
        else the English `name`."""
        return getattr(self, name_field()) or self.name

    @property
    def groups(self) -> frozenset[str]:
        """The eligibility groups this Party belongs to (regional group, LDC, SIDS)."""
        groups = set()
        if self.regional_group:
            groups.add(self.regional_group)
        if self.is_ldc:
            groups.add(GROUP_LDC)
        if self.is_sids:
            groups.add(GROUP_SIDS)
        return frozenset(groups)


class SupportProvider(models.Model):
    class Kind(models.TextChoices):
        DEVELOPMENT_BANK = "development_bank", _("Development bank")
        AGENCY = "agency", _("UN or bilateral agency")
        FUND = "fund", _("Climate fund")
        NGO = "ngo", _("Non-governmental organisation")
        RESEARCH = "research", _("Research centre")
        PRIVATE = "private", _("Private sector")
        OTHER = "other", _("Other")

    short_name = models.CharField(
        _("short name"),
        max_length=40,
        unique=True,
        validators=[short_name_validator],
        help_text=_("Used in imports and the API, e.g. CTCN. It cannot be changed once the provider exists."),
    )
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.OTHER)
    website = models.URLField(_("website"), blank=True)
    contact_email = models.EmailField(_("contact email"), blank=True)
    is_active = models.BooleanField(pgettext_lazy("support provider", "active"), default=True)
    created_at = models.DateTimeField(_("registered at"), auto_now_add=True)

    class Meta:
        ordering = ["short_name"]
        verbose_name = _("support provider")
        verbose_name_plural = _("support providers")
        constraints = [
            # Imports and the API's filter find a provider by its short name in any case: "ctcn" is CTCN.
            models.UniqueConstraint(Lower("short_name"), name="provider_short_name_unique_any_case"),
        ]

    def __str__(self) -> str:
        return self.short_name

    def clean(self) -> None:
        super().clean()
        # The constraint's own message would not name the field: say it on the field, before it is checked.
        same_name = SupportProvider.objects.filter(short_name__iexact=self.short_name).exclude(pk=self.pk)
        if self.short_name and same_name.exists():
            raise ValidationError(
                {
                    "short_name": _(
                        "A support provider with this short name exists (short names are compared "
                        "regardless of case)."
                    )
                }
            )
