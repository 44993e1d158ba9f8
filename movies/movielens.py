"""MovieLens file layouts and line parsers: bytes in, typed records or bad-line reasons out (no Django)."""

import csv
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar, overload

ML_100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ML_1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
AGE_GROUPS = ((1, "<18"), (18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-49"), (50, "50-55"), (56, "56+"))
NO_GENRES = "(no genres listed)"
# The database columns' limits (movies.models), checked here so a line that would not fit is a reported bad
# line on every database, not a crash under MariaDB's strict mode or a silent truncation.
MAX_ID = 2_147_483_647  # ids, ages and TMDb ids: a signed 32-bit integer everywhere
MAX_TITLE = 500
MAX_GENRE = 64
MAX_IMDB_ID = 16
MAX_ZIP = 16
MAX_OCCUPATION = 64
MAX_AGE = 150
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01: DATETIME holds it, and no rating comes from later
MAX_TAG = 255
_YEAR_AT_END = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")
_HALF_STARS = {f"{s / 2:g}": Decimal(s) / 2 for s in range(1, 11)} | {
    f"{s / 2:.1f}": Decimal(s) / 2 for s in range(1, 11)
}
_WHOLE_STARS = {str(s): Decimal(s) for s in range(1, 6)}


@dataclass(frozen=True)
class Layout:
    """Where a data set keeps each table, and how its lines are written."""

    name: str
    movies: str
    ratings: str
    users: str | None
    links: str | None
    encoding: str
    has_half_stars: bool
    description: str
    tags: str | None = None  # people's tags (userId, movieId, tag, timestamp); optional
    genome_scores: str | None = None  # the tag genome (movieId, tagId, relevance) with genome_tags; optional
    genome_tags: str | None = None


LAYOUTS = {
    "ml-100k": Layout(
        "ml-100k",
        "u.item",
        "u.data",
        "u.user",
        None,
        "latin-1",
        False,
        "u.item, u.data, u.user (and optionally u.genre)",
    ),
    "ml-1m": Layout(
        "ml-1m", "movies.dat", "ratings.dat", "users.dat", None, "latin-1", False, "movies.dat, ratings.dat, users.dat"
    ),
    "ml-latest-small": Layout(
        "ml-latest-small",
        "movies.csv",
        "ratings.csv",
        None,
        "links.csv",
        "utf-8",
        True,
        "movies.csv, ratings.csv (and optionally links.csv, tags.csv)",
        tags="tags.csv",
    ),
}
# ml-25m and ml-32m (and the full ml-latest) share the CSV layout of ml-latest-small, with the tag genome.
for _name in ("ml-25m", "ml-32m", "ml-latest"):
    LAYOUTS[_name] = replace(
        LAYOUTS["ml-latest-small"],
        name=_name,
        description="movies.csv, ratings.csv (and optionally links.csv, tags.csv, genome-scores.csv with "
        "genome-tags.csv)",
        genome_scores="genome-scores.csv",
        genome_tags="genome-tags.csv",
    )


@dataclass(frozen=True)
class MovieRecord:
    movielens_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    release_date: date | None = None
    imdb_id: str = ""
    tmdb_id: int | None = None


@dataclass(frozen=True)
class UserRecord:
    movielens_user_id: int
    gender: str
    age: int | None
    age_group: str
    occupation: str
    zip_code: str


@dataclass(frozen=True)
class RatingRecord:
    movielens_user_id: int
    movielens_id: int
    stars: Decimal
    timestamp: int


@dataclass(frozen=True)
class TagRecord:
    movielens_user_id: int
    movielens_id: int
    tag: str
    timestamp: int


@dataclass(frozen=True)
class GenomeTagRecord:
    tag_id: int
    tag: str


@dataclass(frozen=True)
class GenomeScoreRecord:
    movielens_id: int
    tag_id: int
    relevance: float


@dataclass(frozen=True)
class BadLine:
    file: str
    line_no: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line_no}: {self.reason}"


@dataclass
class LinkRecord:
    movielens_id: int
    imdb_id: str
    tmdb_id: int | None = field(default=None)


class EncodingProblem(Exception):
    """A line that cannot be decoded in the data set's encoding."""

    def __init__(self, file: Path, line_no: int, byte_offset: int, encoding: str) -> None:
        super().__init__(
            f"{file}: line {line_no} is not valid {encoding} (byte offset {byte_offset}); "
            f"try --encoding latin-1 or check the file"
        )


def detect_layout(directory: Path, dataset: str | None = None) -> Layout:
    """The layout named by `dataset`, or the one whose files are in `directory`."""
    if dataset is not None:
        if dataset not in LAYOUTS:
            raise LookupError(f"unknown dataset {dataset!r}; known: {', '.join(LAYOUTS)}")
        layout = LAYOUTS[dataset]
        missing = [
            name for name in (layout.movies, layout.ratings, layout.users) if name and not (directory / name).is_file()
        ]
        if missing:
            raise LookupError(
                f"{directory} is missing {', '.join(missing)} for {dataset} (expects {layout.description})"
            )
        return layout
    candidates = [LAYOUTS["ml-100k"], LAYOUTS["ml-1m"]]
    for layout in candidates:
        if (directory / layout.movies).is_file() and (directory / layout.ratings).is_file():
            return layout
    if (directory / "movies.csv").is_file() and (directory / "ratings.csv").is_file():
        return LAYOUTS.get(directory.name, LAYOUTS["ml-latest-small"])
    raise LookupError(expected_files_message(directory))


def expected_files_message(directory: Path) -> str:
    lines = [f"{directory} does not hold a MovieLens data set. Expected one of:"]
    lines += [f"  {name}: {layout.description}" for name, layout in LAYOUTS.items()]
    return "\n".join(lines)


def read_lines(path: Path, encoding: str) -> Iterator[tuple[int, str, int]]:
    """(line number, text without line end, bytes consumed so far), decoding line by line to locate errors."""
    offset = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as error:
                raise EncodingProblem(path, line_no, offset + error.start, encoding) from error
            offset += len(raw)
            yield line_no, text.rstrip("\r\n"), offset


def year_from_title(title: str) -> int | None:
    match = _YEAR_AT_END.search(title)
    return int(match.group(1)) if match else None


def age_group_for(age: int) -> str:
    label = AGE_GROUPS[0][1]
    for lower_bound, name in AGE_GROUPS:
        if age >= lower_bound:
            label = name
    return label


def genre_key(name: str) -> str:
    """What MariaDB's utf8mb4_unicode_ci collation compares: case, accents and trailing spaces ignored."""
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).casefold().strip()


