"""Title search latency at ml-32m's catalogue size (87,585 generated titles): the new search beside the old
`icontains` query on the same rows in one run, each as a whole in-process request with its rows; or, with
--movielens, ten real queries' top three before and after on a real catalogue. Writes bench/results/."""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

NUM_MOVIES = 87_585  # ml-32m
GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
REAL_QUERIES = [
    "The Matrix",
    "matrix",
    "star wars",
    "shawshenk",
    "godfater",
    "matrix 1999",
    "1984",
    "amelie",
    "lord of the rings",
    "spiderman",
    "2001",
    "the god",
]


def old_search(request: object) -> object:
    """The search main had before: `icontains` on the stored title, sorted by title (the API view's shape)."""
    from django.core.paginator import Paginator
    from django.http import JsonResponse

    from movies.models import Movie

    query = request.GET.get("q", "").strip()[:100]
    movies = Movie.objects.filter(title__icontains=query).order_by("title", "id").prefetch_related("genres")
    page = Paginator(movies, 24).get_page(1)
    return JsonResponse(
        {
            "count": page.paginator.count,
            "results": [
                {"movie_id": m.id, "title": m.title, "year": m.year, "genres": [g.name for g in m.genres.all()]}
                for m in page
            ],
        }
    )


def _urlpatterns() -> list:
    from django.urls import include, path

    return [path("bench/old-search/", old_search), path("", include("recsite.urls"))]


urlpatterns = _urlpatterns() if os.environ.get("SEARCH_BENCH_URLS") else []


def generated_titles(num: int, seed: int) -> list[tuple[str, int, list[str]]]:
    """MovieLens-shaped titles: Zipf-distributed made-up words, trailing articles, alternative titles in
    parentheses, sequels, a year skewed to recent decades; 1-3 genres each."""
    rng = np.random.default_rng(seed)
    syllables = [
        "ka",
        "ri",
        "mo",
        "ta",
        "len",
        "dor",
        "shi",
        "va",
        "ne",
        "gol",
        "tu",
        "bar",
        "si",
        "on",
        "el",
        "ran",
        "qu",
        "fi",
        "zo",
        "per",
        "lo",
        "min",
        "ha",
        "cre",
        "ust",
        "ty",
        "wen",
        "ax",
        "ri",
        "pa",
    ]
    vocabulary = ["".join(rng.choice(syllables, rng.integers(1, 4))) for _ in range(30_000)]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1) ** 1.05
    weights /= weights.sum()
    years = np.clip(np.round(2024 - rng.gamma(2.0, 14.0, num)), 1895, 2023).astype(int)
    titles = []
    for i in range(num):
        words = [vocabulary[j].capitalize() for j in rng.choice(len(vocabulary), rng.integers(1, 6), p=weights)]
        title = " ".join(words)
        if rng.random() < 0.05:
            title += f" {rng.choice(['2', '3', 'II', 'Part II'])}"
        if rng.random() < 0.10:
            title += f", {rng.choice(['The', 'The', 'The', 'A', 'La', 'Le', 'Les', 'Die', 'El'])}"
        if rng.random() < 0.10:
            title += f" ({' '.join(vocabulary[j] for j in rng.choice(len(vocabulary), rng.integers(1, 4), p=weights))})"
        genres = list(rng.choice(GENRES, rng.integers(1, 4), replace=False))
        titles.append((f"{title} ({years[i]})", int(years[i]), genres))
    return titles


def fill(num: int, seed: int) -> None:
    from django.db import transaction

    from movies import services, stats
    from movies.models import Genre, Movie
    from movies.titles import natural_title

    if Movie.objects.count() == num:
        return
    print(f"writing {num:,} generated movies...", file=sys.stderr, flush=True)
    Movie.objects.all().delete()
    rng = np.random.default_rng(seed + 1)
    genre_ids = {name: Genre.objects.get_or_create(name=name)[0].id for name in GENRES}
    counts = np.floor(rng.pareto(0.9, num) * 3).astype(int)  # a long tail: most movies have few ratings
    means = np.clip(rng.normal(3.4, 0.5, num), 0.5, 5.0)
    rows = generated_titles(num, seed)
    with transaction.atomic():
        for start in range(0, num, 5000):
            batch = []
            for i in range(start, min(num, start + 5000)):
                title, year, _ = rows[i]
                total = round(float(means[i]) * int(counts[i]), 1)
                batch.append(
                    Movie(
                        title=title,
                        display_title=natural_title(title),
                        year=year,
                        movielens_id=i + 1,
                        num_ratings=int(counts[i]),
                        stars_total=total,
                        mean_stars=float(means[i]) if counts[i] else None,
                        rated_score=stats.rated_score(total, int(counts[i]), 3.5),
                        popularity=stats.popularity(total, int(counts[i]), 3.5),
                    )
                )
            Movie.objects.bulk_create(batch)
        ids = dict(Movie.objects.values_list("movielens_id", "id"))
        through = Movie.genres.through
        links = [through(movie_id=ids[i + 1], genre_id=genre_ids[g]) for i, (_, _, gs) in enumerate(rows) for g in gs]
        through.objects.bulk_create(links, batch_size=10_000)
        services.note_catalogue_changed()
    from movies.importing import analyze_tables

    analyze_tables()  # as the import does after its bulk loads


