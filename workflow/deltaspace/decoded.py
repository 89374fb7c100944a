"""A classifier whose DET tensors are decoded from a code z of a subspace, and evaluation at many codes.

Decoded gives deltaspace.train what it asks of a model (train.Model): the same training loop that trains a
DET in its original space trains the code z.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from .delta import Layout
from .subspace import SubspaceError
from .train import Split, autocast, batches, predict, to_device


class _LabelNames(nn.Module):
    """Calls the classifier's label_embeddings() as a forward, so that functional_call can reach it."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self) -> torch.Tensor:
        return self.classifier.label_embeddings()


class Decoded(nn.Module):
    """A classifier whose DET tensors are theta = init + b + P z; the code z is its only trainable tensor.

    The frozen classifier is called with torch.func.functional_call and the decoded tensors: no copy of the
    model is made, and gradients of the loss reach z. It is a train.Model, so the training loop that trains a
    DET trains z.
    """

    def __init__(self, classifier: nn.Module, layout: Layout, projection: torch.Tensor, offset: torch.Tensor,
                 init: torch.Tensor, z: torch.Tensor | None = None):
        super().__init__()
        if projection.shape[0] != layout.size or offset.shape != (layout.size,) or init.shape != (layout.size,):
            raise SubspaceError(f"projection {tuple(projection.shape)}, offset {tuple(offset.shape)} and init "
                                f"{tuple(init.shape)} do not fit the DET's {layout.size} entries")
        classifier.requires_grad_(False)
        self.classifier = classifier
        self._labels = [_LabelNames(classifier)]  # a list: not a second registered copy of the classifier
        self.layout = layout
        self.register_buffer("projection", projection.float())
        self.register_buffer("base", (init + offset).float())
        dim = projection.shape[1]
        self.z = nn.Parameter(torch.zeros(dim) if z is None else z.detach().clone().float().reshape(dim))
        self.labels, self.kind = classifier.labels, classifier.kind

    def encode(self, *args, **kwargs):
        return self.classifier.encode(*args, **kwargs)

    def collate(self, *args, **kwargs):
        return self.classifier.collate(*args, **kwargs)

    def set_code(self, z: torch.Tensor) -> None:
        with torch.no_grad():
            self.z.copy_(z.reshape(self.z.shape))

    def tensors(self, z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The DET's tensors at code z (default: the current one) in full precision, each decoded from its own
        rows of P and b: the backward pass then only ever forms dim-sized pieces of the gradient of z, never a
        vector of the DET's full size per tensor (which made full fine-tuning 20x slower than the DET itself)."""
        z = self.z if z is None else z
        with torch.autocast(self.base.device.type, enabled=False):
            return {name: (self.base[span] + self.projection[span] @ z).view(shape)
                    for name, shape, span in self.layout.spans()}

    def label_embeddings(self, z: torch.Tensor | None = None) -> torch.Tensor:
        names = {f"classifier.{name}": t for name, t in self.tensors(z).items()}
        return functional_call(self._labels[0], names, ())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                label_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        return functional_call(self.classifier, self.tensors(), (input_ids, attention_mask),
                               {"label_embeddings": label_embeddings})

    def logits_at(self, codes: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (points, batch, labels) of one batch of examples at many codes (points x dim) in one pass:
        torch.func.vmap over the code, so the frozen weights are applied to every point's activations at once
        (one large matrix product per layer in place of one per point)."""
        def at(z):
            labels = self.label_embeddings(z) if self.kind == "encoder" else None
            return functional_call(self.classifier, self.tensors(z), (input_ids, attention_mask),
                                   {"label_embeddings": labels})

        return torch.func.vmap(at, randomness="different")(codes.to(self.base.device, torch.float32))


def points_per_pass(device: torch.device) -> int:
    """How many codes a sweep evaluates in one pass. A GPU is far from busy with one point's examples. On a
    CPU the forward pass is already bound by matrix products (bench/: 67-84% of the measured peak with one
    point at a time), and vmap's batching over points only adds copies: one point at a time."""
    return 16 if device.type == "cuda" else 1


@torch.no_grad()
def predict_codes(model: Decoded, split: Split, codes: torch.Tensor, batch_size: int, device: torch.device,
                  points: int | None = None, bar: tqdm | None = None) -> np.ndarray:
    """Predictions (codes x examples) of the decoded model at each code; `bar` advances per code.

    With several `points` per pass, Decoded.logits_at evaluates that many codes at once over batches of
    `batch_size` examples sorted by length. With one, each code's tensors are written into the classifier's
    own parameters and it predicts as a trained model does (no functional_call per batch, the label names
    encoded once per code)."""
    points = points or points_per_pass(device)
    preds = np.empty((len(codes), len(split)), dtype=np.int64)
    if points == 1:
        params = dict(model.classifier.named_parameters())
        for i, z in enumerate(codes):
            for name, tensor in model.tensors(z.to(device)).items():
                params[name].copy_(tensor)
            preds[i] = predict(model.classifier, split, batch_size, device)
            if bar is not None:
                bar.update(1)
        return preds
    was_training = model.training
    model.eval()
    encoded = [(index, to_device(model, split, index, device)[0]) for index in batches(split, batch_size, None)]
    with autocast(device):
        for start in range(0, len(codes), points):
            chunk = codes[start : start + points]
            for index, enc in encoded:
                preds[start : start + len(chunk), index] = model.logits_at(chunk, **enc).argmax(-1).cpu().numpy()
            if bar is not None:
                bar.update(len(chunk))
    model.train(was_training)
    return preds
