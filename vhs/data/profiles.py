"""The two profiles' data sets: `synth` (generated on first use) and `coco` (downloaded by `vhs data coco`).

The synth evaluation set is large enough that every anchor has at least 10,000 eligible distractors
for its targets (about 87.5% of scenes lack any given category and are usable), so single-needle
haystacks of 10,000 images exist, as in the paper.
"""

from dataclasses import dataclass
from pathlib import Path

from vhs.data.catalog import DEFAULT_MIN_AREA_FRAC, AnnotationSource, Catalog, load_catalog
from vhs.errors import VhsError
from vhs.paths import data_root
from vhs.synth.scenes import write_synth_dataset

PROFILES = ("synth", "coco")
COCO_SPLITS = ("val2017", "train2017")


@dataclass(frozen=True)
class SynthSplit:
    """The recipe of one generated split: how many scenes, from which seed, at what size."""

    name: str
    images: int
    seed: int
    size: int = 64


SYNTH_EVAL = SynthSplit(name="eval", images=12_500, seed=0)


def default_data_dir(profile: str) -> Path:
    """Where a profile's data lives by default: `$VHS_DATA/synth/eval` or `$VHS_DATA/coco`."""
    if profile == "synth":
        return data_root() / "synth" / SYNTH_EVAL.name
    if profile == "coco":
        return data_root() / "coco"
    raise VhsError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")


def ensure_synth(directory: Path, split: SynthSplit = SYNTH_EVAL) -> Path:
    """Generate a synth split at `directory` unless its annotation file is already there."""
    annotations = directory / "annotations.json"
    if not annotations.exists():
        write_synth_dataset(directory, split.images, split.seed, split.size)
    return annotations


def coco_sources(root: Path) -> list[AnnotationSource]:
    """Annotation files of the COCO splits present under `root` (val2017 is required)."""
    sources = []
    for split in COCO_SPLITS:
        annotations = root / "annotations" / f"instances_{split}.json"
        if annotations.exists() or split == "val2017":
            sources.append(AnnotationSource(annotations, root / split))
    return sources


def coco_training_catalog(root: Path | None = None) -> Catalog:
    """COCO train2017 alone: the coco MIRAGE's training images (the haystacks draw on train2017 and
    val2017 alike, as the maintainers' did, so training images can appear in them)."""
    root = Path(root) if root is not None else default_data_dir("coco")
    annotations = root / "annotations" / "instances_train2017.json"
    if not annotations.exists():
        raise VhsError(
            f"COCO train2017 annotations not found: {annotations} (run `vhs data coco --root {root} --splits train2017`)"
        )
    return load_catalog([AnnotationSource(annotations, root / "train2017")], root, "coco-train2017")


def load_profile_catalog(
    profile: str,
    data_dir: Path | None = None,
    min_area_frac: float = DEFAULT_MIN_AREA_FRAC,
    exclude_categories: tuple[str, ...] = (),
) -> Catalog:
    """Load the catalog of a profile, from `data_dir` or the profile's default place.

    `synth` generates its evaluation split on first use when the default place is empty. A
    directory that holds an `annotations.json` is read as a synth-style set whatever the profile.
    """
    directory = Path(data_dir) if data_dir is not None else default_data_dir(profile)
    if profile == "synth" and data_dir is None:
        ensure_synth(directory)
    if (directory / "annotations.json").exists():
        sources = [AnnotationSource(directory / "annotations.json", directory / "images")]
    elif profile == "coco":
        sources = coco_sources(directory)
        if not sources[0].annotations.exists():
            raise VhsError(f"COCO annotations not found: {sources[0].annotations} (run `vhs data coco --root {directory}`)")
    else:
        raise VhsError(f"annotation file not found: {directory / 'annotations.json'} (run `vhs synth --out {directory}`)")
    return load_catalog(sources, directory, profile, min_area_frac, exclude_categories)
