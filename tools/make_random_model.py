#!/usr/bin/env python3
"""Writes random-weight models with the shapes of real ones, for benchmarks (not committed).

    tools/make_random_model.py --shape smollm2-135m --format hf --dtype bf16 --out /tmp/m
    tools/make_random_model.py --shape llama3.2-1b --format gguf --dtype q8_0 --out /tmp/m.gguf

Shapes: smollm2-135m (hidden 576, 30 layers, 9/3 heads, intermediate 1536, vocab 49152, tied)
and llama3.2-1b (hidden 2048, 16 layers, 32/8 heads, intermediate 8192, vocab 128256, tied,
llama3 rope scaling). Formats: an HF directory (config.json + model.safetensors in f32 or
bf16) or a GGUF file (f32, f16, bf16 or q8_0 matrices; norms f32). Values are uniform in
[-0.05, 0.05): each tensor is a random block of 2^20 values repeated, which is plenty for
timing and lets a 1B-parameter file be written in seconds with little memory. The writers
stream tensor by tensor: only numpy is needed (and the gguf package for --format gguf).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

SHAPES = {
    'smollm2-135m': dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         rope_theta=100000.0, max_position_embeddings=8192, rope_scaling=None),
    'llama3.2-1b': dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                        rope_theta=500000.0, max_position_embeddings=131072,
                        rope_scaling=dict(rope_type='llama3', factor=32.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0,
                                          original_max_position_embeddings=8192)),
}


def tensors(c):
    """(HF name, shape) in checkpoint order; embeddings tied."""
    d, f, hd = c['hidden_size'], c['intermediate_size'], c['hidden_size'] // c['num_attention_heads']
    q, kv = c['num_attention_heads'] * hd, c['num_key_value_heads'] * hd
    out = [('model.embed_tokens.weight', (c['vocab_size'], d))]
    for l in range(c['num_hidden_layers']):
        p = 'model.layers.%d.' % l
        out += [(p + 'input_layernorm.weight', (d,)), (p + 'self_attn.q_proj.weight', (q, d)),
                (p + 'self_attn.k_proj.weight', (kv, d)), (p + 'self_attn.v_proj.weight', (kv, d)),
                (p + 'self_attn.o_proj.weight', (d, q)), (p + 'post_attention_layernorm.weight', (d,)),
                (p + 'mlp.gate_proj.weight', (f, d)), (p + 'mlp.up_proj.weight', (f, d)),
                (p + 'mlp.down_proj.weight', (d, f))]
    out.append(('model.norm.weight', (d,)))
    return out


_BLOCK = None


def values(shape, seed):
    """f32 array of `shape`: norms near 1, matrices a repeated random block."""
    global _BLOCK
    n = int(np.prod(shape))
    if len(shape) == 1:
        return (1.0 + np.random.RandomState(seed).uniform(-0.1, 0.1, n)).astype(np.float32)
    if _BLOCK is None:
        _BLOCK = np.random.RandomState(1).uniform(-0.05, 0.05, (1 << 20) + 4096).astype(np.float32)
    off = seed % 4096
    reps = -(-n // (1 << 20))
    return np.tile(_BLOCK[off:off + (1 << 20)], reps)[:n].reshape(shape)


def to_bf16(a):
    u = a.view(np.uint32)
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_hf(c, dtype, out):
    os.makedirs(out, exist_ok=True)
    cfg = dict(c, architectures=['LlamaForCausalLM'], model_type='llama', hidden_act='silu',
               rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
               torch_dtype={'f32': 'float32', 'bf16': 'bfloat16'}[dtype])
    with open(os.path.join(out, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
    size = {'f32': 4, 'bf16': 2}[dtype]
    st_dtype = {'f32': 'F32', 'bf16': 'BF16'}[dtype]
    header, off = {}, 0
    ts = tensors(c)
    for name, shape in ts:
        n = int(np.prod(shape)) * size
        header[name] = dict(dtype=st_dtype, shape=list(shape), data_offsets=[off, off + n])
        off += n
    h = json.dumps(header).encode()
    h += b' ' * (-len(h) % 8)
    with open(os.path.join(out, 'model.safetensors'), 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for i, (name, shape) in enumerate(ts):
            a = values(shape, i)
            f.write((a if dtype == 'f32' else to_bf16(a)).tobytes())


def write_gguf(c, dtype, out):
    import gguf
    w = gguf.GGUFWriter(out, 'llama')
    hd = c['hidden_size'] // c['num_attention_heads']
    w.add_context_length(c['max_position_embeddings'])
    w.add_embedding_length(c['hidden_size'])
    w.add_block_count(c['num_hidden_layers'])
    w.add_feed_forward_length(c['intermediate_size'])
    w.add_head_count(c['num_attention_heads'])
    w.add_head_count_kv(c['num_key_value_heads'])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(c['rope_theta'])
    qt = {'f32': gguf.GGMLQuantizationType.F32, 'f16': gguf.GGMLQuantizationType.F16,
          'bf16': gguf.GGMLQuantizationType.BF16, 'q8_0': gguf.GGMLQuantizationType.Q8_0}[dtype]
    names = {'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight'}
    layer = {'input_layernorm': 'attn_norm', 'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k',
             'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
             'post_attention_layernorm': 'ffn_norm', 'mlp.gate_proj': 'ffn_gate',
             'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down'}
    if c['rope_scaling']:
        w.add_tensor('rope_freqs.weight', np.ones(hd // 2, dtype=np.float32))
    quant_cache = {}
    for i, (name, shape) in enumerate(tensors(c)):
        if name in names:
            gname = names[name]
        else:
            l, rest = name.split('.', 3)[2], name.split('.', 3)[3].rsplit('.', 1)[0]
            gname = 'blk.%s.%s.weight' % (l, layer[rest])
        a = values(shape, i)
        if len(shape) == 1 or dtype == 'f32':
            w.add_tensor(gname, a)
        elif dtype == 'f16':
            w.add_tensor(gname, a.astype(np.float16))
        elif dtype == 'bf16':
            w.add_tensor(gname, to_bf16(a), raw_shape=shape, raw_dtype=qt)
        else:
            # quantize one block of rows and repeat it (the values repeat anyway)
            key = (shape[1], i % 4096)
            rows = (1 << 20) // shape[1]
            if key not in quant_cache:
                quant_cache[key] = gguf.quants.quantize(a[:rows], qt)
            q = quant_cache[key]
            reps = -(-shape[0] // rows)
            w.add_tensor(gname, np.tile(q, (reps, 1))[:shape[0]], raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--shape', choices=sorted(SHAPES), required=True)
    ap.add_argument('--format', choices=['hf', 'gguf'], required=True)
    ap.add_argument('--dtype', choices=['f32', 'bf16', 'f16', 'q8_0'], required=True)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    c = SHAPES[a.shape]
    if a.format == 'hf':
        if a.dtype not in ('f32', 'bf16'):
            sys.exit('hf format: f32 or bf16')
        write_hf(c, a.dtype, a.out)
    else:
        write_gguf(c, a.dtype, a.out)


if __name__ == '__main__':
    main()
