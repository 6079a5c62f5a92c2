"""A stand-in for the Hugging Face Hub on 127.0.0.1 (point `HF_ENDPOINT` at it): the parts of its HTTP API that
`huggingface_hub.snapshot_download`, `hf_hub_download` and transformers' `from_pretrained` use.

Repositories are given as files in memory, each revision a commit of its own; a file can be cut off on its
first download to test resuming. Every request is recorded as (method, path, Range header).
"""

import hashlib
import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.http_fixtures import in_thread
from vhs.data.released import MIRAGE_REPO

CLIP_REPO = "openai/clip-vit-large-patch14-336"


@dataclass
class HubRepo:
    """One repository: its type ("model" or "dataset"), and per revision name the files of that commit."""

    repo_type: str
    revisions: dict[str, dict[str, bytes]]
    default: str = "main"
    commits: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.commits = {
            name: hashlib.sha1(name.encode() + repr(sorted(files)).encode()).hexdigest() for name, files in self.revisions.items()
        }

    def files_at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """(commit, files) of a revision name or commit hash."""
        for name, commit in self.commits.items():
            if revision in (name, commit):
                return commit, self.revisions[name]
        return None


class FakeHub(ThreadingHTTPServer):
    """Serves `repos` (repo id -> HubRepo); `cut_first` names files whose first GET stops after half the bytes."""

    def __init__(self, repos: dict[str, HubRepo], cut_first: frozenset[str] = frozenset()) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos = repos
        self.cut_first = set(cut_first)
        self.requests: list[tuple[str, str, str | None]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def downloads(self, name: str) -> list[str | None]:
        """The Range header of every GET of a file whose path ends with `name`."""
        return [r for method, path, r in self.requests if method == "GET" and "/resolve/" in path and path.endswith(name)]


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _json(self, value: object) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _missing(self, what: str) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", "EntryNotFound" if "file" in what else "RepoNotFound")
        self.send_header("X-Error-Message", what)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _repo(self, parts: list[str], types: str) -> tuple[HubRepo, list[str]] | None:
        """The repository named by `parts[0:2]` (owner/name) if it has a type in `types`, and the parts after it."""
        repo = self.server.repos.get("/".join(parts[:2]))
        return (repo, parts[2:]) if repo is not None and repo.repo_type in types else None

    def _serve(self, body: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        range_header = self.headers.get("Range")
        self.server.requests.append((self.command, path, range_header))
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            repo_type = {"models": "model", "datasets": "dataset"}.get(parts[1])
            found = self._repo(parts[2:], (repo_type,)) if repo_type else None
            if found is None:
                return self._missing("repository not found")
            repo, rest = found
            if rest[:1] in (["revision"], ["tree"]) and len(rest) >= 2:
                at = repo.files_at(rest[1])
                if at is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RevisionNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                commit, files = at
                if rest[0] == "revision":
                    return self._json(
                        {"id": "/".join(parts[2:4]), "sha": commit, "siblings": [{"rfilename": f} for f in sorted(files)]}
                    )
                prefix = "/".join(rest[2:])
                listed = [f for f in sorted(files) if not prefix or f.startswith(prefix + "/")]
                return self._json([{"type": "file", "path": f, "size": len(files[f]), "oid": _blob_id(files[f])} for f in listed])
            return self._missing("endpoint not served")
        if parts[:1] == ["datasets"]:
            found, parts = self._repo(parts[1:], ("dataset",)), parts[1:]
        else:
            found = self._repo(parts, ("model",))
        if found is None or len(found[1]) < 3 or found[1][0] != "resolve":
            return self._missing("repository not found")
        repo, rest = found
        at = repo.files_at(rest[1])
        if at is None:
            return self._missing("revision not found")
        commit, files = at
        name = "/".join(rest[2:])
        data = files.get(name)
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        start = int(range_header.split("=")[1].split("-")[0]) if range_header else 0
        self.send_response(206 if range_header else 200)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{_blob_id(data)}"')
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if not body:
            return None
        if name in self.server.cut_first:
            self.server.cut_first.discard(name)
            self.wfile.write(data[start : start + (len(data) - start) // 2])
            self.wfile.flush()
            self.connection.close()
            return None
        self.wfile.write(data[start:])
        return None


def hub_serving(repos: dict[str, HubRepo], cut_first: frozenset[str] = frozenset()):
    """A FakeHub on 127.0.0.1, running for the duration of the block."""
    return in_thread(FakeHub(repos, cut_first))


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its path inside it."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def released_mirage(checkpoint: Path) -> dict[str, HubRepo]:
    """A checkpoint written by `write_official_mirage` as the Hub holds the release: under its repository id,
    naming its CLIP by the hub id, which serves the CLIP the checkpoint was written with."""
    config = json.loads((checkpoint / "config.json").read_text())
    files = folder_files(checkpoint) | {"config.json": json.dumps(config | {"mm_vision_tower": CLIP_REPO}).encode()}
    return {
        MIRAGE_REPO: HubRepo("model", {"main": files}),
        CLIP_REPO: HubRepo("model", {"main": folder_files(Path(config["mm_vision_tower"]))}),
    }