def bench_queries(num: int, seed: int) -> list[str]:
    """What people type: whole titles, title starts as they type, words out of order, typos, a year, junk."""
    from movies.models import Movie
    from movies.titles import split_title

    rng = np.random.default_rng(seed + 2)
    sample = list(Movie.objects.order_by("-popularity").values_list("display_title", "year")[:5000])
    queries = []
    for k in range(num):
        title, year = sample[int(rng.integers(0, len(sample)))]
        words = split_title(title)[0].split()
        kind = k % 6
        if kind == 0:
            queries.append(" ".join(words))
        elif kind == 1:
            queries.append(" ".join(words)[: int(rng.integers(3, 9))])
        elif kind == 2:
            queries.append(" ".join(reversed(words)))
        elif kind == 3:
            word = max(words, key=len).lower()
            at = int(rng.integers(0, len(word)))
            queries.append(" ".join(w for w in words if w.lower() != word) + " " + word[:at] + word[at + 1 :])
        elif kind == 4:
            queries.append(f"{words[0]} {year}")
        else:
            queries.append("".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 7)))
    return queries


def percentiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(samples, 50)), 2),
        "p99_ms": round(float(np.percentile(samples, 99)), 2),
        "mean_ms": round(float(np.mean(samples)), 2),
        "n": len(samples),
    }


def run_latency(args: argparse.Namespace) -> dict:
    from django.test import Client
    from django.test.utils import override_settings

    from movies import search

    started = time.perf_counter()
    fill(args.movies, args.seed)
    fill_seconds = time.perf_counter() - started
    queries = bench_queries(args.queries, args.seed)
    client = Client()
    started = time.perf_counter()
    search.titles.clear()
    search.titles.get()
    build_seconds = time.perf_counter() - started
    timings: dict[str, list[float]] = {"search (api)": [], "suggest": [], "old icontains": []}
    urls = {"search (api)": "/api/movies/", "suggest": "/movies/suggest/", "old icontains": "/bench/old-search/"}
    with override_settings(ROOT_URLCONF="search_bench", ALLOWED_HOSTS=["testserver"]):
        for url in urls.values():  # warm-up
            client.get(url, {"q": "warm up"})
        for query in queries:  # interleaved, so machine noise falls on all three alike
            for name, url in urls.items():
                began = time.perf_counter()
                response = client.get(url, {"q": query})
                timings[name].append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, (url, query, response.status_code)
    checked = queries[:600]
    found = sum(1 for q in checked if search.search_ids(q))
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "database": _database(),
        "movies": args.movies,
        "queries": len(queries),
        "fill_seconds": round(fill_seconds, 1),
        "index_build_seconds": round(build_seconds, 2),
        "share_with_results": round(found / len(checked), 3),
        "latency": {name: percentiles(samples) for name, samples in timings.items()},
    }
    report["ratio_p50_old_over_new"] = round(
        report["latency"]["old icontains"]["p50_ms"] / report["latency"]["search (api)"]["p50_ms"], 2
    )
    return report


def _database() -> str:
    from django.db import connection

    return f"{connection.vendor} {connection.settings_dict['NAME']}"


def run_real(args: argparse.Namespace) -> dict:
    """Ten-odd real queries on an imported MovieLens catalogue: top three by the old query and by search."""
    from django.core.management import call_command

    from movies import selectors
    from movies.models import Movie

    if not Movie.objects.exists():
        call_command("import_movielens", args.movielens, verbosity=0)
    rows = []
    for query in REAL_QUERIES:
        old = list(
            Movie.objects.filter(title__icontains=query).order_by("title", "id").values_list("title", flat=True)[:3]
        )
        new = [f"{m.display_title} ({m.num_ratings} ratings)" for m in selectors.suggest_movies(query, 3)]
        rows.append({"query": query, "before": old, "after": new})
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "catalogue": args.movielens,
        "movies": Movie.objects.count(),
        "queries": rows,
    }


def format_latency(report: dict) -> str:
    lines = [
        f"Search latency, {report['movies']:,} movies ({report['database']}), {report['queries']} queries, "
        f"each a whole in-process request with its rows (measured {report['measured_at']})",
        "",
        "| path | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {v['p50_ms']} | {v['p99_ms']} | {v['mean_ms']} |" for name, v in report["latency"].items()]
    lines += [
        "",
        f"index build {report['index_build_seconds']} s per process (on first search and after a catalogue "
        f"change); {report['share_with_results']:.0%} of queries have results; "
        f"old/new p50 ratio {report['ratio_p50_old_over_new']}",
    ]
    return "\n".join(lines)


def format_real(report: dict) -> str:
    lines = [
        f"Top three before (icontains, by title) and after (search), {report['movies']:,} movies of "
        f"{Path(report['catalogue']).name}",
        "",
        "| query | before | after |",
        "|---|---|---|",
    ]
    lines += [
        f"| `{r['query']}` | {'<br>'.join(r['before']) or '(nothing)'} | {'<br>'.join(r['after']) or '(nothing)'} |"
        for r in report["queries"]
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--movies", type=int, default=NUM_MOVIES)
    parser.add_argument("--queries", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--movielens", help="a MovieLens folder: show real queries before/after instead")
    args = parser.parse_args()
    os.environ["SEARCH_BENCH_URLS"] = "1"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.movielens:
        report, stem, table = run_real(args), "search_queries", format_real
    else:
        report, stem, table = run_latency(args), "search", format_latency
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(table(report) + "\n")
    print(table(report))


if __name__ == "__main__":
    main()
