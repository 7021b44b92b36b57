"""The fine-tuning benchmark's text, tokenizer, tasks, pretrained encoder and run settings.

Everything comes from the Python standard library's own source files on this machine (no
download): a word-level tokenizer built from them, a tiny BERT-like encoder pretrained with
masked LM on them, and two classification tasks cut from them. Every file's token stream is
split at :data:`SPLIT`: the part before is the *train region* (pretraining text and the tasks'
training examples), the part after the *validation region* (only the tasks' validation examples,
never seen in pretraining).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

SEQ = 64  # tokens per example, [CLS] included
VOCAB = 2000  # most frequent tokens kept, plus the 5 special ones
REPLACED = 0.25  # fraction of a corrupted snippet's tokens replaced (the "replaced" task)
SPLIT = 0.85  # fraction of each file's tokens in the train region
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
MODULES = ["turtle", "inspect", "typing", "pydoc", "tarfile", "doctest", "argparse", "subprocess"]
N_TRAIN = 1600  # training examples per task
N_VAL = 800  # validation examples per task (the split that scores the runs)
HIDDEN, LAYERS, HEADS, INTERMEDIATE = 64, 2, 2, 128
PRETRAIN_SECONDS = 200.0  # masked-LM pretraining wall time on one torch thread
PRETRAIN_BATCH, PRETRAIN_LR = 64, 1e-3

BATCH = 32  # fine-tuning examples per update
EPOCHS = 2  # fine-tuning epochs
GRID = [10 ** (-6 + k / 3) for k in range(13)]  # fine-tuning peak LRs, 1e-6 ... 1e-2
RULES = ["lrkit", "minimum", "steepest", "valley"]  # range-test suggestion rules compared
BUDGETS = [0.25, 0.5]  # tune_lr budgets compared, fractions of one run

_TOKEN = re.compile(r"[A-Za-z_]+|\d+|\n|[^\sA-Za-z_\d]")


def source_files() -> list[Path]:
    """The standard library's top-level modules, sorted by name."""
    return sorted(Path(os.__file__).parent.glob("*.py"))


def tokenize(text: str) -> list[str]:
    """Identifiers, numbers, newlines and single punctuation characters; other space dropped."""
    return _TOKEN.findall(text)


