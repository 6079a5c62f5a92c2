"""The released VHs question files: `vhs data vhs-official` against a stand-in Hub on 127.0.0.1 serving both
layouts, and the import and export rules a new user of the official files meets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.coco_fixtures import write_coco_dataset
from tests.fake_hub import HubRepo, hub_serving
from vhs.book import chapter_questions
from vhs.cli import main
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.data.official import export_official, import_official, import_official_tree, official_profile
from vhs.data.profiles import load_profile_catalog
from vhs.data.released import REPO, default_root, released_file, released_files
from vhs.errors import VhsError

SINGLE = "For the image with a person, is there a dog?"
MULTI = "For all images with an apple, do all of them contain a dog?"


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`$VHS_DATA` holding a 30-image COCO-shaped val2017 at `coco/`."""
    data = tmp_path_factory.mktemp("data")
    write_coco_dataset(data / "coco", images=30)
    return data


@pytest.fixture(scope="module")
def catalog(coco: Path) -> Catalog:
    return load_profile_catalog("coco", coco / "coco")


def entries(catalog: Catalog, question: str, size: int, count: int, needles: int = 1, prefix: str = "") -> list[dict]:
    """`count` released entries of `size` images (paths as the release writes them, `prefix` before each)."""
    paths = [prefix + p for p in catalog.paths]
    return [
        {
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": "Yes" if i % 2 else "No"}],
            "pos_image": paths[i : i + needles],
            "neg_image": paths[i + needles : i + size],
        }
        for i in range(count)
    ]


def layouts(catalog: Catalog) -> dict[str, dict[str, bytes]]:
    """The two released layouts, a few tiny files each, plus files that are not questions."""

    def dump(value: list[dict]) -> bytes:
        return json.dumps(value).encode()

    october = {
        "single_needle/VHs_large/visual_haystack_oracle.json": dump(entries(catalog, SINGLE, 1, 4)),
        "single_needle/VHs_large/visual_haystack_3.json": dump(entries(catalog, SINGLE, 3, 4)),
        "single_needle/VHs_small/visual_haystack_3.json": dump(entries(catalog, SINGLE, 3, 2)),
        "multi_needle/multi_needle_2/visual_haystack_5.json": dump(entries(catalog, MULTI, 5, 2, needles=2)),
        "README.md": b"# Visual Haystacks",
        ".gitattributes": b"*.json filter=lfs",
    }
    july = {
        "VHs_full/single_needle/visual_haystack_3.json": dump(entries(catalog, SINGLE, 3, 4, prefix="coco/")),
        "VHs_small/single_needle/visual_haystack_3.json": dump(entries(catalog, SINGLE, 3, 2, prefix="coco/")),
        "VHs_full/multi_needle/visual_haystack_5.json": dump(entries(catalog, MULTI, 5, 2, needles=2, prefix="coco/")),
        "README.md": b"# Visual Haystacks (v0)",
    }
    return {"2024-10": october, "2024-07": july}


