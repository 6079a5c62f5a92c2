"""Shared fixtures: a small synthetic data set generated once per test session."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_api_server import FakeAPIServer, fake_api
from vhs.data.catalog import Catalog
from vhs.data.profiles import load_profile_catalog
from vhs.synth.scenes import write_synth_dataset

SMALL_IMAGES = 400
SMALL_SEED = 7
# Every provider setting a developer's shell may hold: tests never use a real key or endpoint.
PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "OPENROUTER_API_KEY",
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch directory as $VHS_DATA's parent, with no provider key or endpoint set."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VHS_DATA", str(tmp_path / "vhs-data"))
    return tmp_path


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a 400-scene synthetic data set (seed 7)."""
    out = tmp_path_factory.mktemp("synth")
    write_synth_dataset(out, SMALL_IMAGES, SMALL_SEED, workers=1)
    return out


@pytest.fixture(scope="session")
def small_catalog(small_synth: Path) -> Catalog:
    """The catalog of the small synthetic data set."""
    return load_profile_catalog("synth", small_synth)


@pytest.fixture
def server() -> Iterator[FakeAPIServer]:
    """A loopback stand-in for the providers' APIs, answering "Yes." (see `tests.fake_api_server`)."""
    with fake_api(reply="Yes.") as running:
        yield running
