"""A DET solution as a folder that other code loads: a trained one, or a code decoded from a subspace.

Every export folder holds `deltaspace.json`, the recipe of the classifier (the backbone's config slice and a
fingerprint of its weights, the DET's name and settings, the task's labels, the head's settings, where the
solution came from and the provenance), a short README.md, and the DET's tensors in one of two formats:

* peft: a DET whose `attach` returns a peft model (LoRA, prompt tuning, IA3) is written by peft itself,
  `adapter_config.json` and `adapter_model.safetensors`, so that `PeftModel.from_pretrained(backbone, folder)`
  loads it on the same backbone. A new peft-backed DET needs nothing here: the format follows from the model.
* deltaspace: our own DETs (Houlsby adapter, prefix, BitFit, fine-tuning, ...) as `det_model.safetensors`,
  the DET's tensors named as in the backbone's own state dict (after the DET is attached).

`load(folder)` gives the classifier back (backbone, DET and head), `apply(model, folder)` attaches the DET to a
backbone at hand. Both refuse a backbone other than the one the solution was trained on.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from . import dets
from .delta import TRAINED, Layout
from .heads import Classifier, build_classifier
from .io import ArtifactError, atomic_folder, load_tensors, provenance, save_tensors
from .models import Backbone, backbone_shape, load_backbone
from .spacefile import SpaceFile

RECIPE = "deltaspace.json"
OWN_WEIGHTS = "det_model.safetensors"
PEFT_WEIGHTS, PEFT_CONFIG = "adapter_model.safetensors", "adapter_config.json"
FORMAT_VERSION = 1
HEAD_KEYS = ("max_length", "temperature", "pooling", "answer_prefix")  # Classifier's settings, from backbone:
_ROOT = "model."  # the classifier's name for its backbone: stripped from the DET's tensor names


class ExportError(ValueError):
    """A folder is no export, or does not fit the backbone it is loaded on."""


# -- writing -------------------------------------------------------------------------------------------------
def export_solution(folder, *, backbone: dict, det: str, det_config: dict, labels: list[str],
                    tensors: Mapping[str, torch.Tensor], origin: dict) -> Path:
    """Write a DET solution (`tensors`: every DET tensor's full value, named as the classifier names them) as
    an export folder; `origin` says where it came from. Returns the folder."""
    classifier, _ = build_classifier(backbone, det_config, labels, 0)
    check = fingerprint(classifier.model)  # the DET's tensors still at their initial values: the bare backbone
    params = dict(classifier.named_parameters())
    if _shapes(tensors) != _shapes({n: p for n, p in params.items() if p.requires_grad}):
        layout = Layout.of_trainable(classifier)
        raise ExportError(f"dets.{det}: the solution has {Layout.of(tensors).size} entries in {len(tensors)} "
                          f"tensors; its config {det_config} gives {layout.size} in {len(layout.names)}")
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)
    peft = hasattr(classifier.model, "peft_config")
    recipe = {
        "format": "peft" if peft else "deltaspace", "format_version": FORMAT_VERSION,
        "det": {"name": det, "method": det_config["method"], "settings": det_config},
        "backbone": backbone, "backbone_check": check, "kind": classifier.kind, "labels": list(labels),
        "head": {key: backbone[key] for key in HEAD_KEYS},
        "layout": Layout.of({_backbone_name(n): t for n, t in tensors.items()}).to_json(),
        "origin": origin, "provenance": provenance(),
    }
    with atomic_folder(folder) as tmp:
        if peft:
            _write_peft(tmp, classifier.model, backbone)
        else:
            save_tensors(tmp / OWN_WEIGHTS, {_backbone_name(n): t for n, t in tensors.items()},
                         {"det": recipe["det"], "layout": recipe["layout"]})
        (tmp / RECIPE).write_text(json.dumps(recipe, indent=1, sort_keys=True) + "\n")
        (tmp / "README.md").write_text(_readme(recipe))
    return Path(folder)


def export_delta(delta_path, folder) -> Path:
    """Export the kept (best validation) tensors of a train_det output, results/dets/.../delta.safetensors."""
    tensors, meta = load_tensors(delta_path)
    if "layout" not in meta:
        raise ArtifactError(f"{delta_path}: no layout in the header; not a train_det output")
    layout = Layout.from_json(meta["layout"])
    origin = {"stage": "train_det", "task": meta["task"], "seed": meta["seed"], "init_seed": meta.get("init_seed"),
              "path": str(delta_path)}
    return export_solution(folder, backbone=meta["backbone"], det=meta["det"], det_config=meta["det_config"],
                           labels=meta["labels"], tensors={n: tensors[TRAINED + n] for n in layout.names},
                           origin=origin)


def export_code(space: SpaceFile, det: str, z: torch.Tensor, labels: list[str], folder, origin: dict | None = None) -> Path:
    """Export the DET's tensors decoded from code z of a subspace (init + b + P z): the DET's own code, or any
    other DET's code decoded with this DET's projection (a transfer)."""
    layout = space.layout(det)
    z = z.detach().float().reshape(-1)
    flat = space.inits[det].float() + space.subspace.decode(det, z).float()
    origin = {"stage": "subspace", "space": space.subspace.name, "path": space.path, "z": z.tolist(),
              **(origin or {})}
    return export_solution(folder, backbone=space.meta["backbone"], det=det, det_config=space.meta["det_configs"][det],
                           labels=labels, tensors=layout.unflatten(flat), origin=origin)


def _backbone_name(name: str) -> str:
    return name.removeprefix(_ROOT)


def _write_peft(folder: Path, model: nn.Module, backbone: dict) -> None:
    """peft's own files; the base model named where it is one a user can load by name."""
    if backbone["source"] != "random":
        model.peft_config["default"].base_model_name_or_path = backbone["id"]
    model.save_pretrained(str(folder))


def _readme(recipe: dict) -> str:
    det, origin = recipe["det"], recipe["origin"]
    where = (f"trained on {origin['task']} (seed {origin['seed']})" if origin["stage"] == "train_det"
             else f"decoded from subspace {origin['space']}")
    peft = ("\nThe adapter is a peft folder: `PeftModel.from_pretrained(backbone, folder)` loads it on the "
            "backbone recorded in deltaspace.json.\n" if recipe["format"] == "peft" else "")
    return (f"# {det['name']} ({det['method']}), {where}\n\nA deltaspace export. Labels: {', '.join(recipe['labels'])}."
            "\n\n    from deltaspace.export import load\n    classifier = load(folder)  # backbone + DET + head\n"
            "    batch = classifier.collate(classifier.encode([\"some text\"]))\n"
            "    logits = classifier(**batch)  # (texts, labels)\n" + peft)


# -- reading -------------------------------------------------------------------------------------------------
def read_recipe(folder) -> dict:
    """The folder's deltaspace.json; a folder that is not an export raises one ExportError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{folder}: no such folder; an export is a folder written by deltaspace.export")
    path = folder / RECIPE
    try:
        recipe = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{folder}: not a deltaspace export (no readable {RECIPE}: {exc})") from exc
    weights = folder / (PEFT_WEIGHTS if recipe.get("format") == "peft" else OWN_WEIGHTS)
    if recipe.get("format_version") != FORMAT_VERSION or not weights.is_file():
        raise ExportError(f"{folder}: not a complete deltaspace export of format {FORMAT_VERSION} "
                          f"(format {recipe.get('format_version')!r}, {weights.name} {'present' if weights.is_file() else 'missing'})")
    return recipe


def fingerprint(model: nn.Module) -> dict:
    """What identifies a backbone: its type and sizes, and a digest of its input embeddings (the weights of
    another checkpoint of the same architecture differ there)."""
    shape = backbone_shape(model.config)
    weight = model.get_input_embeddings().weight.detach().to("cpu", torch.float32).contiguous()
    return {"model_type": shape.model_type, "layers": shape.layers, "hidden": shape.hidden,
            "vocab": int(weight.shape[0]), "embeddings_sha256": hashlib.sha256(weight.numpy().tobytes()).hexdigest()}


def apply(model: nn.Module, folder) -> nn.Module:
    """Attach the folder's DET, with its tensors, to `model`, a bare backbone as deltaspace.models.load_backbone
    builds it (the one the recipe records); returns the model to call (a peft model for a peft folder),
    frozen and in eval mode."""
    recipe = read_recipe(folder)
    found = fingerprint(model)
    if found != recipe["backbone_check"]:
        differs = ", ".join(f"{key} {found[key]} (recorded {recipe['backbone_check'][key]})"
                            for key in found if found[key] != recipe["backbone_check"].get(key))
        raise ExportError(f"{folder}: the model given is not the backbone this solution was trained on ({differs}); "
                          f"load backbone {_backbone_label(recipe['backbone'])} (deltaspace.export.load does)")
    if recipe["format"] == "peft":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(folder))
    else:
        model = dets.attach(model, recipe["det"]["settings"], recipe["kind"], 0)
        _load_own(model, Path(folder))
    model.requires_grad_(False)
    return model.eval()


def _load_own(model: nn.Module, folder: Path) -> None:
    tensors, _ = load_tensors(folder / OWN_WEIGHTS)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}  # the DET's, as attach made them
    if _shapes(params) != _shapes(tensors):
        missing, extra = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
        raise ExportError(f"{folder}: its tensors do not fit the DET attached to this model (missing {missing[:3]}, "
                          f"unexpected {extra[:3]}, or other shapes)")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[name].to(p.device, p.dtype))


def _shapes(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in tensors.items()}


def _backbone_label(backbone: dict) -> str:
    if backbone["source"] == "random":
        return f"a random {backbone['architecture']['model_type']} (init_seed {backbone.get('init_seed', 0)})"
    return repr(backbone["id"])


def load(folder, *, backbone: Backbone | None = None, device: str | torch.device = "cpu") -> Classifier:
    """The exported classifier, ready to predict: the recorded backbone (or `backbone`, which must be that
    one), the DET with its tensors and the label-scoring head, in eval mode on `device`."""
    recipe = read_recipe(folder)
    backbone = backbone or load_backbone(recipe["backbone"])
    model = apply(backbone.model, folder)
    classifier = Classifier(model, backbone.tokenizer, recipe["kind"], recipe["labels"], **recipe["head"])
    return classifier.to(device).eval()
