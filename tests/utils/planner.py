# ruff: noqa: E501  (the chat template is Jinja, kept as Qwen3 writes it)
"""A tiny random-weight 5 Hz LM in the ACE-Step layout: a Qwen3ForCausalLM with a byte-level BPE
tokenizer, the Qwen3 chat template, `<think>` / `</think>` and `<|audio_code_N|>` tokens, saved with
`save_pretrained` so both planner backends (transformers, mlx-lm) load it from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.utils.acestep import byte_bpe, tiny_qwen3

# Qwen3's chat template, tools branch left out (what renders ACE-Step's prompts)
QWEN3_TEMPLATE = r"""{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}{%- if ns.multi_step_tool and message.role == "user" and message.content is string %}{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}
{%- for message in messages %}
{%- if message.content is string %}{%- set content = message.content %}{%- else %}{%- set content = '' %}{%- endif %}
{%- if (message.role == "user") or (message.role == "system" and not loop.first) %}{{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
{%- elif message.role == "assistant" %}
{%- set reasoning_content = '' %}
{%- if '</think>' in content %}{%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}{%- set content = content.split('</think>')[-1].lstrip('\n') %}{%- endif %}
{%- if loop.index0 > ns.last_query_index %}{%- if loop.last or (not loop.last and reasoning_content) %}{{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}{%- else %}{{- '<|im_start|>' + message.role + '\n' + content }}{%- endif %}{%- else %}{{- '<|im_start|>' + message.role + '\n' + content }}{%- endif %}
{{- '<|im_end|>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}{%- endif %}"""

CORPUS = [
    "# Instruction\nGenerate audio semantic tokens based on the given conditions:\n\n",
    "# Caption\nA calm piano melody with soft strings.\n\n# Lyric\n[Verse]\nhello world\n",
    "bpm: 120\ncaption: An upbeat pop song.\nduration: 30\nkeyscale: C major\nlanguage: en\ntimesignature: 4\n",
    "keyscale: F# minor\nkeyscale: Bb major\nlanguage: zh\nlanguage: unknown\n[Instrumental]\n",
    "0123456789 ABCDEFG abcdefghijklmnopqrstuvwxyz .,:;!?'\"-()[]#/",
] * 4


def tiny_planner(folder: Path, codes: int = 64, seed: int = 0) -> Path:
    import torch
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast, Qwen3ForCausalLM

    torch.manual_seed(seed)
    bpe: Any = byte_bpe(CORPUS, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"])
    bpe.add_tokens([AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False)])  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = QWEN3_TEMPLATE
    config = tiny_qwen3(
        len(tokenizer),
        layers=2,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config)
    tokenizer.add_tokens(
        [AddedToken(f"<|audio_code_{i}|>", special=True, normalized=False) for i in range(codes)],
        special_tokens=True,
    )
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
