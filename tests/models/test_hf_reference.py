"""troupe's forward pass against HF transformers, on models built at test time.

For each architecture (Llama, Llama-3 rope scaling + tied embeddings + MQA + head_dim !=
hidden/heads, Mistral with a sliding window shorter than the prompts, Qwen2 with q/k/v
biases, Mixtral, Qwen2-MoE with a gated shared expert and a dense layer, OLMoE with q/k norms
and renormalised routing) a tiny seeded random model (hidden 64, 2 layers, GQA) is saved
with save_pretrained and run through build/tests/models/model_cli.

Metric: rel = max |troupe - HF| / max |HF| over all compared logits (the error relative to
the logits' scale).
  f32 safetensors: rel <= 1e-4 against HF in f32, at every position of three prompts (fed
    one token at a time: the decode path), at the last position (one prefill), in chunks of
    5, and all prompts batched with scrambled KV blocks of 4 tokens; and the greedy
    32-token continuation of each prompt equals HF's token for token.
  bf16 and f16 safetensors: troupe widens the weights exactly and computes in f32, so it is
    held to the same rel <= 1e-4 against HF running those same rounded weights in f32, with
    identical greedy continuations; against HF's native bf16 arithmetic (everything rounded
    to bf16) rel <= 5e-2.
  GGUF written from the same weights with the gguf package (llama.cpp's names, stacked
    experts, Q/K permutation for the llama arch, rope_freqs for Llama-3): f32, f16 and bf16
    files give the same logits as the matching safetensors (rel <= 1e-4); the q8_0 file,
    quantized by the gguf package (tensors whose rows are not a multiple of 32 stay f32, as
    llama.cpp does), matches HF running the weights that gguf's own q8_0 round trip gives
    (quantize + dequantize) to rel <= 1e-4 with identical greedy continuations; it is within
    rel <= 6e-2 of HF on the unquantized weights; and the CPU backend agrees with troupe's
    reference backend on it to rel <= 1e-4.
Real trained weights: tinystories-656k (tests/data/models, tied weights stored only as
lm_head.weight) continues BOS and a prompt greedily exactly as transformers does.
"""
import copy
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import diag, done_testing, ok, skip  # noqa: E402

try:
    import numpy as np
    import torch
    import transformers  # noqa: F401
    import gguf  # noqa: F401
    from hf_models import (CLI, KINDS, ROOT, VOCAB, build_model, hf_greedy, hf_logits,
                           rel_err, run_cli, to_gguf)
except Exception as e:  # a machine without the Python references
    skip('Python references unavailable: %s' % e)
    done_testing()

torch.set_num_threads(1)
F32_TOL, Q8_TOL, BF16_NATIVE_TOL = 1e-4, 6e-2, 5e-2
GEN = 32

if not os.path.exists(CLI):
    ok(False, 'model_cli is built (%s)' % CLI)
    done_testing()

rng = np.random.RandomState(1234)
PROMPTS = [[1] + list(rng.randint(3, VOCAB, size=n)) for n in (6, 11, 18)]


def compare_logits(label, out, ref_logits, tol):
    """out: model_cli JSON; ref_logits: per prompt (T, V). Checks every printed row."""
    worst, rows = 0.0, 0
    for s, ref in zip(out['seqs'], ref_logits):
        for pos, row in zip(s['positions'], s['logits']):
            worst = max(worst, rel_err(row, ref[pos]))
            rows += 1
    ok(rows > 0 and worst <= tol, '%s: %d logits rows, rel err %.2e <= %.0e' % (label, rows, worst, tol))
    return worst


def check_model(kind, path, ref_model, label, tol=F32_TOL, greedy=True, modes=True):
    ref = [hf_logits(ref_model, p) for p in PROMPTS]
    out, err = run_cli(path, PROMPTS, chunk=1)
    if not ok(out is not None, '%s: model_cli loads and runs (%s)' % (label, err or 'ok')):
        return None
    compare_logits(label + ', token by token', out, ref, tol)
    if modes:
        for chunk, batch, bs, shuffle in ((0, False, 16, False), (5, False, 16, False),
                                          (0, True, 4, True), (5, True, 4, True)):
            out, err = run_cli(path, PROMPTS, chunk=chunk, batch=batch, block_size=bs,
                               shuffle=shuffle)
            what = '%s, %s, %s, blocks of %d%s' % (
                label, 'prefill' if chunk == 0 else 'chunks of %d' % chunk,
                'batched' if batch else 'one by one', bs, ' scrambled' if shuffle else '')
            if ok(out is not None, what + ': runs (%s)' % (err or 'ok')):
                compare_logits(what, out, ref, tol)
    if greedy:
        want = [hf_greedy(ref_model, p, GEN) for p in PROMPTS]
        out, err = run_cli(path, PROMPTS, gen=GEN, batch=True, logits=False)
        got = [s['generated'] for s in out['seqs']] if out else None
        same = got == want
        ok(same, '%s: greedy %d-token continuations of %d prompts equal HF\'s' % (label, GEN, len(PROMPTS)))
        if not same:
            diag('HF:     %s' % want)
            diag('troupe: %s' % got)
    return ref


