"""manage.py import_movielens against the test database (SQLite or MariaDB)."""
import shutil
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from movies.models import Movie, Profile, Rating

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
        handle.write("1\t4\t9\t881250960\n")       # line 9: rating out of range
        handle.write("2\t999\t3\t881250961\n")     # line 10: unknown movie
        handle.write("77\t1\t3\t881250962\n")      # line 11: unknown user
        handle.write("1\t4\n")                     # line 12: too few fields
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
    movies = (directory / "movies.csv").read_bytes().replace(b"Paper Moons (2001),Drama\r", b"Paper Moons (2002),Drama|War\r")
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
