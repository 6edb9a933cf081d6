"""Language tasks: SMS spam classification (a small Transformer encoder, and a GRU) and a
character-level Transformer language model on tiny-shakespeare (nanoGPT's CPU configuration).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .tasks import CORE_STRATEGIES, Task, TaskData, predictions, register

__all__ = ["CharGPT", "GRUClassifier", "ShakespeareChar", "SmsSpam", "SmsSpamGRU", "TransformerClassifier", "tokenize"]


def tokenize(text: str) -> list[str]:
    """Lower-cased words, numbers and currency signs, and ``!``/``?`` as tokens of their own."""
    return re.findall(r"[a-z0-9£$]+|[!?]", text.lower())


# ---------------------------------------------------------------------- SMS spam
class TransformerClassifier(nn.Module):
    """Token + position embeddings, a pre-norm Transformer encoder, mean-pooled over the
    message's tokens (padding masked), a linear head."""

    def __init__(self, vocab: int, max_tokens: int, width: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(max_tokens, width))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, 2 * width, dropout=0.1, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0
        h = self.encoder(self.embed(ids) + self.position[: ids.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        pooled = (self.norm(h) * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(pooled)  # type: ignore[no-any-return]


class GRUClassifier(nn.Module):
    """Embeddings, a one-layer GRU read up to each message's last token, a linear head."""

    def __init__(self, vocab: int, width: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.rnn = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(ids))
        last = (ids != 0).sum(1).clamp(min=1) - 1
        return self.head(out[torch.arange(len(ids)), last])  # type: ignore[no-any-return]


@register
class SmsSpam(Task):
    """SMS Spam Collection (5,574 messages, 13% spam), a 2-layer Transformer encoder trained from
    scratch on a word vocabulary of the training split; metric F1 on spam, on a held-out 20%."""

    name = "sms-spam"
    description = "SMS Spam Collection, 2-layer Transformer encoder from scratch (F1 on spam)"
    domain = "language"
    strategies = CORE_STRATEGIES
    optimizers: ClassVar[tuple[str, ...]] = ("adam",)  # Transformers are trained with Adam(W)
    metric = "f1"
    units = "0 to 1, on the spam class"
    target = 0.92
    batch_size = 64
    epochs = 6
    evals_per_epoch = 2
    default_lr = {"sgd": 0.05, "adam": 1e-3}
    max_tokens: ClassVar[int] = 40  # 98% of messages fit
    vocab_size: ClassVar[int] = 8000

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        from ..data import sms_spam

        texts, labels = sms_spam(data_dir)
        order = np.random.default_rng(0).permutation(len(texts))
        cut = int(0.8 * len(texts))
        train_idx, test_idx = order[:cut], order[cut:]
        tokens = [tokenize(t) for t in texts]
        counts = Counter(w for i in train_idx for w in tokens[i])
        vocab = {w: k + 1 for k, (w, _) in enumerate(counts.most_common(self.vocab_size - 1))}
        ids = np.zeros((len(texts), self.max_tokens), dtype=np.int64)
        for i, words in enumerate(tokens):
            row = [vocab[w] for w in words if w in vocab][: self.max_tokens]
            ids[i, : len(row)] = row
        x, y = torch.from_numpy(ids), torch.from_numpy(labels)
        return TaskData(x[train_idx], y[train_idx], x[test_idx], y[test_idx])

    def model(self) -> nn.Module:
        return TransformerClassifier(self.vocab_size, self.max_tokens)

    def evaluate(self, model: nn.Module, data: TaskData, batch_size: int = 256) -> float:
        """F1 of the spam class."""
        pred = torch.cat([out.argmax(1) for out, _ in predictions(model, data, batch_size)])
        tp = int(((pred == 1) & (data.y_test == 1)).sum())
        fp = int(((pred == 1) & (data.y_test == 0)).sum())
        fn = int(((pred == 0) & (data.y_test == 1)).sum())
        return 2 * tp / max(2 * tp + fp + fn, 1)


@register
class SmsSpamGRU(SmsSpam):
    name = "sms-spam-gru"
    description = "SMS Spam Collection, GRU(64) from scratch (F1 on spam)"
    optimizers = ("sgd", "adam")

    def model(self) -> nn.Module:
        return GRUClassifier(self.vocab_size)


# ---------------------------------------------------------------------- tiny-shakespeare
class _Block(nn.Module):
    def __init__(self, width: int, heads: int, context: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width, bias=False), nn.LayerNorm(width, bias=False)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width, bias=False), nn.GELU(), nn.Linear(4 * width, width, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))  # type: ignore[no-any-return]


class CharGPT(nn.Module):
    """nanoGPT's model (no bias, no dropout, tied embeddings, GPT-2 initialisation)."""

    def __init__(self, vocab: int, context: int = 64, width: int = 128, heads: int = 4, layers: int = 4) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(_Block(width, heads, context) for _ in range(layers))
        self.ln = nn.LayerNorm(width, bias=False)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tokens.weight  # weight tying, as nanoGPT
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))  # type: ignore[no-any-return]


