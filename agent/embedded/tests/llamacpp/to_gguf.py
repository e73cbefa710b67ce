"""Writes a Qwen2-layout model folder (config.json, safetensors, tokenizer.json), as
glm-agent maps GLM-4 for mistral.rs, as one f32 GGUF file that llama.cpp loads as `qwen2`.

Usage: to_gguf.py MODEL_DIR OUT.gguf

The tokenizer goes in as GPT-2-style byte-level BPE. Every id up to the embedding's row count
gets an entry: the tokenizer's own tokens at their ids, its added special tokens as control
tokens (so `parse_special` finds them in text), and the ids the tokenizer does not use as unused
placeholders. Needs the `gguf` and `numpy` packages.
"""

import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np

NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
TOP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def read_safetensors(path):
    """Tensors of one safetensors file as f32 numpy arrays, by name."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    kinds = {"F32": np.float32, "F16": np.float16, "BF16": None}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = body[start:end]
        if info["dtype"] == "BF16":
            values = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            values = values.view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=kinds[info["dtype"]]).astype(np.float32)
        out[name] = values.reshape(info["shape"])
    return out


def gguf_name(name):
    if name in TOP:
        return TOP[name]
    parts = name.split(".")
    # model.layers.N.<module...>.(weight|bias)
    if parts[:2] != ["model", "layers"]:
        raise SystemExit(f"unexpected tensor {name}")
    layer, module, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{layer}.{NAMES[module]}.{kind}"


def vocabulary(tokenizer, rows):
    """Token texts and types for ids 0..rows."""
    model = tokenizer["model"]
    tokens = [None] * rows
    types = [gguf.TokenType.UNUSED] * rows
    for text, i in model["vocab"].items():
        if i < rows:
            tokens[i] = text
            types[i] = gguf.TokenType.NORMAL
    for added in tokenizer.get("added_tokens", []):
        i = added["id"]
        if i < rows:
            tokens[i] = added["content"]
            types[i] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    for i in range(rows):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    if not merges:
        # llama.cpp requires the key; two placeholders never meet in a word, so this merge
        # never applies and the tokenization stays the tokenizer's own.
        pads = [t for t, k in zip(tokens, types) if k == gguf.TokenType.UNUSED][:2]
        merges = [" ".join(pads)]
    return tokens, types, merges


def main():
    src, out = Path(sys.argv[1]), sys.argv[2]
    config = json.loads((src / "config.json").read_text())
    tokenizer = json.loads((src / "tokenizer.json").read_text())
    index = src / "model.safetensors.index.json"
    shards = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    tensors = {}
    for shard in shards:
        # Names come from the folder's own index; only plain file names beside it are read.
        if Path(shard).name != shard:
            raise SystemExit(f"{index} names {shard!r}, not a file beside it")
        tensors.update(read_safetensors(src / shard))
    rows = tensors["model.embed_tokens.weight"].shape[0]

    writer = gguf.GGUFWriter(out, "qwen2")
    writer.add_name("glm-4 (qwen2 layout)")
    writer.add_context_length(min(int(config.get("max_position_embeddings", 32768)), 1 << 20))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(float(config["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens, types, merges = vocabulary(tokenizer, rows)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    ids = {a["content"]: a["id"] for a in tokenizer.get("added_tokens", [])}
    if "<|endoftext|>" in ids:
        writer.add_eos_token_id(ids["<|endoftext|>"])
    writer.add_add_bos_token(False)

    for name, value in sorted(tensors.items()):
        writer.add_tensor(gguf_name(name), value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
