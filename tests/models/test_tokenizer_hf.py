"""troupe's tokenizer against HuggingFace `tokenizers` (and transformers) on hard strings.

For every tokenizer.json in tests/data/tokenizers (plus variants of them that swap in the
pre-tokenizers of Llama-3, Qwen2 (with its NFC normalizer), GPT-2 with add_prefix_space, NFD
and NFKC normalizers, and the Metaspace format of newer Llama/Mistral files, so those code
paths meet the reference too), each string of
tests/data/tokenizers/hard_strings.json (and 150 seeded random concatenations of awkward
pieces) is encoded and decoded by HF `tokenizers` and by
troupe (through build/tests/models/tok_cli). Exact equality is required for
  - ids with add_special_tokens=True and False (special tokens in the text are parsed),
  - decode of HF's ids with skip_special_tokens False and True,
  - decode of random id sequences (partial UTF-8, lone byte tokens, specials),
  - streaming: every streamed chunk is valid UTF-8 and the chunks add up to the decode.
For the real model folders, transformers' AutoTokenizer (which applies tokenizer_config.json)
is compared too: ids with special tokens, and the BOS/EOS ids. Prints TAP.
"""
import copy
import json
import os
import random
import subprocess
import sys
import tempfile

from tap import diag, done_testing, ok, skip