@register
class ShakespeareChar(Task):
    """Character-level GPT on tiny-shakespeare, nanoGPT's CPU configuration: 4 layers, 4 heads,
    width 128, context 64, batch 12, 2,000 iterations, AdamW (betas 0.9/0.99, weight decay 0.1 on
    matrices), gradient clipping 1.0. Metric: validation loss (nats per character) on the last
    10% of the text, all of it; target 1.88, the level nanoGPT reports for this configuration."""

    name = "shakespeare-char"
    description = "tiny-shakespeare, char-level GPT (4 layers, 4 heads, width 128, context 64)"
    domain = "language"
    metric = "loss"
    tracked_on = "validation"
    units = "nats per character"
    higher_is_better = False
    target = 1.88
    batch_size = 12
    epochs = 8
    evals_per_epoch = 1
    step_unit = "iterations"
    default_lr = {"sgd": 0.3, "adam": 1e-3}
    optimizers = ("adam",)
    strategies = ("constant", "warmup_cosine", "one_cycle", "triangular", "auto")
    grad_clip = 1.0
    context: ClassVar[int] = 64
    #: one "epoch" of the bench: nanoGPT's evaluation interval
    iterations_per_epoch: ClassVar[int] = 250
    #: training sequences start every ``stride`` characters (nanoGPT samples any offset)
    stride: ClassVar[int] = 16

    def __init__(self) -> None:
        self._vocab = 65

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        from ..data import tiny_shakespeare

        text = tiny_shakespeare(data_dir)
        chars = sorted(set(text))
        self._vocab = len(chars)
        lookup = {ch: i for i, ch in enumerate(chars)}
        ids = torch.tensor([lookup[ch] for ch in text], dtype=torch.uint8)
        cut = int(0.9 * len(ids))  # nanoGPT's split
        train, val = ids[:cut], ids[cut:]
        n = self.context + 1
        starts = torch.arange(0, len(train) - n, self.stride)
        seqs = train[starts.unsqueeze(1) + torch.arange(n)].long()
        val_seqs = val[: (len(val) - 1) // self.context * self.context + 1]
        xv = val_seqs[:-1].view(-1, self.context).long()
        yv = val_seqs[1:].view(-1, self.context).long()
        return TaskData(seqs[:, :-1], seqs[:, 1:], xv, yv)

    def model(self) -> nn.Module:
        return CharGPT(self._vocab, self.context)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))

    def evaluate(self, model: nn.Module, data: TaskData, batch_size: int = 256) -> float:
        """Mean cross-entropy per character over the whole validation split."""
        total = sum(float(self.loss(out, y)) * len(out) for out, y in predictions(model, data, batch_size))
        return total / len(data.x_test)

    def steps_per_epoch(self, data: TaskData, batch_size: int | None = None) -> int:
        return min(self.iterations_per_epoch, data.n_train // (batch_size or self.batch_size))

    def make_optimizer(self, name: str, groups: list[tuple[list[nn.Parameter], float]], lr: float) -> Any:
        """nanoGPT's AdamW: betas (0.9, 0.99), weight decay 0.1 on matrices and embeddings only."""
        if name != "adam":
            return super().make_optimizer(name, groups, lr)
        params = [p for ps, _ in groups for p in ps]
        decay = [p for p in params if p.dim() >= 2]
        rest = [p for p in params if p.dim() < 2]
        return torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99)
        )