class Corpus:
    """Token ids of every stdlib file, the vocabulary, and each file's train/validation regions."""

    def __init__(self) -> None:
        words = {p.stem: tokenize(p.read_text(errors="replace")) for p in source_files()}
        counts = Counter(w for ws in words.values() for w in ws[: int(len(ws) * SPLIT)])
        self.vocab = SPECIAL + [w for w, _ in counts.most_common(VOCAB)]
        index = {w: i for i, w in enumerate(self.vocab)}
        self.ids = {
            name: np.array([index.get(w, UNK) for w in ws], dtype=np.int64)
            for name, ws in words.items()
            if len(ws) > 20 * SEQ
        }

    def region(self, name: str, part: str) -> np.ndarray:
        ids = self.ids[name]
        cut = int(len(ids) * SPLIT)
        return ids[:cut] if part == "train" else ids[cut:]

    def windows(self, name: str, part: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random windows of ``SEQ - 1`` tokens from one file's region."""
        ids = self.region(name, part)
        starts = rng.integers(0, len(ids) - SEQ, size=n)
        return np.stack([ids[s : s + SEQ - 1] for s in starts])


def _with_cls(windows: np.ndarray) -> np.ndarray:
    return np.concatenate([np.full((len(windows), 1), CLS), windows], axis=1)


def module_task(corpus: Corpus, part: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of :data:`MODULES` a snippet of ``SEQ - 1`` tokens comes from (balanced)."""
    rng = np.random.default_rng(seed)
    per = n // len(MODULES)
    x = np.concatenate([corpus.windows(m, part, per, rng) for m in MODULES])
    y = np.repeat(np.arange(len(MODULES)), per)
    order = rng.permutation(len(y))
    return _with_cls(x)[order], y[order]


def replaced_task(corpus: Corpus, part: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether a snippet is as written (1) or has :data:`REPLACED` of its tokens replaced by
    tokens drawn at the train regions' word frequencies (0): only context gives them away."""
    rng = np.random.default_rng(seed)
    names = sorted(corpus.ids)
    counts = np.bincount(
        np.concatenate([corpus.region(k, "train") for k in names]), minlength=len(corpus.vocab)
    ).astype(float)
    picks = rng.choice(len(names), size=n)
    x = np.stack([corpus.windows(names[k], part, 1, rng)[0] for k in picks])
    y = (rng.random(n) < 0.5).astype(np.int64)
    for i in np.flatnonzero(y == 0):
        hit = rng.random(x.shape[1]) < REPLACED
        x[i, hit] = rng.choice(len(counts), size=int(hit.sum()), p=counts / counts.sum())
    return _with_cls(x), y


TASKS = {
    "module": (module_task, len(MODULES), "which of 8 stdlib modules a snippet comes from"),
    "replaced": (replaced_task, 2, "whether a quarter of a snippet's tokens were replaced"),
}


def task_data(corpus: Corpus, task: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The task's training split (train regions) and validation split (validation regions)."""
    make = TASKS[task][0]
    return {
        "train": make(corpus, "train", N_TRAIN, seed=1),
        "val": make(corpus, "val", N_VAL, seed=2),
    }


def bert_config(n_labels: int = 2) -> Any:
    import transformers

    return transformers.BertConfig(
        vocab_size=len(SPECIAL) + VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=INTERMEDIATE, max_position_embeddings=SEQ,
        pad_token_id=PAD, num_labels=n_labels,
    )  # fmt: skip


def pretrain(corpus: Corpus, out: Path, seconds: float = PRETRAIN_SECONDS) -> dict[str, Any]:
    """Masked-LM pretraining (BERT's 15% / 80-10-10 masking) on the train regions for
    ``seconds`` of wall time; the encoder is saved to ``out`` with ``save_pretrained``."""
    import transformers

    if (out / "pretrain.json").exists():
        return dict(json.loads((out / "pretrain.json").read_text()))
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = transformers.BertForMaskedLM(bert_config())
    opt = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LR, weight_decay=0.01)
    names = sorted(corpus.ids)
    sizes = np.array([len(corpus.region(n, "train")) for n in names], dtype=float)
    start, step, losses = time.perf_counter(), 0, []
    while time.perf_counter() - start < seconds:
        picks = rng.choice(len(names), size=PRETRAIN_BATCH, p=sizes / sizes.sum())
        x = torch.from_numpy(
            _with_cls(np.stack([corpus.windows(names[k], "train", 1, rng)[0] for k in picks]))
        )
        chosen = torch.from_numpy(rng.random(x.shape) < 0.15) & (x != CLS)
        roll = torch.from_numpy(rng.random(x.shape))
        inputs = x.clone()
        inputs[chosen & (roll < 0.8)] = MASK
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        inputs[swap] = torch.from_numpy(rng.integers(len(SPECIAL), len(corpus.vocab), x.shape))[
            swap
        ]
        warm = min(1.0, (step + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = PRETRAIN_LR * warm
        hidden = model.bert(input_ids=inputs).last_hidden_state[chosen]
        loss = torch.nn.functional.cross_entropy(model.cls(hidden), x[chosen])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
    model.bert.save_pretrained(out / "encoder")
    info = {
        "steps": step,
        "seconds": round(time.perf_counter() - start, 1),
        "batch": PRETRAIN_BATCH,
        "loss_first_100": float(np.mean(losses[:100])),
        "loss_last_100": float(np.mean(losses[-100:])),
    }
    (out / "pretrain.json").write_text(json.dumps(info))
    return info


def classifier(n_labels: int, pretrained: Path | None, seed: int) -> Any:
    """A BertForSequenceClassification: the pretrained encoder (``pretrained``), or the same
    architecture from scratch; the head (and, from scratch, everything) initialised by ``seed``."""
    import transformers

    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(bert_config(n_labels))
    if pretrained is not None:
        enc = transformers.BertModel.from_pretrained(
            pretrained / "encoder", add_pooling_layer=False
        )
        missing = model.bert.load_state_dict(enc.state_dict(), strict=False)
        if missing.unexpected_keys:
            raise RuntimeError(f"unexpected encoder keys {missing.unexpected_keys}")
    return model
