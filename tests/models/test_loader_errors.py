"""Loaders refuse damaged and unsupported files with a clear reason, and never crash.

(Also: a llama2.c version-1 rewrite of stories260K.bin loads and generates what the v0
original does, the one check of the version-1 layout.)

Each case writes a damaged copy of a good model (llama2.c stories260K.bin, an HF directory
with config.json + safetensors, single or sharded, and GGUF files written with the gguf
package), runs build/tests/models/model_cli on it and expects a non-zero exit (not a signal)
and a message naming the problem. Under asan=1 the same runs also prove the loaders never
read out of bounds.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import done_testing, ok, skip, diag  # noqa: E402
from hf_models import CLI, ROOT  # noqa: E402

DATA = os.path.join(ROOT, 'tests', 'data', 'models')


def load(path):
    p = subprocess.run([CLI, path, '--prompt', '1', '--no-logits'], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stderr.decode('utf-8', 'replace')


def expect(path, label, *words):
    rc, err = load(path)
    good = rc == 1 and all(w in err for w in words)
    ok(good, '%s: refused with a reason (rc %d): %s' % (label, rc, err.strip().splitlines()[-1] if err.strip() else ''))
    if not good:
        diag('wanted %s in: %s' % (words, err))


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def main():
    if not os.path.exists(CLI):
        ok(False, 'model_cli is built')
        done_testing()
    tmp = tempfile.mkdtemp(prefix='troupe-loaderr-')
    try:
        # ---- llama2.c ----
        good = open(os.path.join(DATA, 'stories260K.bin'), 'rb').read()
        rc, err = load(os.path.join(DATA, 'stories260K.bin'))
        ok(rc == 0, 'the intact stories260K.bin loads')
        p = os.path.join(tmp, 'trunc.bin')
        write(p, good[:len(good) // 2])
        expect(p, 'llama2.c truncated to half', 'truncated')
        write(p, good[:20])
        expect(p, 'llama2.c shorter than its header', 'too short')
        write(p, good + b'\0' * 64)
        expect(p, 'llama2.c with trailing bytes', 'trailing')
        write(p, struct.pack('7i', 64, 172, 5, 7, 4, 512, 512) + good[28:])
        expect(p, 'llama2.c header with 7 heads for dim 64', 'not a llama2.c checkpoint')
        write(p, b'\x7fELF' + os.urandom(200))
        expect(p, 'a random binary', 'not a llama2.c checkpoint')
        write(p, struct.pack('<Ii', 0x616b3432, 2) + b'\0' * 300)
        expect(p, 'llama2.c version 2', 'version 2 is not supported')
        expect(os.path.join(tmp, 'nope.bin'), 'missing file', 'No such file')
        # the same model rewritten in llama2.c's version-1 layout generates the same tokens
        import numpy as np
        dim, hid, L, nh, nkv, V, seq = struct.unpack('7i', good[:28])
        hs, kvd = dim // nh, nkv * dim // nh
        f = np.frombuffer(good[28:], dtype=np.float32)
        sizes = [('emb', V * dim), ('att', L * dim), ('wq', L * dim * dim), ('wk', L * kvd * dim),
                 ('wv', L * kvd * dim), ('wo', L * dim * dim), ('ffn', L * dim), ('w1', L * hid * dim),
                 ('w2', L * dim * hid), ('w3', L * hid * dim), ('final', dim)]
        t, o = {}, 0
        for name, n in sizes:
            t[name] = f[o:o + n]
            o += n
        hdr = struct.pack('<Ii7iB', 0x616b3432, 1, dim, hid, L, nh, nkv, V, seq, 1)
        v1 = hdr + b'\0' * (256 - len(hdr)) + b''.join(t[k].tobytes() for k in (
            'att', 'ffn', 'final', 'emb', 'wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'))
        write(p, v1)
        gen = lambda path: subprocess.run([CLI, path, '--prompt', '1', '--gen', '40', '--no-logits'],
                                          stdout=subprocess.PIPE, timeout=60).stdout
        a, b = gen(os.path.join(DATA, 'stories260K.bin')), gen(p)
        ok(a and json.loads(a)['seqs'] == json.loads(b)['seqs'],
           'a version-1 copy of stories260K.bin generates the same 40 tokens')

        # ---- HF safetensors ----
        src = os.path.join(DATA, 'tinystories-656k')
        d = os.path.join(tmp, 'hf')

        def fresh():
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            for f in ('config.json', 'model.safetensors'):
                shutil.copy(os.path.join(src, f), d)
            return os.path.join(d, 'model.safetensors'), os.path.join(d, 'config.json')

        st, cfg = fresh()
        ok(load(d)[0] == 0, 'the intact HF copy loads')
        blob = open(st, 'rb').read()
        write(st, blob[:len(blob) - 1000])
        expect(d, 'safetensors truncated', 'lies past the end', 'truncated')
        write(st, blob[:5])
        expect(d, 'safetensors shorter than 8 bytes', 'too short')
        write(st, struct.pack('<Q', 1 << 40) + blob[8:])
        expect(d, 'safetensors header length past the file', 'runs past the end')
        hlen = struct.unpack('<Q', blob[:8])[0]
        header = blob[8:8 + hlen]
        write(st, blob[:8] + b'{' + header[1:].replace(b'"', b"'", 3) + blob[8 + hlen:])
        expect(d, 'safetensors header not JSON', 'not a JSON object')
        write(st, blob[:8] + header.replace(b'"lm_head.weight"', b'"lm_head.weighx"') + blob[8 + hlen:])
        expect(d, 'safetensors without the tied embedding tensor', 'missing tensor')
        write(st, blob[:8] + header.replace(b'"F32"', b'"I32"', 1) + blob[8 + hlen:])
        expect(d, 'safetensors tensor in int32', 'I32 is not supported')
        write(st, blob[:8] + header.replace(b'"F32"', b'"F64"', 1) + blob[8 + hlen:])
        expect(d, 'safetensors dtype whose size disagrees with the offsets', 'data_offsets span')
        st, cfg = fresh()
        c = json.load(open(cfg))
        c['intermediate_size'] = 380
        json.dump(c, open(cfg, 'w'))
        expect(d, 'config.json intermediate_size disagrees with the tensors', 'has shape', 'expected')
        c['intermediate_size'] = 384
        c['model_type'] = 'gpt2'
        json.dump(c, open(cfg, 'w'))
        expect(d, 'config.json of an unsupported architecture', 'gpt2', 'not supported')
        c['model_type'] = 'llama'
        c['hidden_act'] = 'gelu'
        json.dump(c, open(cfg, 'w'))
        expect(d, 'config.json with another activation', 'gelu')
        c['hidden_act'] = 'silu'
        c['num_key_value_heads'] = 3
        json.dump(c, open(cfg, 'w'))
        expect(d, 'config.json with heads not a multiple of kv heads', 'not a multiple')
        write(cfg, b'{"model_type": "llama", ')
        expect(d, 'config.json cut short', 'config.json')
        os.remove(cfg)
        expect(d, 'directory without config.json', 'no config.json')
        st, cfg = fresh()
        os.remove(st)
        expect(d, 'directory without weights', 'neither model.safetensors')
        # sharded: an index naming a shard that does not exist, and a tensor in the wrong shard
        st, cfg = fresh()
        os.rename(st, os.path.join(d, 'model-00001-of-00001.safetensors'))
        names = [k for k in json.loads(header) if k != '__metadata__']
        idx = {'metadata': {}, 'weight_map': {n: 'model-00001-of-00001.safetensors' for n in names}}
        json.dump(idx, open(os.path.join(d, 'model.safetensors.index.json'), 'w'))
        ok(load(d)[0] == 0, 'a one-shard index loads')
        idx['weight_map'][names[0]] = 'model-00002-of-00002.safetensors'
        json.dump(idx, open(os.path.join(d, 'model.safetensors.index.json'), 'w'))
        expect(d, 'index naming a missing shard', 'model-00002-of-00002.safetensors')

        # ---- GGUF ----
        try:
            import gguf
            import numpy as np
        except Exception as e:
            skip('gguf package unavailable: %s' % e)
            done_testing()
        g = os.path.join(tmp, 'm.gguf')

        def gguf_model(path, arch='llama', drop=None, qk=None, emb_type=None):
            w = gguf.GGUFWriter(path, arch)
            w.add_embedding_length(32)
            w.add_block_count(1)
            w.add_feed_forward_length(64)
            w.add_head_count(4)
            w.add_head_count_kv(2)
            w.add_layer_norm_rms_eps(1e-5)
            r = np.random.RandomState(0)
            tensors = {'token_embd.weight': (64, 32), 'output_norm.weight': (32,),
                       'blk.0.attn_norm.weight': (32,), 'blk.0.ffn_norm.weight': (32,),
                       'blk.0.attn_q.weight': (32, 32), 'blk.0.attn_k.weight': (qk or 16, 32),
                       'blk.0.attn_v.weight': (16, 32), 'blk.0.attn_output.weight': (32, 32),
                       'blk.0.ffn_gate.weight': (64, 32), 'blk.0.ffn_up.weight': (64, 32),
                       'blk.0.ffn_down.weight': (32, 64)}
            for name, shape in tensors.items():
                if name == drop:
                    continue
                a = r.randn(*shape).astype(np.float32)
                if name == 'token_embd.weight' and emb_type is not None:
                    w.add_tensor(name, gguf.quants.quantize(a, emb_type), raw_dtype=emb_type)
                else:
                    w.add_tensor(name, a)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            return open(path, 'rb').read()

        blob = gguf_model(g)
        ok(load(g)[0] == 0, 'a small intact GGUF loads')
        write(g, blob[:len(blob) - 100])
        expect(g, 'GGUF truncated', 'm.gguf')
        write(g, b'GGUF' + b'\xff' * 60)
        expect(g, 'GGUF magic then garbage', 'm.gguf')
        write(g, b'GGUF' + struct.pack('<I', 7) + blob[8:])
        expect(g, 'GGUF version 7', 'version')
        gguf_model(g, drop='blk.0.ffn_up.weight')
        expect(g, 'GGUF without a tensor', 'missing tensor blk.0.ffn_up.weight')
        gguf_model(g, qk=8)
        expect(g, 'GGUF with a wrongly shaped tensor', 'blk.0.attn_k.weight', 'expected (16, 32)')
        gguf_model(g, arch='gpt2')
        expect(g, 'GGUF of an unsupported architecture', 'gpt2', 'not supported')
        gguf_model(g, emb_type=gguf.GGMLQuantizationType.Q4_0)
        expect(g, 'GGUF with a q4_0 tensor', 'q4_0 is not supported')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done_testing()


main()
