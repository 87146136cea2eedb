"""Reads of posts: who may see what, and the public search."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower

from apps.accounts.actors import Actor

from .folding import search_fold
from .models import Post, PostQuerySet
from .stemming import search_term


def post_list_public() -> PostQuerySet:
    """Published posts, with what a list shows, for anyone."""
    return Post.objects.published().with_related()


def post_list_visible(*, actor: Actor) -> PostQuerySet:
    """Published posts plus, for a poster, every post of their own Party or provider; staff see all."""
    qs = Post.objects.with_related()
    if actor.is_secretariat:
        return qs
    visible = Q(status=Post.Status.PUBLISHED)
    if actor.party_id is not None:
        visible |= Q(party_id=actor.party_id)
    if actor.provider_id is not None:
        visible |= Q(provider_id=actor.provider_id)
    return qs.filter(visible)


def post_changed_since_review_count() -> int:
    """Published posts their posters changed since the secretariat last reviewed them."""
    return Post.objects.filter(changed_since_review_at__isnull=False).count()


def post_list_own(*, actor: Actor) -> PostQuerySet:
    """The posts of the actor's own Party or provider, every status."""
    if actor.party_id is not None:
        return Post.objects.with_related().filter(party_id=actor.party_id)
    if actor.provider_id is not None:
        return Post.objects.with_related().filter(provider_id=actor.provider_id)
    return Post.objects.none()


def post_search(qs: PostQuerySet, text: str) -> PostQuerySet:
    """Full-text search over title and description, through their folded copy `Post.search_text`.

    The query is folded as the texts were (`folding.search_fold`): case, accents on Latin letters (precoce
    finds "précoce" and précoce "precoce"), Arabic short vowels, alef with hamza, ё. PostgreSQL matches the
    stored vector of migration 0013, indexed (English stemming: "mangrove" finds "mangroves"; a post in
    another language is stemmed by the same rules as the query, so its words still find themselves), with
    web-search syntax: quotes, OR, -word. A query with letters of another script than the Latin one (Arabic,
    Chinese, Cyrillic...) is searched within the texts instead (`_within_terms`): English stemming knows nothing
    of Russian endings or Arabic prefixes (пожар should find пожаров, فيضانات بالفيضانات), and Chinese has no
    spaces to find words by. SQLite, the embedded default, searches every query so.
    """
    text = search_fold(text.strip()[:200]).translate(_QUOTES)
    if not _WORD.search(text):  # nothing to search for ('-', '"'): as if the box were empty
        return qs
    if connection.vendor == "postgresql" and not _OTHER_SCRIPT.search(text):
        vector = RawSQL(_SEARCH_VECTOR_SQL, [], output_field=SearchVectorField())
        # An alias, not an annotation: filtered on, never selected (nor computed for each result).
        return qs.alias(search_vector=vector).filter(
            search_vector=SearchQuery(_web_search_text(text), config="english", search_type="websearch")
        )
    terms = _within_terms(text)
    characters = sorted({c for term, exclude in terms if not exclude for c in _CJK.findall(term)})
    if characters and connection.vendor == "postgresql":
        # Every post a Chinese term finds holds each of its characters: the indexed vector of them (migration
        # 0015) narrows the posts the LIKEs below read to those, and changes nothing they find.
        qs = qs.filter(RawSQL(_SEARCH_CJK_SQL, [" ".join(characters)] * 2, output_field=BooleanField()))
    found = _holding(qs, terms)
    loose = _within_terms(text, characters=True)
    if loose != terms and not found.exists():
        # A Chinese run of words typed without a space (太阳能培训: 太阳能 and 培训) cut into pairs where its words
        # do not end (太阳, 能培, 培训) finds nothing: then the posts that hold each of its characters.
        return _holding(qs, loose)
    return found


def _holding(qs: PostQuerySet, terms: list[tuple[str, bool]]) -> PostQuerySet:
    for term, exclude in terms:
        found = Q(search_text__contains=term)
        qs = qs.exclude(found) if exclude else qs.filter(found)
    return qs


# Letters of any script but the Latin one.
_OTHER_SCRIPT = re.compile(r"[^\W\d_A-Za-z\u00c0-\u024f\u1e00-\u1eff]")
# A term: "a phrase" or a word, either after a '-' to exclude it.
_TERM = re.compile(r'(-?)"([^"]+)"|(-?)([^\s"]+)')
# The quotation marks of the six languages and their keyboards, as the '"' that quotes a phrase: « », “ ”, „,
# 「 」 and 『 』 were searched as letters (a French « alerte précoce » found nothing).
_QUOTES = str.maketrans(dict.fromkeys("«»“”„‟「」『』〝〞〟", '"'))
# Within a word, the signs that separate words rather than belong to one: commas, semicolons, colons, full stops
# of Chinese and Japanese, Arabic ، ؛ ؟, question and exclamation marks, brackets (`太阳能，培训` and `flood,drought` are two
# terms each). Not the signs that words hold: c++, M&E, 1.5°C, U.S., covid-19, l'eau.
_SEPARATORS = re.compile(r"[,;:!?()\[\]{}、。〈〉《》【】〔〕،؛؟]+")
# Chinese and Japanese characters (kana, CJK extension A, unified and compatibility ideographs), as migration 0015
# stores them; a run of four or more is searched as its pairs.
_CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_CJK_CLASS}]")
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]{{4,}}")


