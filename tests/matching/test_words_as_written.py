"""The words of a match's explanation as the need writes them (`matching_tags.as_written`)."""

import unicodedata
from types import SimpleNamespace

from apps.matching.templatetags.matching_tags import as_written


def need(title: str, description: str = "") -> SimpleNamespace:
    return SimpleNamespace(title=title, description=description)


def test_a_title_in_capitals_does_not_make_its_words_acronyms():
    """The first occurrence decided: a title written in capitals showed "EARLY, WARNING, FLOODS" though the
    description writes "early warning of floods"."""
    post = need("EARLY WARNING FOR RIVER FLOODS", "Early warning of floods, as the NDC asks, for the NDC.")
    assert as_written(["early", "warning", "floods", "ndc"], post) == ["early", "warning", "floods", "NDC"]
    # Written in capitals wherever it is written: an acronym, whatever comes first.
    assert as_written(["ndc"], need("Ndc review", "The NDC and the ndc")) == ["ndc"]
    assert as_written(["ndc"], need("NDC review", "The NDC")) == ["NDC"]


def test_a_text_with_decomposed_accents_gives_its_words():
    """A description imported with its accents as combining marks (NFD: "o" then U+0301) was cut at each mark
    ("formacio", "indi"), so its words stayed folded: "formacion", "indigenas"."""
    post = need("Alerta temprana", unicodedata.normalize("NFD", "Formación de guardias indígenas"))
    assert as_written(["formacion", "indigenas"], post) == ["formación", "indígenas"]


def test_hyphens_apostrophes_other_scripts_and_words_not_in_the_text():
    post = need("Bien-être", "l'eau et l’adaptation, COVID-19, CO₂; نظام إنذار مبكر; Наводнения")
    assert as_written(["bien-etre", "eau", "adaptation", "covid-19", "co2", "انذار", "наводнения", "sequias"], post) == [
        "bien-être", "eau", "adaptation", "COVID-19", "CO₂", "إنذار", "наводнения", "sequias",
    ]  # fmt: skip


def test_a_post_s_words_are_read_once_for_all_its_matches():
    """Each match of a page holds its own copy of the post: its text is folded once, not once per match."""
    from types import SimpleNamespace

    from apps.matching.templatetags.matching_tags import as_written, written_words

    written_words.cache_clear()
    copies = [SimpleNamespace(title="Formación", description="Pueblos indígenas y NDC.") for _ in range(5)]
    assert {tuple(as_written(["formacion", "indigenas", "ndc"], post)) for post in copies} == {
        ("formación", "indígenas", "NDC")
    }
    assert (written_words.cache_info().misses, written_words.cache_info().hits) == (1, 4)


def test_russian_and_arabic_stems_read_as_the_first_form_the_post_writes():
    """The word model reads Russian and Arabic words as their stems (`apps.posts.stemming`): an explanation
    holds "адаптац" and "تكيف", which the page shows as the need writes them, its first form of each."""
    post = need(
        "Адаптации к засухе", "Планы адаптации и адаптацию сельского хозяйства. التكيف والتكيف مع الجفاف"
    )
    assert as_written(["адаптац", "засух", "сельск", "تكيف", "جفاف"], post) == [
        "адаптации", "засухе", "сельского", "التكيف", "الجفاف",
    ]  # fmt: skip
    # A folded word the text writes stays found as before (the words of a model stored before the stems).
    assert as_written(["адаптацию", "засухе"], post) == ["адаптацию", "засухе"]


def test_a_stem_is_found_as_the_model_reads_it_and_a_written_word_comes_first():
    """A hyphenated Russian word is stemmed part by part, as the word model does ("социальн-экономическ"), and
    a word the text writes outranks another word that stems to it: "طن" (tonne) is shown as written, not as
    "وطنية" (national), whose light10 stem it also is."""
    post = need("Социально-экономических последствий", "خطة وطنية لخفض 1000 طن من الانبعاثات")
    assert as_written(["социальн-экономическ", "последств"], post) == [
        "социально-экономических", "последствий",
    ]  # fmt: skip
    assert as_written(["طن"], need("خطة وطنية", "طن")) == ["طن"]
    assert as_written(["طن"], need("خطة وطنية", "")) == ["وطنية"]  # no such word written: its stem's form
