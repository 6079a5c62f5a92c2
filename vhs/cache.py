"""A SQLite response cache (WAL mode) shared by all runs and processes: resume after a crash, never pay twice.

The key is a hash of everything that determines an answer: backend, model id, generation
parameters (canonical JSON, secrets left out by the backend), prompt text, and the content hash of
every image in order. Each response is committed as soon as it arrives, so a run killed at any point
loses nothing it already paid for. An empty reply (a refusal, an output cap hit before any answer) is
recorded with its stop reason but is not final: the next run asks again.

Several processes may share one file: before calling, a run *claims* the key (a row with a lease
that its owner renews while it works), and another run that finds a live claim answers other
questions first, then waits for that answer instead of paying for it. A claim whose owner died
(its process is gone, or its lease ran out) is taken over. `database is locked` past SQLite's busy
timeout is retried, never raised.

Batches submitted through a provider's batch API (`vhs eval --batch`) are remembered with the keys they
answer until their results are read back, so a run that was killed while it waited polls them again.

Image content hashes are remembered by path, inode, size and modification and change times; a file
changed within `RACY_SECONDS` of being hashed (`COARSE_RACY_SECONDS` where time stamps have no
sub-second part) is hashed again next time, since a rewrite inside the file system's timestamp
granularity can leave every one of those the same.
"""

import hashlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from vhs.errors import VhsError
from vhs.protocol import Reply

T = TypeVar("T")
# A file changed this soon after being hashed may have been changed again within one timestamp tick. Linux
# stamps files from a clock of ~4-10 ms ticks; a file system whose stamps have no sub-second part may tick
# at 1-2 s (FAT, ext3, some network mounts).
RACY_SECONDS = 0.05
COARSE_RACY_SECONDS = 2.0
LEASE_SECONDS = 60.0
LOCKED_GIVE_UP_SECONDS = 300.0  # a lock held this long is a stuck process, not contention

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL, text TEXT NOT NULL,
    input_tokens INTEGER, output_tokens INTEGER, images_sent INTEGER, latency REAL, created REAL,
    kept TEXT, stop_reason TEXT, reasoning TEXT, reasoning_tokens INTEGER, cost_usd REAL
);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY, inode INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL, hashed_ns INTEGER NOT NULL, sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT NOT NULL, endpoint TEXT NOT NULL, submitted REAL NOT NULL, ended REAL, PRIMARY KEY (id, endpoint)
);
CREATE TABLE IF NOT EXISTS batch_items (
    key TEXT NOT NULL, batch TEXT NOT NULL, endpoint TEXT NOT NULL, PRIMARY KEY (key, batch, endpoint)
);
DROP TABLE IF EXISTS image_hashes;
"""
ClaimState = Literal["claimed", "answered", "held"]


def cache_key(identity: dict[str, Any], prompt: str, image_hashes: list[str]) -> str:
    """sha256 over the backend identity, the prompt and the ordered image hashes (canonical JSON; no other objects)."""
    payload = json.dumps({"identity": identity, "prompt": prompt, "images": image_hashes}, sort_keys=True, allow_nan=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _owner_alive(owner: str) -> bool:
    """Whether a claim's owner may still be working: another host's always may; ours only while its process lives."""
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(rest.partition(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class ResponseCache:
    """Thread-safe access to one cache file."""

    def __init__(self, path: Path, busy_timeout: float = 10.0) -> None:
        path = Path(path)
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_timeout)
            self._locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash in WAL mode
            self._locked(lambda: self._db.executescript(_SCHEMA))
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
            added = {
                "kept": "TEXT",
                "stop_reason": "TEXT",
                "reasoning": "TEXT",
                "reasoning_tokens": "INTEGER",
                "cost_usd": "REAL",
            }
            for column, kind in added.items():  # a cache written by an earlier version
                if column not in columns:
                    self._locked(
                        lambda column=column, kind=kind: self._db.execute(f"ALTER TABLE responses ADD COLUMN {column} {kind}")
                    )
        except (OSError, sqlite3.Error) as exc:
            raise VhsError(f"cannot use {path} as the response cache: {exc}") from None

    def _locked(self, operation: Callable[[], T]) -> T:
        """Run one statement, retrying while another process holds the database past the busy timeout."""
        deadline = time.monotonic() + LOCKED_GIVE_UP_SECONDS
        pause = 0.05
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise VhsError(
                        f"{self.path} stayed locked for {LOCKED_GIVE_UP_SECONDS:.0f} s; is another process stuck?"
                    ) from None
                time.sleep(pause)
                pause = min(1.0, pause * 2)

    def _execute(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._locked(lambda: self._db.execute(sql, parameters).fetchall())

    def get(self, key: str) -> tuple[Reply, float] | None:
        """The cached final reply and its original latency, or None (never cached, or an empty reply to ask again)."""
        rows = self._execute(
            "SELECT text, input_tokens, output_tokens, images_sent, latency, kept, stop_reason, reasoning, reasoning_tokens,"
            " cost_usd FROM responses WHERE key = ?",
            (key,),
        )
        if not rows:
            return None
        text, input_tokens, output_tokens, images_sent, latency, kept, stop_reason, reasoning, reasoning_tokens, cost = rows[0]
        reply = Reply(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            images_sent=images_sent or 0,
            kept=tuple(json.loads(kept)) if kept is not None else None,
            stop_reason=stop_reason,
            reasoning=reasoning,
            reasoning_tokens=reasoning_tokens,
            cost_usd=cost,
        )
        return (reply, latency) if reply.is_final else None

    def put(self, key: str, identity: dict[str, Any], reply: Reply, latency: float) -> None:
        """Store one reply, committed at once."""
        kept = None if reply.kept is None else json.dumps(list(reply.kept))
        self._execute(
            "INSERT OR REPLACE INTO responses (key, backend, model, text, input_tokens, output_tokens, images_sent, latency,"
            " created, kept, stop_reason, reasoning, reasoning_tokens, cost_usd)"
            f" VALUES ({', '.join('?' * 14)})",
            (
                key,
                identity["backend"],
                identity["model"],
                reply.text,
                reply.input_tokens,
                reply.output_tokens,
                reply.images_sent,
                latency,
                time.time(),
                kept,
                reply.stop_reason,
                reply.reasoning,
                reply.reasoning_tokens,
                reply.cost_usd,
            ),
        )

    def record_batch(self, batch_id: str, endpoint: str, keys: list[str]) -> None:
        """Remember a batch just submitted to `endpoint` and the keys it answers, before waiting on it."""
        rows = [(key, batch_id, endpoint) for key in keys]

        def transaction() -> None:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, NULL)", (batch_id, endpoint, time.time()))
                self._db.executemany("INSERT OR IGNORE INTO batch_items VALUES (?, ?, ?)", rows)
            finally:
                self._db.execute("COMMIT")

        with self._lock:
            self._locked(transaction)

    def open_batches(self, endpoint: str, keys: list[str]) -> dict[str, tuple[float, list[str]]]:
        """The batches at `endpoint` not yet read back that answer any of `keys`: id -> (when submitted, those keys)."""
        found: dict[str, tuple[float, list[str]]] = {}
        for start in range(0, len(keys), 500):
            chunk = tuple(keys[start : start + 500])
            rows = self._execute(
                "SELECT b.id, b.submitted, i.key FROM batch_items i JOIN batches b ON b.id = i.batch AND b.endpoint = i.endpoint"
                f" WHERE b.endpoint = ? AND b.ended IS NULL AND i.key IN ({','.join('?' * len(chunk))})",
                (endpoint, *chunk),
            )
            for batch_id, submitted, key in rows:
                found.setdefault(batch_id, (submitted, []))[1].append(key)
        return found

    def end_batch(self, batch_id: str, endpoint: str) -> None:
        """Mark a batch read back: its answers are cached, its failures will be submitted again."""
        self._execute("UPDATE batches SET ended = ? WHERE id = ? AND endpoint = ?", (time.time(), batch_id, endpoint))

    def count(self) -> int:
        """Number of cached responses."""
        return self._execute("SELECT COUNT(*) FROM responses")[0][0]

    def claim(self, key: str, owner: str, lease: float = LEASE_SECONDS) -> ClaimState:
        """Claim `key` for `owner` before calling: "claimed" (call now), "answered" (a final reply is cached: read it),
        or "held" (another live owner is answering it)."""

        def transaction() -> ClaimState:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                answered = self._db.execute("SELECT text FROM responses WHERE key = ?", (key,)).fetchone()
                if answered and answered[0].strip():
                    return "answered"
                held = self._db.execute("SELECT owner, expires FROM claims WHERE key = ?", (key,)).fetchone()
                if held and held[0] != owner and held[1] > time.time() and _owner_alive(held[0]):
                    return "held"
                self._db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (key, owner, time.time() + lease))
                return "claimed"
            finally:
                self._db.execute("COMMIT")

        with self._lock:
            return self._locked(transaction)

    def release(self, key: str, owner: str) -> None:
        """Drop `owner`'s claim on `key` (answered, failed or given up)."""
        self._execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, owner))

    def renew(self, owner: str, lease: float = LEASE_SECONDS) -> None:
        """Extend every claim `owner` holds by `lease` seconds from now."""
        self._execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease, owner))

    def release_all(self, owner: str) -> None:
        """Drop every claim `owner` holds."""
        self._execute("DELETE FROM claims WHERE owner = ?", (owner,))

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (as far as no reader holds it), so later readers,
        in this process or another, read pages from the file instead of a long log."""
        self._execute("PRAGMA wal_checkpoint(PASSIVE)")

    def image_hashes(self, paths: list[Path]) -> list[tuple[str, int]]:
        """(sha256, size in bytes) of each image file, remembered by path, inode, size, mtime and ctime, looked up
        in one query per 500 files; FileNotFoundError for a missing file."""
        stats = [path.stat() for path in paths]
        remembered: dict[str, tuple] = {}
        for start in range(0, len(paths), 500):
            names = tuple(str(p) for p in paths[start : start + 500])
            marks = ",".join("?" * len(names))
            query = f"SELECT path, inode, size, mtime_ns, ctime_ns, hashed_ns, sha256 FROM file_hashes WHERE path IN ({marks})"
            remembered |= {row[0]: row[1:] for row in self._execute(query, names)}
        hashes, fresh = [], []
        for path, stat in zip(paths, stats):
            seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            racy = RACY_SECONDS if stat.st_ctime_ns % 1_000_000_000 else COARSE_RACY_SECONDS
            row = remembered.get(str(path))
            if row and row[:4] == seen and row[4] - stat.st_ctime_ns > racy * 1e9:
                hashes.append((row[5], stat.st_size))
                continue
            hashed_ns = time.time_ns()  # before reading, so a change during the read falls in the racy window
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            fresh.append((str(path), *seen, hashed_ns, digest))
            hashes.append((digest, stat.st_size))
        if fresh:
            with self._lock:
                self._locked(
                    lambda: self._db.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?, ?, ?)", fresh)
                )
        return hashes

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


class Claims:
    """This process's claims on the keys it is answering: one owner name, leases renewed in the background
    while the run works, every claim dropped when it ends (`with Claims(cache) as claims:`)."""

    def __init__(self, cache: ResponseCache, lease: float = LEASE_SECONDS) -> None:
        self.cache = cache
        self.lease = lease
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._done = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="vhs-claims", daemon=True)

    def _renew(self) -> None:
        while not self._done.wait(self.lease / 3):
            self.cache.renew(self.owner, self.lease)

    def __enter__(self) -> "Claims":
        self._renewer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.cache.release_all(self.owner)
        self.cache.checkpoint()

    def take(self, key: str) -> ClaimState:
        """Claim one key (see `ResponseCache.claim`)."""
        return self.cache.claim(key, self.owner, self.lease)

    def release(self, key: str) -> None:
        """Drop the claim on one key."""
        self.cache.release(key, self.owner)
