"""Helpers of the model reference tests: tiny random HF models, a GGUF converter, model_cli.

build_model(kind, seed) builds a small seeded transformers model of one architecture with
weights drawn wider than HF's default init (so logits are not all near zero and greedy
choices are not near-ties), random norms and biases (HF initialises biases to zero, which
would hide bias bugs). to_gguf() writes the same weights as llama.cpp's converter lays them
out (names, stacked experts, Q/K row permutation for the llama architecture, rope_freqs for
Llama-3 scaling) with the gguf package's writer and quantizer. run_cli() runs
build/tests/models/model_cli and parses its JSON.
"""
import json
import math
import os
import subprocess

import numpy as np
import torch

ROOT = os.environ.get('TROUPE_ROOT', os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BUILD = os.environ.get('TROUPE_BUILD', os.path.join(ROOT, 'build'))
CLI = os.path.join(BUILD, 'tests', 'models', 'model_cli')

VOCAB = 256
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-5)

# kind -> (transformers class names, extra config)
KINDS = {
    'llama': ('LlamaConfig', 'LlamaForCausalLM', dict(rope_theta=10000.0)),
    'llama3': ('LlamaConfig', 'LlamaForCausalLM', dict(
        rope_theta=500000.0, tie_word_embeddings=True, head_dim=32, num_attention_heads=4,
        num_key_value_heads=1,
        rope_scaling=dict(rope_type='llama3', factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=16))),
    'mistral': ('MistralConfig', 'MistralForCausalLM', dict(sliding_window=5, rope_theta=1e4)),
    'qwen2': ('Qwen2Config', 'Qwen2ForCausalLM', dict(rope_theta=1e6)),
    'mixtral': ('MixtralConfig', 'MixtralForCausalLM', dict(
        num_local_experts=4, num_experts_per_tok=2, intermediate_size=48, rope_theta=1e6)),
    'qwen2_moe': ('Qwen2MoeConfig', 'Qwen2MoeForCausalLM', dict(
        num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
        shared_expert_intermediate_size=48, norm_topk_prob=False, mlp_only_layers=[1])),
    'olmoe': ('OlmoeConfig', 'OlmoeForCausalLM', dict(
        num_experts=4, num_experts_per_tok=2, intermediate_size=32, norm_topk_prob=True)),
}


def build_model(kind, seed=0):
    import transformers
    cfg_name, model_name, extra = KINDS[kind]
    kw = dict(COMMON)
    kw.update(extra)
    torch.manual_seed(seed)
    cfg = getattr(transformers, cfg_name)(**kw)
    model = getattr(transformers, model_name)(cfg).float().eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('norm.weight'):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif name.endswith('bias'):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif 'embed_tokens' in name or 'lm_head' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
    return model


def hf_logits(model, ids):
    """(T, V) f32 logits of every position of one sequence."""
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def hf_greedy(model, ids, n):
    """n greedy tokens after ids, by full recomputation (the reference needs no cache)."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(ids):]


def run_cli(path, prompts, gen=0, chunk=0, batch=False, block_size=16, shuffle=False,
            backend='cpu', logits=True, timeout=300):
    cmd = [CLI, path]
    for p in prompts:
        cmd += ['--prompt', ','.join(str(int(t)) for t in p)]
    cmd += ['--gen', str(gen), '--chunk', str(chunk), '--block-size', str(block_size),
            '--backend', backend]
    if batch:
        cmd.append('--batch')
    if shuffle:
        cmd.append('--shuffle-blocks')
    if not logits:
        cmd.append('--no-logits')
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        return None, p.stderr.decode('utf-8', 'replace').strip()
    return json.loads(p.stdout), None


def rel_err(got, ref):
    """max |got - ref| / max |ref|: the error relative to the logits' scale."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))


# ---- GGUF ----

GGUF_ARCH = {'llama': 'llama', 'llama3': 'llama', 'mistral': 'llama', 'mixtral': 'llama',
             'qwen2': 'qwen2', 'qwen2_moe': 'qwen2moe', 'olmoe': 'olmoe'}


