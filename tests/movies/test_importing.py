"""movies/importing.py, through manage.py import_movielens against the test database (SQLite or MariaDB); then
the import's faults that need a real database server and real processes (I-6 to I-9, I-12)."""

import io
import shutil
import signal
import time
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import NotSupportedError, OperationalError, connection

from movies.models import Movie, Profile, Rating
from tests.conftest import manage, requires_mysql

pytestmark = pytest.mark.django_db


def run_import(*args: str) -> str:
    out = StringIO()
    call_command("import_movielens", *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


def copy_dataset(fixtures_dir: Path, name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(fixtures_dir / name, tmp_path / name))


def test_ml1m_latin1_title_round_trips(fixtures_dir: Path) -> None:
    run_import(str(fixtures_dir / "ml-1m"))
    movie = Movie.objects.get(movielens_id=1)
    assert movie.title == "Misérables, Les (1995)"
    assert movie.year == 1995
    assert sorted(movie.genres.values_list("name", flat=True)) == ["Drama", "Musical"]
    assert (Movie.objects.count(), Profile.objects.count(), Rating.objects.count()) == (4, 3, 6)


def test_imported_users_cannot_log_in_and_are_marked(fixtures_dir: Path) -> None:
    run_import(str(fixtures_dir / "ml-100k"))
    user = get_user_model().objects.get(profile__movielens_user_id=2)
    assert not user.has_usable_password()
    assert user.profile.source == Profile.Source.MOVIELENS
    assert (user.profile.gender, user.profile.age, user.profile.occupation) == ("F", 53, "other")


def test_forced_utf8_on_latin1_fails_naming_file_line_offset_and_writes_nothing(fixtures_dir: Path) -> None:
    with pytest.raises(CommandError) as error:
        run_import(str(fixtures_dir / "ml-1m"), "--encoding", "utf-8")
    assert "movies.dat: line 1" in str(error.value) and "byte offset 6" in str(error.value)
    assert Movie.objects.count() == 0


def test_bad_lines_are_skipped_and_reported(fixtures_dir: Path, tmp_path: Path) -> None:
    directory = copy_dataset(fixtures_dir, "ml-100k", tmp_path)
    with (directory / "u.data").open("a") as handle:
        handle.write("1\t4\t9\t881250960\n")  # line 9: rating out of range
        handle.write("2\t999\t3\t881250961\n")  # line 10: unknown movie
        handle.write("77\t1\t3\t881250962\n")  # line 11: unknown user
        handle.write("1\t4\n")  # line 12: too few fields
    output = run_import(str(directory))
    assert Rating.objects.count() == 8
    assert "skipped 4 bad line(s)" in output
    for line_no in (9, 10, 11, 12):
        assert f"u.data, line {line_no}:" in output


def test_strict_stops_at_first_bad_line_and_writes_nothing_of_its_batch(fixtures_dir: Path, tmp_path: Path) -> None:
    directory = copy_dataset(fixtures_dir, "ml-100k", tmp_path)
    lines = (directory / "u.data").read_text().splitlines()
    lines.insert(5, "1\t4\t3.5\t881250960")
    (directory / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError) as error:
        run_import(str(directory), "--strict", "--batch-size", "4")
    assert "u.data, line 6: rating '3.5'" in str(error.value)
    assert Rating.objects.count() == 4  # the first batch of 4 committed; the batch with line 6 did not


def test_latest_small_quirks_are_all_accepted(fixtures_dir: Path) -> None:
    output = run_import(str(fixtures_dir / "ml-latest-small"))
    assert "bad line" not in output
    assert Movie.objects.get(movielens_id=1).title == "Garden, The (1995)"
    assert Movie.objects.get(movielens_id=4).year is None
    assert Movie.objects.get(movielens_id=4).genres.count() == 0
    assert Movie.objects.filter(title="Paper Moons (2001)").count() == 2
    assert Movie.objects.get(movielens_id=5).title == "Skyline 🚀 (2019)"
    assert Movie.objects.get(movielens_id=1).imdb_id == "0114709" and Movie.objects.get(movielens_id=3).tmdb_id is None
    stars = sorted(Rating.objects.values_list("stars", flat=True))
    assert stars[0] == Decimal("0.5") and Decimal("3.5") in stars and Decimal("4.5") in stars
    assert Profile.objects.filter(source=Profile.Source.MOVIELENS).count() == 3


def test_ml100k_unknown_movie_with_empty_dates_is_imported(fixtures_dir: Path) -> None:
    run_import(str(fixtures_dir / "ml-100k"))
    unknown = Movie.objects.get(movielens_id=5)
    assert (unknown.title, unknown.year, unknown.release_date) == ("unknown", None, None)
    assert Movie.objects.get(movielens_id=2).title == "Café Noir (1994)"


def test_second_import_changes_nothing_and_says_so(fixtures_dir: Path) -> None:
    run_import(str(fixtures_dir / "ml-latest-small"))
    output = run_import(str(fixtures_dir / "ml-latest-small"))
    assert "ratings  0 new, 0 changed, 7 unchanged" in output
    assert "Nothing changed" in output
    assert Rating.objects.count() == 7 and Movie.objects.count() == 6


def test_changed_rating_and_title_are_updated_on_reimport(fixtures_dir: Path, tmp_path: Path) -> None:
    directory = copy_dataset(fixtures_dir, "ml-latest-small", tmp_path)
    run_import(str(directory))
    ratings = (directory / "ratings.csv").read_bytes().replace(b"1,1,4.0,964982703", b"1,1,2.5,964990000")
    (directory / "ratings.csv").write_bytes(ratings)
    movies = (
        (directory / "movies.csv")
        .read_bytes()
        .replace(b"Paper Moons (2001),Drama\r", b"Paper Moons (2002),Drama|War\r")
    )
    (directory / "movies.csv").write_bytes(movies)
    output = run_import(str(directory))
    assert "ratings  0 new, 1 changed, 6 unchanged" in output
    assert "movies   0 new, 1 changed, 5 unchanged" in output
    assert Rating.objects.get(user__profile__movielens_user_id=1, movie__movielens_id=1).stars == Decimal("2.5")
    movie = Movie.objects.get(movielens_id=2)
    assert movie.year == 2002 and set(movie.genres.values_list("name", flat=True)) == {"Drama", "War"}
    assert Rating.objects.count() == 7


def test_dry_run_validates_and_writes_nothing(fixtures_dir: Path) -> None:
    output = run_import(str(fixtures_dir / "ml-1m"), "--dry-run")
    assert "dry run" in output
    assert Movie.objects.count() == 0 and Rating.objects.count() == 0


def test_missing_directory_file_or_layout_is_a_command_error(fixtures_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="is not a directory"):
        run_import(str(tmp_path / "nowhere"))
    with pytest.raises(CommandError, match="u.item, u.data, u.user"):
        run_import(str(tmp_path))
    directory = copy_dataset(fixtures_dir, "ml-1m", tmp_path)
    (directory / "users.dat").unlink()
    with pytest.raises(CommandError, match="missing users.dat"):
        run_import(str(directory), "--dataset", "ml-1m")


def test_help_documents_every_option() -> None:
    from movies.management.commands.import_movielens import Command

    text = Command().create_parser("manage.py", "import_movielens").format_help()
    for option in ("--dataset", "--encoding", "--batch-size", "--dry-run", "--no-progress", "--strict"):
        assert option in text
    assert "ml-25m" in text and "ml-32m" in text


def test_not_a_tty_means_no_progress_bar_but_a_summary(fixtures_dir: Path) -> None:
    out, err = StringIO(), StringIO()
    call_command("import_movielens", str(fixtures_dir / "ml-1m"), stdout=out, stderr=err)
    assert err.getvalue() == ""
    assert "ratings  6 new" in out.getvalue()
    quiet = StringIO()
    call_command("import_movielens", str(fixtures_dir / "ml-1m"), "--verbosity", "0", stdout=quiet, stderr=err)
    assert quiet.getvalue() == "" and err.getvalue() == ""


def test_another_dataset_is_refused(fixtures_dir: Path) -> None:
    run_import(str(fixtures_dir / "ml-1m"))
    with pytest.raises(CommandError, match="holds ml-1m"):
        run_import(str(fixtures_dir / "ml-100k"))


def test_out_of_range_star_is_refused_by_the_database(fixtures_dir: Path) -> None:
    from django.db import IntegrityError, transaction

    run_import(str(fixtures_dir / "ml-1m"))
    rating = Rating.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.filter(pk=rating.pk).update(stars=Decimal("5.5"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.filter(pk=rating.pk).update(stars=Decimal("2.3"))


def test_an_import_marks_the_change_once_not_per_rating(fixtures_dir: Path, django_capture_on_commit_callbacks) -> None:
    from recommender.models import RecommenderState

    with django_capture_on_commit_callbacks() as callbacks:
        run_import(str(fixtures_dir / "ml-latest-small"))
    assert len(callbacks) == 1
    assert RecommenderState.current().num_changes == 6 + 7  # new movies + new ratings
    with django_capture_on_commit_callbacks() as callbacks:
        run_import(str(fixtures_dir / "ml-latest-small"))
    assert callbacks == []


def _line_numbers(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_lines_that_would_not_fit_the_columns_are_reported_and_the_rest_imports(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    from movies.models import Genre

    directory = copy_dataset(fixtures_dir, "ml-latest-small", tmp_path)
    movies, links, ratings = (directory / name for name in ("movies.csv", "links.csv", "ratings.csv"))
    first_bad_movie = _line_numbers(movies) + 1
    with movies.open("a", encoding="utf-8") as handle:
        handle.write(f'900,"{"Long " * 120}(2001)",Drama\n')  # title over 500 characters
        handle.write("99999999999,Huge Id (2001),Drama\n")  # id beyond a 32-bit integer
        handle.write(f"901,Odd Genre (2001),{'G' * 70}\n")  # genre name over 64 characters
        handle.write("902,Spelled Three Ways (2002),Comedy|comedy |Cömedy\n")
        handle.write("903,Another Comedy (2003),COMEDY\n")
    first_bad_link = _line_numbers(links) + 1
    with links.open("a", encoding="utf-8") as handle:
        handle.write(f"902,{'1' * 20},5\n")  # IMDb id over 16 characters
        handle.write("903,0113228,99999999999\n")  # TMDb id out of range
    first_bad_rating = _line_numbers(ratings) + 1
    with ratings.open("a", encoding="utf-8") as handle:
        handle.write("1,902,4.0,99999999999\n")  # a timestamp past year 2100
        handle.write("99999999999,902,4.0,964982703\n")  # user id out of range
        handle.write("3,903,4.0,964982703\n")  # fine
    output = run_import(str(directory))
    for file, first, count in (
        ("movies.csv", first_bad_movie, 3),
        ("links.csv", first_bad_link, 2),
        ("ratings.csv", first_bad_rating, 2),
    ):
        for line_no in range(first, first + count):
            assert f"{file}, line {line_no}:" in output, (file, line_no, output)
    assert "skipped 7 bad line(s)" in output
    comedy = [name for name in Genre.objects.values_list("name", flat=True) if name.casefold().strip() == "comedy"]
    assert comedy == ["Comedy"]  # one genre, however the file spells it
    assert list(Movie.objects.get(movielens_id=902).genres.values_list("name", flat=True)) == ["Comedy"]
    assert list(Movie.objects.get(movielens_id=903).genres.values_list("name", flat=True)) == ["Comedy"]
    assert Rating.objects.filter(movie__movielens_id=903).count() == 1


def test_users_that_would_not_fit_the_columns_are_reported(fixtures_dir: Path, tmp_path: Path) -> None:
    directory = copy_dataset(fixtures_dir, "ml-1m", tmp_path)
    users = directory / "users.dat"
    first = len(users.read_bytes().splitlines()) + 1
    with users.open("a", encoding="latin-1") as handle:
        handle.write("10::Male::25::1::12345\n")  # gender not one letter
        handle.write("11::F::999::1::12345\n")  # age out of range
        handle.write(f"12::M::25::1::{'9' * 20}\n")  # zip code over 16 characters
        handle.write("99999999999::M::25::1::12345\n")  # id out of range
        handle.write("13::M::25::1::12345\n")  # fine
    output = run_import(str(directory))
    for line_no in range(first, first + 4):
        assert f"users.dat, line {line_no}:" in output, output
    assert Profile.objects.filter(movielens_user_id=13).exists()


def test_a_failed_write_stops_the_reader_and_keeps_the_batches_before_it(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ratings are parsed in a thread ahead of the writer; when a write fails, the reader thread ends with the
    command, the batches written before stay, and nothing after the failed one is written."""
    import threading

    from movies import importing

    directory = copy_dataset(fixtures_dir, "ml-100k", tmp_path)
    written = []
    real_write = importing._write_rating_batch

    def write_twice_then_fail(records: list, *args: object) -> None:
        if len(written) == 2:
            raise RuntimeError("the database went away")
        written.append(len(records))
        real_write(records, *args)

    monkeypatch.setattr(importing, "_write_rating_batch", write_twice_then_fail)
    with pytest.raises(RuntimeError, match="went away"):
        run_import(str(directory), "--batch-size", "2")
    assert written == [2, 2]
    assert Rating.objects.count() == 4
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]


def test_an_import_writes_each_movies_co_rated_list_so_movie_pages_are_never_empty(fixtures_dir: Path) -> None:
    from movies.models import CoRatedMovie

    run_import(str(fixtures_dir / "ml-latest-small"))
    pairs = {(r.movie.movielens_id, r.neighbour.movielens_id) for r in CoRatedMovie.objects.select_related()}
    raters: dict[int, set] = {}
    for user, movie in Rating.objects.values_list("user_id", "movie__movielens_id"):
        raters.setdefault(movie, set()).add(user)
    expected = {(a, b) for a in raters for b in raters if a != b and raters[a] & raters[b]}
    assert pairs == expected and pairs  # every pair that shares a rater, and no other


def _with_tags(fixtures_dir: Path, tmp_path: Path, name: str = "ml-latest-small") -> Path:
    """The fixture data set plus people's tags (one bad line of each kind) and a tag genome."""
    directory = copy_dataset(fixtures_dir, "ml-latest-small", tmp_path)
    if name != "ml-latest-small":
        directory = directory.rename(tmp_path / name)
    (directory / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n"
        "1,1,time travel,964982703\n"
        "2,1,Time Travel,964982704\n"  # one tag, two people: spelling and case are not two tags
        "2,1,time travel,964982705\n"  # the same person twice counts once
        '3,5,"pixar, sort of",964982706\n'
        "3,99,orphan,964982707\n"  # no movie 99
        "3,5,   ,964982708\n",  # an empty tag
        encoding="utf-8",
    )
    if name == "ml-25m":
        (directory / "genome-tags.csv").write_text("tagId,tag\n1,time travel\n2,space\n3,quiet\n", encoding="utf-8")
        rows = [f"{movie},{tag},{0.1 * tag + 0.05 * movie:.3f}" for movie in range(1, 7) for tag in (1, 2, 3)]
        (directory / "genome-scores.csv").write_text(
            "movieId,tagId,relevance\n" + "\n".join(rows) + "\n1,9,0.5\n2,1,1.7\n", encoding="utf-8"
        )
    return directory


def test_tags_are_imported_once_per_movie_and_tag_and_bad_lines_reported(fixtures_dir: Path, tmp_path: Path) -> None:
    from movies.models import MovieTag

    output = run_import(str(_with_tags(fixtures_dir, tmp_path)))
    rows = {(r.movie.movielens_id, r.tag.name): r for r in MovieTag.objects.select_related("movie", "tag")}
    assert set(rows) == {(1, "time travel"), (5, "pixar, sort of")}
    assert rows[(1, "time travel")].num_people == 2 and rows[(1, "time travel")].relevance is None
    assert rows[(1, "time travel")].strength == pytest.approx(0.7)
    assert "tags.csv, line 6: movie 99 is not in the movies file" in output
    assert "tags.csv, line 7: empty tag" in output
    assert "tags     2 new, 0 changed, 0 unchanged" in output
    again = run_import(str(tmp_path / "ml-latest-small"))
    assert "tags     0 new, 0 changed, 2 unchanged" in again and MovieTag.objects.count() == 2


def test_the_tag_genome_keeps_each_movies_most_relevant_tags(fixtures_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from movies import importing
    from movies.models import MovieTag

    monkeypatch.setattr(importing, "GENOME_PER_MOVIE", 2)
    output = run_import(str(_with_tags(fixtures_dir, tmp_path, "ml-25m")), "--dataset", "ml-25m")
    kept = sorted(MovieTag.objects.filter(movie__movielens_id=1).values_list("tag__name", "relevance", "num_people"))
    # Movie 1's genome: time travel 0.15, space 0.25, quiet 0.35: the two best kept, people's tag beside them.
    assert kept == [("quiet", pytest.approx(0.35), 0), ("space", pytest.approx(0.25), 0), ("time travel", None, 2)]
    assert "genome-scores.csv, line 20: tag 9 is not in genome-tags.csv" in output
    assert "genome-scores.csv, line 21: relevance 1.7 is not between 0 and 1" in output


def test_an_old_account_holding_a_reserved_name_stops_the_import_with_a_clear_message(fixtures_dir: Path) -> None:
    squatter = get_user_model().objects.create_user("movielens-1", password="x-long-password-9")
    Profile.objects.create(user=squatter, source=Profile.Source.SITE)
    with pytest.raises(CommandError, match="movielens-1 hold names kept for imported MovieLens users"):
        call_command("import_movielens", str(fixtures_dir / "ml-100k"), "--no-progress", stdout=io.StringIO())
    squatter.refresh_from_db()
    assert squatter.profile.source == Profile.Source.SITE and not Rating.objects.filter(user=squatter).exists()


# Faults that need a real database server and real processes.


def write_ratings_dataset(directory: Path, num_users: int, num_movies: int, ratings_per_user: int) -> int:
    """A ml-latest-small-shaped folder with predictable ratings; returns the number of ratings."""
    directory.mkdir(parents=True, exist_ok=True)
    movies = ["movieId,title,genres"] + [
        f"{m},Generated Movie {m} ({1950 + m % 70}),Drama" for m in range(1, num_movies + 1)
    ]
    (directory / "movies.csv").write_text("\n".join(movies) + "\n")
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, num_users + 1):
        for k in range(ratings_per_user):
            movie = (user * 7 + k * 13) % num_movies + 1
            lines.append(f"{user},{movie},{(user + k) % 10 / 2 + 0.5},{1_000_000_000 + user * 1000 + k}")
    unique = {tuple(line.split(",")[:2]) for line in lines[1:]}
    (directory / "ratings.csv").write_text("\n".join(lines) + "\n")
    return len(unique)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_import_killed_mid_way_then_rerun_equals_a_clean_import(tmp_path: Path) -> None:
    expected = write_ratings_dataset(tmp_path / "ml-latest-small", num_users=300, num_movies=400, ratings_per_user=60)
    process = manage("import_movielens", str(tmp_path / "ml-latest-small"), "--batch-size", "500", "--no-progress")
    deadline = time.monotonic() + 60
    while Rating.objects.count() < 2000 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = Rating.objects.count()
    assert 0 < partial < expected
    assert partial % 500 == 0, "a killed import must leave only whole batches"
    rerun = manage("import_movielens", str(tmp_path / "ml-latest-small"), "--batch-size", "500", "--no-progress")
    out, err = rerun.communicate(timeout=90)
    assert rerun.returncode == 0, err
    assert Rating.objects.count() == expected
    assert Movie.objects.count() == 400
    assert f"ratings  {expected - partial} new, 0 changed, {partial} unchanged" in out


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_readers_never_see_half_a_batch(tmp_path: Path) -> None:
    expected = write_ratings_dataset(tmp_path / "ml-latest-small", num_users=200, num_movies=300, ratings_per_user=50)
    process = manage("import_movielens", str(tmp_path / "ml-latest-small"), "--batch-size", "250", "--no-progress")
    seen = set()
    while process.poll() is None:
        seen.add(Rating.objects.count())
        time.sleep(0.01)
    assert process.returncode == 0, process.stderr.read()
    seen.add(Rating.objects.count())
    assert len(seen) > 2, "the reader should have watched the import progress"
    assert all(count % 250 == 0 or count == expected for count in seen), sorted(seen)


@requires_mysql
@pytest.mark.django_db(transaction=True)
def test_import_fits_a_small_max_allowed_packet(tmp_path: Path) -> None:
    expected = write_ratings_dataset(tmp_path / "ml-latest-small", num_users=100, num_movies=500, ratings_per_user=200)
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
        (original,) = cursor.fetchone()
        cursor.execute("SET GLOBAL max_allowed_packet = 1048576")
    connection.close()  # the new limit applies to new sessions
    try:
        call_command(
            "import_movielens",
            str(tmp_path / "ml-latest-small"),
            "--batch-size",
            "20000",
            "--no-progress",
            stdout=StringIO(),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.max_allowed_packet")
            assert cursor.fetchone()[0] == 1048576
        assert Rating.objects.count() == expected
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET GLOBAL max_allowed_packet = {int(original)}")
        connection.close()


@requires_mysql
@pytest.mark.django_db
def test_four_byte_utf8_title_round_trips_on_mariadb(fixtures_dir: Path) -> None:
    call_command("import_movielens", str(fixtures_dir / "ml-latest-small"), "--no-progress", stdout=StringIO())
    assert Movie.objects.get(movielens_id=5).title == "Skyline 🚀 (2019)"
    assert Movie.objects.filter(title__contains="🚀").count() == 1


@requires_mysql
@pytest.mark.django_db
def test_ordinary_connections_cannot_read_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.tsv"
    secret.write_text("1\t2\n")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE probe (a INT, b INT)")
        with pytest.raises((OperationalError, NotSupportedError)):
            cursor.execute("LOAD DATA LOCAL INFILE %s INTO TABLE probe", [str(secret)])
    assert connection.settings_dict["OPTIONS"]["local_infile"] == 0


@requires_mysql
@pytest.mark.django_db(transaction=True)
def test_the_import_command_alone_stages_with_load_data_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from movies import importing

    expected = write_ratings_dataset(tmp_path / "ml-latest-small", num_users=20, num_movies=30, ratings_per_user=10)
    used = []
    original = importing._load_data_infile
    monkeypatch.setattr(
        importing, "_load_data_infile", lambda cursor, rows: used.append(original(cursor, rows)) or used[-1]
    )
    call_command("import_movielens", str(tmp_path / "ml-latest-small"), "--no-progress", stdout=StringIO())
    assert used and all(used), "the import's connection should allow LOAD DATA LOCAL"
    assert Rating.objects.count() == expected
    assert connection.settings_dict["OPTIONS"]["local_infile"] == 0, "and the option ends with the import"
