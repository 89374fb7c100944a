"""A DET's tensors as one flat vector, and back.

A Layout records the names, shapes and offsets of a DET's tensors in a fixed order. Any float vector of
`layout.size` entries is then again a set of that DET's tensors: this is what lets the subspace stages
work on plain vectors and never touch method-specific code.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

# Key prefixes of a delta.safetensors: the best trained tensors and the tensors the DET started from.
TRAINED, INIT = "trained/", "init/"


class LayoutError(ValueError):
    """Tensors do not fit a layout."""


@dataclass(frozen=True)
class Layout:
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        if len(self.names) != len(self.shapes) or len(set(self.names)) != len(self.names):
            raise LayoutError("layout: names must be unique and match the shapes one to one")

    @classmethod
    def of(cls, tensors: Mapping[str, torch.Tensor]) -> Layout:
        return cls(tuple(tensors), tuple(tuple(t.shape) for t in tensors.values()))

    @classmethod
    def of_trainable(cls, module: nn.Module) -> Layout:
        return cls.of({n: p for n, p in module.named_parameters() if p.requires_grad})

    @property
    def numels(self) -> list[int]:
        return [math.prod(s) for s in self.shapes]

    @property
    def offsets(self) -> list[int]:
        out, at = [], 0
        for n in self.numels:
            out.append(at)
            at += n
        return out

    @property
    def size(self) -> int:
        return sum(self.numels)

    def spans(self) -> list[tuple[str, tuple[int, ...], slice]]:
        """(name, shape, where in the flat vector) of each tensor, in layout order."""
        return [(n, s, slice(o, o + k)) for n, s, o, k in zip(self.names, self.shapes, self.offsets, self.numels)]

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One float32 vector, tensors in layout order."""
        missing = [n for n in self.names if n not in tensors]
        if missing or len(tensors) != len(self.names):
            extra = sorted(set(tensors) - set(self.names))
            raise LayoutError(f"layout: missing tensors {missing[:3]}, unexpected tensors {extra[:3]}")
        parts = []
        for name, shape in zip(self.names, self.shapes):
            t = tensors[name]
            if tuple(t.shape) != shape:
                raise LayoutError(f"layout: {name} has shape {tuple(t.shape)}, layout says {shape}")
            parts.append(t.detach().reshape(-1).to(torch.float32))
        return torch.cat(parts)

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views into `vector` (gradients flow back to it), one per tensor, in layout order."""
        if vector.dim() != 1 or vector.numel() != self.size:
            raise LayoutError(f"layout: vector of shape {tuple(vector.shape)}; expected ({self.size},)")
        return {name: vector[span].view(shape) for name, shape, span in self.spans()}

    def to_json(self) -> dict:
        return {"names": list(self.names), "shapes": [list(s) for s in self.shapes], "offsets": self.offsets}

    @classmethod
    def from_json(cls, data: Mapping) -> Layout:
        layout = cls(tuple(data["names"]), tuple(tuple(s) for s in data["shapes"]))
        if "offsets" in data and list(data["offsets"]) != layout.offsets:
            raise LayoutError("layout: recorded offsets do not follow from the shapes")
        return layout
