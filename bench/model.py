"""The model-side comparisons: DET training against Hugging Face Trainer + peft, a subspace step against the
DET's own step, and the landscape sweep against writing each grid point into the model in turn.

Every figure runs the library's own code (deltaspace.train.train, decoded.predict_codes) on the embedded
default's backbone and first task, so what is measured is what a workflow job does.
"""
from __future__ import annotations

import copy
import math
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from common import ROOT, timed
from torch.utils.flop_counter import FlopCounterMode

from deltaspace.config.plan import backbone_slice, data_slice, det_config, task_config, train_slice
from deltaspace.delta import Layout
from deltaspace.heads import build_classifier
from deltaspace.decoded import Decoded, predict_codes
from deltaspace.tasks import load_task
from deltaspace.train import Split, batches, predict, to_device, train

EVAL_EXAMPLES = 32  # validation and test examples while timing training: the figure is about training


def setup(cfg: dict, det: str, task: str | None = None):
    """(classifier with the DET attached, splits, task data) on the default's backbone and first task."""
    task = task or cfg["tasks"][0]["name"]
    data = load_task(task_config(cfg, task), data_slice(cfg), ROOT)
    classifier, _ = build_classifier(backbone_slice(cfg), det_config(cfg, det), data.labels, 0)
    return classifier, data


def splits_for_training(model, data) -> dict[str, Split]:
    frames = data.splits
    return {"train": Split.of(model, frames["train"]),
            "validation": Split.of(model, frames["validation"].iloc[:EVAL_EXAMPLES]),
            "test": Split.of(model, frames["test"].iloc[:EVAL_EXAMPLES])}


def _flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def random_subspace(classifier, dim: int, scale: float, generator: torch.Generator) -> Decoded:
    """The classifier's DET decoded from a random dim-subspace around its initial values (for timing only)."""
    layout = Layout.of_trainable(classifier)
    init = layout.flatten({n: p for n, p in classifier.named_parameters() if p.requires_grad})
    projection = torch.randn(layout.size, dim, generator=generator) * scale
    return Decoded(classifier, layout, projection, torch.zeros(layout.size), init)


# -- DET training ------------------------------------------------------------------------------------------
def passes_flops(passes) -> tuple[int, float]:
    """FLOPs of the forward and backward passes that iterating `passes` runs (PyTorch's FlopCounterMode), and
    the share of their tokens that were not padding: each item is the attention mask of one pass."""
    real = padded = 0

    def run():
        nonlocal real, padded
        for mask in passes:
            real += int(mask.sum())
            padded += mask.numel()

    return _flops(run), real / padded


def epoch_flops(model, split: Split, batch_size: int, device: torch.device) -> tuple[int, float]:
    """passes_flops of one epoch of train's batches (seed 0)."""
    model.train()

    def passes():
        for index in batches(split, batch_size, torch.Generator().manual_seed(0)):
            enc, labels = to_device(model, split, index, device)
            F.cross_entropy(model(**enc).float(), labels).backward()
            yield enc["attention_mask"]

    return passes_flops(passes())


def ours_training(cfg: dict, det: str, device: torch.device) -> dict:
    """deltaspace.train.train on the task's training split, timed as a whole (with its evaluation on a few
    examples); the FLOPs of the same epochs counted apart."""
    classifier, data = setup(cfg, det)
    splits = splits_for_training(classifier, data)
    settings = train_slice(cfg)
    result, wall = timed(lambda: train(classifier, splits, settings, det_config(cfg, det)["lr"], 0, device,
                                       desc=f"ours {det}"), device)
    examples = len(splits["train"]) * settings["epochs"]
    flops, useful = epoch_flops(classifier, splits["train"], settings["batch_size"], device)
    return {"examples": examples, "seconds": wall, "examples_per_s": examples / wall,
            "flops": flops * settings["epochs"], "useful": useful,
            "accuracy": next(m["value"] for m in result.metrics if m["split"] == "test" and m["metric"] == "accuracy")}


