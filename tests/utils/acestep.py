"""Tiny random-weight ACE-Step 1.5 checkpoints, saved by the tests in the official diffusers layout
(`save_pretrained`), so the engine's real loading code runs without any download. Every component is
there, at toy size; the 48 kHz rate, the 1920× VAE hop and the 64000-code FSQ audio tokenizer are
the real ones."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "# Instruction\nFill the audio semantic mask based on the given conditions:\n\n# Caption\n",
    "A beautiful piano piece with soft melodies, upbeat pop, rock guitar, drums, folk song about the sea",
    "# Metas\n- bpm: 120\n- timesignature: 4\n- keyscale: C major\n- duration: 30 seconds\n",
    "# Languages\nen\n\n# Lyric\n[verse]\nHello world\n[chorus]\nla la la [Instrumental]",
]


def byte_bpe(corpus: list[str], special: list[str]) -> object:
    """A byte-level BPE tokenizer (as Qwen's) trained on `corpus`, vocabulary 400."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    return bpe


def tiny_qwen3(vocab: int, layers: int, **extra: object) -> object:
    """A toy Qwen3 configuration: hidden 32, 2 heads sharing 1 KV head of 16."""
    from transformers import Qwen3Config

    shape = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1}
    return Qwen3Config(
        vocab_size=vocab,
        num_hidden_layers=layers,
        head_dim=16,
        max_position_embeddings=4096,
        **shape,
        **extra,
    )


def tiny_tokenizer() -> object:
    from transformers import PreTrainedTokenizerFast

    bpe = byte_bpe(CORPUS * 20, ["<|endoftext|>", "<|pad|>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>")


def tiny_acestep(folder: Path, kind: str = "turbo", seed: int = 0) -> Path:
    """A complete AceStepPipeline with random weights, saved to `folder`; `kind` turbo | sft | base."""
    import torch
    from diffusers import (
        AceStepConditionEncoder,
        AceStepPipeline,
        AceStepTransformer1DModel,
        AutoencoderOobleck,
        FlowMatchEulerDiscreteScheduler,
    )
    from diffusers.pipelines.ace_step.modeling_ace_step import (
        AceStepAudioTokenDetokenizer,
        AceStepAudioTokenizer,
    )
    from transformers import Qwen3Model

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = Qwen3Model(
        tiny_qwen3(len(tokenizer), layers=1, pad_token_id=tokenizer.pad_token_id)  # type: ignore[arg-type,attr-defined]
    ).eval()
    common = {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "sliding_window": 16}
    transformer = AceStepTransformer1DModel(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        in_channels=192,  # source latents + chunk mask + noisy latents, 64 each
        audio_acoustic_hidden_dim=64,
        patch_size=2,
        is_turbo=kind == "turbo",
        model_version=kind,
        **common,
    )
    condition_encoder = AceStepConditionEncoder(
        hidden_size=64,
        intermediate_size=128,
        text_hidden_dim=32,  # the text encoder's hidden size
        timbre_hidden_dim=64,
        num_lyric_encoder_hidden_layers=1,
        num_timbre_encoder_hidden_layers=1,
        **common,
    )
    with torch.no_grad():  # real checkpoints hold VAE-encoded silence here
        condition_encoder.silence_latent.normal_(0, 0.05)
    audio_tokenizer = AceStepAudioTokenizer(
        hidden_size=64,
        intermediate_size=128,
        audio_acoustic_hidden_dim=64,
        pool_window_size=5,  # 25 Hz latents -> 5 Hz codes
        fsq_dim=64,
        fsq_input_levels=[8, 8, 8, 5, 5, 5],  # 64000 codes, as ACE-Step 1.5
        fsq_input_num_quantizers=1,
        num_attention_pooler_hidden_layers=1,
        **common,
    )
    detokenizer = AceStepAudioTokenDetokenizer(
        hidden_size=64,
        intermediate_size=128,
        audio_acoustic_hidden_dim=64,
        pool_window_size=5,
        num_attention_pooler_hidden_layers=1,
        **common,
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=128,  # twice the 64-dim latent (mean and scale)
        downsampling_ratios=[2, 4, 4, 6, 10],  # 1920x: 25 latent frames a second at 48 kHz
        channel_multiples=[1, 1, 1, 1, 1],
        decoder_channels=8,
        decoder_input_channels=64,
        audio_channels=2,
        sampling_rate=48000,
    )
    pipe = AceStepPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        condition_encoder=condition_encoder,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0),
        audio_tokenizer=audio_tokenizer,
        audio_token_detokenizer=detokenizer,
    )
    pipe.save_pretrained(folder)
    return folder


def tiny_lora(
    weights: Path, folder: Path, rank: int = 4, seed: int = 1, targets: tuple[str, ...] = ("to_q", "to_v")
) -> Path:
    """A PEFT-format LoRA (adapter_config.json + adapter_model.safetensors) for the tiny transformer,
    with non-zero weights so it changes the output."""
    import torch
    from diffusers import AceStepTransformer1DModel
    from peft import LoraConfig, get_peft_model_state_dict
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    transformer = AceStepTransformer1DModel.from_pretrained(weights / "transformer")
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets), init_lora_weights=False)
    transformer.add_adapter(config, adapter_name="made")
    state = get_peft_model_state_dict(transformer, adapter_name="made")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {f"base_model.model.{k}": v.contiguous() for k, v in state.items()},
        folder / "adapter_model.safetensors",
    )
    config.save_pretrained(str(folder))
    return folder


def retag(weights: Path, folder: Path, kind: str) -> Path:
    """A copy of a checkpoint whose transformer says it is another kind (for the variant checks)."""
    import shutil

    shutil.copytree(weights, folder)
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(is_turbo=kind == "turbo", model_version=kind)
    config_path.write_text(json.dumps(config))
    return folder
