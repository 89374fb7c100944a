"""Train one DET on one task with one seed; keep the checkpoint that is best on validation.

A long run can save its whole state (the DET's values, the optimiser's moments, the schedule, every random
generator, the best values so far) at evaluations, and a rerun resumes from there: on the CPU the resumed
run ends bit-identical to one that was never stopped.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .io import ArtifactError, load_tensors, save_tensors

BUCKET = 50  # batches per length-sorted bucket: less padding, still shuffled


@runtime_checkable
class Model(Protocol):
    """What training and prediction ask of a model: heads.Classifier (a DET in its original space) and
    decoded.Decoded (a DET decoded from a code z) are both one. Calling it with a collated batch gives logits
    (batch, labels); `label_embeddings` held fixed may be passed in (encoders)."""

    labels: list[str]
    kind: str  # "encoder" or "causal"
    training: bool

    def encode(self, texts: list[str], pairs: list[str] | None = None) -> list[list[int]]: ...

    def collate(self, ids: list[list[int]]) -> dict[str, torch.Tensor]: ...

    def label_embeddings(self) -> torch.Tensor: ...

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 label_embeddings: torch.Tensor | None = None) -> torch.Tensor: ...

    def named_parameters(self): ...

    def train(self, mode: bool = True): ...

    def eval(self): ...


@dataclass
class Split:
    """A tokenised split: id lists and integer labels."""

    ids: list[list[int]]
    labels: np.ndarray

    @classmethod
    def of(cls, classifier: Model, frame) -> Split:
        pairs = frame["text_pair"].tolist() if "text_pair" in frame else None
        return cls(classifier.encode(frame["text"].tolist(), pairs), frame["label"].to_numpy(np.int64))

    def __len__(self) -> int:
        return len(self.labels)


class NonFiniteLoss(ArithmeticError):
    """The training loss or the DET's values became NaN or infinite."""