def trainer_training(cfg: dict, det: str, device: torch.device) -> dict:
    """The same DET, backbone, data, batch size, sequence length, epochs and schedule through a plain
    transformers Trainer with a peft LoRA model, as its documentation writes it: a sequence-classification
    head, the tokenizer's truncation, DataCollatorWithPadding (dynamic padding), no evaluation."""
    from datasets import Dataset
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

    from deltaspace.models import load_tokenizer, package_model_dir

    settings, backbone, lora = train_slice(cfg), backbone_slice(cfg), det_config(cfg, det)
    if lora["method"] != "lora":
        raise ValueError(f"the Trainer baseline is written for LoRA; {det} is {lora['method']}")
    data = load_task(task_config(cfg, cfg["tasks"][0]["name"]), data_slice(cfg), ROOT)
    tokenizer = load_tokenizer(backbone["source"], backbone["id"])
    frame = data.splits["train"]
    enc = tokenizer(frame["text"].tolist(), truncation=True, max_length=backbone["max_length"])
    dataset = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                 "labels": frame["label"].tolist()})
    model = AutoModelForSequenceClassification.from_pretrained(package_model_dir(backbone["id"]),
                                                               num_labels=len(data.labels))
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=lora["r"], lora_alpha=lora["alpha"],
                                             lora_dropout=lora["dropout"], target_modules=["query", "value"]))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=settings["batch_size"], num_train_epochs=settings["epochs"],
            learning_rate=lora["lr"], warmup_steps=settings["warmup_ratio"], weight_decay=settings["weight_decay"],
            max_grad_norm=settings["max_grad_norm"], lr_scheduler_type="linear", logging_strategy="no",
            save_strategy="no", eval_strategy="no", report_to=[], use_cpu=device.type == "cpu",
            bf16=device.type == "cuda", dataloader_num_workers=0, seed=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer))
        _, wall = timed(trainer.train, device)
        loader = trainer.get_train_dataloader()
        model.train()

        def passes():
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                model(**batch).loss.backward()
                yield batch["attention_mask"]

        flops, useful = passes_flops(passes())
    examples = len(dataset) * settings["epochs"]
    return {"examples": examples, "seconds": wall, "examples_per_s": examples / wall,
            "flops": flops * settings["epochs"], "useful": useful}


# -- a step in the subspace ---------------------------------------------------------------------------------
def step_seconds(cfg: dict, det: str, device: torch.device, dim: int = 4) -> dict:
    """Seconds per training step of the DET in its original space and of a code in a dim-subspace (Decoded,
    as optimize_subspace runs it), same batches, one epoch each, step time only (train's own clock); and the
    FLOPs of a step."""
    settings = train_slice(cfg) | {"epochs": 1}
    out = {}
    for space in ("original", "subspace"):
        model, data = setup(cfg, det)
        if space == "subspace":
            model = random_subspace(model, dim, 1e-3, torch.Generator().manual_seed(0))
        splits = splits_for_training(model, data)
        result = train(model, splits, settings, 1e-3, 0, device, desc=f"{space} {det}")
        per_s = next(m["value"] for m in result.metrics if m["metric"] == "examples_per_s")
        flops, _ = epoch_flops(model, splits["train"], settings["batch_size"], device)
        steps = math.ceil(len(splits["train"]) / settings["batch_size"])
        out[space] = {"seconds": len(splits["train"]) / per_s / steps, "flops": flops / steps}
    return out


# -- the landscape sweep -------------------------------------------------------------------------------------
def landscape_sweep(cfg: dict, det: str, device: torch.device, points: int = 16, per_pass=(1, 2, 4, 8, 16)) -> dict:
    """Grid points per second: the naive loop (decode a point, write its tensors into the model's parameters,
    evaluate) against predict_codes with several points per pass; both on the landscape's test examples."""
    classifier, data = setup(cfg, det)
    params = dict(classifier.named_parameters())
    generator = torch.Generator().manual_seed(0)
    dim = max(cfg["subspace"]["dims"])
    model = random_subspace(copy.deepcopy(classifier), dim, 0.02, generator).to(device)
    classifier.to(device)
    test = Split.of(model, data.splits["test"].iloc[: cfg["landscape"]["max_examples"]])
    codes = torch.randn(points, dim, generator=generator)
    batch = cfg["train"]["eval_batch_size"]

    def naive():
        out = []
        for z in codes:
            with torch.no_grad():
                for name, t in model.tensors(z.to(device)).items():
                    params[name].copy_(t)
            out.append(predict(classifier, test, batch, device))
        return np.stack(out)

    expected, naive_s = timed(naive, device)
    rates = {}
    for k in per_pass:
        got, seconds = timed(lambda k=k: predict_codes(model, test, codes, batch, device, points=k), device)
        rates[k] = {"points_per_s": points / seconds, "agreement": float((got == expected).mean())}
    return {"points": points, "examples": len(test), "naive_points_per_s": points / naive_s, "per_pass": rates,
            "flops_per_point": _flops(lambda: predict(classifier, test, batch, device))}


def peak_memory(device: torch.device) -> float | None:
    """Peak GPU memory in GiB since the last reset (None on the CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

