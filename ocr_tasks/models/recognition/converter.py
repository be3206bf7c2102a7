"""Label converters: text <-> class indices, greedy decoding and the official confidence score.

Class layouts (as in the official checkpoints):

* CTC: ``["[CTCblank]"] + list(character)``; blank = 0, character i -> i + 1.
* Attn: ``["[GO]", "[s]"] + list(character)``; [GO] = 0, [s] = 1, character i -> i + 2.

Confidence = product of the per-step maximum softmax probability, computed like the official
demo.py (float32 ``cumprod(...)[-1]``): over all T steps for CTC, over the kept steps for Attn.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "CHARSET_CASE_INSENSITIVE",
    "CHARSET_CASE_SENSITIVE",
    "CTCLabelConverter",
    "AttnLabelConverter",
    "make_converter",
]

#: Character set of the case-insensitive official models (36).
CHARSET_CASE_INSENSITIVE = "0123456789abcdefghijklmnopqrstuvwxyz"
#: Character set of the case-sensitive official model (94: digits, a-z, A-Z, punctuation; no space).
CHARSET_CASE_SENSITIVE = string.printable[:-6]


class _BaseConverter:
    """Shared bookkeeping: token list, lookup table, unknown-character handling."""

    specials: tuple[str, ...] = ()

    def __init__(self, character: str) -> None:
        if not isinstance(character, str) or not character:
            raise ValueError("character set must be a non-empty string")
        duplicates = sorted({c for c in character if character.count(c) > 1})
        if duplicates:
            raise ValueError(f"character set has duplicate characters: {duplicates!r}")
        self.character = character
        self.tokens: list[str] = list(self.specials) + list(character)
        self.dict: dict[str, int] = {c: i + len(self.specials) for i, c in enumerate(character)}

    @property
    def num_class(self) -> int:
        """Number of output classes (special tokens included)."""
        return len(self.tokens)

    def unknown_characters(self, text: str) -> list[str]:
        """Characters of ``text`` that are not in the character set (sorted, unique)."""
        return sorted({c for c in text if c not in self.dict})

    def filter_unknown(self, text: str) -> str:
        """Drop the characters that are not in the character set (no case folding)."""
        return "".join(c for c in text if c in self.dict)

    def _indices(self, texts: Sequence[str]) -> list[list[int]]:
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of strings, not a single string")
        unknown = sorted({c for text in texts for c in text if c not in self.dict})
        if unknown:
            raise ValueError(
                f"characters not in the character set: {unknown!r} "
                "(use filter_unknown() to drop them, or lower-case labels for case-insensitive sets)"
            )
        return [[self.dict[c] for c in text] for text in texts]

    def _check_logits(self, logits: torch.Tensor) -> None:
        if logits.dim() != 3 or logits.size(2) != self.num_class:
            raise ValueError(f"expected B x steps x {self.num_class} logits, got shape {tuple(logits.shape)}")


class CTCLabelConverter(_BaseConverter):
    """CTC converter (blank = 0)."""

    specials = ("[CTCblank]",)

    def __init__(self, character: str) -> None:
        """Create the converter.

        Args:
            character: The character set, in class order (index i -> class i + 1).
        """
        super().__init__(character)

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode labels for ``torch.nn.CTCLoss``.

        Args:
            texts: Labels.

        Returns:
            (targets, lengths): all labels' class indices concatenated (1-D int64) and the
            length of each label (1-D int64, B).

        Raises:
            ValueError: A label contains characters outside the character set.
        """
        indices = self._indices(texts)
        flat = [i for seq in indices for i in seq]
        return torch.tensor(flat, dtype=torch.long), torch.tensor([len(s) for s in indices], dtype=torch.long)

    def decode_indices(self, index_rows: torch.Tensor) -> list[str]:
        """Collapse repeats and drop blanks in B x T argmax indices."""
        texts = []
        for row in index_rows.tolist():
            chars = []
            previous = -1
            for idx in row:
                if idx != 0 and idx != previous:
                    chars.append(self.tokens[idx])
                previous = idx
            texts.append("".join(chars))
        return texts

    def decode_greedy(self, logits: torch.Tensor) -> list[tuple[str, float]]:
        """Greedy (best-path) decoding with the official confidence.

        Args:
            logits: B x T x num_class raw scores.

        Returns:
            One (text, confidence) per row; confidence is the product over all T steps of the
            maximum softmax probability (blanks and repeats included).
        """
        self._check_logits(logits)
        with torch.no_grad():
            probs = F.softmax(logits.detach().float(), dim=2)
            max_prob, index = probs.max(dim=2)
            texts = self.decode_indices(index)
            if max_prob.size(1) == 0:
                return [(text, 0.0) for text in texts]
            confidence = max_prob.cumprod(dim=1)[:, -1].tolist()
        return list(zip(texts, confidence, strict=True))