def _checked_genres(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Stripped, each at most MAX_GENRE long, one spelling per collation key (the first)."""
    kept: dict[str, str] = {}
    for name in (n.strip() for n in names):
        if len(name) > MAX_GENRE:
            raise ValueError(f"genre {name[:20]!r}... is longer than {MAX_GENRE} characters")
        if name:
            kept.setdefault(genre_key(name), name)
    return tuple(kept.values())


def _checked_title(title: str) -> str:
    if not title:
        raise ValueError("empty title")
    if len(title) > MAX_TITLE:
        raise ValueError(f"title is {len(title)} characters, over {MAX_TITLE}")
    return title


def parse_movie(layout: Layout, fields: list[str], genre_names: tuple[str, ...]) -> MovieRecord:
    if layout.name == "ml-100k":
        if len(fields) != 5 + len(genre_names):
            raise ValueError(f"expected {5 + len(genre_names)} fields separated by '|', got {len(fields)}")
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise ValueError("genre flags must be 0 or 1")
        genres = _checked_genres([name for name, flag in zip(genre_names, flags) if flag == "1" and name != "unknown"])
        title = _checked_title(fields[1].strip())
        return MovieRecord(
            _positive_int(fields[0], "movie id"),
            title,
            year_from_title(title),
            genres,
            release_date=_ml100k_date(fields[2]),
        )
    if len(fields) != 3:
        raise ValueError(f"expected 3 fields (id, title, genres), got {len(fields)}")
    title = _checked_title(fields[1].strip())
    genres = _checked_genres([g for g in fields[2].split("|") if g and g != NO_GENRES])
    return MovieRecord(_positive_int(fields[0], "movie id"), title, year_from_title(title), genres)


def parse_user(layout: Layout, fields: list[str]) -> UserRecord:
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    if layout.name == "ml-100k":
        user_id, age_text, gender, occupation, zip_code = fields
    else:
        user_id, gender, age_text, occupation_code, zip_code = fields
        code = _positive_int(occupation_code, "occupation", allow_zero=True)
        if code >= len(ML_1M_OCCUPATIONS):
            raise ValueError(f"occupation code {code} is not 0-{len(ML_1M_OCCUPATIONS) - 1}")
        occupation = ML_1M_OCCUPATIONS[code]
    age = _positive_int(age_text, "age", maximum=MAX_AGE)
    gender, occupation, zip_code = gender.strip(), occupation.strip(), zip_code.strip()
    if len(gender) > 1:
        raise ValueError(f"gender {gender[:20]!r} is not one letter (M or F)")
    if len(occupation) > MAX_OCCUPATION:
        raise ValueError(f"occupation is longer than {MAX_OCCUPATION} characters")
    if len(zip_code) > MAX_ZIP:
        raise ValueError(f"zip code {zip_code[:20]!r} is longer than {MAX_ZIP} characters")
    return UserRecord(_positive_int(user_id, "user id"), gender, age, age_group_for(age), occupation, zip_code)


def parse_rating(layout: Layout, fields: list[str]) -> RatingRecord:
    if len(fields) != 4:
        raise ValueError(f"expected 4 fields (user, movie, rating, timestamp), got {len(fields)}")
    scale = _HALF_STARS if layout.has_half_stars else _WHOLE_STARS
    stars = scale.get(fields[2].strip())
    if stars is None:
        allowed = "0.5-5.0 in half steps" if layout.has_half_stars else "a whole number 1-5"
        raise ValueError(f"rating {fields[2]!r} is not {allowed}")
    timestamp = _positive_int(fields[3], "timestamp", allow_zero=True, maximum=MAX_TIMESTAMP)
    return RatingRecord(_positive_int(fields[0], "user id"), _positive_int(fields[1], "movie id"), stars, timestamp)


def parse_link(fields: list[str]) -> LinkRecord:
    if len(fields) != 3:
        raise ValueError(f"expected 3 fields (movieId, imdbId, tmdbId), got {len(fields)}")
    tmdb, imdb = fields[2].strip(), fields[1].strip()
    if len(imdb) > MAX_IMDB_ID:
        raise ValueError(f"IMDb id {imdb[:20]!r} is longer than {MAX_IMDB_ID} characters")
    return LinkRecord(_positive_int(fields[0], "movie id"), imdb, _positive_int(tmdb, "tmdb id") if tmdb else None)


def _checked_tag(text: str) -> str:
    tag = " ".join(text.split())  # runs of spaces and tabs inside a tag are one space
    if not tag:
        raise ValueError("empty tag")
    if len(tag) > MAX_TAG:
        raise ValueError(f"tag is {len(tag)} characters, over {MAX_TAG}")
    return tag


def parse_tag(fields: list[str]) -> TagRecord:
    if len(fields) != 4:
        raise ValueError(f"expected 4 fields (user, movie, tag, timestamp), got {len(fields)}")
    return TagRecord(
        _positive_int(fields[0], "user id"),
        _positive_int(fields[1], "movie id"),
        _checked_tag(fields[2]),
        _positive_int(fields[3], "timestamp", allow_zero=True, maximum=MAX_TIMESTAMP),
    )


def parse_genome_tag(fields: list[str]) -> GenomeTagRecord:
    if len(fields) != 2:
        raise ValueError(f"expected 2 fields (tagId, tag), got {len(fields)}")
    return GenomeTagRecord(_positive_int(fields[0], "tag id"), _checked_tag(fields[1]))


def parse_genome_score(fields: list[str]) -> GenomeScoreRecord:
    if len(fields) != 3:
        raise ValueError(f"expected 3 fields (movieId, tagId, relevance), got {len(fields)}")
    text = fields[2].strip()
    try:
        relevance = float(text)
    except ValueError as error:
        raise ValueError(f"relevance {text[:20]!r} is not a number") from error
    if not 0.0 <= relevance <= 1.0:  # also refuses nan and inf
        raise ValueError(f"relevance {text[:20]} is not between 0 and 1")
    return GenomeScoreRecord(_positive_int(fields[0], "movie id"), _positive_int(fields[1], "tag id"), relevance)


def split_fields(layout: Layout, table: str, text: str) -> list[str]:
    if layout.name == "ml-100k":
        return text.split("\t") if table == "ratings" else text.split("|")
    if layout.name == "ml-1m":
        return text.split("::")
    return next(csv.reader([text]))


def ml100k_genre_names(directory: Path) -> tuple[str, ...]:
    path = directory / "u.genre"
    if not path.is_file():
        return ML_100K_GENRES
    pairs = []
    for _, text, _ in read_lines(path, "latin-1"):
        if text.strip():
            name, index = text.rsplit("|", 1)
            pairs.append((int(index), name))
    return tuple(name for _, name in sorted(pairs))


_R = TypeVar("_R")
Records = Iterator[tuple[_R | BadLine, int, int]]  # (record or BadLine, line number, bytes read so far)


@overload
def iter_records(
    path: Path, layout: Layout, table: Literal["movies"], encoding: str, genre_names: tuple[str, ...] = ...
) -> Records[MovieRecord]: ...


@overload
def iter_records(path: Path, layout: Layout, table: Literal["users"], encoding: str) -> Records[UserRecord]: ...


@overload
def iter_records(path: Path, layout: Layout, table: Literal["ratings"], encoding: str) -> Records[RatingRecord]: ...


@overload
def iter_records(path: Path, layout: Layout, table: Literal["links"], encoding: str) -> Records[LinkRecord]: ...


@overload
def iter_records(path: Path, layout: Layout, table: Literal["tags"], encoding: str) -> Records[TagRecord]: ...


@overload
def iter_records(
    path: Path, layout: Layout, table: Literal["genome_tags"], encoding: str
) -> Records[GenomeTagRecord]: ...


@overload
def iter_records(
    path: Path, layout: Layout, table: Literal["genome_scores"], encoding: str
) -> Records[GenomeScoreRecord]: ...


def iter_records(
    path: Path, layout: Layout, table: str, encoding: str, genre_names: tuple[str, ...] = ML_100K_GENRES
) -> Iterator[tuple[object, int, int]]:
    """(record or BadLine, line number, bytes read so far) for each data line of one file; headers skipped."""
    parse = {
        "movies": lambda f: parse_movie(layout, f, genre_names),
        "users": lambda f: parse_user(layout, f),
        "ratings": lambda f: parse_rating(layout, f),
        "links": parse_link,
        "tags": parse_tag,
        "genome_tags": parse_genome_tag,
        "genome_scores": parse_genome_score,
    }[table]
    is_csv = layout.name not in ("ml-100k", "ml-1m")
    for line_no, text, offset in read_lines(path, encoding):
        if line_no == 1 and is_csv:
            continue
        if not text.strip():
            continue
        try:
            yield parse(split_fields(layout, table, text)), line_no, offset
        except (ValueError, csv.Error) as error:
            yield BadLine(path.name, line_no, str(error)), line_no, offset


def _positive_int(text: str, what: str, allow_zero: bool = False, maximum: int = MAX_ID) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{what} {text[:20]!r} is not a whole number")
    if len(text) > 20 or int(text) > maximum:
        raise ValueError(f"{what} {text[:20]} is out of range (at most {maximum})")
    value = int(text)
    if value == 0 and not allow_zero:
        raise ValueError(f"{what} must be positive")
    return value


def _ml100k_date(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, "%d-%b-%Y").date()
    except ValueError as error:
        raise ValueError(f"release date {text!r} is not DD-Mon-YYYY") from error
