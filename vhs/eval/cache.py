"""A SQLite response cache (WAL mode) shared by all runs: resume after a crash, never pay twice.

The key is a hash of everything that determines an answer: backend, model id, generation
parameters, prompt text, and the content hash of every image in order. Each response is committed
as soon as it arrives, so a run killed at any point loses nothing it already paid for. API keys
are never part of a key or a row. Image content hashes are remembered too (by path, size and
modification time) so a re-run does not read every image again.
"""

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from vhs.models.base import Reply

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL, text TEXT NOT NULL,
    input_tokens INTEGER, output_tokens INTEGER, images_sent INTEGER, latency REAL, created REAL,
    kept TEXT
);
CREATE TABLE IF NOT EXISTS image_hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL
);
"""


def cache_key(identity: dict[str, Any], prompt: str, image_hashes: list[str]) -> str:
    """sha256 over the backend identity, the prompt and the ordered image hashes."""
    payload = json.dumps({"identity": identity, "prompt": prompt, "images": image_hashes}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """Thread-safe access to one cache file."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash in WAL mode
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
        if "kept" not in columns:  # a cache written before retrieving backends existed
            self._db.execute("ALTER TABLE responses ADD COLUMN kept TEXT")

    def get(self, key: str) -> tuple[Reply, float] | None:
        """The cached reply and its original latency, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT text, input_tokens, output_tokens, images_sent, latency, kept FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        kept = tuple(json.loads(row[5])) if row[5] is not None else None
        return Reply(text=row[0], input_tokens=row[1], output_tokens=row[2], images_sent=row[3] or 0, kept=kept), row[4]

    def put(self, key: str, identity: dict[str, Any], reply: Reply, latency: float) -> None:
        """Store one reply, committed at once."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, backend, model, text, input_tokens, output_tokens, images_sent, latency, created, kept)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key, identity["backend"], identity["model"], reply.text, reply.input_tokens, reply.output_tokens, reply.images_sent,
                    latency, time.time(), None if reply.kept is None else json.dumps(list(reply.kept)),
                ),
            )

    def count(self) -> int:
        """Number of cached responses."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def image_hash(self, path: Path) -> tuple[str, int]:
        """(sha256, size in bytes) of an image file, remembered by path, size and mtime."""
        stat = path.stat()
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, sha256 FROM image_hashes WHERE path = ?", (str(path),)).fetchone()
        if row and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return row[2], stat.st_size
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO image_hashes VALUES (?, ?, ?, ?)", (str(path), stat.st_size, stat.st_mtime_ns, digest))
        return digest, stat.st_size

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
