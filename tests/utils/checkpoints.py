"""Tiny, randomly initialised model checkpoints in the real on-disk formats (no weights download here)."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_audioseal(kind: str, folder: Path) -> Path:
    """A random-weight AudioSeal model, saved as the real loader expects: torch.save({'xp.cfg', 'model'})."""
    from importlib.resources import files as package_files

    import yaml
    from audioseal.builder import (
        AudioSealDetectorConfig,
        AudioSealWMConfig,
        create_detector,
        create_generator,
    )
    from audioseal.loader import AudioSeal

    card = "audioseal_wm_16bits.yaml" if kind == "generator" else "audioseal_detector_16bits.yaml"
    config = yaml.safe_load((package_files("audioseal") / "cards" / card).read_text())
    config.pop("checkpoint")
    config["seanet"].update(n_filters=4, dimension=8, lstm=0)
    schema = AudioSealWMConfig if kind == "generator" else AudioSealDetectorConfig
    parsed = AudioSeal.parse_config(config, config_type=schema, nbits=16)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = create_generator(parsed) if kind == "generator" else create_detector(parsed)  # type: ignore[arg-type]
    state = {k.replace(".inner_conv.", "."): v for k, v in model.state_dict().items()}
    path = folder / f"{kind}.pth"
    torch.save({"xp.cfg": config, "model": state}, path)
    return path