def _within_terms(text: str, *, characters: bool = False) -> list[tuple[str, bool]]:
    """The (folded) query's terms, each with whether it excludes: quoted phrases as they are; a Chinese or
    Japanese run of four characters or more as its pairs (山洪预警: 山洪 and 预警, found apart), or as its characters
    (`characters`); a Russian or Arabic word as the part that all its forms share (`apps.posts.stemming.
    search_term`: пожары -> пожар, الفيضانات -> فيضان), as the matching reads them; "or" and stray signs dropped."""
    terms = []
    for minus, phrase, word_minus, word in _TERM.findall(_web_search_text(text)):
        exclude = bool(minus or word_minus)
        if phrase:
            # Spaces inside the marks are not the phrase's: « alerte précoce » (French spaces them).
            if phrase.strip():
                terms.append((phrase.strip(), exclude))
            continue
        for part in _SEPARATORS.split(word):
            term = part.strip("'-&|")
            if not term or term == "or":
                continue
            if _CJK_RUN.fullmatch(term) and not exclude and characters:
                terms.extend((c, False) for c in dict.fromkeys(term))  # each character once
                continue
            if _CJK_RUN.fullmatch(term) and not exclude:
                terms.extend((term[i : i + 2], False) for i in range(0, len(term) - 1, 2))
                if len(term) % 2:  # an odd run's last character, with the one before it (山洪预警系: 警系)
                    terms.append((term[-2:], False))
                continue
            terms.append((search_term(term), exclude))
    return terms


# A '-' that does not stand right before a word or a quote negates nothing; PostgreSQL parses a run of them
# ('---', '- - -', '-!-!') as nested negations and fails past 32 ("tsquery stack too small"), a 500 on a public
# page. They become spaces: '-word' and '-"a phrase"' still exclude.
_LOOSE_MINUS = re.compile(r'-(?![\w"])')
_WORD = re.compile(r"\w")


def _web_search_text(text: str) -> str:
    return _LOOSE_MINUS.sub(" ", text)


# The column PostgreSQL stores and indexes (migration 0013): `to_tsvector('english', search_text)`, read rather
# than computed for each post.
_SEARCH_VECTOR_SQL = "posts_post.search_vector"
# Whether a post holds every one of the query's Chinese and Japanese characters, by the vector of them (migration
# 0015). The query's characters are read by the same parser as the post's (plainto_tsquery: the characters it reads
# as words, joined by AND); when it reads none ('・' is no word), no post is left out. Both functions are
# immutable: PostgreSQL computes them once, and the index answers the rest.
_SEARCH_CJK_SQL = (
    "(posts_post.search_cjk @@ plainto_tsquery('simple', %s) OR numnode(plainto_tsquery('simple', %s)) = 0)"
)


# --- Helpers for the web pages (read-only; the services still enforce every rule) -------------------------

# The owner's actions a page may offer, in the order the page lists them.
POST_PAGE_ACTIONS = ("edit", "submit", "recall", "close", "withdraw")


def post_allowed_actions(*, actor: Actor, post: Post) -> frozenset[str]:
    """Which of edit/submit/recall/close/withdraw the actor may do to the post now, so a page shows only those."""
    from .services import TRANSITIONS, post_can_manage

    if not post_can_manage(actor=actor, post=post):
        return frozenset()
    return frozenset(
        action
        for action in POST_PAGE_ACTIONS
        if post.status in TRANSITIONS[action] and post_can_manage(actor=actor, post=post, action=action)
    )


def post_status_counts(*, actor: Actor) -> dict[str, int]:
    """How many of the actor's own posts are in each status, in one query."""
    from django.db.models import Count

    rows = (
        post_list_own(actor=actor)
        .select_related(None)
        .prefetch_related(None)
        .order_by()
        .values("status")
        .annotate(n=Count("pk"))
    )
    return {row["status"]: row["n"] for row in rows}


def post_eligibility_labels(codes: list[str]) -> list[str]:
    """Readable names for an offer's `eligible` entries (ISO3 codes and group names), in one query."""
    from django.utils.translation import gettext as _

    from apps.parties.models import GROUP_LDC, GROUP_SIDS, NAME_FIELDS, Party, RegionalGroup

    group_labels = {group.value: str(group.label) for group in RegionalGroup}
    group_labels[GROUP_LDC] = str(_("Least developed countries (LDC)"))
    group_labels[GROUP_SIDS] = str(_("Small island developing States (SIDS)"))
    iso3_codes = [code for code in codes if code not in group_labels]
    parties = Party.objects.filter(iso3__in=iso3_codes).only("iso3", *NAME_FIELDS) if iso3_codes else []
    names = {party.iso3: party.local_name for party in parties}
    return [group_labels.get(code) or names.get(code) or code for code in codes]


