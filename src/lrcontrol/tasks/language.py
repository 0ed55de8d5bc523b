"""Character-level language modelling with a small causal transformer: Shakespeare and BBC news.

- Data: `lrcontrol.data.text`. The documents, in an order shuffled once with a fixed seed, are joined
  by blank lines and cut into contiguous 90 / 5 / 5 % train / val / test stretches. The vocabulary is
  every character of the corpus (84 for Shakespeare, 89 for BBC news).
- Batches: `batch_size` windows of `context + 1` characters starting at uniformly random positions
  of the training text (drawn from the run's generator); the model predicts each next character.
- Model: token and learned position embeddings, pre-norm transformer layers (torch's
  `TransformerEncoderLayer`, GELU, no dropout) under a causal mask, a final layer norm and a linear
  read-out; weights N(0, 0.02) as in GPT-2.
- Evaluation: mean next-character cross-entropy (nats) over `eval_windows` windows evenly spaced
  through the split: "loss", "perplexity" = exp(loss), "bits_per_char" = loss / ln 2. The primary
  metric is the loss.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lrcontrol.data.text import load_corpus
from lrcontrol.errors import LRControlError
from lrcontrol.tasks.base import Task, TaskInstance, check_split, count_parameters, evaluating, seeded
from lrcontrol.tasks.registry import register_task

LANGUAGE_VERSION = "1"
SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)


@dataclass(frozen=True)
class _Shape:
    context: int
    width: int
    layers: int
    heads: int
    batch_size: int
    budget: int
    eval_every: int
    eval_windows: int
    train_chars: int | None  # smoke trains on a prefix of the training text


# The default is sized for the quick benchmark: 600 steps of 16 × 64 characters take seconds on one
# CPU thread (a step is ~0.6 GFLOP forward and backward).
_SHAPES = {
    "smoke": _Shape(
        context=32,
        width=32,
        layers=1,
        heads=2,
        batch_size=8,
        budget=10,
        eval_every=5,
        eval_windows=8,
        train_chars=100_000,
    ),
    "default": _Shape(
        context=64,
        width=64,
        layers=2,
        heads=4,
        batch_size=16,
        budget=600,
        eval_every=100,
        eval_windows=64,
        train_chars=None,
    ),
}
TARGETS = {"shakespeare": 2.5, "bbc": 2.5}


@functools.lru_cache(maxsize=2)
def encoded_corpus(corpus: str) -> tuple[dict[str, torch.Tensor], str]:
    """The train/val/test character codes (uint8) and the vocabulary, as one string in code order."""
    documents = list(load_corpus(corpus))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(documents))
    text = "\n\n".join(documents[i] for i in order)
    # UTF-32 gives one integer per character, so the whole corpus is encoded without a Python loop.
    codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    vocabulary = np.unique(codepoints)
    if len(vocabulary) > 256:
        raise ValueError(f"{corpus} has {len(vocabulary)} distinct characters; codes are stored as uint8")
    codes = torch.from_numpy(np.searchsorted(vocabulary, codepoints).astype(np.uint8))
    train_end = int(SPLIT_FRACTIONS[0] * len(codes))
    val_end = train_end + int(SPLIT_FRACTIONS[1] * len(codes))
    splits = {"train": codes[:train_end], "val": codes[train_end:val_end], "test": codes[val_end:]}
    return splits, "".join(chr(c) for c in vocabulary)


class CharTransformer(torch.nn.Module):
    """A small causal transformer over characters: logits for the next character at every position."""

    def __init__(self, vocab_size: int, context: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.token = torch.nn.Embedding(vocab_size, width)
        self.position = torch.nn.Embedding(context, width)
        layer = torch.nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(width)
        self.readout = torch.nn.Linear(width, vocab_size)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(context), persistent=False)
        for module in self.modules():
            if isinstance(module, torch.nn.Linear | torch.nn.Embedding):
                torch.nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    torch.nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        hidden = self.token(tokens) + self.position.weight[:length]
        hidden = self.blocks(hidden, mask=self.mask[:length, :length], is_causal=True)
        return self.readout(self.norm(hidden))


@dataclass(frozen=True, kw_only=True)
class LanguageTask(Task):
    """Character-level language modelling of `corpus` ("shakespeare" or "bbc")."""

    corpus: str
    context: int
    width: int
    layers: int
    heads: int
    eval_windows: int
    train_chars: int | None = None

    def _model(self, vocab_size: int) -> CharTransformer:
        return CharTransformer(vocab_size, self.context, self.width, self.layers, self.heads)

    def build(self, seed: int) -> LanguageInstance:
        splits, vocabulary = encoded_corpus(self.corpus)
        with seeded(seed):
            model = self._model(len(vocabulary))
        return LanguageInstance(self, model, splits)

    def meta_features(self) -> dict[str, float | int | str]:
        splits, vocabulary = encoded_corpus(self.corpus)
        train = len(splits["train"]) if self.train_chars is None else min(self.train_chars, len(splits["train"]))
        return {
            **self.base_meta(),
            "kind": "language_model",
            "model": "transformer",
            "params": count_parameters(self._model(len(vocabulary))),
            "examples": train,
            "val_examples": len(splits["val"]),
            "classes": len(vocabulary),
            "input_dim": self.context,
            "layers": self.layers,
            "width": self.width,
            "epochs": self.budget * self.batch_size * self.context / train,
        }


class LanguageInstance(TaskInstance):
    def __init__(self, task: LanguageTask, model: CharTransformer, splits: dict[str, torch.Tensor]) -> None:
        self.task = task
        self.model = model
        self.splits = dict(splits)
        if task.train_chars is not None:
            self.splits["train"] = splits["train"][: task.train_chars]
        for split, text in self.splits.items():
            if len(text) <= task.context + 1:
                raise LRControlError(
                    f"task {task.name}: the {split} text has {len(text)} characters, too few for a context of {task.context}"
                )
        self._offsets = torch.arange(task.context + 1)

    def _windows(self, text: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        window = text[starts[:, None] + self._offsets].long()
        return window[:, :-1], window[:, 1:]

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        text = self.splits["train"]
        last_start = len(text) - self.task.context - 1
        while True:
            starts = torch.randint(0, last_start + 1, (self.task.batch_size,), generator=generator)
            yield self._windows(text, starts)

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        logits = model(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def evaluate(self, model: torch.nn.Module, split: str = "val") -> dict[str, float]:
        check_split(split)
        text = self.splits[split]
        last_start = len(text) - self.task.context - 1
        starts = torch.linspace(0, last_start, self.task.eval_windows).long()
        with evaluating(model):
            loss = float(self.loss(model, self._windows(text, starts)))
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bits_per_char": loss / math.log(2)}


def make_language(corpus: str, size: str = "default") -> LanguageTask:
    shape = _SHAPES[size]
    title = {"shakespeare": "Shakespeare's works", "bbc": "BBC news articles"}[corpus]
    return LanguageTask(
        name=f"{corpus}-transformer",
        version=LANGUAGE_VERSION,
        family="language",
        size=size,
        budget=shape.budget,
        batch_size=shape.batch_size,
        eval_every=shape.eval_every,
        metric="loss",
        higher_is_better=False,
        target=TARGETS[corpus],
        description=f"character-level transformer ({shape.layers}×{shape.width}, context {shape.context}) on {title}",
        corpus=corpus,
        context=shape.context,
        width=shape.width,
        layers=shape.layers,
        heads=shape.heads,
        eval_windows=shape.eval_windows,
        train_chars=shape.train_chars,
    )


for _corpus in ("shakespeare", "bbc"):
    register_task(f"{_corpus}-transformer", "language", lambda size, c=_corpus: make_language(c, size))