@dataclass
class Checkpoint:
    """Where a run saves its state, how often, and the key of the job it belongs to: a file with another
    key (a run of other settings or code) is never resumed from, only replaced."""

    path: Path
    key: str
    every_seconds: float

    def load(self) -> tuple[dict[str, torch.Tensor], dict] | None:
        if not Path(self.path).is_file():
            return None
        try:
            tensors, meta = load_tensors(self.path)
        except ArtifactError as exc:  # a checkpoint is a convenience: a damaged one means starting over
            print(f"ignoring the checkpoint: {exc}")
            return None
        if meta.get("key") != self.key:
            print(f"ignoring the checkpoint {self.path}: it belongs to other settings or code")
            return None
        return tensors, meta

    def save(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        save_tensors(self.path, tensors, meta | {"key": self.key})

    def remove(self) -> None:
        Path(self.path).unlink(missing_ok=True)


# Where a run stands at a checkpoint: best validation accuracy and its step, examples seen, seconds spent
# training, steps taken, and the epoch and batch (1-based, within the epoch) of the checkpoint.
# The count of evaluations since the best one (`stale`) decides early stopping.
PROGRESS = ("best_acc", "best_step", "seen", "train_seconds", "step", "epoch", "batch", "stale")


def _save(checkpoint: Checkpoint, params: dict, optimizer, schedule, epoch_start: torch.Tensor, result: Result,
          best_preds: np.ndarray | None, device: torch.device, progress: dict) -> None:
    """Everything a resumed run needs to go on exactly as this one would. The random state of the batch
    order is the one at the epoch's start: a resumed run draws the epoch's batches again and skips those done."""
    state = optimizer.state_dict()
    tensors = {f"optimizer.{i}.{k}": v for i, entry in state["state"].items() for k, v in entry.items()}
    tensors |= {"current." + n: p for n, p in params.items()} | {"best." + n: t for n, t in result.best.items()}
    tensors |= {"rng.torch": torch.get_rng_state(), "rng.epoch_start": epoch_start}
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    if best_preds is not None:
        tensors["best_preds"] = torch.as_tensor(best_preds)
    tensors["init_preds"] = torch.as_tensor(result.predictions["test_init"])
    checkpoint.save(tensors, {"param_groups": state["param_groups"], "schedule": schedule.state_dict(),
                              "metrics": result.metrics, "history": result.history, **progress})


def _restore(loaded: tuple[dict, dict], params: dict, optimizer, schedule, generator: torch.Generator, result: Result,
             device: torch.device) -> tuple[np.ndarray | None, dict]:
    """Put a saved state back (`_save`'s inverse); return the best validation predictions and the progress."""
    tensors, meta = loaded
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors["current." + name].to(p.device))
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            moments.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": moments, "param_groups": meta["param_groups"]})
    schedule.load_state_dict(meta["schedule"])
    torch.set_rng_state(tensors["rng.torch"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    generator.set_state(tensors["rng.epoch_start"])
    result.best = {n: tensors["best." + n] for n in params}
    result.metrics, result.history = meta["metrics"], meta["history"]
    best_preds = tensors["best_preds"].numpy() if "best_preds" in tensors else None
    result.predictions["test_init"] = tensors["init_preds"].numpy()
    return best_preds, {k: meta.get(k, 0) for k in PROGRESS}


@dataclass
class Result:
    init: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    metrics: list[dict] = field(default_factory=list)  # split, metric, value
    history: list[dict] = field(default_factory=list)  # step, epoch, train_loss, validation accuracy
    # test predictions (example order of the split): "test_init" at the start, "test" of the kept tensors
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full precision on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def trainable(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def batches(split: Split, size: int, generator: torch.Generator | None) -> list[np.ndarray]:
    """Index batches. With a generator: shuffled, and sorted by length within buckets of BUCKET batches."""
    n = len(split)
    if generator is None:
        order = np.argsort([len(s) for s in split.ids], kind="stable")
        return [order[i : i + size] for i in range(0, n, size)]
    perm = torch.randperm(n, generator=generator).numpy()
    out = []
    for start in range(0, n, size * BUCKET):
        chunk = perm[start : start + size * BUCKET]
        chunk = chunk[np.argsort([len(split.ids[i]) for i in chunk], kind="stable")]
        out += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    return [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]


def to_device(classifier: Model, split: Split, index: np.ndarray, device: torch.device):
    enc = classifier.collate([split.ids[i] for i in index])
    return {k: v.to(device) for k, v in enc.items()}, torch.as_tensor(split.labels[index], device=device)


@torch.no_grad()
def predict(classifier: Model, split: Split, batch_size: int, device: torch.device) -> np.ndarray:
    was_training = classifier.training
    classifier.eval()
    preds = np.empty(len(split), dtype=np.int64)
    with autocast(device):
        # the DET is fixed while predicting: encode the label names once, not once per batch
        labels = classifier.label_embeddings() if classifier.kind == "encoder" else None
        for index in batches(split, batch_size, None):
            enc, _ = to_device(classifier, split, index, device)
            preds[index] = classifier(**enc, label_embeddings=labels).argmax(-1).cpu().numpy()
    classifier.train(was_training)
    return preds


SCORES = ("accuracy", "macro_f1", "majority_accuracy")  # the keys of scores()
# Result.metrics rows that time the machine, not the model: stages print them and keep them out of their
# tables, so that the same config and seed give the same tables.
CLOCKS = ("examples_per_s", "seconds")


def stored_metrics(result: Result, desc: str, started: float) -> list[dict]:
    """The metrics a stage writes (what the model computed); the clock readings go to the job's log."""
    clocks = {m["metric"]: m["value"] for m in result.metrics if m["metric"] in CLOCKS}
    print(f"{desc}: {clocks['seconds']:.1f} s in training steps ({clocks['examples_per_s']:.1f} examples/s), "
          f"{time.perf_counter() - started:.1f} s for the whole job")
    return [m for m in result.metrics if m["metric"] not in CLOCKS]


POINTS = {"test_init": "init", "test": "best"}  # Result.predictions keys -> the `point` of predictions_frame


def predictions_frame(predictions: dict[str, np.ndarray], labels: np.ndarray) -> pd.DataFrame:
    """Test predictions as a table (point, example, label, prediction), point "init" (the start) or "best" (the
    kept tensors): the report's bootstrap intervals resample these examples, paired across runs."""
    frames = [pd.DataFrame({"point": POINTS[key], "example": np.arange(len(labels)), "label": labels,
                            "prediction": preds.astype(np.int64)})
              for key, preds in predictions.items()]
    return pd.concat(frames, ignore_index=True)


def scores(preds: np.ndarray, labels: np.ndarray, n_labels: int, majority: int) -> dict[str, float]:
    f1 = []
    for c in range(n_labels):
        tp = np.sum((preds == c) & (labels == c))
        denom = np.sum(preds == c) + np.sum(labels == c)
        f1.append(2 * tp / denom if denom else 0.0)
    return {
        "accuracy": float(np.mean(preds == labels)),
        "macro_f1": float(np.mean(f1)),
        "majority_accuracy": float(np.mean(labels == majority)),
    }


def _evaluation_steps(cfg: dict, steps_per_epoch: int, total: int):
    """Whether a (1-based, global) step ends with an evaluation on validation."""
    if cfg.get("eval_every"):
        return lambda step: step % cfg["eval_every"] == 0 or step == total
    within = {round(steps_per_epoch * (i + 1) / cfg["evals_per_epoch"]) for i in range(cfg["evals_per_epoch"])}
    return lambda step: (step - 1) % steps_per_epoch + 1 in within


def train(
    classifier: Model,
    splits: dict[str, Split],
    cfg: dict,
    lr: float,
    seed: int,
    device: torch.device,
    desc: str = "train",
    checkpoint: Checkpoint | None = None,
    start_is_candidate: bool = False,
) -> Result:
    """Train the classifier's trainable tensors (the DET's) on splits["train"].

    cfg is the validated `train:` slice, or `subspace.optimize:`. The budget is cfg["steps"] when the cfg
    has it (epochs of the training split follow one another until then), else cfg["epochs"] epochs; it
    evaluates on validation every cfg["eval_every"] steps and at the last step when the cfg has that, else
    evals_per_epoch times per epoch; with cfg["patience"] (not null) it stops once that many evaluations in a
    row have not beaten the best. Returns the best tensors with metrics on validation and test (and at
    initialisation on test) and the test predictions at both. With
    start_is_candidate the initial values are evaluated on validation too and kept unless training beats
    them, so the result is never worse on validation than where it began (optimize_subspace: a code that
    starts near a solution). With a checkpoint, resumes from its file when there is one for this job, and
    saves one at an evaluation once checkpoint.every_seconds have passed since the last. A NaN or infinite
    loss raises NonFiniteLoss.
    """
    torch.manual_seed(seed)  # dropout
    generator = torch.Generator().manual_seed(seed)
    classifier.to(device)
    params = trainable(classifier)
    init = {n: p.detach().cpu().clone() for n, p in params.items()}
    n_labels = len(classifier.labels)
    majority = int(np.bincount(splits["train"].labels, minlength=n_labels).argmax())
    result = Result(init=init, best=init)

    steps_per_epoch = math.ceil(len(splits["train"]) / cfg["batch_size"])
    total = cfg.get("steps") or steps_per_epoch * cfg["epochs"]
    warmup = int(cfg["warmup_ratio"] * total)
    optimizer = torch.optim.AdamW(params.values(), lr=lr, weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    is_eval = _evaluation_steps(cfg, steps_per_epoch, total)
    patience = cfg.get("patience")

    best_acc, best_step, best_preds, seen, train_seconds, step, stale = -1.0, 0, None, 0, 0.0, 0, 0
    first_epoch, skip = 0, 0  # where a resumed run goes on: epoch, and batches of it already done
    loaded = checkpoint.load() if checkpoint else None
    if loaded is None:
        test_init = predict(classifier, splits["test"], cfg["eval_batch_size"], device)
        result.predictions["test_init"] = test_init
        result.metrics.append({"split": "test", "metric": "accuracy_at_init",
                               "value": float(np.mean(test_init == splits["test"].labels))})
        if start_is_candidate:
            best_preds = predict(classifier, splits["validation"], cfg["eval_batch_size"], device)
            best_acc = float(np.mean(best_preds == splits["validation"].labels))
            result.best = {n: t.clone() for n, t in init.items()}  # its own tensors: saved beside init
            result.history.append({"step": 0, "epoch": 0.0, "train_loss": float("nan"), "validation_accuracy": best_acc})
    else:
        best_preds, progress = _restore(loaded, params, optimizer, schedule, generator, result, device)
        best_acc, best_step, seen, train_seconds, step, first_epoch, skip, stale = (progress[k] for k in PROGRESS)
        print(f"{desc}: resumed from the checkpoint at step {step} of {total} ({checkpoint.path})")
    last_save = time.monotonic()

    classifier.train()
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True, mininterval=2.0)
    epoch, stopped = first_epoch, False
    while step < total and not stopped:
        running = []
        epoch_start = generator.get_state()
        for i, index in enumerate(batches(splits["train"], cfg["batch_size"], generator), start=1):
            if i <= skip:  # done before the checkpoint this run resumed from
                continue
            if step >= total or stopped:
                break
            t0 = time.perf_counter()
            enc, labels = to_device(classifier, splits["train"], index, device)
            with autocast(device):
                loss = F.cross_entropy(classifier(**enc).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params.values(), cfg["max_grad_norm"])
            optimizer.step()
            schedule.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            train_seconds += time.perf_counter() - t0
            seen += len(index)
            step += 1
            running.append(loss.item())
            if not math.isfinite(running[-1]):
                raise NonFiniteLoss(f"{desc}: the training loss is {running[-1]} at step {step} of {total} "
                                    f"(epoch {epoch + 1}, learning rate {lr:g})")
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}", ex_s=f"{seen / train_seconds:.1f}", best=f"{best_acc:.3f}", refresh=False)
            if is_eval(step):
                if not all(bool(torch.isfinite(p).all()) for p in params.values()):
                    raise NonFiniteLoss(f"{desc}: the DET's values are no longer finite at step {step} of {total} "
                                        f"(epoch {epoch + 1}, learning rate {lr:g})")
                preds = predict(classifier, splits["validation"], cfg["eval_batch_size"], device)
                acc = float(np.mean(preds == splits["validation"].labels))
                result.history.append({"step": step, "epoch": epoch + i / steps_per_epoch,
                                       "train_loss": float(np.mean(running)), "validation_accuracy": acc})
                running = []
                if acc > best_acc:
                    best_acc, best_step, best_preds, stale = acc, step, preds, 0
                    result.best = {n: p.detach().cpu().clone() for n, p in params.items()}
                else:
                    stale += 1
                    stopped = patience is not None and stale >= patience
                due = checkpoint is not None and time.monotonic() - last_save >= checkpoint.every_seconds
                if due and step < total and not stopped:
                    progress = dict(zip(PROGRESS, (best_acc, best_step, seen, train_seconds, step, epoch, i, stale)))
                    _save(checkpoint, params, optimizer, schedule, epoch_start, result, best_preds, device, progress)
                    last_save = time.monotonic()
        skip, epoch = 0, epoch + 1
    bar.close()

    with torch.no_grad():
        for name, p in params.items():
            p.copy_(result.best[name].to(p.device))
    # validation predictions of the best checkpoint are the ones made when it was found
    final = {"validation": best_preds, "test": predict(classifier, splits["test"], cfg["eval_batch_size"], device)}
    result.predictions["test"] = final["test"]
    for split, preds in final.items():
        for metric, value in scores(preds, splits[split].labels, n_labels, majority).items():
            result.metrics.append({"split": split, "metric": metric, "value": value})
    result.metrics += [
        {"split": "train", "metric": "examples_per_s", "value": seen / train_seconds},
        {"split": "train", "metric": "seconds", "value": train_seconds},
        {"split": "train", "metric": "examples", "value": float(seen)},
        {"split": "train", "metric": "best_step", "value": float(best_step)},
        {"split": "train", "metric": "steps", "value": float(step)},
        {"split": "train", "metric": "trainable_params", "value": float(sum(p.numel() for p in params.values()))},
    ]
    return result
