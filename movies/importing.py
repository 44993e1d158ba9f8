"""The MovieLens import service: streams a data set's files into the database in transactional batches."""

import heapq
import logging
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar, cast

from django.contrib.auth import get_user_model
from django.db import NotSupportedError, OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from django.utils.crypto import get_random_string

from movies import events, movielens, services, stats
from movies.models import DatasetImport, Genre, Movie, MovieTag, Profile, Rating, Tag, tag_strength
from movies.movielens import BadLine, Layout, LinkRecord, MovieRecord, RatingRecord, UserRecord
from movies.titles import natural_title

logger = logging.getLogger(__name__)
MAX_BAD_LINES_LISTED = 10
GENOME_PER_MOVIE = 20  # the genome scores every tag for every movie: each movie's most relevant are kept
IMPORT_STATEMENT_TIMEOUT_S = 3600
Progress = Callable[[str, Path], Callable[[int], None]]
_R = TypeVar("_R")


class StrictImportError(Exception):
    """A bad line met under --strict; the batch it belongs to was not written."""


@dataclass
class TableCounts:
    new: int = 0
    changed: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.new + self.changed + self.unchanged

    def __str__(self) -> str:
        return f"{self.new} new, {self.changed} changed, {self.unchanged} unchanged"


@dataclass
class ImportReport:
    dataset: str
    dry_run: bool
    movies: TableCounts = field(default_factory=TableCounts)
    users: TableCounts = field(default_factory=TableCounts)
    ratings: TableCounts = field(default_factory=TableCounts)
    tags: TableCounts = field(default_factory=TableCounts)  # (movie, tag) pairs
    num_bad_lines: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)

    @property
    def is_changed(self) -> bool:
        return any(c.new or c.changed for c in (self.movies, self.users, self.ratings))

    def as_dict(self) -> dict[str, object]:
        tables = {name: vars(getattr(self, name)) for name in ("movies", "users", "ratings", "tags")}
        return tables | {"num_bad_lines": self.num_bad_lines, "bad_lines": [str(b) for b in self.bad_lines]}

    def add_bad_line(self, bad: BadLine) -> None:
        self.num_bad_lines += 1
        if len(self.bad_lines) < MAX_BAD_LINES_LISTED:
            self.bad_lines.append(bad)


@dataclass(frozen=True)
class ImportOptions:
    encoding: str | None = None
    batch_size: int = 50000
    is_strict: bool = False
    is_dry_run: bool = False


class DatasetMismatch(Exception):
    """The database already holds another data set, whose ids would collide with this one's."""


def import_movielens(
    directory: Path, layout: Layout, options: ImportOptions, progress: Progress | None = None
) -> ImportReport:
    """Import movies, users and ratings; rerunning it writes only what changed."""
    held = DatasetImport.objects.exclude(dataset=layout.name).values_list("dataset", flat=True).first()
    if held:
        raise DatasetMismatch(
            f"this database holds {held}; MovieLens user and movie ids differ between data sets, "
            f"so import {layout.name} into an empty database"
        )
    global _can_load_data_infile
    _can_load_data_infile = True  # found out again per import: it depends on this run's connection
    record = None if options.is_dry_run else DatasetImport.objects.create(dataset=layout.name, source=str(directory))
    report = _import_tables(directory, layout, options, progress)
    if not options.is_dry_run:
        _refresh_derived()
    if report.is_changed and not options.is_dry_run:
        # One event for the whole import, not one per rating.
        changed = report.movies.new + report.movies.changed + report.ratings.new + report.ratings.changed
        events.send(events.ratings_changed, num_changes=changed)
    if record is not None:
        record.finished_at = timezone.now()
        record.summary = report.as_dict()
        record.save(update_fields=["finished_at", "summary"])
    return report


@contextmanager
def local_infile_connection() -> Iterator[None]:
    """Reopens this process's database connection with LOAD DATA LOCAL allowed, for the import alone,
    and closes it again afterwards. Inside a transaction (tests) the connection stays as it is and the
    import stages with multi-row INSERTs instead."""
    if connection.vendor != "mysql" or connection.in_atomic_block:
        yield
        return
    options = connection.settings_dict["OPTIONS"]
    before = {key: options.get(key) for key in ("local_infile", "read_timeout", "write_timeout")}
    connection.close()
    # Recomputing every movie's statistics at 25M ratings is one long statement: the page timeouts don't apply.
    options.update(local_infile=1, read_timeout=IMPORT_STATEMENT_TIMEOUT_S, write_timeout=IMPORT_STATEMENT_TIMEOUT_S)
    try:
        yield
    finally:
        connection.close()
        for key, value in before.items():
            if value is None:
                options.pop(key, None)
            else:
                options[key] = value


