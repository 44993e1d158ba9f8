"""Titles as people write them, and the normal form search compares.

MovieLens files put a leading article at the end ("Matrix, The (1999)", "Cité des enfants perdus, La");
people and MovieLens.org's pages write it in front. `natural_title` moves it, in the main title and in
each alternative title in parentheses, and leaves everything else as stored."""

import re

from unidecode import unidecode

# Leading articles of the languages MovieLens titles use. "L'" joins its noun without a space.
ARTICLES = (
    "The",
    "A",
    "An",  # English
    "Les",
    "La",
    "Le",
    "L'",
    "Un",
    "Une",  # French
    "Il",
    "Lo",
    "Gli",
    "I",
    "Uno",
    "Una",
    "Un'",  # Italian
    "El",
    "Los",
    "Las",  # Spanish
    "O",
    "Os",
    "As",  # Portuguese
    "Die",
    "Das",
    "Der",
    "Den",
    "Ein",
    "Eine",  # German
    "De",
    "Het",
    "Een",  # Dutch
    "Det",
    "En",
    "Ett",
    "Et",  # Scandinavian
)
_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+),\s+(?P<article>" + "|".join(re.escape(a) for a in ARTICLES) + r")\s*$")
_LAST_GROUP = re.compile(r"^(?P<head>.*?)\s*\((?P<group>[^()]*)\)\s*$")
_YEAR = re.compile(r"^\d{4}(?:\s*[-–]\s*\d{0,4})?$")
_AKA = re.compile(r"^(?P<aka>a\.k\.a\.\s+)(?P<rest>.+)$", re.IGNORECASE)


def _front_article(text: str) -> str:
    match = _TRAILING_ARTICLE.match(text.strip())
    if not match:
        return text.strip()
    article, rest = match["article"], match["rest"].strip()
    return f"{article}{rest}" if article.endswith("'") else f"{article} {rest}"


def split_title(title: str) -> tuple[str, list[str]]:
    """("Matrix, The", ["1999"]) for "Matrix, The (1999)": the main title and its trailing groups in order."""
    groups: list[str] = []
    head = title.strip()
    while True:
        match = _LAST_GROUP.match(head)
        if not match or not match["head"]:
            break
        groups.insert(0, match["group"].strip())
        head = match["head"]
    return head, groups


def natural_title(title: str) -> str:
    """ "The Matrix (1999)" for "Matrix, The (1999)"; alternative titles in parentheses get the same treatment."""
    head, groups = split_title(title)
    parts = [_front_article(head)]
    for group in groups:
        if _YEAR.match(group):
            parts.append(f"({group})")
            continue
        aka = _AKA.match(group)
        parts.append(f"({aka['aka']}{_front_article(aka['rest'])})" if aka else f"({_front_article(group)})")
    return " ".join(p for p in parts if p)


_NON_WORD = re.compile(r"[^a-z0-9]+")
_JOINERS = re.compile(r"(?<=[a-z0-9])['’`´.](?=[a-z0-9])")  # schindler's, l'atalante, s.w.a.t.


def fold(text: str) -> str:
    """Lower-case ASCII: accents and ligatures folded ("Amélie" -> "amelie", "Æon" -> "aeon"), & -> and."""
    return unidecode(text).lower().replace("&", " and ")


def words(text: str) -> list[str]:
    """Search tokens: folded, apostrophes and dots inside words dropped, any other punctuation a break."""
    return [w for w in _NON_WORD.split(_JOINERS.sub("", fold(text))) if w]


_ARTICLE_WORDS = frozenset(w for a in ARTICLES for w in words(a))


def is_article(word: str) -> bool:
    return word in _ARTICLE_WORDS