def q8_roundtrip(model):
    """A copy of model whose q8_0-able matrices went through gguf's quantize/dequantize."""
    import gguf
    m = copy.deepcopy(model)
    q8 = gguf.GGMLQuantizationType.Q8_0
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() >= 2 and p.shape[-1] % 32 == 0 and 'shared_expert_gate' not in name:
                a = np.ascontiguousarray(p.detach().numpy(), dtype=np.float32)
                back = gguf.quants.dequantize(gguf.quants.quantize(a, q8), q8)
                p.copy_(torch.from_numpy(np.asarray(back, dtype=np.float32).reshape(a.shape)))
    return m


def main():
    tmp = tempfile.TemporaryDirectory(prefix='troupe-hf-')
    for seed, kind in enumerate(KINDS):
        model = build_model(kind, seed=seed)
        d32 = os.path.join(tmp.name, kind + '-f32')
        model.save_pretrained(d32, safe_serialization=True)
        check_model(kind, d32, model, '%s f32' % kind)

        # bf16 / f16: reference = the same rounded weights, computed in f32
        same_weights = {'f32': model}
        for dt_name, dt in (('bf16', torch.bfloat16), ('f16', torch.float16)):
            d = os.path.join(tmp.name, '%s-%s' % (kind, dt_name))
            copy.deepcopy(model).to(dt).save_pretrained(d, safe_serialization=True)
            rounded = type(model).from_pretrained(d, torch_dtype=torch.float32).eval()
            same_weights[dt_name] = rounded
            check_model(kind, d, rounded, '%s %s' % (kind, dt_name), modes=False)
            if dt_name == 'bf16':
                native = type(model).from_pretrained(d, torch_dtype=torch.bfloat16).eval()
                out, _ = run_cli(d, PROMPTS[:1], chunk=0)
                if out:
                    compare_logits('%s bf16 vs HF native bf16 arithmetic' % kind, out,
                                   [hf_logits(native, PROMPTS[0])], BF16_NATIVE_TOL)

        # GGUF from the same weights (for f16 / bf16: the rounded ones, norms included)
        if kind == 'mistral':
            skip('mistral GGUF: llama.cpp has no sliding window for the llama arch')
            continue
        st32, _ = run_cli(d32, PROMPTS, chunk=0, batch=True)
        for qt in ('f32', 'f16', 'bf16'):
            g = os.path.join(tmp.name, '%s-%s.gguf' % (kind, qt))
            to_gguf(same_weights[qt], kind, g, qt)
            st_dir = d32 if qt == 'f32' else os.path.join(tmp.name, '%s-%s' % (kind, qt))
            st, _ = run_cli(st_dir, PROMPTS, chunk=0, batch=True)
            out, err = run_cli(g, PROMPTS, chunk=0, batch=True)
            if ok(out is not None and st is not None, '%s %s GGUF loads (%s)' % (kind, qt, err or 'ok')):
                worst = max(rel_err(a['logits'], b['logits']) for a, b in zip(out['seqs'], st['seqs']))
                ok(worst <= F32_TOL, '%s %s GGUF = %s safetensors: rel err %.2e' % (kind, qt, qt, worst))
        g8 = os.path.join(tmp.name, '%s-q8_0.gguf' % kind)
        to_gguf(model, kind, g8, 'q8_0')
        out, err = run_cli(g8, PROMPTS, chunk=0, batch=True)
        if ok(out is not None, '%s q8_0 GGUF loads (%s)' % (kind, err or 'ok')):
            ref = [hf_logits(model, p) for p in PROMPTS]
            compare_logits('%s q8_0 GGUF vs HF f32 (unquantized)' % kind, out, ref, Q8_TOL)
            check_model(kind, g8, q8_roundtrip(model), '%s q8_0 GGUF vs HF on q8_0-rounded weights'
                        % kind, modes=False)
            refb, _ = run_cli(g8, PROMPTS, chunk=0, batch=True, backend='ref')
            if refb:
                worst = max(rel_err(a['logits'], b['logits']) for a, b in zip(out['seqs'], refb['seqs']))
                ok(worst <= F32_TOL, '%s q8_0 GGUF: CPU backend = reference backend, rel err %.2e'
                   % (kind, worst))
        if st32 is None:
            ok(False, '%s f32 safetensors reruns' % kind)

    # real trained weights
    d = os.path.join(ROOT, 'tests', 'data', 'models', 'tinystories-656k')
    model = transformers.AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    prompts = [[1], [1, 147, 201, 282, 215]]
    want = [hf_greedy(model, p, 60) for p in prompts]
    out, err = run_cli(d, prompts, gen=60, batch=True, logits=False)
    got = [s['generated'] for s in out['seqs']] if out else err
    ok(got == want, 'tinystories-656k: 60-token greedy continuations of BOS and a prompt equal HF\'s')
    if got != want:
        diag('HF:     %s' % want)
        diag('troupe: %s' % got)
    out, err = run_cli(d, prompts, chunk=1)
    if ok(out is not None, 'tinystories-656k logits (%s)' % (err or 'ok')):
        compare_logits('tinystories-656k', out, [hf_logits(model, p) for p in prompts], F32_TOL)
    done_testing()


main()