def _refresh_derived() -> None:
    """Bulk writes skip the per-rating counters, the catalogue token and the co-rated lists: bring them up to date.
    Always, not only when this run changed something: a killed run may have committed batches."""
    services.note_catalogue_changed()
    stats.refresh_movie_stats()
    analyze_tables()
    services.refresh_co_rated()  # movie pages show similar movies at once, before any model is trained


def analyze_tables() -> None:
    """Fresh optimizer statistics after bulk loads. Without them MariaDB joined genres to movie-genre links
    through the genre index, scanning every link: 135 ms instead of 1 ms for one page's genres at 87k movies."""
    if connection.vendor != "mysql" or connection.in_atomic_block:
        return  # ANALYZE TABLE commits implicitly: never inside a caller's transaction
    tables = [Movie._meta.db_table, Movie.genres.through._meta.db_table, Rating._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE " + ", ".join(connection.ops.quote_name(t) for t in tables))
        cursor.fetchall()


def _import_tables(directory: Path, layout: Layout, options: ImportOptions, progress: Progress | None) -> ImportReport:
    encoding = options.encoding or layout.encoding
    report = ImportReport(layout.name, options.is_dry_run)
    track = progress or (lambda table, path: lambda n: None)
    genre_names = movielens.ml100k_genre_names(directory) if layout.name == "ml-100k" else movielens.ML_100K_GENRES
    links = _read_links(directory, layout, encoding, report, options) if layout.links else {}

    movie_records = _valid(
        movielens.iter_records(directory / layout.movies, layout, "movies", encoding, genre_names),
        report,
        options,
        track("movies", directory / layout.movies),
    )
    movie_ids = _import_movies((r for r, _ in movie_records), links, report, options)
    user_ids: dict[int, int] | None = None
    if layout.users:
        user_records = _valid(
            movielens.iter_records(directory / layout.users, layout, "users", encoding),
            report,
            options,
            track("users", directory / layout.users),
        )
        user_ids = _import_users((r for r, _ in user_records), report, options)
    rating_records = _valid(
        movielens.iter_records(directory / layout.ratings, layout, "ratings", encoding),
        report,
        options,
        track("ratings", directory / layout.ratings),
    )
    _import_ratings(rating_records, movie_ids, user_ids, report, options, layout.ratings)
    _import_tags(directory, layout, encoding, movie_ids, report, options, track)
    return report


def _valid(
    records: Iterable[tuple[_R | BadLine, int, int]],
    report: ImportReport,
    options: ImportOptions,
    advance: Callable[[int], None],
) -> Iterator[tuple[_R, int]]:
    """(record, line number) with bad lines counted (or raised under --strict), feeding progress by bytes."""
    previous = 0
    for record, line_no, offset in records:
        advance(offset - previous)
        previous = offset
        if isinstance(record, BadLine):
            if options.is_strict:
                raise StrictImportError(str(record))
            report.add_bad_line(record)
            continue
        yield record, line_no


def _batches(items: Iterable[_R], size: int) -> Iterator[list[_R]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _read_links(
    directory: Path, layout: Layout, encoding: str, report: ImportReport, options: ImportOptions
) -> dict[int, LinkRecord]:
    path = directory / cast(str, layout.links)  # read only for a layout that has links
    if not path.is_file():
        return {}
    records = _valid(movielens.iter_records(path, layout, "links", encoding), report, options, lambda n: None)
    return {link.movielens_id: link for link, _ in records}


# Movies ---------------------------------------------------------------------------------------------


def _import_movies(
    records: Iterable[MovieRecord], links: dict[int, LinkRecord], report: ImportReport, options: ImportOptions
) -> dict[int, int]:
    """Upsert movies and their genres; returns movielens_id -> Movie.id for every movie in the file."""
    existing = {m.movielens_id: m for m in Movie.objects.filter(movielens_id__isnull=False)}
    genre_ids = {movielens.genre_key(name): i for name, i in Genre.objects.values_list("name", "id")}
    current_genres: dict[int, set[int]] = {}
    for movie_id, genre_id in Movie.genres.through.objects.values_list("movie_id", "genre_id"):
        current_genres.setdefault(movie_id, set()).add(genre_id)
    movie_ids = {ml_id: movie.id for ml_id, movie in existing.items()}
    for batch in _batches(records, options.batch_size):
        if options.is_dry_run:
            movie_ids.update((r.movielens_id, movie_ids.get(r.movielens_id, 0)) for r in batch)
            report.movies.unchanged += len(batch)
            continue
        with transaction.atomic():
            _ensure_genres(batch, genre_ids)
            _write_movie_batch(batch, links, existing, genre_ids, current_genres, report)
        movie_ids.update((ml_id, movie.id) for ml_id, movie in existing.items())
    return movie_ids


def _ensure_genres(batch: list[MovieRecord], genre_ids: dict[str, int]) -> None:
    """genre_ids maps collation keys (movielens.genre_key) to ids: "Comedy", "comedy " and "Cömedy" are one
    genre, as MariaDB's unique index would insist; the first spelling seen names it."""
    missing: dict[str, str] = {}
    for name in (g for r in batch for g in r.genres):
        if movielens.genre_key(name) not in genre_ids:
            missing.setdefault(movielens.genre_key(name), name)
    if missing:
        Genre.objects.bulk_create([Genre(name=name) for name in missing.values()], ignore_conflicts=True)
        for name, genre_id in Genre.objects.filter(name__in=list(missing.values())).values_list("name", "id"):
            genre_ids[movielens.genre_key(name)] = genre_id


def _movie_from(record: MovieRecord, link: LinkRecord | None) -> Movie:
    return Movie(
        movielens_id=record.movielens_id,
        title=record.title,
        display_title=natural_title(record.title),
        year=record.year,
        release_date=record.release_date,
        imdb_id=link.imdb_id if link else "",
        tmdb_id=link.tmdb_id if link else None,
    )


_MOVIE_FIELDS = ("title", "display_title", "year", "release_date", "imdb_id", "tmdb_id")


def _write_movie_batch(
    batch: list[MovieRecord],
    links: dict[int, LinkRecord],
    existing: dict[int, Movie],
    genre_ids: dict[str, int],
    current_genres: dict[int, set[int]],
    report: ImportReport,
) -> None:
    fresh = [_movie_from(r, links.get(r.movielens_id)) for r in batch]
    new = [m for m in fresh if m.movielens_id not in existing]
    changed = []
    for movie in fresh:
        old = existing.get(cast(int, movie.movielens_id))  # set from the record's id
        if old is not None and any(getattr(old, f) != getattr(movie, f) for f in _MOVIE_FIELDS):
            for name in _MOVIE_FIELDS:
                setattr(old, name, getattr(movie, name))
            changed.append(old)
    Movie.objects.bulk_create(new)
    Movie.objects.bulk_update(changed, _MOVIE_FIELDS)
    if new:
        existing.update(
            (m.movielens_id, m) for m in Movie.objects.filter(movielens_id__in=[m.movielens_id for m in new])
        )
    genres_changed = _write_movie_genres(batch, existing, genre_ids, current_genres)
    changed_ids = {m.movielens_id for m in changed} | (genres_changed - {m.movielens_id for m in new})
    report.movies.new += len(new)
    report.movies.changed += len(changed_ids)
    report.movies.unchanged += len(batch) - len(new) - len(changed_ids)


def _write_movie_genres(
    batch: list[MovieRecord], existing: dict[int, Movie], genre_ids: dict[str, int], current_genres: dict[int, set[int]]
) -> set[int]:
    """Makes each movie's genre links match the file; returns the MovieLens ids whose genres changed."""
    through = Movie.genres.through
    stale, links, touched = [], [], set()
    for record in batch:
        movie_id = existing[record.movielens_id].id
        wanted = {genre_ids[movielens.genre_key(g)] for g in record.genres}
        if wanted != current_genres.get(movie_id, set()):
            stale.append(movie_id)
            links += [through(movie_id=movie_id, genre_id=g) for g in wanted]
            current_genres[movie_id] = wanted
            touched.add(record.movielens_id)
    if stale:
        through.objects.filter(movie_id__in=stale).delete()
        through.objects.bulk_create(links)
    return touched


# Users ----------------------------------------------------------------------------------------------

_PROFILE_FIELDS = ("gender", "age", "age_group", "occupation", "zip_code")


def _import_users(records: Iterable[UserRecord], report: ImportReport, options: ImportOptions) -> dict[int, int]:
    """Upsert MovieLens users as Django users that cannot log in; returns movielens_user_id -> User.id."""
    # Only profiles with a MovieLens id, so no key is None.
    profiles = cast(
        dict[int, Profile], {p.movielens_user_id: p for p in Profile.objects.filter(movielens_user_id__isnull=False)}
    )
    user_ids = {ml_id: p.user_id for ml_id, p in profiles.items()}
    for batch in _batches(records, options.batch_size):
        if options.is_dry_run:
            user_ids.update((r.movielens_user_id, user_ids.get(r.movielens_user_id, 0)) for r in batch)
            report.users.unchanged += len(batch)
            continue
        with transaction.atomic():
            new = [r for r in batch if r.movielens_user_id not in profiles]
            new_ids = {r.movielens_user_id for r in new}
            user_ids.update(_create_movielens_users(new, profiles))
            changed = []
            for record in batch:
                profile = profiles[record.movielens_user_id]
                if record.movielens_user_id not in new_ids and any(
                    getattr(profile, f) != getattr(record, f) for f in _PROFILE_FIELDS
                ):
                    for name in _PROFILE_FIELDS:
                        setattr(profile, name, getattr(record, name))
                    changed.append(profile)
            Profile.objects.bulk_update(changed, _PROFILE_FIELDS)
        report.users.new += len(new)
        report.users.changed += len(changed)
        report.users.unchanged += len(batch) - len(new) - len(changed)
    return user_ids


RESERVED_PREFIX = "movielens-"


def movielens_username(movielens_user_id: int) -> str:
    return f"{RESERVED_PREFIX}{movielens_user_id}"


def is_reserved_username(username: str) -> bool:
    """Imported users' names; case-insensitive, as MariaDB's collation compares usernames."""
    return username.casefold().startswith(RESERVED_PREFIX)


class ReservedNameTaken(Exception):
    """A site account holds a name the import needs for a MovieLens user."""


def _create_movielens_users(records: list[UserRecord], profiles: dict[int, Profile]) -> dict[int, int]:
    if not records:
        return {}
    user_model = get_user_model()
    names = {movielens_username(r.movielens_user_id): r for r in records}
    taken = list(user_model.objects.filter(username__in=list(names)).values_list("username", flat=True)[:5])
    if taken:  # accounts made before the name was reserved, or in admin: never take them over
        raise ReservedNameTaken(
            f"site account(s) {', '.join(taken)} hold names kept for imported MovieLens users; rename them in "
            "admin (Users) and run the import again: what was imported so far is kept"
        )
    # "!" marks an unusable password (Django's convention), so these accounts can never log in.
    user_model.objects.bulk_create(
        [user_model(username=name, password="!" + get_random_string(40), is_active=True) for name in names],
        ignore_conflicts=True,
    )
    created = dict(user_model.objects.filter(username__in=list(names)).values_list("username", "id"))
    new_profiles = [
        Profile(
            user_id=created[name],
            source=Profile.Source.MOVIELENS,
            movielens_user_id=r.movielens_user_id,
            **{f: getattr(r, f) for f in _PROFILE_FIELDS},
        )
        for name, r in names.items()
    ]
    Profile.objects.bulk_create(new_profiles)
    profiles.update((cast(int, p.movielens_user_id), p) for p in new_profiles)  # set from the records
    return {r.movielens_user_id: created[name] for name, r in names.items()}


def _users_for_ratings(movielens_user_ids: set[int], user_ids: dict[int, int]) -> int:
    """CSV data sets have no users file: their users are created from the ratings. Returns how many."""
    missing = movielens_user_ids - user_ids.keys()
    profiles: dict[int, Profile] = {}
    records = [UserRecord(uid, "", None, "", "", "") for uid in sorted(missing)]
    user_ids.update(_create_movielens_users(records, profiles))
    return len(records)


# Ratings --------------------------------------------------------------------------------------------


def _import_ratings(
    records: Iterable[tuple[RatingRecord, int]],
    movie_ids: dict[int, int],
    user_ids: dict[int, int] | None,
    report: ImportReport,
    options: ImportOptions,
    file_name: str,
) -> None:
    has_users_file = user_ids is not None
    known_users: dict[int, int] = (
        user_ids
        if user_ids is not None
        else cast(
            dict[int, int],  # only profiles with a MovieLens id
            dict(Profile.objects.filter(movielens_user_id__isnull=False).values_list("movielens_user_id", "user_id")),
        )
    )

    def checked_batches() -> Iterator[list[RatingRecord]]:
        # Reads only what does not change while ratings are written (movie ids, a users file's ids), so it
        # can run ahead in the reader thread; bad lines are all counted there, in file order.
        for batch in _batches(records, options.batch_size):
            rows = []
            for record, line_no in batch:
                problem = _unknown_reference(record, movie_ids, known_users if has_users_file else None)
                if problem:
                    bad = BadLine(file_name, line_no, problem)
                    if options.is_strict:
                        raise StrictImportError(str(bad))
                    report.add_bad_line(bad)
                    continue
                rows.append(record)
            yield rows

    for rows in _read_ahead(checked_batches()):
        if options.is_dry_run:
            report.ratings.unchanged += len(rows)
            continue
        with transaction.atomic():
            if not has_users_file:
                report.users.new += _users_for_ratings({r.movielens_user_id for r in rows}, known_users)
            _write_rating_batch(rows, movie_ids, known_users, report)


READ_AHEAD_BATCHES = 2


def _read_ahead(batches: Iterator[list]) -> Iterator[list]:
    """The batches, parsed in a thread up to READ_AHEAD_BATCHES ahead of the one being written. mysqlclient
    lets go of the GIL while the server works, so parsing the file and writing to the database use two cores
    instead of taking turns on one. An error in the reader (a bad line under --strict, a bad encoding) is
    raised here, in its place: every batch before it is written, none after."""
    ready: queue.Queue = queue.Queue(maxsize=READ_AHEAD_BATCHES)
    stopped = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stopped.is_set():
            try:
                ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    return
            put(("end", None))
        except BaseException as error:  # handed to the writer, which raises it
            put(("error", error))

    reader = threading.Thread(target=read, name="import-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stopped.set()
        reader.join()


def _unknown_reference(record: RatingRecord, movie_ids: dict[int, int], user_ids: dict[int, int] | None) -> str:
    if record.movielens_id not in movie_ids:
        return f"rating for unknown movie {record.movielens_id}"
    if user_ids is not None and record.movielens_user_id not in user_ids:
        return f"rating by unknown user {record.movielens_user_id}"
    return ""


def _write_rating_batch(
    records: list[RatingRecord], movie_ids: dict[int, int], user_ids: dict[int, int], report: ImportReport
) -> None:
    """Stage the batch, insert the ratings that are new, then (only when some staged ones were there already)
    update those that differ: two set-based statements at most, one on a first import."""
    rows = [(user_ids[r.movielens_user_id], movie_ids[r.movielens_id], f"{r.stars:.1f}", r.timestamp) for r in records]
    if not rows:
        return
    num_staged = len({(user, movie) for user, movie, _, _ in rows})  # staging keeps a repeated pair's last line
    with connection.cursor() as cursor:
        _stage_ratings(cursor, rows)
        cursor.execute(
            f"INSERT INTO {_RATING} (user_id, movie_id, stars, rated_at) "
            f"SELECT s.user_id, s.movie_id, s.stars, {_stage_time()} FROM {_STAGE} s "
            f"LEFT JOIN {_RATING} r ON r.user_id = s.user_id AND r.movie_id = s.movie_id WHERE r.id IS NULL "
            f"{_upsert_clause()}"  # a rating written by someone else meanwhile is updated, not an error
        )
        num_new = cursor.rowcount
        num_changed = 0
        if num_new < num_staged:
            cursor.execute(_update_changed())
            num_changed = cursor.rowcount
    report.ratings.new += num_new
    report.ratings.changed += num_changed
    report.ratings.unchanged += len(rows) - num_new - num_changed


def _update_changed() -> str:
    """Ratings already there whose stars or time differ from the staged ones (the row count is theirs)."""
    differs = f"(r.stars <> s.stars OR r.rated_at <> {_stage_time()})"
    if connection.vendor == "mysql":
        return (
            f"UPDATE {_RATING} r JOIN {_STAGE} s ON r.user_id = s.user_id AND r.movie_id = s.movie_id "
            f"SET r.stars = s.stars, r.rated_at = {_stage_time()} WHERE {differs}"
        )
    return (
        f"UPDATE {_RATING} AS r SET stars = s.stars, rated_at = {_stage_time()} FROM {_STAGE} AS s "
        f"WHERE r.user_id = s.user_id AND r.movie_id = s.movie_id AND {differs}"
    )


_RATING = Rating._meta.db_table
_STAGE = "rating_import_stage"


def _stage_time() -> str:
    """The staged Unix timestamp as a UTC datetime, computed by the database (no time zone tables needed)."""
    if connection.vendor == "mysql":
        return "TIMESTAMP('1970-01-01') + INTERVAL s.epoch SECOND"
    return "datetime(s.epoch, 'unixepoch')"


def _upsert_clause() -> str:
    if connection.vendor == "mysql":
        return "ON DUPLICATE KEY UPDATE stars = VALUES(stars), rated_at = VALUES(rated_at)"
    return "ON CONFLICT (user_id, movie_id) DO UPDATE SET stars = excluded.stars, rated_at = excluded.rated_at"


def _stage_ratings(cursor: CursorWrapper, rows: list[tuple[int, int, str, int]]) -> None:
    """Fill a per-connection temporary table with the batch; a repeated (user, movie) keeps the last line."""
    if connection.vendor == "mysql":
        # Made anew for each batch: dropping a temporary table is instant where deleting its rows is not (a
        # fifth of the server's time at 25M ratings), and neither commits the batch's transaction.
        cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {_STAGE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_STAGE} (user_id BIGINT NOT NULL, movie_id BIGINT NOT NULL, "
            f"stars DECIMAL(2,1) NOT NULL, epoch BIGINT NOT NULL, PRIMARY KEY (user_id, movie_id))"
        )
        if _load_data_infile(cursor, rows):
            return
        cursor.executemany(f"REPLACE INTO {_STAGE} VALUES (%s, %s, %s, %s)", rows)
        return
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (user_id INTEGER NOT NULL, movie_id INTEGER NOT NULL, "
        f"stars DECIMAL NOT NULL, epoch INTEGER NOT NULL, PRIMARY KEY (user_id, movie_id))"
    )
    cursor.execute(f"DELETE FROM {_STAGE}")
    cursor.executemany(f"INSERT OR REPLACE INTO {_STAGE} VALUES (%s, %s, %s, %s)", rows)


def _load_data_infile(cursor: CursorWrapper, rows: list[tuple[int, int, str, int]]) -> bool:
    """LOAD DATA LOCAL is MariaDB's fastest way in; False when the server or client does not allow it."""
    global _can_load_data_infile
    if not _can_load_data_infile:
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", encoding="ascii") as handle:
        handle.writelines(f"{u}\t{m}\t{s}\t{t}\n" for u, m, s, t in rows)
        handle.flush()
        try:
            cursor.execute(
                f"LOAD DATA LOCAL INFILE %s REPLACE INTO TABLE {_STAGE} "
                f"FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n'",
                [handle.name],
            )
        except (OperationalError, NotSupportedError) as error:
            logger.info("LOAD DATA LOCAL INFILE is not available (%s); staging with multi-row INSERTs", error)
            _can_load_data_infile = False
            return False
    return True


_can_load_data_infile = True


# Tags -----------------------------------------------------------------------------------------------


def _import_tags(
    directory: Path,
    layout: Layout,
    encoding: str,
    movie_ids: dict[int, int],
    report: ImportReport,
    options: ImportOptions,
    track: Progress,
) -> None:
    """People's tags (how many gave each movie each tag) and the tag genome's most relevant tags per movie, as
    one row per movie and tag; a rerun writes only what changed. Bad lines are reported like ratings'."""
    names: dict[str, str] = {}  # collation key -> the first spelling seen: "Pixar" and "pixar" are one tag
    people: dict[tuple[int, str], set[int]] = {}
    if layout.tags and (directory / layout.tags).is_file():
        path = directory / layout.tags
        records = movielens.iter_records(path, layout, "tags", encoding)
        for record, line_no in _valid(records, report, options, track("tags", path)):
            movie_id = _known_movie(record.movielens_id, movie_ids, layout.tags, line_no, report, options)
            if movie_id is not None:
                key = movielens.genre_key(record.tag)
                names.setdefault(key, record.tag)
                people.setdefault((movie_id, key), set()).add(record.movielens_user_id)
    relevance = _genome(directory, layout, encoding, movie_ids, names, report, options, track)
    pairs = {pair: (len(people.get(pair, ())), relevance.get(pair)) for pair in people.keys() | relevance.keys()}
    if options.is_dry_run or not pairs:
        report.tags.unchanged += len(pairs)
        return
    tag_ids = _ensure_tags(names)
    existing = {
        (movie_id, tag_id): (row_id, count, rel)
        for row_id, movie_id, tag_id, count, rel in MovieTag.objects.values_list(
            "id", "movie_id", "tag_id", "num_people", "relevance"
        )
    }
    for batch in _batches(sorted(pairs.items()), options.batch_size):
        new, changed = [], []
        for (movie_id, key), (count, rel) in batch:
            row = MovieTag(
                movie_id=movie_id,
                tag_id=tag_ids[key],
                num_people=count,
                relevance=rel,
                strength=tag_strength(count, rel),
            )
            old = existing.get((movie_id, tag_ids[key]))
            if old is None:
                new.append(row)
            elif (old[1], old[2]) != (count, rel):
                row.id = old[0]
                changed.append(row)
        with transaction.atomic():
            MovieTag.objects.bulk_create(new)
            MovieTag.objects.bulk_update(changed, ["num_people", "relevance", "strength"])
        report.tags.new += len(new)
        report.tags.changed += len(changed)
        report.tags.unchanged += len(batch) - len(new) - len(changed)


def _known_movie(
    movielens_id: int,
    movie_ids: dict[int, int],
    file_name: str,
    line_no: int,
    report: ImportReport,
    options: ImportOptions,
) -> int | None:
    movie_id = movie_ids.get(movielens_id)
    if movie_id is None:
        bad = BadLine(file_name, line_no, f"movie {movielens_id} is not in the movies file")
        if options.is_strict:
            raise StrictImportError(str(bad))
        report.add_bad_line(bad)
    return movie_id


def _genome(
    directory: Path,
    layout: Layout,
    encoding: str,
    movie_ids: dict[int, int],
    names: dict[str, str],
    report: ImportReport,
    options: ImportOptions,
    track: Progress,
) -> dict[tuple[int, str], float]:
    """(Movie.id, tag key) -> relevance for each movie's GENOME_PER_MOVIE most relevant genome tags."""
    if not (layout.genome_scores and layout.genome_tags):
        return {}
    scores_path, tags_path = directory / layout.genome_scores, directory / layout.genome_tags
    if not (scores_path.is_file() and tags_path.is_file()):
        return {}
    tag_keys = {}
    record: movielens.GenomeTagRecord | movielens.GenomeScoreRecord  # each loop below reads one of them
    for record, _ in _valid(
        movielens.iter_records(tags_path, layout, "genome_tags", encoding), report, options, lambda n: None
    ):
        key = movielens.genre_key(record.tag)
        names.setdefault(key, record.tag)
        tag_keys[record.tag_id] = key
    best: dict[int, list[tuple[float, int]]] = {}  # Movie.id -> min-heap of (relevance, tag id)
    records = movielens.iter_records(scores_path, layout, "genome_scores", encoding)
    for record, line_no in _valid(records, report, options, track("genome scores", scores_path)):
        if record.tag_id not in tag_keys:
            bad = BadLine(layout.genome_scores, line_no, f"tag {record.tag_id} is not in {layout.genome_tags}")
            if options.is_strict:
                raise StrictImportError(str(bad))
            report.add_bad_line(bad)
            continue
        movie_id = _known_movie(record.movielens_id, movie_ids, layout.genome_scores, line_no, report, options)
        if movie_id is None:
            continue
        heap = best.setdefault(movie_id, [])
        item = (record.relevance, record.tag_id)
        if len(heap) < GENOME_PER_MOVIE:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    return {(movie_id, tag_keys[tag_id]): rel for movie_id, heap in best.items() for rel, tag_id in heap}


def _ensure_tags(names: dict[str, str]) -> dict[str, int]:
    """Tag ids by collation key, creating the tags not yet stored."""
    known = {movielens.genre_key(name): tag_id for name, tag_id in Tag.objects.values_list("name", "id")}
    missing = [name for key, name in names.items() if key not in known]
    for batch in _batches(missing, 5_000):
        Tag.objects.bulk_create([Tag(name=name) for name in batch], ignore_conflicts=True)
    if missing:
        known = {movielens.genre_key(name): tag_id for name, tag_id in Tag.objects.values_list("name", "id")}
    return known
