import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.coco_fixtures import annotation, write_coco
from tests.http_fixtures import serving
from vhs.data.download import COCO_ARCHIVES, RemoteArchive, fetch_coco
from vhs.data.profiles import load_profile_catalog
from vhs.errors import VhsError


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def tiny_coco(tmp_path: Path) -> dict[str, bytes]:
    """Server paths -> bytes of a two-image COCO release laid out like the real one."""
    ann = write_coco(tmp_path / "src/instances_val2017.json", [1, 2], [annotation(1, 1, 18, area=500)])
    jpeg = io.BytesIO()
    Image.new("RGB", (100, 100), "white").save(jpeg, "JPEG")
    return {
        COCO_ARCHIVES["annotations"].path: zipped({"annotations/instances_val2017.json": ann.read_bytes()}),
        COCO_ARCHIVES["val2017"].path: zipped({f"val2017/{i:012d}.jpg": jpeg.getvalue() for i in (1, 2)}),
    }


def manifest(files: dict[str, bytes]) -> dict[str, RemoteArchive]:
    return {
        name: RemoteArchive(a.path, hashlib.md5(files[a.path]).hexdigest())
        for name, a in COCO_ARCHIVES.items()
        if a.path in files
    }


def test_real_addresses_stay_in_the_code() -> None:
    assert COCO_ARCHIVES["val2017"] == RemoteArchive("zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80")


def test_interrupted_download_resumes_and_verifies(tiny_coco: dict[str, bytes], tmp_path: Path) -> None:
    root = tmp_path / "coco"
    with serving(tiny_coco, cut_after=100) as server:
        with pytest.raises(VhsError, match=r"interrupted after 100 bytes .* run the same command again to resume"):
            fetch_coco(root, ("val2017",), server.base_url, manifest(tiny_coco))
        fetch_coco(root, ("val2017",), server.base_url, manifest(tiny_coco))
        assert ("annotations/annotations_trainval2017.zip", "bytes=100-") in server.requests
        catalog = load_profile_catalog("coco", root)
        assert catalog.image_ids.tolist() == [1, 2]
        assert catalog.image_path(2).is_file()
        assert not list(root.glob("*.zip")) and not list(root.glob("*.part"))
        done = len(server.requests)
        fetch_coco(root, ("val2017",), server.base_url, manifest(tiny_coco))
        assert len(server.requests) == done  # already extracted: nothing fetched again


def test_checksum_mismatch_removes_the_file(tiny_coco: dict[str, bytes], tmp_path: Path) -> None:
    wrong = {**manifest(tiny_coco), "annotations": RemoteArchive(COCO_ARCHIVES["annotations"].path, "0" * 32)}
    with (
        serving(tiny_coco) as server,
        pytest.raises(VhsError, match="checksum mismatch for .*annotations_trainval2017.zip: expected md5 0{32}"),
    ):
        fetch_coco(tmp_path, ("val2017",), server.base_url, wrong)
    assert not list(tmp_path.glob("*.part"))


def test_missing_file_and_unknown_split(tiny_coco: dict[str, bytes], tmp_path: Path) -> None:
    with serving({}) as server, pytest.raises(VhsError, match="HTTP 404"):
        fetch_coco(tmp_path, ("val2017",), server.base_url, manifest(tiny_coco))
    with pytest.raises(VhsError, match="unknown COCO split 'val2018'; use one of val2017, train2017"):
        fetch_coco(tmp_path, ("val2018",))
