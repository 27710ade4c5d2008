"""Which device the local runner uses: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import importlib.util


def pick_device(requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    if importlib.util.find_spec("torch") is None:
        return "cpu"  # the embedded engines need no torch
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
