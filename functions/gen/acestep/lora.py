"""LoRAs on the ACE-Step transformer, hot-swapped between requests without reloading the base model.

A LoRA is a folder in PEFT's format (`adapter_config.json` + `adapter_model.safetensors`) under the
LoRA directory; its name is the folder's name. Both naming styles load with the alpha their config
says: diffusers' (`to_q`, `to_out.0`, …) and the original ACE-Step repository's (`q_proj`, …), which
diffusers' own `load_lora_weights` would load with alpha = rank (a wrong scale). Several stay
resident; a request picks one (or none) and a scale. Adapters are never fused, so switching back to
none gives the base model's output exactly.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from functions.errors import InvalidRequest

ORIGINAL_NAMES = {"q_proj": "to_q", "k_proj": "to_k", "v_proj": "to_v", "o_proj": "to_out.0"}


class LoraLibrary:
    def __init__(self, pipe: Any, folder: Path | None, max_resident: int = 8) -> None:
        self.pipe = pipe
        self.folder = folder
        self.max_resident = max_resident
        self.resident: list[str] = []  # loaded adapters, least recently used first

    def available(self) -> list[str]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if (p / "adapter_config.json").is_file())

    def check(self, name: str) -> None:
        if name not in self.resident and name not in self.available():
            known = ", ".join(self.available()) or "none installed"
            raise InvalidRequest("lora", name, f"no LoRA called {name!r} (available: {known})")

    def load(self, name: str, path: Path | None = None) -> None:
        """Make `name` resident (from `path`, or the LoRA directory); refuses incompatible ones."""
        if name in self.resident:
            self.resident.remove(name)
            self.resident.append(name)
            return
        folder = path or (self.folder / name if self.folder else None)
        if folder is None or not (folder / "adapter_config.json").is_file():
            self.check(name)
            raise InvalidRequest("lora", name, f"LoRA {name!r} has no adapter_config.json")
        if len(self.resident) >= self.max_resident:
            self.unload(self.resident[0])
        state, config = _read(folder)
        try:
            self.pipe.transformer.load_lora_adapter(state, prefix=None, adapter_name=name, metadata=config)
        except (ValueError, RuntimeError, KeyError) as exc:  # shapes or module names do not fit this model
            self._forget(name)
            raise InvalidRequest(
                "lora", name, f"LoRA {name!r} does not fit this model: {str(exc).splitlines()[0][:200]}"
            ) from None
        self.resident.append(name)

    def activate(self, name: str | None, scale: float = 1.0) -> dict[str, Any] | None:
        """Use `name` at `scale` for the next request, or no LoRA; returns what is active."""
        if name is None:
            if self.resident:
                self.pipe.transformer.disable_lora()
            return None
        self.load(name)
        self.pipe.transformer.enable_lora()
        self.pipe.transformer.set_adapters([name], weights=[scale])
        return {"name": name, "scale": scale}

    def unload(self, name: str) -> None:
        if name in self.resident:
            self.pipe.transformer.delete_adapters([name])
            self.resident.remove(name)

    def _forget(self, name: str) -> None:
        """A half-loaded adapter must not linger."""
        with contextlib.suppress(ValueError, KeyError, AttributeError):
            self.pipe.transformer.delete_adapters([name])


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_ace_step_lora_to_diffusers
    from peft import LoraConfig
    from safetensors.torch import load_file

    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise InvalidRequest("lora", folder.name, f"LoRA {folder.name!r} has no adapter_model.safetensors")
    try:
        config = LoraConfig.from_pretrained(str(folder)).to_dict()
        state = load_file(str(weights))
    except (ValueError, OSError, TypeError) as exc:
        raise InvalidRequest("lora", folder.name, f"LoRA {folder.name!r} cannot be read: {exc}") from None
    targets = config.get("target_modules")
    if isinstance(targets, (list, set, tuple)):
        config["target_modules"] = sorted(ORIGINAL_NAMES.get(str(t), str(t)) for t in targets)
    if any(original in key for key in state for original in ORIGINAL_NAMES):
        state = _convert_non_diffusers_ace_step_lora_to_diffusers(state)
        state = {k.removeprefix("transformer."): v for k, v in state.items()}
    else:
        state = {k.removeprefix("base_model.model."): v for k, v in state.items()}
    return state, config
