"""The `vhs` command: `vhs synth`, `vhs data coco|vhs-official|mirage-official`, `vhs questions`,
`vhs eval`, `vhs train`, `vhs report`, `vhs redact`.

Every user error is one line on stderr and exit code 2; long steps show a tqdm bar on stderr.
"""

import argparse
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from vhs import parallel
from vhs.cache import ResponseCache
from vhs.data import questions as qs
from vhs.data.catalog import DEFAULT_MIN_AREA_FRAC
from vhs.data.download import COCO_BASE_URL, fetch_coco
from vhs.data.official import export_official, import_official, import_official_tree, official_profile
from vhs.data.profiles import PROFILES, load_profile_catalog
from vhs.data.released import MIRAGE_REPO, REPO, default_root, fetch_released
from vhs.errors import VhsError
from vhs.eval import distributed
from vhs.eval.retry import RetryPolicy
from vhs.eval.runner import RunInterrupted, RunOptions, evaluate, write_results
from vhs.metrics import SUMMARY_COLUMNS, summarize
from vhs.models.registry import redact
from vhs.paths import response_cache_path, sha256_of, write_atomically
from vhs.synth.scenes import write_synth_dataset
from vhs.zoo import trained


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit code 2), not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise VhsError(f"{self.prog}: {message}")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _cmd_synth(args: argparse.Namespace) -> None:
    path = write_synth_dataset(Path(args.out), args.images, args.seed, args.size, args.workers)
    print(f"wrote {args.images} scenes and {path}")


def _cmd_data_coco(args: argparse.Namespace) -> None:
    fetch_coco(Path(args.root), args.splits, base_url=args.mirror)
    print(f"COCO 2017 ({', '.join(args.splits)}) ready under {args.root}")


def _cmd_data_vhs_official(args: argparse.Namespace) -> None:
    root = Path(args.root) if args.root else default_root()
    manifest = fetch_released(root, args.repo, args.revision)
    questions = sum(f["questions"] for f in manifest["files"])
    print(
        f"{len(manifest['files'])} question files ({questions:,} questions, layout {manifest['layout']}) of "
        f"{manifest['repo']}@{manifest['commit'][:12]} under {root}"
    )


def _cmd_data_mirage_official(args: argparse.Namespace) -> None:
    from vhs.mirage.official import fetch_weights  # transformers, loaded only for this command

    checkpoint, clip = fetch_weights(args.model, args.revision)
    print(f"MIRAGE {args.model} at {checkpoint}; its CLIP at {clip}")


def _cmd_questions(args: argparse.Namespace) -> None:
    source = Path(args.import_official) if args.import_official else None
    if source is not None and not source.exists():
        raise VhsError(f"official question file or folder not found: {source}")
    # Released files name COCO images: importing one needs no --profile, unless it is our export of synth questions.
    profile = args.profile or (official_profile(source) if source is not None else "synth")
    catalog = load_profile_catalog(profile, args.data, args.min_area_frac, args.exclude)
    if source is not None:
        if not args.out:
            raise VhsError("--import-official needs --out FILE.jsonl")
        if source.is_dir():
            records = import_official_tree(catalog, source, args.seed, args.mode, args.sizes or ())
        else:
            records = import_official(catalog, source, args.seed)
    else:
        mode = args.mode or "single"
        sizes = args.sizes or (qs.SINGLE_SIZES if mode == "single" else qs.MULTI_SIZES)
        records = qs.build_question_set(catalog, mode, sizes, args.per_size, args.seed, args.needles)
    if not args.out and not args.export_official:
        raise VhsError("nothing to write: give --out FILE.jsonl and/or --export-official DIR")
    if args.out:
        count = qs.write_jsonl(records, Path(args.out))
        print(f"wrote {count} questions to {args.out} (sha256 {sha256_of(Path(args.out))})")
        records = qs.read_jsonl(Path(args.out))
    if args.export_official:
        written = export_official(catalog, records, Path(args.export_official))
        print(f"wrote {len(written)} official-format files under {args.export_official}")