def vhs(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    """The `vhs` command in a process of its own, as a user runs it (the Hub's endpoint is read at import)."""
    return subprocess.run([sys.executable, "-m", "vhs.cli", *argv], env=env, capture_output=True, text=True)


@pytest.mark.parametrize(("layout", "repo"), [("2024-10", REPO), ("2024-07", f"{REPO}_v0")])
def test_vhs_data_vhs_official_downloads_either_layout_and_records_it(
    layout: str, repo: str, coco: Path, catalog: Catalog, tmp_path: Path
) -> None:
    files = layouts(catalog)[layout]
    hub = {repo: HubRepo("dataset", {"main": files, "v1": {"README.md": b"old"}})}
    name = next(f for f in files if f.endswith("visual_haystack_3.json"))
    with hub_serving(hub, cut_first=frozenset({name})) as server:
        env = os.environ | {"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf"), "VHS_DATA": str(coco)}
        env.pop("HF_HUB_OFFLINE", None)
        root = tmp_path / "released"
        fetched = vhs(env, "data", "vhs-official", "--root", str(root), "--repo", repo)
        assert fetched.returncode == 0, fetched.stderr
        manifest = json.loads((root / "manifest.json").read_text())
        first_requests = len(server.requests)
        again = vhs(env, "data", "vhs-official", "--root", str(root), "--repo", repo)
    questions = [f for f in files if f.endswith(".json")]
    assert manifest["layout"] == layout and manifest["repo"] == repo and manifest["revision"] == "main"
    assert [f["path"] for f in manifest["files"]] == sorted(questions)
    assert {f["path"]: f["questions"] for f in manifest["files"]} == {f: len(json.loads(files[f])) for f in questions}
    assert all((root / f).read_bytes() == files[f] for f in questions)  # whole, though the first download was cut off
    assert len(server.downloads(name)) == 2
    # the second fetch asks for the commit the first one resolved, not for main again
    assert again.returncode == 0 and f"{repo}@{manifest['commit'][:12]}" in again.stdout
    assert not any(path.endswith("/revision/main") for _, path, _ in server.requests[first_requests:])
    assert json.loads((root / "manifest.json").read_text())["revision"] == manifest["commit"]
    # every released file imports, whatever the layout, with the profile inferred from its image paths
    out = tmp_path / "q.jsonl"
    imported = vhs(env, "questions", "--import-official", str(root), "--out", str(out))
    assert imported.returncode == 0, imported.stderr
    records = list(qs.read_jsonl(out))
    assert len(records) == sum(len(json.loads(files[f])) for f in questions)
    assert len({r["qid"] for r in records}) == len(records)


def test_a_revision_the_hub_does_not_have_is_one_line(coco: Path, catalog: Catalog, tmp_path: Path) -> None:
    hub = {REPO: HubRepo("dataset", {"main": layouts(catalog)["2024-10"]})}
    with hub_serving(hub) as server:
        env = os.environ | {"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf")}
        env.pop("HF_HUB_OFFLINE", None)
        result = vhs(env, "data", "vhs-official", "--root", str(tmp_path / "r"), "--revision", "nope")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and f"cannot fetch {REPO}@nope" in result.stderr


def test_the_layout_is_read_from_the_paths() -> None:
    october = released_file("single_needle/VHs_small/visual_haystack_oracle.json")
    july = released_file("VHs_qa/VHs_full/multi_needle/visual_haystack_10.json")
    assert (october.layout, october.subset, october.mode, october.size) == ("2024-10", "VHs_small", "single", "oracle")
    assert (july.layout, july.subset, july.mode, july.size) == ("2024-07", "VHs_full", "multi", "10")
    assert released_file("multi_needle/multi_needle_3/visual_haystack_5.json").subset == "multi_needle_3"
    assert released_file("README.md") is None
    with pytest.raises(VhsError, match="both released layouts"):
        released_files(["single_needle/VHs_large/visual_haystack_2.json", "VHs_full/single_needle/visual_haystack_2.json"])
    with pytest.raises(VhsError, match="no released question file"):
        released_files(["README.md"])


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_two_subsets_of_one_size_keep_apart(catalog: Catalog, tmp_path: Path) -> None:
    root = write_tree(tmp_path, layouts(catalog)["2024-10"])
    large = list(import_official(catalog, root / "single_needle/VHs_large/visual_haystack_3.json", 0))
    small = list(import_official(catalog, root / "single_needle/VHs_small/visual_haystack_3.json", 0))
    assert [q["qid"] for q in small] == ["official-VHs_small-single-3-0000", "official-VHs_small-single-3-0001"]
    assert not {q["qid"] for q in large} & {q["qid"] for q in small}
    (oracle,) = {q["size"] for q in import_official(catalog, root / "single_needle/VHs_large/visual_haystack_oracle.json", 0)}
    assert oracle == 1


def test_july_paths_under_coco_resolve_to_the_same_images(catalog: Catalog, tmp_path: Path) -> None:
    july = write_tree(tmp_path / "july", layouts(catalog)["2024-07"])
    october = write_tree(tmp_path / "october", layouts(catalog)["2024-10"])
    old = list(import_official(catalog, july / "VHs_full/single_needle/visual_haystack_3.json", 0))
    new = list(import_official(catalog, october / "single_needle/VHs_large/visual_haystack_3.json", 0))
    assert [q["image_ids"] for q in old] == [q["image_ids"] for q in new]
    assert official_profile(july) == official_profile(october) == "coco"


