"""Parsing MovieLens lines, without a database."""

from decimal import Decimal
from pathlib import Path

import pytest

from movies import movielens
from movies.movielens import LAYOUTS, BadLine, EncodingProblem


@pytest.mark.parametrize(
    ("title", "year"),
    [
        ("Toy Story (1995)", 1995),
        ("Babylon 5", None),
        ("Misérables, Les (1995)", 1995),
        ("Stranger Things (2016–2019)", 2016),
        ("Paper Moons (2001) ", 2001),
        ("1984 (1984)", 1984),
    ],
)
def test_year_comes_from_the_title_or_is_none(title: str, year: int | None) -> None:
    assert movielens.year_from_title(title) == year


def test_detects_each_layout_from_its_files(fixtures_dir: Path) -> None:
    for name in ("ml-100k", "ml-1m", "ml-latest-small"):
        assert movielens.detect_layout(fixtures_dir / name).name == name


def test_unknown_layout_lists_what_each_dataset_needs(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LookupError) as error:
        movielens.detect_layout(tmp_path)
    assert "u.item, u.data, u.user" in str(error.value)
    assert "movies.dat, ratings.dat, users.dat" in str(error.value)
    assert "movies.csv, ratings.csv" in str(error.value)


def test_latin1_titles_decode_exactly(fixtures_dir: Path) -> None:
    records = [
        r
        for r, _, _ in movielens.iter_records(fixtures_dir / "ml-1m/movies.dat", LAYOUTS["ml-1m"], "movies", "latin-1")
    ]
    assert records[0].title == "Misérables, Les (1995)"
    assert records[0].genres == ("Drama", "Musical")


def test_csv_with_crlf_and_quoted_commas(fixtures_dir: Path) -> None:
    layout = LAYOUTS["ml-latest-small"]
    records = [
        r for r, _, _ in movielens.iter_records(fixtures_dir / "ml-latest-small/movies.csv", layout, "movies", "utf-8")
    ]
    titles = [r.title for r in records]
    assert titles[0] == "Garden, The (1995)"
    assert titles[5] == "Night, Day, and Night (1999)"
    assert records[3].year is None and records[3].genres == ()
    assert not any("\r" in t for t in titles)


def test_utf8_reading_of_latin1_names_file_line_and_offset(fixtures_dir: Path) -> None:
    path = fixtures_dir / "ml-1m/movies.dat"
    with pytest.raises(EncodingProblem) as error:
        list(movielens.read_lines(path, "utf-8"))
    assert "movies.dat: line 1" in str(error.value)
    assert "byte offset 6" in str(error.value)  # "1::M" then 0xE9


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1\t2\t3", "expected 4 fields"),
        ("x\t2\t3\t881250949", "user id 'x' is not a whole number"),
        ("1\t2\t0\t881250949", "rating '0' is not a whole number 1-5"),
        ("1\t2\t6\t881250949", "rating '6'"),
        ("1\t2\tx\t881250949", "rating 'x'"),
        ("1\t2\t3.5\t881250949", "rating '3.5'"),
        ("1\t2\t3\tyesterday", "timestamp 'yesterday'"),
    ],
)
def test_bad_rating_lines_say_why(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "u.data"
    path.write_text("1\t1\t4\t881250949\n" + line + "\n")
    results = [r for r, _, _ in movielens.iter_records(path, LAYOUTS["ml-100k"], "ratings", "latin-1")]
    assert results[0].stars == Decimal(4)
    assert isinstance(results[1], BadLine) and results[1].line_no == 2
    assert reason in results[1].reason


def test_half_stars_only_where_the_dataset_has_them(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,1,0.5,1\n1,2,5.0,1\n1,3,5.5,1\n1,4,0,1\n")
    results = [r for r, _, _ in movielens.iter_records(path, LAYOUTS["ml-latest-small"], "ratings", "utf-8")]
    assert [r.stars for r in results[:2]] == [Decimal("0.5"), Decimal("5.0")]
    assert all(isinstance(r, BadLine) for r in results[2:])


def test_ml1m_users_get_occupation_names_and_age_groups(fixtures_dir: Path) -> None:
    users = [
        u for u, _, _ in movielens.iter_records(fixtures_dir / "ml-1m/users.dat", LAYOUTS["ml-1m"], "users", "latin-1")
    ]
    assert (users[0].gender, users[0].age_group, users[0].occupation) == ("F", "<18", "K-12 student")
    assert (users[1].age_group, users[1].occupation) == ("56+", "self-employed")
