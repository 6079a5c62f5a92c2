"""The kinds of VHs question, each declared once: its template, the question set it belongs to, how many
of its needles may hold the target for each answer, the answer rule, and how many images a retriever keeps.

Everything else asks this module: the question builder (which pairs a kind can use, how many needles hold
the target), the annotation check and the oracle (the answer rule), the synth trainers (the literal reading
of captions), the retrieval models (how many images to keep) and `parse_question`. A question record names
its kind by `quantifier` (the kind's name for a multi-needle kind, None for the single-needle one).
Adding a kind is one `Kind(...)` in `KINDS`; its template's words must be in the synth vocabulary
(`vhs.synth_models.tokenizer.TEMPLATE_WORDS`) for the synth models to read it, and adding a word there
changes the vocabulary every synth checkpoint records, so they must then be retrained (loading one says so).
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vhs.errors import VhsError


@dataclass(frozen=True)
class Kind:
    """One kind of question.

    `yes_counts(n)` and `no_counts(n)` list, in the order the builder draws from, how many of `n` needles
    may hold the target when the answer is yes or no; `says_yes` decides the answer from which of the
    images showing the anchor also show the target; `keep` is how many images a retriever hands its reader.
    """

    name: str
    mode: str  # the question set it is built in: "single" (one needle) or "multi"
    template: str
    yes_counts: Callable[[int], tuple[int, ...]]
    no_counts: Callable[[int], tuple[int, ...]]
    says_yes: Callable[[list[bool]], bool]
    keep: int

    def answer(self, holds: Iterable[bool]) -> str:
        """ "yes" or "no" from, for each image showing the anchor, whether it shows the target."""
        return "yes" if self.says_yes([bool(h) for h in holds]) else "no"

    def text(self, anchor: str, target: str) -> str:
        """The question, with articles: "For the image with a dog, is there an apple?"."""
        return self.template.format(anchor=with_article(anchor), target=with_article(target))


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "single",
            "single",
            "For the image with {anchor}, is there {target}?",
            yes_counts=lambda n: (1,),
            no_counts=lambda n: (0,),
            says_yes=any,
            keep=1,
        ),
        Kind(
            "all",
            "multi",
            "For all images with {anchor}, do all of them contain {target}?",
            yes_counts=lambda n: (n,),
            no_counts=lambda n: tuple(range(n)),
            says_yes=lambda holds: bool(holds) and all(holds),
            keep=3,
        ),
        Kind(
            "any",
            "multi",
            "For all images with {anchor}, do any of them contain {target}?",
            yes_counts=lambda n: tuple(range(1, n + 1)),
            no_counts=lambda n: (0,),
            says_yes=any,
            keep=3,
        ),
    )
}


def modes() -> tuple[str, ...]:
    """The question sets, in the order their kinds are declared: ("single", "multi")."""
    return tuple(dict.fromkeys(kind.mode for kind in KINDS.values()))


def kinds_of(mode: str) -> tuple[Kind, ...]:
    """The kinds a question set is built from, in declaration order."""
    return tuple(kind for kind in KINDS.values() if kind.mode == mode)


def kind_of(record: dict) -> Kind:
    """The kind of a question record (its `quantifier`, or the single-needle kind when it has none)."""
    name = record.get("quantifier") or "single"
    if name not in KINDS:
        raise VhsError(f"question {record.get('qid', '?')!r} has an unknown kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def with_article(name: str) -> str:
    """'a dog', 'an apple', 'an orange star': 'an' before a vowel sound (by its first letter)."""
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def parse_question(text: str) -> tuple[Kind, str, str]:
    """Invert `Kind.text`: (kind, anchor, target) of a question's text, or a VhsError."""
    for kind in KINDS.values():
        pattern = re.escape(kind.template)
        pattern = pattern.replace(r"\{anchor\}", "an? (?P<anchor>.+?)").replace(r"\{target\}", "an? (?P<target>.+?)")
        match = re.fullmatch(pattern, text.strip())
        if match:
            return kind, match["anchor"], match["target"]
    raise VhsError(f"not a VHs question: {text!r}")