def _permute_rows(w, n_head):
    """llama.cpp's Q/K layout for the llama arch: within each head, rows (i, i + D/2) become
    adjacent (2i, 2i + 1)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _llama3_factors(cfg, head_dim):
    rs = cfg.rope_scaling
    base, dim = cfg.rope_theta, head_dim
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor, lo, hi = rs['factor'], rs['low_freq_factor'], rs['high_freq_factor']
    old = rs['original_max_position_embeddings']
    lo_wl, hi_wl = old / lo, old / hi
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(factor)
        else:
            smooth = (old / wl - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def to_gguf(model, kind, path, qtype):
    """Writes model as a GGUF file with 2-D weights in qtype ('f32', 'f16', 'bf16', 'q8_0');
    norms, biases and rope factors stay f32, as llama.cpp keeps them."""
    import gguf
    cfg = model.config
    arch = GGUF_ARCH[kind]
    head_dim = getattr(cfg, 'head_dim', None) or cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_theta)
    if head_dim != cfg.hidden_size // cfg.num_attention_heads:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    n_exp = getattr(cfg, 'num_local_experts', None) or getattr(cfg, 'num_experts', None)
    if n_exp:
        w.add_expert_count(n_exp)
        w.add_expert_used_count(cfg.num_experts_per_tok)
        if kind == 'qwen2_moe':
            w.add_expert_feed_forward_length(cfg.moe_intermediate_size)
            w.add_expert_shared_feed_forward_length(cfg.shared_expert_intermediate_size)
        if hasattr(cfg, 'norm_topk_prob'):
            w.add_bool(arch + '.expert_weights_norm', bool(cfg.norm_topk_prob))
    qt = {'f32': gguf.GGMLQuantizationType.F32, 'f16': gguf.GGMLQuantizationType.F16,
          'bf16': gguf.GGMLQuantizationType.BF16, 'q8_0': gguf.GGMLQuantizationType.Q8_0}[qtype]

    def add(name, t, vector=False):
        a = t.detach().float().numpy() if isinstance(t, torch.Tensor) else t
        a = np.ascontiguousarray(a, dtype=np.float32)
        if vector or qtype == 'f32' or (qtype == 'q8_0' and a.shape[-1] % 32):
            w.add_tensor(name, a)   # llama.cpp also falls back when rows do not fill blocks
        elif qtype == 'f16':
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qt), raw_dtype=qt)

    sd = {k: v for k, v in model.state_dict().items()}
    H, Hk = cfg.num_attention_heads, cfg.num_key_value_heads
    emb = sd.get('model.embed_tokens.weight', sd.get('lm_head.weight'))
    add('token_embd.weight', emb)
    if not cfg.tie_word_embeddings:
        add('output.weight', sd['lm_head.weight'])
    add('output_norm.weight', sd['model.norm.weight'], vector=True)
    if getattr(cfg, 'rope_scaling', None) and cfg.rope_scaling.get('rope_type') == 'llama3':
        add('rope_freqs.weight', _llama3_factors(cfg, head_dim), vector=True)
    for l in range(cfg.num_hidden_layers):
        p, b = 'model.layers.%d.' % l, 'blk.%d.' % l
        add(b + 'attn_norm.weight', sd[p + 'input_layernorm.weight'], vector=True)
        add(b + 'ffn_norm.weight', sd[p + 'post_attention_layernorm.weight'], vector=True)
        for hf, gg, nh in (('q', 'attn_q', H), ('k', 'attn_k', Hk), ('v', 'attn_v', None),
                           ('o', 'attn_output', None)):
            wt = sd[p + 'self_attn.%s_proj.weight' % hf].float().numpy()
            bias = sd.get(p + 'self_attn.%s_proj.bias' % hf)
            bias = bias.float().numpy() if bias is not None else None
            if arch == 'llama' and nh:
                wt = _permute_rows(wt, nh)
                bias = _permute_rows(bias, nh) if bias is not None else None
            add(b + gg + '.weight', wt)
            if bias is not None:
                add(b + gg + '.bias', bias, vector=True)
        for hf, gg in (('q_norm', 'attn_q_norm'), ('k_norm', 'attn_k_norm')):
            if p + 'self_attn.%s.weight' % hf in sd:
                add(b + gg + '.weight', sd[p + 'self_attn.%s.weight' % hf], vector=True)
        moe = (p + 'mlp.gate.weight' in sd) or (p + 'block_sparse_moe.gate.weight' in sd)
        if not moe:
            for hf, gg in (('gate', 'ffn_gate'), ('up', 'ffn_up'), ('down', 'ffn_down')):
                add(b + gg + '.weight', sd[p + 'mlp.%s_proj.weight' % hf])
            continue
        if kind == 'mixtral':
            add(b + 'ffn_gate_inp.weight', sd[p + 'block_sparse_moe.gate.weight'])
            names = {'gate': 'w1', 'up': 'w3', 'down': 'w2'}
            for hf, gg in (('gate', 'ffn_gate_exps'), ('up', 'ffn_up_exps'), ('down', 'ffn_down_exps')):
                add(b + gg + '.weight', torch.stack(
                    [sd[p + 'block_sparse_moe.experts.%d.%s.weight' % (e, names[hf])] for e in range(n_exp)]))
        else:
            add(b + 'ffn_gate_inp.weight', sd[p + 'mlp.gate.weight'])
            for hf, gg in (('gate', 'ffn_gate_exps'), ('up', 'ffn_up_exps'), ('down', 'ffn_down_exps')):
                add(b + gg + '.weight', torch.stack(
                    [sd[p + 'mlp.experts.%d.%s_proj.weight' % (e, hf)] for e in range(n_exp)]))
            if p + 'mlp.shared_expert.gate_proj.weight' in sd:
                for hf, gg in (('gate', 'ffn_gate_shexp'), ('up', 'ffn_up_shexp'), ('down', 'ffn_down_shexp')):
                    add(b + gg + '.weight', sd[p + 'mlp.shared_expert.%s_proj.weight' % hf])
                add(b + 'ffn_gate_inp_shexp.weight', sd[p + 'mlp.shared_expert_gate.weight'][0], vector=True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
