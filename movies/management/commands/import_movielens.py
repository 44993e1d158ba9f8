"""manage.py import_movielens: load a MovieLens data set (a folder, or the official download)."""

import sys
import time
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from movies import download, importing, movielens


class Command(BaseCommand):
    help = (
        "Import a MovieLens data set: movies (with genres, years, IMDb/TMDb ids), users and ratings.\n\n"
        "PATH is a folder holding one of these layouts (detected from its files, or named with --dataset):\n"
        + "\n".join(f"  {name:16} {layout.description}" for name, layout in movielens.LAYOUTS.items())
        + "\n\nWithout PATH, --dataset NAME downloads the official zip (checksum verified) into "
        "MOVIELENS_CACHE_DIR.\nRe-running an import writes only what changed. Bad lines are skipped and "
        "listed at the end;\n--strict stops at the first one instead, writing nothing of its batch."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", nargs="?", help="folder of an unpacked MovieLens data set")
        parser.add_argument(
            "--dataset",
            choices=sorted(movielens.LAYOUTS),
            help="the layout to expect; without PATH, the data set to download",
        )
        parser.add_argument("--encoding", help="override the data set's text encoding (ml-100k and ml-1m are latin-1)")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=50000,
            help="rows per transaction (default 50000); SQL statements are split to fit max_allowed_packet",
        )
        parser.add_argument("--strict", action="store_true", help="stop at the first bad line")
        parser.add_argument("--dry-run", action="store_true", help="read and validate every line, write nothing")
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="no progress bar (it is off anyway when stderr is not a terminal)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        directory = self._source(options["path"], options["dataset"])
        try:
            layout = movielens.detect_layout(directory, options["dataset"])
        except LookupError as error:
            raise CommandError(str(error)) from error
        import_options = importing.ImportOptions(
            encoding=options["encoding"],
            batch_size=options["batch_size"],
            is_strict=options["strict"],
            is_dry_run=options["dry_run"],
        )
        show_progress = not options["no_progress"] and options["verbosity"] > 0 and sys.stderr.isatty()
        bars: list[tqdm] = []
        started = time.monotonic()
        try:
            with importing.local_infile_connection():
                report = importing.import_movielens(
                    directory, layout, import_options, self._progress(bars) if show_progress else None
                )
        except (importing.StrictImportError, movielens.EncodingProblem) as error:
            raise CommandError(f"{error}. Nothing of the batch holding this line was written.") from error
        except (LookupError, importing.DatasetMismatch, importing.ReservedNameTaken) as error:
            raise CommandError(str(error)) from error
        finally:
            for bar in bars:
                bar.close()
        if options["verbosity"] > 0:
            self._summarise(report, time.monotonic() - started)

    def _source(self, path: str | None, dataset: str | None) -> Path:
        if path:
            directory = Path(path)
            if not directory.is_dir():
                raise CommandError(f"{directory} is not a directory.\n{movielens.expected_files_message(directory)}")
            return directory
        if not dataset:
            raise CommandError("give PATH (an unpacked data set) or --dataset NAME to download one")
        try:
            return download.fetch_dataset(dataset, settings.MOVIELENS_DOWNLOAD_URL, settings.MOVIELENS_CACHE_DIR)
        except download.DownloadError as error:
            raise CommandError(str(error)) from error

    def _progress(self, bars: list[tqdm]) -> Callable[[str, Path], Callable[[int], None]]:
        def start(table: str, path: Path) -> Callable[[int], None]:
            bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=table, file=sys.stderr, leave=False)
            bars.append(bar)
            return bar.update

        return start

    def _summarise(self, report: importing.ImportReport, seconds: float) -> None:
        mode = " (dry run: nothing written)" if report.dry_run else ""
        self.stdout.write(f"Imported {report.dataset} in {seconds:.1f} s{mode}")
        for name in ("movies", "users", "ratings", "tags"):
            counts = getattr(report, name)
            self.stdout.write(f"  {name:8} {counts}")
        if report.num_bad_lines:
            self.stdout.write(self.style.WARNING(f"  skipped {report.num_bad_lines} bad line(s); the first:"))
            for bad in report.bad_lines:
                self.stdout.write(f"    {bad}")
        if not report.dry_run and not report.is_changed:
            self.stdout.write("  Nothing changed: the database already matched these files.")
