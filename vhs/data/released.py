"""The released VHs question files on the Hugging Face Hub (`tsunghanwu/visual_haystacks`): their layouts,
their download, and the manifest of what was fetched.

The dataset repository was laid out twice; the layout is read from the file paths, never from a flag:

- July 2024 (now `tsunghanwu/visual_haystacks_v0`): `{VHs_full,VHs_small}/{single,multi}_needle/visual_haystack_{N}.json`,
  image paths relative to the folder above `coco/` (`coco/val2017/…`).
- October 2024: `single_needle/{VHs_large,VHs_small}/…` and `multi_needle/{multi_needle_2,multi_needle_3}/…`,
  image paths relative to the COCO root (`val2017/…`); the needle-alone file is `visual_haystack_oracle.json`.

A file's subset (`VHs_large`, `multi_needle_2`, …) is part of its identity: two subsets hold questions of the
same size. `vhs data vhs-official` downloads through `huggingface_hub` into the Hub's own cache (resumable),
links the files under `--root` in their released paths, and writes `manifest.json` there: the repository, the
revision asked for, the commit it resolved to, the layout and each file's hash and question count. A later
fetch without `--revision` asks for the recorded commit, so a question set stays the one first fetched.
"""

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from vhs.errors import VhsError
from vhs.paths import data_root, sha256_of, write_atomically

REPO = "tsunghanwu/visual_haystacks"
MIRAGE_REPO = "tsunghanwu/mirage-llama3.1-8.3B"  # the released MIRAGE checkpoint (`vhs.mirage.official`)
# The Hub could not be reached from where this was written, so no commit is pinned here: a first fetch takes
# `main` and records the commit it resolved to (manifest.json); later fetches ask for that commit.
DEFAULT_REVISION = "main"
MANIFEST = "manifest.json"
ORACLE = "oracle"  # the file name's size label of the needle-alone set (one image)

_LAYOUTS = {
    "2024-10": re.compile(
        r"(?:^|/)(?P<mode>single|multi)_needle/(?P<subset>VHs_large|VHs_small|multi_needle_\d+)/"
        r"visual_haystack_(?P<size>oracle|\d+)\.json$"
    ),
    "2024-07": re.compile(
        r"(?:^|/)(?P<subset>VHs_full|VHs_small)/(?P<mode>single|multi)_needle/visual_haystack_(?P<size>oracle|\d+)\.json$"
    ),
}


@dataclass(frozen=True)
class ReleasedFile:
    """One question file of a release: its path, layout, subset, mode and size label (a number or "oracle")."""

    path: str
    layout: str
    subset: str
    mode: str
    size: str


def released_file(path: str | Path) -> ReleasedFile | None:
    """What a path in either released layout holds; None for any other file."""
    text = Path(path).as_posix()
    for layout, pattern in _LAYOUTS.items():
        match = pattern.search(text)
        if match:
            return ReleasedFile(text, layout, match["subset"], match["mode"], match["size"])
    return None


def released_files(paths: list[str]) -> list[ReleasedFile]:
    """The question files among `paths`, all of one layout (a mix of the two is an error)."""
    files = sorted((f for f in map(released_file, paths) if f is not None), key=lambda f: f.path)
    layouts = sorted({f.layout for f in files})
    if not files:
        raise VhsError("no released question file (…/visual_haystack_{N}.json in either released layout) found")
    if len(layouts) > 1:
        raise VhsError(f"files of both released layouts ({' and '.join(layouts)}) found; keep one")
    return files


def default_root() -> Path:
    """Where `vhs data vhs-official` puts the files by default: `$VHS_DATA/vhs-official`."""
    return data_root() / "vhs-official"


def read_manifest(root: Path) -> dict | None:
    """The manifest of a fetched release under `root`, if there is one."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def fetch_released(root: Path, repo: str = REPO, revision: str | None = None) -> dict:
    """Download the release's question files into the Hub's cache, link them under `root`, write and return the manifest."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    root = Path(root)
    recorded = read_manifest(root)
    asked = revision or (recorded["commit"] if recorded and recorded["repo"] == repo else DEFAULT_REVISION)
    try:
        snapshot = Path(snapshot_download(repo, repo_type="dataset", revision=asked, allow_patterns=["*.json"]))
    except HfHubHTTPError as exc:
        raise VhsError(f"cannot fetch {repo}@{asked}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:  # the connection dropped: what arrived is kept in the cache and resumed next time
        raise VhsError(f"download of {repo}@{asked} interrupted ({exc}); run the command again to resume") from None
    files = released_files([p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*.json")])
    listed = []
    for released in files:
        source, link = snapshot / released.path, root / released.path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(source, link)
        questions = len(json.loads(source.read_text(encoding="utf-8")))
        listed.append({**asdict(released), "bytes": source.stat().st_size, "sha256": sha256_of(source), "questions": questions})
    manifest = {
        "repo": repo,
        "revision": asked,
        "commit": snapshot.name,
        "layout": files[0].layout,
        "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": listed,
    }
    write_atomically(root / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest
