"""Where vhs keeps data (everything under `$VHS_DATA`, default `./data`), and how it writes a file: whole or not at all."""

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def data_root() -> Path:
    """Return the root data directory, `$VHS_DATA` if set, else `./data`."""
    return Path(os.environ.get("VHS_DATA", "data"))


def response_cache_path() -> Path:
    """The response cache every run shares unless told otherwise: `$VHS_DATA/cache.sqlite`."""
    return data_root() / "cache.sqlite"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` for a writer to fill; when the block ends it is flushed to disk and renamed
    over `path`, and when the block raises it is removed, so `path` is never seen half written.

    The temporary name is unique per process and thread (two writers may race; the last rename wins) and keeps
    `path`'s suffix, for writers that add one (`np.save`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}-{threading.get_ident()}.part{path.suffix}")
    try:
        yield partial
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (`atomic_path`)."""
    with atomic_path(path) as partial:
        partial.write_bytes(data)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
