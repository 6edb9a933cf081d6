"""Hugging Face Trainer users' LR choices against cyclr's range test, end to end in the real Trainer.

A small BERT (2 layers, width 64, built from a config: no download) trained from scratch on the
SMS Spam Collection (the bench's split and word vocabulary; F1 on spam, held-out 20%), with the
Trainer's AdamW. Arms, on the same model, data, seeds and epochs (quality, not time):
- ``hf-default``: ``TrainingArguments`` as they come: ``learning_rate=5e-5``, linear decay;
- ``hf-1e-3-warmup``: a practitioner's recipe for a small Transformer from scratch: 1e-3 (the
  bench's best constant for this task) with 10% linear warm-up and linear decay;
- ``one_cycle-1e-3``: cyclr's one-cycle at that same 1e-3 peak (``attach(trainer, lambda n:
  cyclr.one_cycle(1e-3, total_steps=n))``), to separate the schedule from the LR choice;
- ``cyclr``: ``cyclr.hf.attach(trainer, "range_test")``: the range test, then its one-cycle.

    .venv/bin/python benchmarks/hf_workflow.py            # 3 seeds, about 4 min
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import warnings
from pathlib import Path
from typing import Any

import torch
import transformers

import cyclr
import cyclr.hf
from cyclr.bench.text import SmsSpam

ARMS = ("hf-default", "hf-1e-3-warmup", "one_cycle-1e-3", "cyclr")


class Messages(torch.utils.data.Dataset):
    def __init__(self, ids: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": self.labels[i]}


def model(vocab: int, tokens: int, seed: int) -> Any:
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=vocab,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=tokens,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def f1(net: Any, data: Messages) -> float:
    net.eval()
    with torch.no_grad():
        ids = data.ids
        pred = net(input_ids=ids, attention_mask=(ids != 0).long()).logits.argmax(1)
    y = data.labels
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    return 2 * tp / max(2 * tp + fp + fn, 1)


def run(
    arm: str, train: Messages, test: Messages, vocab: int, tokens: int, epochs: int, seed: int, out: Path
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "output_dir": str(out / f"{arm}-{seed}"),
        "num_train_epochs": epochs,
        "per_device_train_batch_size": 64,
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
        "disable_tqdm": True,
        "logging_strategy": "no",
        "seed": seed,
        "weight_decay": 0.01,
    }
    if arm == "hf-1e-3-warmup":
        steps = epochs * -(-len(train) // 64)
        options.update(learning_rate=1e-3, warmup_steps=round(0.1 * steps))
    trainer = transformers.Trainer(
        model=model(vocab, tokens, seed), args=transformers.TrainingArguments(**options), train_dataset=train
    )
    lr = trainer.args.learning_rate
    if arm == "cyclr":
        scheduler = cyclr.hf.attach(trainer, "range_test", progress=False)
        lr = float(scheduler.range_test.suggestion)
    elif arm == "one_cycle-1e-3":
        cyclr.hf.attach(trainer, lambda n: cyclr.one_cycle(1e-3, total_steps=n))
        lr = 1e-3
    trainer.train()
    return {"arm": arm, "seed": seed, "peak_lr": lr, "f1": f1(trainer.model, test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=SmsSpam.epochs)
    parser.add_argument("--out", type=Path, default=None, help="write the runs as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.logging.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    task = SmsSpam()
    data = task.dataset()
    train, test = Messages(data.x_train, data.y_train), Messages(data.x_test, data.y_test)
    print(f"SMS spam: {len(train)} train, {len(test)} test messages; BERT 2x64 from scratch; {args.epochs} epochs")
    print(f"{'arm':<18}{'seed':>5}{'peak LR':>10}{'F1':>8}")
    runs = []
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / "cyclr-hf-workflow"
    for seed in range(args.seeds):
        for arm in ARMS:
            r = run(arm, train, test, task.vocab_size, task.max_tokens, args.epochs, seed, scratch)
            runs.append(r)
            print(f"{arm:<18}{seed:>5}{r['peak_lr']:>10.3g}{r['f1']:>8.4f}", flush=True)
    print("\nmean F1 over seeds (sd)")
    for arm in ARMS:
        values = [r["f1"] for r in runs if r["arm"] == arm]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{arm:<18}{statistics.fmean(values):>8.4f} ({sd:.4f})")
    if args.out:
        args.out.write_text(json.dumps({"runs": runs}, indent=1))


if __name__ == "__main__":
    main()
