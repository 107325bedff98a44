"""``python -m handlib book run|build|assets|check``; building the parser imports nothing heavy."""
from __future__ import annotations

from pathlib import Path

from handlib.errors import UsageError
from handlib.paths import REPO_ROOT
from handlib.profiles import DATASET_NAMES, PROFILE_NAMES


def _cmd_run(args) -> int:
    from handlib.book.chapters import resolve_chapters
    from handlib.book.run import run_chapters

    paths = resolve_chapters(args.chapter)
    from handlib.dataset_registry import get_dataset

    if not get_dataset(args.dataset).synthetic and not args.data_root:
        raise UsageError(f"--dataset {args.dataset} needs --data-root DIR (where its files are)")
    if args.data_root and not Path(args.data_root).is_dir():
        raise UsageError(f"--data-root {args.data_root!r} is not a directory")
    if args.profile == "book" and args.out is None:
        out_dir = None  # the committed outputs
    else:
        out_dir = Path(args.out or REPO_ROOT / "_build" / "executed" / args.profile)
    return run_chapters(paths, args.profile, args.dataset, args.data_root, out_dir)


def _cmd_build(args) -> int:
    from handlib.book.build import build_book

    return build_book(strict=not args.no_strict)


def _cmd_assets(args) -> int:
    from handlib.book.build import STATIC_DIR, prepare_static_assets

    prepare_static_assets(fetch=True)
    print(f"static assets ready in {STATIC_DIR}")
    return 0


def add_commands(sub) -> None:
    book = sub.add_parser("book", help="execute chapters, build the HTML book",
                          description="Execute the book's chapters and build the HTML book.")
    book_sub = book.add_subparsers(dest="book_command", metavar="ACTION", required=True)

    run = book_sub.add_parser(
        "run", help="execute chapters with papermill",
        description="Execute chapters with papermill. Profile 'book' rewrites the committed "
                    "outputs in place; other profiles write into --out "
                    "(default _build/executed/PROFILE).")
    run.add_argument("--profile", default="smoke", choices=PROFILE_NAMES,
                     help="run size (default: smoke)")
    run.add_argument("--chapter", action="append", metavar="NAME",
                     help="chapter to run (repeatable; default: all chapters in _toc.yml)")
    run.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES,
                     help="dataset the chapters train/evaluate on (default: synthetic)")
    run.add_argument("--data-root", metavar="DIR", help="folder holding the real dataset")
    run.add_argument("--out", metavar="DIR", help="where executed notebooks go")
    run.set_defaults(func=_cmd_run)

    build = book_sub.add_parser("build", help="build the HTML book into _build/html (offline)",
                                description="Build the HTML book from the stored outputs; "
                                            "never executes notebooks.")
    build.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    build.set_defaults(func=_cmd_build)

    assets = book_sub.add_parser("assets", help="fetch the offline JS assets (needs npm once)",
                                 description="Copy plotly.min.js and fetch the ipywidgets JS into "
                                             "book/_static so builds work offline.")
    assets.set_defaults(func=_cmd_assets)

    from handlib.book.check import add_check_command

    add_check_command(book_sub)
