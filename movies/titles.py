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


# Numbers as titles write them: "Part II", "Episode V", "Ocean's Eleven", "Kill Bill: Vol. 1". Each is also
# indexed (and matched) as its digits, so "star wars 5", "episode v", "part 2" and "godfather part two" all find
# what people mean. Roman "i" counts only after a word that announces a number ("Part I"): "I, Robot" stays "i".
_ROMAN = {"i": 1, "v": 5, "x": 10}
_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
).split()
_ANNOUNCES_NUMBER = frozenset({"part", "pt", "episode", "ep", "chapter", "ch", "volume", "vol", "book", "no", "season"})
_ROMAN_PATTERN = re.compile(r"^(x{0,3})(ix|iv|v?i{0,3})$")


def _roman_value(word: str) -> int | None:
    if not word or not _ROMAN_PATTERN.match(word):
        return None
    total, previous = 0, 0
    for letter in reversed(word):
        value = _ROMAN[letter]
        total, previous = (total - value, previous) if value < previous else (total + value, value)
    return total


def number_of(word: str, previous: str = "") -> int | None:
    """The number a title word stands for (digits, a Roman numeral up to 39, an English word up to twenty)."""
    if word.isdigit() and len(word) <= 3:
        return int(word)
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS.index(word)
    if word == "i" and previous not in _ANNOUNCES_NUMBER:
        return None
    return _roman_value(word)


def announces_number(word: str) -> bool:
    """ "Part", "episode", "vol": the next word is a number, so "i" after it is one, not the Italian article."""
    return word in _ANNOUNCES_NUMBER


# Abbreviations titles and people use for the same word, either way round ("Kill Bill: Vol. 1", "volume one").
_SAME_WORDS = (
    ("vol", "volume"),
    ("pt", "part"),
    ("ep", "episode"),
    ("dr", "doctor"),
    ("mr", "mister"),
    ("st", "saint"),
    ("vs", "versus"),
    ("jr", "junior"),
    ("ch", "chapter"),
)
SAME_WORD = {a: b for pair in _SAME_WORDS for a, b in (pair, pair[::-1])}


def numbers_as_digits(tokens: list[str]) -> set[str]:
    """The digits of every number word among the tokens, other than those already written as digits."""
    found = set()
    for at, word in enumerate(tokens):
        value = number_of(word, tokens[at - 1] if at else "")
        if value is not None and not word.isdigit():
            found.add(str(value))
    return found


_SEGMENT_BREAK = re.compile(r"\s*(?::|\s[-–—]\s)\s*")


def initialisms(text: str) -> set[str]:
    """What people abbreviate a title to: the first letters of each segment's words ("The Lord of the Rings: The
    Two Towers" -> "lotr", "tt", "lotrttt"), digits kept whole ("Terminator 2" -> "t2"); a leading article left
    out. Only three letters or more, or with a digit: two-letter ones would match half the catalogue."""
    found = set()
    segments = [s for s in _SEGMENT_BREAK.split(text) if s]
    for piece in [*segments, text] if len(segments) > 1 else segments:
        tokens = words(piece)
        if tokens and is_article(tokens[0]) and len(tokens) > 1:
            tokens = tokens[1:]
        if len(tokens) < 2:
            continue
        letters = "".join(t if t.isdigit() else t[0] for t in tokens)
        if len(letters) >= 3 or any(c.isdigit() for c in letters):
            found.add(letters)
    return found