def post_awaiting_moderation_count() -> int:
    """How many posts wait for the secretariat to publish or return them."""
    return Post.objects.filter(status=Post.Status.SUBMITTED).count()


# `post-<id>`: how exports and the API name a post made in the platform, which has no external id of its own.
# `post-<id>`, the number as the platform writes it (no leading zeros: post_data refuses post-0061).
# `post-<id>`: every such name is reserved for the platform's posts, however long its number; no post has a
# number past the largest bigint (`platform_post_number`).
PLATFORM_EXPORT_ID = re.compile(r"post-([1-9][0-9]*)", re.ASCII)
MAX_POST_ID = 2**63 - 1


def platform_post_number(match: re.Match) -> int | None:
    """The post number a `PLATFORM_EXPORT_ID` match names, or None past any post's."""
    number = int(match.group(1)[:20])
    return number if number <= MAX_POST_ID else None


def post_by_export_id(export_ids: Iterable[str], *, lock: bool = False) -> dict[str, Post]:
    """The posts these ids name, by id: an external id, or `post-<id>` for a post made in the platform (one
    without an external id of its own), so that a record read from the API or an export updates its post when
    it is imported again instead of making a copy. `lock`: SELECT ... FOR UPDATE. Two queries at most."""
    wanted = {e for e in export_ids if e}
    qs = Post.objects.select_for_update() if lock else Post.objects.all()
    found = {p.external_id: p for p in qs.filter(external_id__in=wanted)}
    platform = {}
    for export_id in wanted - found.keys():
        match = PLATFORM_EXPORT_ID.fullmatch(export_id)
        if match and (number := platform_post_number(match)) is not None:
            platform[number] = export_id
    if platform:
        for post in qs.filter(pk__in=list(platform), external_id__isnull=True):
            found[platform[post.pk]] = post
    return found


def poster_users(
    posters: Iterable[tuple[int | None, int | None]],
) -> dict[tuple[int | None, int | None], list]:
    """(party id, provider id) -> the active users with an email who speak for that poster: a Party's focal
    points, or a provider's users (a pair naming a Party is the Party's, whatever provider it names). In one
    query, whatever the number of posters; each list in a stable order (by name): the page, the emails and their
    Reply-To list them alike every time."""
    from apps.accounts.models import Role, User

    found: dict[tuple[int | None, int | None], list] = {poster: [] for poster in posters}
    asking: dict[tuple[int | None, int | None], list] = {}  # (party, None) or (None, provider) -> the pairs
    for party_id, provider_id in found:
        asking.setdefault((party_id, None) if party_id else (None, provider_id), []).append(
            (party_id, provider_id)
        )
    party_ids = {party_id for party_id, _provider in asking if party_id}
    provider_ids = {provider_id for _party, provider_id in asking if provider_id}
    if not party_ids and not provider_ids:
        return found
    users = User.objects.filter(
        Q(role=Role.FOCAL_POINT, party_id__in=party_ids)
        | Q(role=Role.PROVIDER, provider_id__in=provider_ids),
        is_active=True,
    ).exclude(email="")
    for user in users.order_by("last_name", "first_name", "pk"):
        key = (user.party_id, None) if user.role == Role.FOCAL_POINT else (None, user.provider_id)
        for poster in asking.get(key, ()):
            found[poster].append(user)
    return found


def post_poster_users(post: Post) -> list:
    """The active users with an email who speak for the post's Party (focal points) or provider."""
    poster = (post.party_id, post.provider_id)
    return poster_users([poster])[poster]


def contact_addresses_left(emails: Iterable[str]) -> set[str]:
    """Of these contact addresses, those of a person who has left (lower case): the address of deactivated
    accounts (or an anonymised one's, which keeps none) and of no active one. Whom to write to is then the people
    who speak for the post's Party or provider now (`poster_users`), as for a post without one; an address of
    nobody registered (a colleague's, a shared mailbox) stands. One query: whether the holders are active."""
    from apps.accounts.models import User

    emails = {email.strip().lower() for email in emails if email.strip()}
    if not emails:
        return set()
    holders: dict[str, set[bool]] = {}
    rows = User.objects.annotate(address=Lower("email")).filter(address__in=emails)
    for address, active in rows.order_by().values_list("address", "is_active").distinct():
        holders.setdefault(address, set()).add(active)
    return {address for address, states in holders.items() if states == {False}}


def post_contact_has_left(post: Post) -> bool:
    """Whether the contact email on the post is the address of a person who has left (`contact_addresses_left`)."""
    return bool(post.contact_email) and bool(contact_addresses_left([post.contact_email]))


def post_count_with_contact(*, email: str) -> int:
    """How many posts still open (not closed nor withdrawn) give this address as their contact: shown to the
    public's registered users and in connection emails, whoever holds the address now."""
    if not email.strip():
        return 0
    ended = (Post.Status.CLOSED, Post.Status.WITHDRAWN)
    return Post.objects.filter(contact_email__iexact=email.strip()).exclude(status__in=ended).count()
