"""Requests, bytes on the wire and estimated input tokens for one 100-image haystack per provider.

Runs the real openai, anthropic and google-genai clients against the tests' local fake server (no
key, no internet), on synthetic scenes at 64 px (the synth profile) and at 640 px (COCO-sized;
flat synthetic scenes compress better than photos, so real COCO JPEGs are larger).

    .venv/bin/python benchmarks/bench_api_payload.py
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_api_server import fake_api
from vhs.cache import ResponseCache
from vhs.data.profiles import load_profile_catalog
from vhs.data.questions import build_questions
from vhs.eval.runner import HaystackImages, RunOptions, run_backend
from vhs.models.registry import load_backend
from vhs.synth.scenes import write_synth_dataset

MODELS = {"openai": "gpt-4o", "anthropic": "claude-3-opus-20240229", "gemini": "gemini-1.5-pro"}


def main() -> None:
    """Print one row per (image size, provider)."""
    with tempfile.TemporaryDirectory() as tmp, fake_api() as server:
        os.environ["VHS_DATA"] = str(Path(tmp) / "vhs-data")
        for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
            os.environ[variable] = "fake-key"
        print(f"{'images':>8} {'provider':>10} {'requests':>9} {'body MiB':>9} {'est. tokens':>12} {'reported':>9}")
        for side in (64, 640):
            data = Path(tmp) / f"synth{side}"
            write_synth_dataset(data, 400, seed=0, size=side)
            question = next(build_questions(load_profile_catalog("synth", data), "single", 100, 2, seed=0))
            for provider, model in MODELS.items():
                base = server.url + ("/v1" if provider == "openai" else "")
                backend = load_backend(f"{provider}:{model}@{base}")
                before = len(server.captured)
                cache = ResponseCache(Path(tmp) / f"{provider}-{side}.sqlite")
                table = run_backend(backend, [question], cache, RunOptions(data=data))
                sent = server.captured[before:]
                body = sum(int(c.headers["content-length"]) for c in sent)
                tokens = backend.prompt_tokens(HaystackImages(cache, data).request(question))
                print(
                    f"{f'{side}px':>8} {provider:>10} {len(sent):>9} {body / 2**20:>9.2f} {tokens:>12,}"
                    f" {table['status'].iloc[0]:>9}"
                )


if __name__ == "__main__":
    main()
