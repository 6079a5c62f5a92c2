"""A word-level tokenizer over the synth vocabulary, the question templates and caption numbering."""

import re

from vhs.errors import VhsError
from vhs.synth import vocab

SPECIAL = ("<pad>", "<img>")
TEMPLATE_WORDS = (
    "for",
    "the",
    "image",
    "with",
    "a",
    "an",
    "is",
    "there",
    "all",
    "images",
    "do",
    "of",
    "them",
    "any",
    "contain",
    "question",
    "answer",
    "yes",
    "no",
    "nothing",
    ",",
    ".",
    "?",
    ":",
)
MAX_NUMBER = 256  # captions are numbered "image 1 : ..." up to this
_SPLIT = re.compile(r"[a-z]+|\d+|[,.?:]")


class Tokenizer:
    """Maps words to ids and back; the vocabulary is fixed, so every model shares it.

    A category name is one token even when it is two words ("red circle", as "traffic light" would
    be): a tiny LM then finds an object by matching one token, instead of binding colour to shape.
    """

    def __init__(self) -> None:
        self.categories = [c.name for c in vocab.categories()]
        words = [*SPECIAL, *TEMPLATE_WORDS, *self.categories, *(str(n) for n in range(1, MAX_NUMBER + 1))]
        self.words = list(dict.fromkeys(words))
        self.ids = {word: index for index, word in enumerate(self.words)}
        self.pad = self.ids["<pad>"]
        self.yes, self.no = self.ids["yes"], self.ids["no"]
        self._encoded: dict[str, tuple[int, ...]] = {}  # training encodes the same prompts many times

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Token ids of a lower-cased text; an unknown word is a one-line error."""
        if text not in self._encoded:
            self._encoded[text] = tuple(self._encode(text))
        return list(self._encoded[text])

    def _encode(self, text: str) -> list[int]:
        words = _SPLIT.findall(text.lower())
        ids, i = [], 0
        while i < len(words):
            pair = " ".join(words[i : i + 2])
            word = pair if pair in self.ids else words[i]
            if word not in self.ids:
                raise VhsError(f"word {word!r} is not in the synth vocabulary (synth models read synth questions only)")
            ids.append(self.ids[word])
            i += 1 + (word == pair)
        return ids

    def question(self, question: str) -> list[int]:
        """A VHs question's ids, ending on its target's name: the LM answers right after that word.

        Every template ends "... {target}?". Reading the answer at the target's own position lets one
        attention hop (target -> patches or caption words that match it) decide; reading it after "?"
        needs two (find the target, then match it), which the 2-layer LM did not learn in our budget.
        """
        ids = self.encode(question)
        return ids[:-1] if ids and ids[-1] == self.ids["?"] else ids

    def answers(self, questions: list[dict]) -> list[int]:
        """The id of each question's answer word ("yes" or "no"): the training target."""
        return [self.yes if q["answer"] == "yes" else self.no for q in questions]

    def decode(self, ids: list[int]) -> str:
        """The words of a list of ids, space-separated."""
        return " ".join(self.words[i] for i in ids)


def caption_of(names: list[str]) -> str:
    """The caption listing objects: "a red circle , an orange star", or "nothing"."""
    from vhs.data.kinds import with_article

    return " , ".join(with_article(name) for name in names) if names else "nothing"