def _print_summary(table: pd.DataFrame) -> None:
    columns = [
        "model",
        "mode",
        "size",
        "questions",
        "scored",
        "accuracy",
        "ci_low",
        "ci_high",
        "compliance",
        "not_answerable",
        "errors",
        "truncated",
    ]
    summary = summarize(table)
    if summary["reasoning_tokens"].notna().any():  # reasoning models: the mean thinking spent per question
        columns.append("reasoning_tokens")
    if summary["cost_usd"].notna().any():  # paid models: what their answers cost when they were asked
        columns.append("cost_usd")
    dollars = {"cost_usd": lambda v: "" if pd.isna(v) else f"${v:.4f}"}
    print(summary[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}", formatters=dollars))


def _writable_file(path: Path) -> Path:
    """`path` if a file can be written there (its folder exists and takes a new file), else a VhsError."""
    if path.is_dir():
        raise VhsError(f"--out {path} is a directory; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise VhsError(f"--out {path}: the folder {folder} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise VhsError(f"--out {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    return path


def _cmd_eval(args: argparse.Namespace) -> None:
    options = RunOptions(
        args.concurrency,
        args.limit,
        args.position,
        RetryPolicy(max_attempts=args.max_attempts),
        args.data,
        args.max_requests,
        max_usd=args.max_usd,
        batch=args.batch,
        poll_seconds=args.poll_seconds,
    )
    out = _writable_file(Path(args.out))
    questions = list(qs.read_jsonl(Path(args.questions)))
    if not questions:
        raise VhsError(f"{args.questions} holds no questions")
    ranks = parallel.launched()
    if ranks is None:
        table = _evaluate(args, questions, options)
    else:
        table = _evaluate_ranked(args, questions, options, ranks)
        if table is None:  # not rank 0: rank 0 writes the table and reports
            return
    write_results(table, out)
    counts = table["status"].value_counts().to_dict()
    print(f"wrote {len(table)} results to {out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    _print_summary(table)


def _evaluate(args: argparse.Namespace, questions: list[dict], options: RunOptions) -> pd.DataFrame:
    cache = ResponseCache(args.cache or response_cache_path())
    try:
        return evaluate(args.model, questions, cache, options)
    finally:
        cache.close()


def _evaluate_ranked(
    args: argparse.Namespace, questions: list[dict], options: RunOptions, ranks: parallel.Ranks
) -> pd.DataFrame | None:
    """This rank's share answered, then every rank's rows on rank 0 (None elsewhere)."""
    parallel.join(ranks)
    try:
        mine, shared = distributed.share(questions, options, ranks)
        print(f"rank {ranks.rank} of {ranks.world}: {len(mine)} of {len(questions)} questions", file=sys.stderr)
        table, error = None, None
        try:
            table = _evaluate(args, mine, shared)
        except VhsError as exc:  # reported through the gather, so that no rank waits for it
            error = str(exc)
        return distributed.gather(table, error, ranks)
    finally:
        parallel.leave()


def _read_results(path: Path) -> pd.DataFrame:
    """A results table written by `vhs eval`, or a VhsError saying why the file is not one."""
    if not path.is_file():
        raise VhsError(f"results file not found: {path}")
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own types for a corrupt or foreign file
        raise VhsError(f"{path} is not a readable Parquet file ({type(exc).__name__})") from None
    missing = [c for c in SUMMARY_COLUMNS if c not in table.columns]
    if missing:
        raise VhsError(
            f"{path} is not a vhs results table: it lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
        )
    if table.empty:
        raise VhsError(f"{path} holds no results")
    return table


def _cmd_report(args: argparse.Namespace) -> None:
    table = pd.concat([_read_results(p) for p in [Path(args.results), *map(Path, args.more)]], ignore_index=True)
    _print_summary(table)


def _cmd_redact(args: argparse.Namespace) -> None:
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise VhsError(f"file not found: {path}")
        text = path.read_text(encoding="utf-8")
        clean = redact(text)
        if clean != text:
            write_atomically(path, clean.encode("utf-8"))


def _cmd_train(args: argparse.Namespace) -> None:
    if args.all == bool(args.name):
        raise VhsError("give a model NAME with --out DIR, or --all with --runs DIR")
    if args.all and args.profile != "synth":
        raise VhsError("--all trains the synth profile's models; train the coco MIRAGE by name")
    if args.name and not args.out:
        raise VhsError(f"vhs train {args.name} needs --out DIR")
    from vhs.mirage.hub import HubMirageConfig
    from vhs.training import train_all, train_model  # torch is imported only by the commands that need it

    if args.all:
        done = train_all(Path(args.runs), args.steps, args.seed)
        print(f"trained {', '.join(done)} under {args.runs}" if done else f"every model under {args.runs} is up to date")
        return
    hub = HubMirageConfig(**{k: v for k, v in (("vision", args.vision), ("lm", args.lm)) if v})
    ranks = parallel.launched()  # under torchrun: data-parallel, the ranks' gradients averaged at each step
    if ranks is not None:
        parallel.join(ranks)
    try:
        out = train_model(args.name, Path(args.out), args.steps, args.seed, profile=args.profile, hub=hub)
    finally:
        parallel.leave()
    if ranks is None or ranks.leader:
        print(f"trained {args.name} -> {out}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `vhs` command."""
    parser = _Parser(prog="vhs", description="Visual Haystacks and MIRAGE, reproduced.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    synth = sub.add_parser("synth", help="write a synthetic COCO-format data set")
    synth.add_argument("--out", required=True, help="output directory (images/ and annotations.json)")
    synth.add_argument("--images", type=int, default=1000, help="number of scenes (default 1000)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    synth.add_argument("--workers", type=int, default=None, help="processes (default: the CPU count)")
    synth.set_defaults(run=_cmd_synth)

    data = sub.add_parser("data", help="download data sets")
    data_sub = data.add_subparsers(dest="dataset", required=True, parser_class=_Parser)
    coco = data_sub.add_parser("coco", help="download COCO 2017 images and annotations")
    coco.add_argument("--root", required=True, help="where to put annotations/, val2017/, train2017/")
    coco.add_argument("--splits", type=_name_list, default=("val2017",), help="comma-separated (default val2017)")
    coco.add_argument("--mirror", default=COCO_BASE_URL, help=f"base URL of the archives (default {COCO_BASE_URL})")
    coco.set_defaults(run=_cmd_data_coco)
    released = data_sub.add_parser("vhs-official", help="download the released VHs question files from the Hugging Face Hub")
    released.add_argument("--root", default=None, help="where to link the files and manifest (default $VHS_DATA/vhs-official)")
    released.add_argument("--revision", default=None, help="a branch, tag or commit (default: the one recorded, else main)")
    released.add_argument("--repo", default=REPO, help=f"the dataset repository (default {REPO}; the July-2024 one: {REPO}_v0)")
    released.set_defaults(run=_cmd_data_vhs_official)
    weights = data_sub.add_parser("mirage-official", help="download the released MIRAGE-8.3B and its CLIP into the Hub's cache")
    weights.add_argument("--model", default=MIRAGE_REPO, help="hub id or folder of the checkpoint")
    weights.add_argument("--revision", default=None, help="a branch, tag or commit of the checkpoint (default main)")
    weights.set_defaults(run=_cmd_data_mirage_official)

    questions = sub.add_parser("questions", help="build a VHs question set")
    questions.add_argument(
        "--profile", choices=PROFILES, default=None, help="default synth; with --import-official, the one its images name"
    )
    questions.add_argument("--mode", choices=qs.MODES, default=None, help="single (default) or multi")
    questions.add_argument("--sizes", type=_int_list, default=None, help="comma-separated haystack sizes (default: the paper's)")
    questions.add_argument("--per-size", type=int, default=1000, help="questions per size, even (default 1000, as the paper)")
    questions.add_argument(
        "--needles", type=_int_list, default=qs.DEFAULT_NEEDLE_COUNTS, help="multi mode: needle counts (default 2,3)"
    )
    questions.add_argument("--seed", type=int, default=0)
    questions.add_argument("--out", default=None, help="output JSON-lines file")
    questions.add_argument(
        "--data", type=Path, default=None, help="data directory (default: the profile's place under $VHS_DATA)"
    )
    questions.add_argument(
        "--min-area-frac", type=float, default=DEFAULT_MIN_AREA_FRAC, help="visibility threshold (default 0.01)"
    )
    questions.add_argument("--exclude", type=_name_list, default=(), help="comma-separated categories never used")
    questions.add_argument("--export-official", default=None, metavar="DIR", help="also write the released benchmark's layout")
    questions.add_argument(
        "--import-official",
        default=None,
        metavar="PATH",
        help="read a released visual_haystack_{N}.json, or every one under a folder (of --mode and --sizes, if given)",
    )
    questions.set_defaults(run=_cmd_questions)

    run = sub.add_parser("eval", help="run a model over a question set")
    run.add_argument("--model", required=True, help="NAME[:MODEL_ID][@BASE_URL][?key=value&...], e.g. oracle, openai:gpt-4o")
    run.add_argument("--questions", required=True, help="question file (JSON lines)")
    run.add_argument("--out", required=True, help="results table (Parquet)")
    run.add_argument("--cache", type=Path, default=None, help="response cache (default $VHS_DATA/cache.sqlite)")
    run.add_argument("--concurrency", type=int, default=4, help="parallel calls for API backends (default 4)")
    run.add_argument("--limit", type=int, default=None, help="only the first N questions")
    run.add_argument("--position", default=None, help="move the needle: first, middle, last or an index")
    run.add_argument("--max-attempts", type=int, default=5, help="calls per question before giving up (default 5)")
    run.add_argument("--data", type=Path, default=None, help="data directory of the questions' data set")
    run.add_argument("--max-requests", type=int, default=None, help="send at most N requests; the rest are marked not_run")
    run.add_argument(
        "--max-usd", type=float, default=None, help="spend at most X dollars (by list price, each call at its worst case)"
    )
    run.add_argument("--batch", action="store_true", help="send through the provider's batch API: half price, within 24 h")
    run.add_argument("--poll-seconds", type=float, default=30.0, help="with --batch: seconds between polls (default 30)")
    run.set_defaults(run=_cmd_eval)

    train = sub.add_parser("train", help="train a synth model on the CPU, or (--profile coco) MIRAGE on CLIP + a hub LM")
    train.add_argument("name", nargs="?", help=f"one of {', '.join(m.name for m in trained())}")
    train.add_argument("--all", action="store_true", help="every model missing or older than the one it builds on, under --runs")
    train.add_argument("--runs", default="runs", help="with --all: the checkpoints' root (default runs)")
    train.add_argument("--profile", choices=PROFILES, default="synth")
    train.add_argument("--out", help="checkpoint directory (config.json, model.safetensors, curve.json)")
    train.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the model's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--vision", help="coco MIRAGE: the CLIP vision tower (default openai/clip-vit-large-patch14-336)")
    train.add_argument("--lm", help="coco MIRAGE: the instruct LM (default Qwen/Qwen2.5-0.5B-Instruct)")
    train.set_defaults(run=_cmd_train)

    scrub = sub.add_parser(
        "redact", help="replace secret option values in model specs (?api_key=...) by *** in files, such as executed notebooks"
    )
    scrub.add_argument("files", nargs="+", help="text files to rewrite in place")
    scrub.set_defaults(run=_cmd_redact)

    report = sub.add_parser("report", help="print accuracy with intervals from results tables")
    report.add_argument("results", help="a results table (Parquet)")
    report.add_argument("more", nargs="*", help="more results tables to combine")
    report.set_defaults(run=_cmd_report)
    return parser


def _exit_interrupted(message: str) -> int:
    """Say why, then exit 130: at once (no thread joined, no traceback) while calls are still in flight."""
    print(f"vhs: {message}", file=sys.stderr)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(130)  # every answer already received is committed to the cache; nothing else is owed
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vhs` console script; returns the exit code. SIGTERM stops a run as Ctrl-C does."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if in_main_thread else None
    try:
        args = build_parser().parse_args(argv)
        command: Callable[[argparse.Namespace], None] = args.run
        command(args)
    except VhsError as exc:
        print(f"vhs: error: {exc}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        return _exit_interrupted(str(exc))
    except KeyboardInterrupt:
        return _exit_interrupted("interrupted")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