ROOT = os.environ.get('TROUPE_ROOT', os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BUILD = os.environ.get('TROUPE_BUILD', os.path.join(ROOT, 'build'))
DATA = os.path.join(ROOT, 'tests', 'data', 'tokenizers')
CLI = os.path.join(BUILD, 'tests', 'models', 'tok_cli')

try:
    from tokenizers import Tokenizer
except ImportError as e:  # no reference available: say so, do not pass silently
    skip('HF tokenizers not importable (%s); run tools/install-deps.sh' % e)
    done_testing()

LLAMA3_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
             " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
            " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def split_bytelevel(regex, ignore_merges):
    def f(t):
        t['pre_tokenizer'] = {'type': 'Sequence', 'pretokenizers': [
            {'type': 'Split', 'pattern': {'Regex': regex}, 'behavior': 'Isolated',
             'invert': False},
            {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True,
             'use_regex': False}]}
        t['model']['ignore_merges'] = ignore_merges
    return f


def qwen2_like(t):
    # Qwen2/Qwen2.5 tokenizer.json: NFC normalizer, the Qwen2 Split regex, ByteLevel.
    split_bytelevel(QWEN2_RE, False)(t)
    t['normalizer'] = {'type': 'NFC'}


def nfkc_spm(t):
    t['normalizer'] = {'type': 'Sequence', 'normalizers': [
        {'type': 'NFKC'}, t['normalizer']]}


def nfd_bytelevel(t):
    t['normalizer'] = {'type': 'NFD'}


def gpt2_prefix_space(t):
    t['pre_tokenizer'] = {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True,
                          'use_regex': True}


def metaspace_legacy_false(t):
    # What transformers writes for Llama/Mistral with legacy=False: no normalizer, a
    # Metaspace pre-tokenizer that prepends only at the start, the usual decoder.
    t['normalizer'] = None
    t['pre_tokenizer'] = {'type': 'Metaspace', 'replacement': '\u2581',
                          'prepend_scheme': 'first', 'split': False}


def metaspace_split(t):
    t['normalizer'] = None
    t['pre_tokenizer'] = {'type': 'Metaspace', 'replacement': '\u2581',
                          'prepend_scheme': 'always', 'split': True}
    t['decoder'] = {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always',
                    'split': True}


# (name, folder, variant transform or None)
CASES = [
    ('tinyllama', 'tinyllama-1.1b-chat-v1.0', None),
    ('smollm', 'smollm-135m', None),
    ('minueza', 'minueza-32m-ultrachat', None),
    ('tinystories', 'tinystories-656k', None),
    ('smollm+llama3-pre', 'smollm-135m', split_bytelevel(LLAMA3_RE, True)),
    ('smollm+qwen2-pre', 'smollm-135m', split_bytelevel(QWEN2_RE, False)),
    ('smollm+gpt2-prefix-space', 'smollm-135m', gpt2_prefix_space),
    ('smollm+qwen2-nfc', 'smollm-135m', qwen2_like),
    ('smollm+nfd', 'smollm-135m', nfd_bytelevel),
    ('tinyllama+nfkc', 'tinyllama-1.1b-chat-v1.0', nfkc_spm),
    ('tinyllama+metaspace-first', 'tinyllama-1.1b-chat-v1.0', metaspace_legacy_false),
    ('mistral+metaspace-split', 'minueza-32m-ultrachat', metaspace_split),
]


def run_cli(path, texts, decodes):
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump({'encode': texts, 'decode': decodes}, f)
        req = f.name
    try:
        p = subprocess.run([CLI, path, req], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=300)
    finally:
        os.unlink(req)
    if p.returncode != 0:
        return None, p.stderr.decode('utf-8', 'replace')
    return json.loads(p.stdout.decode('utf-8')), None


def first_mismatch(label, texts, want, got):
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            diag('%s: first mismatch at #%d text=%r' % (label, i, texts[i][:120]))
            diag('  want: %r' % (w if not isinstance(w, str) else w[:300],))
            diag('  got:  %r' % (g if not isinstance(g, str) else g[:300],))
            return i
    return -1


def random_sequences(tok, n_vocab, rng, n=60):
    seqs = []
    byte_ids = [i for i in range(n_vocab) if (tok.id_to_token(i) or '').startswith('<0x')]
    for k in range(n):
        length = rng.randint(1, 24)
        if byte_ids and k % 3 == 0:  # runs of byte tokens: partial and invalid UTF-8
            seq = [rng.choice(byte_ids) for _ in range(length)]
            seq.insert(rng.randint(0, len(seq)), rng.randrange(n_vocab))
        else:
            seq = [rng.randrange(n_vocab) for _ in range(length)]
        seqs.append(seq)
    return seqs


PIECES = [' ', '  ', '\t', '\n', '\r\n', 'a', 'e', 'the', 'The', ' of', "'s", "'T", 'ing',
          '1', '23', '456', '.', ',', '!', '?', '...', '-', '_', '(', ')', '"', '<', '>', '|',
          '<s>', '</s>', '<|', '|>', '<|endoftext|>', '<|im_start|>', '\u2581', '\u0120',
          '\u00e9', 'e\u0301', '\u0308', '\u00a0', '\u3000', '\u4e2d', '\u6587', '\u65e5',
          '\uac00', '\u1100\u1161', '\u0627\u0644', '\u05d0', '\u0e01', '\u0915\u094d',
          '\U0001f600', '\U0001f44d\U0001f3fd', '\u200d', '\ufe0f', '\U0001f1eb\U0001f1f7',
          '\u2126', '\ufb01', '\u00bd', '\u0660', '\u00b5', '\x00', '\x7f', '\ue000']


def random_texts(rng, n=150):
    """Random concatenations of awkward pieces: a fuzz corpus with HF as the oracle."""
    return [''.join(rng.choice(PIECES) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def check_case(name, folder, variant, corpus):
    src = os.path.join(DATA, folder)
    tmpdir = None
    if variant:
        tmpdir = tempfile.mkdtemp(prefix='troupe_tok_')
        t = json.load(open(os.path.join(src, 'tokenizer.json'), encoding='utf-8'))
        t = copy.deepcopy(t)
        variant(t)
        json.dump(t, open(os.path.join(tmpdir, 'tokenizer.json'), 'w', encoding='utf-8'))
        path = os.path.join(tmpdir, 'tokenizer.json')  # no config: tokenizer.json alone
    else:
        path = src
    json_path = path if path.endswith('.json') else os.path.join(path, 'tokenizer.json')
    corpus = corpus + random_texts(random.Random(len(name)))
    hf = Tokenizer.from_file(json_path)
    hf.no_padding()
    hf.no_truncation()
    ids_sp = [hf.encode(s).ids for s in corpus]
    ids_nosp = [hf.encode(s, add_special_tokens=False).ids for s in corpus]
    n_vocab = hf.get_vocab_size(with_added_tokens=True)
    rng = random.Random(hash(name) & 0xffff)
    decodes = ids_sp + random_sequences(hf, n_vocab, rng)
    want_dec = [hf.decode(d, skip_special_tokens=False) for d in decodes]
    want_dec_skip = [hf.decode(d, skip_special_tokens=True) for d in decodes]
    dec_labels = corpus + ['random #%d %r' % (i, d) for i, d in
                           enumerate(decodes[len(corpus):])]

    res, err = run_cli(path, corpus, decodes)
    if not ok(res is not None, '%s: troupe loads %s' % (name, os.path.relpath(json_path, ROOT)
                                                         if not tmpdir else 'variant')):
        diag(err)
        return
    got_sp = [e['ids'] for e in res['encode']]
    got_nosp = [e['ids_noadd'] for e in res['encode']]
    got_dec = [d['text'] for d in res['decode']]
    got_dec_skip = [d['text_skip'] for d in res['decode']]
    i = first_mismatch(name + ' encode', corpus, ids_sp, got_sp)
    ok(i < 0, '%s: ids with special tokens match HF on %d strings (150 random)' % (name, len(corpus)))
    i = first_mismatch(name + ' encode', corpus, ids_nosp, got_nosp)
    ok(i < 0, '%s: ids without added special tokens match HF' % name)
    i = first_mismatch(name + ' decode', dec_labels, want_dec, got_dec)
    ok(i < 0, '%s: decode matches HF on %d id sequences (%d random)' % (
        name, len(decodes), len(decodes) - len(corpus)))
    i = first_mismatch(name + ' decode skip', dec_labels, want_dec_skip, got_dec_skip)
    ok(i < 0, '%s: decode with skip_special_tokens matches HF' % name)
    bad = [(k, d.get('stream_msg')) for k, d in enumerate(res['decode']) if not d['stream_ok']]
    if bad:
        diag('%s: stream problem at sequence #%d: %s' % (name, bad[0][0], bad[0][1]))
    ok(not bad, '%s: streamed chunks are valid UTF-8 and add up to the decode' % name)
    if tmpdir:
        os.unlink(json_path)
        os.rmdir(tmpdir)
        return

    # transformers applies tokenizer_config.json (add_bos_token, bos/eos names)
    try:
        os.environ.setdefault('TRANSFORMERS_VERBOSITY', 'error')
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        from transformers import AutoTokenizer
        at = AutoTokenizer.from_pretrained(src)
    except Exception as e:  # noqa: BLE001 - report any failure to load the reference
        skip('%s: transformers AutoTokenizer unavailable (%s: %s)' % (name, type(e).__name__, e))
        return
    want = [at(s)['input_ids'] for s in corpus]
    i = first_mismatch(name + ' transformers', corpus, want, got_sp)
    ok(i < 0, '%s: ids match transformers AutoTokenizer (tokenizer_config.json applied)' % name)
    ok(res['bos'] == (at.bos_token_id if at.bos_token_id is not None else -1) and
       res['eos'] == (at.eos_token_id if at.eos_token_id is not None else -1),
       '%s: bos/eos %d/%d match transformers (%s/%s)' % (name, res['bos'], res['eos'],
                                                         at.bos_token_id, at.eos_token_id))


def main():
    if not os.path.exists(CLI):
        ok(False, 'tok_cli not built at %s (run scons)' % CLI)
        done_testing()
    corpus = json.load(open(os.path.join(DATA, 'hard_strings.json'), encoding='utf-8'))
    for name, folder, variant in CASES:
        check_case(name, folder, variant, corpus)
    done_testing()


if __name__ == '__main__':
    main()
