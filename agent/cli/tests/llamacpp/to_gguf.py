"""Writes a Qwen2-layout model folder (config.json, safetensors, tokenizer.json), as
glm-agent maps GLM-4 for mistral.rs, as one f32 GGUF file that llama.cpp loads as `qwen2`.

Usage: to_gguf.py MODEL_DIR OUT.gguf [--q4_k_m]

With `--q4_k_m` the weights are quantised the way llama.cpp's `llama-quantize ... Q4_K_M` does
for this architecture: Q4_K, with the value projection and the FFN down projection of every
third layer (and the last eighth) in Q6_K, the output layer in Q6_K, and a row width that is not
a multiple of 256 (GLM-4's FFN down projection, 13,696) falling back as llama.cpp falls back
(Q4_K to Q5_0, Q6_K to Q8_0). The quantisation itself is llama.cpp's own (`ggml_quantize_chunk`
from the xllamacpp package's library).

The tokenizer goes in as GPT-2-style byte-level BPE. Every id up to the embedding's row count
gets an entry: the tokenizer's own tokens at their ids, its added special tokens as control
tokens (so `parse_special` finds them in text), and the ids the tokenizer does not use as unused
placeholders. Needs the `gguf` and `numpy` packages.
"""

import ctypes
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


T = gguf.GGMLQuantizationType
FALLBACK = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}


def more_bits(layer, layers):
    """llama.cpp's `use_more_bits`: which layers Q4_K_M gives Q6_K."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def q4_k_m_type(name, layers):
    """The type Q4_K_M gives a GGUF tensor of this architecture (1-D tensors stay f32)."""
    if name == "output.weight":
        return T.Q6_K
    parts = name.split(".")
    if parts[0] == "blk" and parts[2] in ("attn_v", "ffn_down"):
        return T.Q6_K if more_bits(int(parts[1]), layers) else T.Q4_K
    return T.Q4_K


def quantizer():
    """llama.cpp's own quantisation function, from the library xllamacpp ships."""
    import xllamacpp

    lib = ctypes.CDLL(str(Path(xllamacpp.__file__).parent / "xllamacpp.abi3.so"))
    f = lib.ggml_quantize_chunk
    f.restype = ctypes.c_size_t
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                  ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]

    def quantize(values, kind):
        rows, cols = values.shape
        if cols % gguf.GGML_QUANT_SIZES[kind][0]:
            kind = FALLBACK[kind]
        block, size = gguf.GGML_QUANT_SIZES[kind]
        values = np.ascontiguousarray(values, dtype=np.float32)
        out = np.empty((rows, cols // block * size), dtype=np.uint8)
        written = f(int(kind), values.ctypes.data, out.ctypes.data, 0, rows, cols, None)
        assert written == out.nbytes, (written, out.nbytes)
        return out, kind

    return quantize


def main():
    src, out = Path(sys.argv[1]), sys.argv[2]
    q4_k_m = "--q4_k_m" in sys.argv[3:]
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
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M if q4_k_m else gguf.LlamaFileType.ALL_F32)

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

    quantize = quantizer() if q4_k_m else None
    for name, value in sorted(tensors.items()):
        target = gguf_name(name)
        if quantize and value.ndim == 2:
            data, kind = quantize(value, q4_k_m_type(target, config["num_hidden_layers"]))
            print(f"{target}: {kind.name}", file=sys.stderr)
            writer.add_tensor(target, data, raw_dtype=kind)
        else:
            writer.add_tensor(target, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
