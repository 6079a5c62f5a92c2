"""`vhs data coco`: download COCO 2017 from its official addresses, resuming and verifying checksums.

Each archive is fetched into `NAME.part` with an HTTP Range request from where an earlier attempt
stopped, checked against its published MD5, extracted under the root, and then removed; a marker
file records the extraction so a second run does nothing.
"""

import hashlib
import http.client
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vhs.errors import VhsError

COCO_BASE_URL = "http://images.cocodataset.org/"
_BLOCK = 1 << 20


@dataclass(frozen=True)
class RemoteArchive:
    """A zip file at `base_url + path` with its published MD5."""

    path: str
    md5: str


# Published MD5 sums of the COCO 2017 archives (the same values in torchvision-style loaders and
# the COCO mirrors' checksum lists).
COCO_ARCHIVES: dict[str, RemoteArchive] = {
    "annotations": RemoteArchive("annotations/annotations_trainval2017.zip", "f4bbac642086de4f52a3fdda2de5fa2c"),
    "val2017": RemoteArchive("zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"),
    "train2017": RemoteArchive("zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2"),
}


def md5_of(path: Path) -> str:
    """MD5 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str, timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, resuming a partial `dest.part`, and verify its MD5."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if offset and response.status != 206:  # the server ignored the range: start over
                offset = 0
            total = response.length + offset if response.length is not None else None
            with (
                open(partial, "ab" if offset else "wb") as out,
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name) as bar,
            ):
                while block := response.read(_BLOCK):
                    out.write(block)
                    bar.update(len(block))
            if total is not None and partial.stat().st_size < total:
                raise http.client.IncompleteRead(b"", total - partial.stat().st_size)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to fetch: the partial file is complete
            pass
        else:
            raise VhsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        got = partial.stat().st_size if partial.exists() else 0
        raise VhsError(f"download of {url} interrupted after {got} bytes ({exc}); run the same command again to resume") from None
    actual = md5_of(partial)
    if actual != md5:
        partial.unlink()
        raise VhsError(f"checksum mismatch for {url}: expected md5 {md5}, got {actual}; the partial file was removed, run again")
    partial.replace(dest)
    return dest


def fetch_archive(
    root: Path, name: str, base_url: str = COCO_BASE_URL, archives: dict[str, RemoteArchive] = COCO_ARCHIVES
) -> None:
    """Download, verify and extract one archive under `root`, unless its marker says it is done."""
    marker = root / f".{name}.extracted"
    if marker.exists():
        return
    archive = archives[name]
    zip_path = download(base_url + archive.path, root / Path(archive.path).name, archive.md5)
    try:
        with zipfile.ZipFile(zip_path) as bundle:
            members = bundle.infolist()
            for member in tqdm(members, desc=f"extract {zip_path.name}", unit="file"):
                bundle.extract(member, root)
    except zipfile.BadZipFile:
        zip_path.unlink()
        raise VhsError(f"corrupt archive {zip_path.name}: not a zip file; it was removed, run again") from None
    marker.write_text(archive.md5 + "\n")
    zip_path.unlink()


def fetch_coco(
    root: Path,
    splits: tuple[str, ...] = ("val2017",),
    base_url: str = COCO_BASE_URL,
    archives: dict[str, RemoteArchive] = COCO_ARCHIVES,
) -> None:
    """Fetch the COCO 2017 annotations and the image archives of `splits` into `root`."""
    for name in splits:
        if name == "annotations" or name not in archives:
            raise VhsError(f"unknown COCO split {name!r}; use one of {', '.join(k for k in archives if k != 'annotations')}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in ("annotations", *splits):
        fetch_archive(root, name, base_url, archives)