class AttnLabelConverter(_BaseConverter):
    """Attention converter ([GO] = 0, [s] = 1)."""

    specials = ("[GO]", "[s]")
    GO = 0
    EOS = 1

    def __init__(self, character: str) -> None:
        """Create the converter.

        Args:
            character: The character set, in class order (index i -> class i + 2).
        """
        super().__init__(character)

    def encode(self, texts: Sequence[str], batch_max_length: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode labels for teacher forcing and the cross-entropy loss.

        Args:
            texts: Labels, each at most ``batch_max_length`` characters.
            batch_max_length: Maximum label length.

        Returns:
            (tokens, lengths): B x (batch_max_length + 2) int64 rows ``[GO] label [s]`` padded with
            [GO] (0), and len(label) + 1 per row (the [s] counts). Feed ``tokens[:, :-1]`` (or the
            whole tensor) to the model and use ``tokens[:, 1:]`` as targets with ``ignore_index=0``.

        Raises:
            ValueError: Unknown characters or a label longer than ``batch_max_length``.
        """
        indices = self._indices(texts)
        too_long = [text for text, seq in zip(texts, indices, strict=True) if len(seq) > batch_max_length]
        if too_long:
            raise ValueError(f"labels longer than batch_max_length={batch_max_length}: {too_long[:5]!r}")
        tokens = torch.zeros(len(indices), batch_max_length + 2, dtype=torch.long)
        for row, seq in enumerate(indices):
            tokens[row, 1 : 1 + len(seq)] = torch.tensor(seq, dtype=torch.long)
            tokens[row, 1 + len(seq)] = self.EOS
        return tokens, torch.tensor([len(s) + 1 for s in indices], dtype=torch.long)

    def decode_tokens(self, index_rows: torch.Tensor) -> list[str]:
        """Concatenate the token strings of every step (official ``decode``; "[s]" not cut)."""
        return ["".join(self.tokens[i] for i in row) for row in index_rows.tolist()]

    def decode(self, logits: torch.Tensor) -> list[tuple[str, float]]:
        """Greedy decoding cut at the first "[s]", with the official confidence.

        Reproduces demo.py exactly: the step tokens are concatenated into a string, ``find("[s]")``
        gives a *character* offset, and both the string and the per-step probabilities are cut at
        that offset. Quirks kept on purpose:

        * if "[s]" never appears, ``find`` returns -1, which drops the last character and the
          last step's probability;
        * the offset counts characters, so a multi-character token ("[GO]") before "[s]" keeps
          extra probabilities, and in the case-sensitive set the characters ``[``, ``s``, ``]``
          in a row also end the text.

        An empty result (first token "[s]") gets confidence 0.0 (test.py; demo.py would raise).

        Args:
            logits: B x steps x num_class raw scores.

        Returns:
            One (text, confidence) per row.
        """
        self._check_logits(logits)
        results: list[tuple[str, float]] = []
        with torch.no_grad():
            probs = F.softmax(logits.detach().float(), dim=2)
            max_prob, index = probs.max(dim=2)
            for text, row_prob in zip(self.decode_tokens(index), max_prob, strict=True):
                eos = text.find("[s]")
                text = text[:eos]
                kept = row_prob[:eos]
                if kept.numel() == 0:
                    results.append((text, 0.0))
                else:
                    results.append((text, float(kept.cumprod(dim=0)[-1])))
        return results


def make_converter(prediction: str, character: str) -> CTCLabelConverter | AttnLabelConverter:
    """Return the converter for a prediction head.

    Args:
        prediction: "CTC" or "Attn" (case-insensitive).
        character: The character set.

    Returns:
        A :class:`CTCLabelConverter` or :class:`AttnLabelConverter`.

    Raises:
        ValueError: Unknown prediction type.
    """
    kind = str(prediction).lower()
    if kind == "ctc":
        return CTCLabelConverter(character)
    if kind == "attn":
        return AttnLabelConverter(character)
    raise ValueError(f"invalid prediction={prediction!r}: expected CTC or Attn")