def test_a_folder_imports_by_mode_and_size(catalog: Catalog, tmp_path: Path) -> None:
    root = write_tree(tmp_path, layouts(catalog)["2024-10"])
    assert len(list(import_official_tree(catalog, root, 0))) == 12
    assert {q["size"] for q in import_official_tree(catalog, root, 0, mode="single", sizes=(1,))} == {1}
    assert {q["mode"] for q in import_official_tree(catalog, root, 0, mode="multi")} == {"multi"}


def test_export_writes_what_the_official_runners_read(small_catalog: Catalog, tmp_path: Path) -> None:
    single = list(qs.build_question_set(small_catalog, "single", (1, 3), 4, 0, progress=False))
    multi = list(qs.build_question_set(small_catalog, "multi", (5,), 8, 0, progress=False))
    written = export_official(small_catalog, iter(single + multi), tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "multi_needle/multi_needle_2/visual_haystack_5.json",
        "multi_needle/multi_needle_3/visual_haystack_5.json",
        "single_needle/VHs_large/visual_haystack_3.json",
        "single_needle/VHs_large/visual_haystack_oracle.json",
    ]
    by_needles = {k: json.loads((tmp_path / f"multi_needle/multi_needle_{k}/visual_haystack_5.json").read_text()) for k in (2, 3)}
    assert all(len(e["pos_image"]) == k for k, found in by_needles.items() for e in found)
    assert sum(map(len, by_needles.values())) == 8
    assert official_profile(tmp_path) == "synth"


def test_the_oracle_reads_the_data_directory_eval_was_given(
    coco: Path, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("VHS_DATA", str(tmp_path / "elsewhere"))  # the default place holds no COCO
    questions = tmp_path / "q.jsonl"
    qs.write_jsonl(qs.build_question_set(catalog, "single", (1, 3), 4, 0, progress=False), questions)
    out = tmp_path / "r.parquet"
    argv = ["eval", "--model", "oracle", "--questions", str(questions), "--out", str(out), "--data", str(coco / "coco")]
    assert main([*argv, "--cache", str(tmp_path / "c.sqlite")]) == 0, capsys.readouterr().err
    results = pd.read_parquet(out)
    assert (results["status"] == "ok").all() and results["correct"].all()


def test_a_chapter_asks_the_released_questions_of_the_main_subset_and_says_so(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VHS_DATA", str(tmp_path))
    with pytest.raises(VhsError, match=r"^source=official: no released questions under .*; run `vhs data vhs-official` first$"):
        chapter_questions(catalog, "single", (3,), 2, 0, "official")
    with pytest.raises(VhsError, match="^source is one of generated, official, not 'hub'$"):
        chapter_questions(catalog, "single", (3,), 2, 0, "hub")
    root = write_tree(default_root(), layouts(catalog)["2024-10"])
    (root / "manifest.json").write_text(json.dumps({"repo": REPO, "commit": "c0ffee" * 7, "layout": "2024-10"}))
    single, note = chapter_questions(catalog, "single", (1, 3, 7), 2, 0, "official")
    assert [q["qid"] for q in single] == [
        "official-VHs_large-single-1-0000",
        "official-VHs_large-single-1-0001",
        "official-VHs_large-single-3-0000",
        "official-VHs_large-single-3-0001",
    ]  # the first 2 per size of VHs_large; VHs_small, of the same size, left out
    assert note == (
        f"the released files of {REPO} at commit c0ffeec0ffee (2024-10 layout), the first 2 questions per size, in an order"
        " drawn from seed 0; the release has no single-needle file of size 7"
    )
    multi, _ = chapter_questions(catalog, "multi", (5,), 2, 0, "official")
    assert [q["qid"] for q in multi] == ["official-multi_needle_2-multi-5-0000", "official-multi_needle_2-multi-5-0001"]
