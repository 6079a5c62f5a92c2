"""What the paid models cost: a dated table of list prices, and the dollars of a reply or of a request at worst.

Prices are US dollars per million tokens, each row with the page it was read from and the date it held.
A model id is priced only when it is in the table, exactly or as a dated snapshot of a listed id
(`claude-sonnet-4-5-20250929` is `claude-sonnet-4-5`): an unknown id is "price unknown", never guessed.
Providers change their prices; a row is a record of a date, so check the page before a large run.
"""

import re
from dataclasses import dataclass

from vhs.protocol import Reply

BATCH_DISCOUNT = 0.5  # OpenAI's Batch API, Anthropic's Message Batches and Gemini's batch mode bill half the list price
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")  # a dated snapshot: gpt-4o-2024-08-06, claude-…-20250929

OPENAI_PRICES = "https://openai.com/api/pricing/"
ANTHROPIC_PRICES = "https://docs.anthropic.com/en/docs/about-claude/pricing"
GEMINI_PRICES = "https://ai.google.dev/gemini-api/docs/pricing"
OPENROUTER_PRICES = "https://openrouter.ai/x-ai/grok-4"


@dataclass(frozen=True)
class Price:
    """List price in $ per 1M tokens: fresh input, output (reasoning included), input read from the
    provider's prompt cache; above `long_above` input tokens the whole request bills at `long_factor` times
    the input and `long_output_factor` times the output price (Gemini and Claude long-context tiers)."""

    input: float
    output: float
    cached: float
    source: str
    as_of: str
    long_above: int | None = None
    long_factor: float = 1.0
    long_output_factor: float = 1.0

    def dollars(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0, batch: bool = False) -> float:
        """The dollars of one request: `cached_tokens` of the `input_tokens` at the cached price."""
        long = self.long_above is not None and input_tokens > self.long_above
        input_factor, output_factor = (self.long_factor, self.long_output_factor) if long else (1.0, 1.0)
        fresh = (input_tokens - cached_tokens) * self.input + cached_tokens * self.cached
        spent = fresh * input_factor + output_tokens * self.output * output_factor
        return spent / 1e6 * (BATCH_DISCOUNT if batch else 1.0)

    def bounds(self, input_tokens: int, output_cap: int, batch: bool = False) -> tuple[float, float]:
        """(input, output at most) dollars of a request: its input, and every token of its output cap (the
        long-context tier, set by the input, applies to both)."""
        given = self.dollars(input_tokens, 0, batch=batch)
        return given, self.dollars(input_tokens, output_cap, batch=batch) - given


# (backend name, model id) -> price. The paper's three models, and today's that chapter 2 lists.
PRICES: dict[tuple[str, str], Price] = {
    ("openai", "gpt-4o"): Price(2.50, 10.00, 1.25, OPENAI_PRICES, "2024-10-01"),
    ("openai", "gpt-4o-2024-05-13"): Price(5.00, 15.00, 5.00, OPENAI_PRICES, "2024-05-13"),  # the paper's snapshot
    ("openai", "gpt-4o-mini"): Price(0.15, 0.60, 0.075, OPENAI_PRICES, "2024-07-18"),
    ("openai", "gpt-5"): Price(1.25, 10.00, 0.125, OPENAI_PRICES, "2025-08-07"),
    ("openai", "gpt-5-mini"): Price(0.25, 2.00, 0.025, OPENAI_PRICES, "2025-08-07"),
    ("openai", "gpt-5-nano"): Price(0.05, 0.40, 0.005, OPENAI_PRICES, "2025-08-07"),
    ("anthropic", "claude-3-opus-20240229"): Price(15.00, 75.00, 1.50, ANTHROPIC_PRICES, "2024-03-04"),
    ("anthropic", "claude-sonnet-4-5"): Price(3.00, 15.00, 0.30, ANTHROPIC_PRICES, "2025-09-29", 200_000, 2.0, 1.5),
    ("anthropic", "claude-opus-4-1"): Price(15.00, 75.00, 1.50, ANTHROPIC_PRICES, "2025-08-05"),
    ("anthropic", "claude-opus-4-5"): Price(5.00, 25.00, 0.50, ANTHROPIC_PRICES, "2025-11-24"),
    ("gemini", "gemini-1.5-pro"): Price(1.25, 5.00, 0.3125, GEMINI_PRICES, "2024-10-01", 128_000, 2.0, 2.0),
    ("gemini", "gemini-2.5-pro"): Price(1.25, 10.00, 0.125, GEMINI_PRICES, "2025-06-17", 200_000, 2.0, 1.5),
    ("gemini", "gemini-2.5-flash"): Price(0.30, 2.50, 0.03, GEMINI_PRICES, "2025-06-17"),
    ("openrouter", "x-ai/grok-4"): Price(3.00, 15.00, 0.75, OPENROUTER_PRICES, "2025-07-09", 128_000, 2.0, 2.0),
    ("openrouter", "openai/gpt-5"): Price(1.25, 10.00, 0.125, OPENAI_PRICES, "2025-08-07"),
}


def price_of(backend: str, model_id: str) -> Price | None:
    """The listed price of a model (a dated snapshot takes its model's), or None: price unknown."""
    listed = PRICES.get((backend, model_id))
    return listed if listed else PRICES.get((backend, _SNAPSHOT.sub("", model_id)))


def reply_dollars(price: Price, reply: Reply, batch: bool = False) -> float | None:
    """What a reply cost by its reported usage, or None when the provider reported none."""
    if reply.input_tokens is None or reply.output_tokens is None:
        return None
    return price.dollars(reply.input_tokens, reply.output_tokens, reply.cached_input_tokens or 0, batch)


def format_usd(dollars: float | None) -> str:
    """Dollars to the cent, or to four places under a dollar (a short run costs fractions of a cent); "price
    unknown" for None."""
    if dollars is None:
        return "price unknown"
    return f"${dollars:,.2f}" if dollars >= 1 else f"${dollars:.4f}"
