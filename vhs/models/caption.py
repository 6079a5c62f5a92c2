"""`caption:CAPTIONER?llm=SPEC`: the paper's caption-then-LLM baseline.

Step 1 captions every distinct image once with an `hf` captioner (LLaVA-1.5 by default), in batches,
and keeps each caption in the response cache under (captioner, caption prompt, image hash), so a
caption is never computed twice, across haystack sizes, runs and questions.
Step 2 hands the haystack's captions, numbered in haystack order, and the prompt to a text LLM:
any backend spec (`hf:meta-llama/Meta-Llama-3-8B-Instruct` by default, or
`openai:MODEL@http://127.0.0.1:8000/v1` for an OpenAI-compatible server). The LLM's context limit
is the baseline's limit. Options: `llm`, `cache` (default `$VHS_DATA/cache.sqlite`), `batch_size` (8),
`caption_tokens` (96), `dtype`, `device`.
"""

from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from vhs.cache import ResponseCache, cache_key
from vhs.models.base import BatchedBackend
from vhs.models.hf import HFBackend
from vhs.paths import response_cache_path
from vhs.protocol import ImageRef, Limits, Reply, Request

DEFAULT_LLM = "hf:meta-llama/Meta-Llama-3-8B-Instruct"
CAPTION_PROMPT = (
    "Describe this image in detail, naming every object you can see."  # ours: the paper does not print its captioning prompt
)


def numbered_captions(captions: list[str]) -> str:
    """ "Image 1: ...\nImage 2: ..." in haystack order."""
    return "\n".join(f"Image {n}: {caption}" for n, caption in enumerate(captions, start=1))


class CaptionBackend(BatchedBackend):
    """Captions (cached per image) -> numbered text -> a text LLM."""

    name = "caption"

    def __init__(
        self,
        model_id: str = "",
        llm: str = DEFAULT_LLM,
        cache: str = "",
        batch_size: str = "8",
        caption_tokens: str = "96",
        dtype: str = "auto",
        device: str = "auto",
    ) -> None:
        from vhs.models.registry import load_backend

        self.captioner = HFBackend(model_id, dtype=dtype, device=device, max_new_tokens=caption_tokens, batch_size=batch_size)
        self.llm = load_backend(llm)
        super().__init__(self.captioner.model_id, captioner=self.captioner.identity(), llm=self.llm.identity())
        self.store = ResponseCache(Path(cache) if cache else response_cache_path())
        self.batch_size = max(1, self.llm.batch_size)
        self.limits = Limits(context_tokens=self.llm.limits.context_tokens)

    def _key(self, image: ImageRef) -> str:
        return cache_key(self.captioner.identity(), CAPTION_PROMPT, [image.sha256])

    def captions(self, images: tuple[ImageRef, ...]) -> list[str]:
        """One caption per image, computing (in batches, with a bar) only those not in the cache."""
        known: dict[str, str] = {}
        missing: dict[str, ImageRef] = {}
        for image in images:
            hit = self.store.get(self._key(image))
            if hit:
                known[image.sha256] = hit[0].text
            else:
                missing.setdefault(image.sha256, image)
        todo = list(missing.values())
        size = self.captioner.batch_size
        for start in tqdm(range(0, len(todo), size), desc="caption images", unit="batch", leave=False, disable=len(todo) <= size):
            chunk = todo[start : start + size]
            for image, reply in zip(
                chunk, self.captioner.generate_batch([Request(CAPTION_PROMPT, (i,)) for i in chunk]), strict=True
            ):
                self.store.put(self._key(image), self.captioner.identity(), reply, 0.0)
                known[image.sha256] = reply.text
        return [known[i.sha256] for i in images]

    def llm_request(self, request: Request) -> Request:
        """The text-only request the LLM answers: numbered captions, then the prompt."""
        return replace(request, prompt=f"{numbered_captions(self.captions(request.images))}\n{request.prompt}", images=())

    def prompt_tokens(self, request: Request) -> int | None:
        """The LLM's prompt tokens (captioning the images first if needed)."""
        return self.llm.prompt_tokens(self.llm_request(request))

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """Caption what is missing, then one LLM batch."""
        self.captions(tuple(i for r in requests for i in r.images))
        replies = self.llm.generate_batch([self.llm_request(r) for r in requests])
        return [
            Reply(reply.text, reply.input_tokens, reply.output_tokens, images_sent=len(r.images))
            for reply, r in zip(replies, requests, strict=True)
        ]
