#!/usr/bin/python3
"""Writes the seed corpus of the tr_msg_decode fuzzer: tests/fuzz/corpus/msg_decode/.

    /usr/bin/python3 tests/fuzz/make_corpus.py      (needs python3-msgpack)

Valid seeds come from the schema itself (transport/msgs.def is parsed here, so a new
message type gets seeds on the next run): for every type, one message with every field
set (`full-<type>`), one with only the required fields (`min-<type>`) and, where the type
has int32-array or id fields, one using their other wire form (`alt-<type>`). Hand-built
seeds cover every msgpack encoding in ANY fields (`any-*`) and the malformed cases the
decoder must refuse (`bad-*`). The folder is rewritten from scratch; commit the result.
It also writes tests/fuzz/msg_decode.dict, the libFuzzer dictionary: every wire name and
key as a msgpack str, and the container headers that probe the pre-scan.
The replay test (tests/fuzz/test_fuzz_replay.c) runs every file here on each `scons test`.
"""
import os
import re
import struct
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, 'corpus', 'msg_decode')
DICT = os.path.join(HERE, 'msg_decode.dict')


def parse_schema():
    text = open(os.path.join(ROOT, 'transport', 'msgs.def')).read()
    types = re.findall(r'X\(\s*\w+,\s*(\w+),\s*"(\w+)",\s*(\d+)', text)
    fields = {}
    for ident, name, ftype, req, limit in re.findall(
            r'F\(\s*(\w+),\s*(\w+),\s*(\w+),\s*(REQ|OPT),\s*(\d+)', text):
        fields.setdefault(ident, []).append((name, ftype, req == 'REQ', int(limit)))
    return [(wire, int(ver), fields.get(ident, [])) for ident, wire, ver in types]


def clip(n, limit):
    return min(n, limit) if limit else n


def value(name, ftype, limit, alt=False):
    """A small, distinctive value of each field type; alt picks the other wire form."""
    if ftype == 'STR':
        return ('v-' + name * 3)[:clip(24, limit)]
    if ftype == 'ID':
        return 42 if alt else 'req-' + name
    if ftype == 'INT':
        return clip(7, limit)
    if ftype == 'SINT':
        return -3
    if ftype == 'FLOAT':
        return 0.5
    if ftype == 'BOOL':
        return True
    if ftype == 'BIN':
        return bytes(range(clip(16, limit)))
    if ftype == 'I32S':
        vals = [1, -2, 0x7fffffff, -0x80000000, 50256][:clip(5, limit)]
        return vals if alt else struct.pack('<%di' % len(vals), *vals)
    if ftype == 'STRS':
        return ['a', '', 'stop'][:clip(3, limit)]
    if ftype == 'ANY':
        return {'name': 'x', 'counts': [1, -2, 2.5, None, True, b'\x00\x01'], 'n': {}}
    raise ValueError(ftype)


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


# ---- raw encodings msgpack-python never picks for small values ----

def be(fmt, n):
    return struct.pack('>' + fmt, n)


def str32(s):
    return b'\xdb' + be('I', len(s)) + s


def str16(s):
    return b'\xda' + be('H', len(s)) + s


def str8(s):
    return b'\xd9' + be('B', len(s)) + s


def bin32(b):
    return b'\xc6' + be('I', len(b)) + b


def array16(items):
    return b'\xdc' + be('H', len(items)) + b''.join(items)


def array32(items):
    return b'\xdd' + be('I', len(items)) + b''.join(items)


def map16(kvs):
    return b'\xde' + be('H', len(kvs)) + b''.join(k + v for k, v in kvs)


def map32(kvs):
    return b'\xdf' + be('I', len(kvs)) + b''.join(k + v for k, v in kvs)


def ext(code, data, size_bytes):
    head = {1: b'\xc7', 2: b'\xc8', 4: b'\xc9'}[size_bytes]
    fmt = {1: 'B', 2: 'H', 4: 'I'}[size_bytes]
    return head + be(fmt, len(data)) + struct.pack('b', code) + data


def raw_map(kvs):
    """A map from (key, value) byte pairs, with a minimal header."""
    n = len(kvs)
    head = bytes([0x80 | n]) if n < 16 else b'\xde' + be('H', n)
    return head + b''.join(k + v for k, v in kvs)


def k(s):
    return pack(s)


def every_type_value():
    """An ANY value holding each msgpack encoding once (the pre-scan must accept all)."""
    f32 = msgpack.Packer(use_single_float=True).pack(1.5)
    items = [
        b'\xc0', b'\xc2', b'\xc3', b'\x05', b'\xe0',           # nil, false, true, fixints
        b'\xcc\xff', b'\xcd\xff\xff', b'\xce' + be('I', 1 << 31), b'\xcf' + be('Q', 1 << 63),
        b'\xd0\x80', b'\xd1' + be('h', -300), b'\xd2' + be('i', -70000), b'\xd3' + be('q', -1),
        f32, pack(2.25),                                       # float32, float64
        pack('fix'), str8(b'str8'), str16(b'str16'), str32(b'str32'),
        pack(b'bin8'), b'\xc5\x00\x02hi', bin32(b'bin32'),
        b'\xd4\x01a', b'\xd5\x02ab', b'\xd6\x03abcd', b'\xd7\x04' + b'8' * 8,
        b'\xd8\x05' + b'6' * 16,                               # fixext 1 2 4 8 16
        ext(6, b'e8', 1), ext(-7, b'e16', 2), ext(8, b'', 4),  # ext8 ext16 ext32
        pack([]), array16([pack(1)]), array32([pack(2), pack(3)]),
        pack({}), map16([(k('a'), pack({'deep': {'er': [{}]}}))]), map32([(k('b'), b'\xc0')]),
        pack({1: 'int key', b'bin key': 2, None: 3}),          # non-str keys inside ANY are fine
    ]
    return array16(items)


def nested_arrays(n, inner=b'\x01'):
    return b'\x91' * n + inner


def seeds():
    out = {}
    for wire, ver, fields in parse_schema():
        full = {'type': wire, 'v': ver, 'from': 'fuzz'}
        full.update({n: value(n, t, lim) for n, t, _, lim in fields})
        out['full-' + wire] = pack(full)
        out['min-' + wire] = pack(dict({'type': wire},
                                       **{n: value(n, t, lim) for n, t, req, lim in fields
                                          if req}))
        if any(t in ('I32S', 'ID') for _, t, _, _ in fields):
            alt = {'type': wire}
            alt.update({n: value(n, t, lim, alt=True) for n, t, _, lim in fields})
            out['alt-' + wire] = pack(alt)

    ping = [(k('type'), k('ping')), (k('seq'), pack(1))]
    # ---- valid, with unusual encodings ----
    out['any-every-type'] = raw_map([(k('type'), k('health')), (k('actors'), every_type_value())])
    out['any-nested-32'] = raw_map([(k('type'), k('pong')), (k('seq'), pack(0)),
                                    (k('stats'), nested_arrays(31))])   # root + 31 = 32 levels
    out['envelope-wide-forms'] = map32([(str32(b'type'), str8(b'ping')), (str16(b'seq'),
                                        b'\xcf' + be('Q', 9)), (k('v'), b'\xd0\x01')])
    out['int-as-float'] = pack({'type': 'generate', 'max_tokens': 3.0, 'top_k': 2.0})
    out['unknown-keys'] = pack({'type': 'ping', 'seq': 1, 'later': {'x': [1, 2]}, '': None})
    out['empty-containers'] = pack({'type': 'generate', 'tokens': [], 'stop': [],
                                    'prompt': '', 'stop_token_ids': b''})
    # ---- malformed ----
    gen = out['full-generate']
    out['bad-empty'] = b''
    out['bad-truncated-half'] = gen[:len(gen) // 2]
    out['bad-truncated-last'] = gen[:-1]
    out['bad-trailing-nil'] = out['min-ping'] + b'\xc0'
    out['bad-two-maps'] = out['min-ping'] + out['min-ping']
    out['bad-byte-c1'] = raw_map(ping + [(k('x'), b'\xc1')])
    out['bad-array32-huge'] = b'\xdd\xff\xff\xff\xff'
    out['bad-map32-huge'] = b'\xdf\xff\xff\xff\xff'
    out['bad-bin32-short'] = raw_map(ping + [(k('x'), b'\xc6\xff\xff\xff\xff' + b'\0' * 8)])
    out['bad-str32-short'] = raw_map(ping + [(k('x'), b'\xdb\x7f\xff\xff\xff' + b'a' * 8)])
    out['bad-ext32-short'] = raw_map(ping + [(k('x'), b'\xc9\xff\xff\xff\xf0\x01')])
    out['bad-array32-in-field'] = raw_map(ping + [(k('x'), b'\xdd\x10\x00\x00\x00\xc0\xc0')])
    out['bad-nested-40'] = raw_map([(k('type'), k('pong')), (k('seq'), pack(0)),
                                    (k('stats'), nested_arrays(40))])
    out['bad-nested-33-empty'] = raw_map([(k('type'), k('pong')), (k('seq'), pack(0)),
                                          (k('stats'), nested_arrays(31, b'\x90'))])
    out['bad-dup-key'] = raw_map(ping + [(k('seq'), pack(2))])
    out['bad-dup-type'] = raw_map(ping + [(k('type'), k('pong'))])
    out['bad-dup-key-late'] = raw_map([(k('k%d' % i), b'\xc0') for i in range(70)] + ping +
                                      [(k('seq'), pack(2))])
    out['bad-dup-empty-key'] = raw_map([(k(''), k('t')), (k(''), k('s'))])  # fuzz crash 62af23
    out['empty-id'] = pack({'type': 'generate', 'id': '', 'n': 2})
    out['bad-empty-id'] = pack({'type': 'generate', 'id': '', 'n': 65})
    out['bad-int-key'] = raw_map(ping + [(pack(1), pack(2))])
    out['bad-bin-key'] = raw_map([(pack(b'type'), k('ping')), (k('seq'), pack(1))])
    out['bad-missing-type'] = pack({'seq': 1})
    out['bad-type-int'] = pack({'type': 3, 'seq': 1})
    out['bad-unknown-type'] = pack({'type': 'gen', 'id': 'r1'})
    out['bad-version-new'] = pack({'type': 'ping', 'v': 2, 'seq': 1})
    out['bad-version-zero'] = pack({'type': 'ping', 'v': 0, 'seq': 1})
    out['bad-from-long'] = pack({'type': 'ping', 'seq': 1, 'from': 'f' * 65})
    out['bad-top-int'] = pack(7)
    out['bad-top-array'] = pack(['type', 'ping'])
    out['bad-top-nil'] = pack(None)
    out['bad-top-str'] = pack('ping')
    out['bad-int-half'] = pack({'type': 'generate', 'id': 9, 'max_tokens': 3.5})
    out['bad-int-negative'] = pack({'type': 'ping', 'seq': -1})
    out['bad-int-limit'] = pack({'type': 'generate', 'logprobs': 21})
    out['bad-int-huge'] = pack({'type': 'generate', 'seed': (1 << 64) - 1})
    out['bad-float-nan'] = pack({'type': 'generate', 'temperature': float('nan')})
    out['bad-i32s-odd-bin'] = pack({'type': 'generate', 'id': 'r', 'tokens': b'\1\0\0\0\2'})
    out['bad-i32s-big-item'] = pack({'type': 'generate', 'tokens': [1, 1 << 31]})
    out['bad-strs-item'] = pack({'type': 'generate', 'stop': ['a', 3]})
    out['bad-str-limit'] = pack({'type': 'error', 'code': 'c' * 65, 'message': 'm'})
    out['bad-bin-limit'] = pack({'type': 'tap', 'client': b'\0' * 257, 'recv_ns': 1, 'size': 1})
    out['bad-id-long'] = pack({'type': 'abort', 'id': 'i' * 257})
    out['bad-strs-count'] = pack({'type': 'generate', 'stop': ['s'] * 65})
    out['bad-i32s-count'] = pack({'type': 'generate', 'stop_token_ids': list(range(1025))})
    out['bad-required'] = pack({'type': 'ready', 'process': 'p', 'pid': 1})
    return out


def dictionary():
    words = {'type', 'v', 'from'}
    for wire, _, fields in parse_schema():
        words.add(wire)
        words.update(n for n, _, _, _ in fields)
    entries = [pack(w) for w in sorted(words)]
    entries += [b'\xdd\xff\xff\xff\xff', b'\xdf\xff\xff\xff\xff', b'\xc6\x00\x00\x10\x00',
                b'\xdb\x00\x00\x10\x00', b'\xc9\x00\x00\x00\x04\x01', b'\xcb', b'\xca',
                b'\xd3', b'\xcf']
    lines = ['# libFuzzer dictionary for fuzz_msg_decode, written by make_corpus.py']
    for i, e in enumerate(entries):
        lines.append('kw%d="%s"' % (i, ''.join(
            chr(c) if 0x20 <= c < 0x7f and chr(c) not in '"\\' else '\\x%02x' % c for c in e)))
    return '\n'.join(lines) + '\n'


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    out = seeds()
    for name, data in sorted(out.items()):
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)
    with open(DICT, 'w') as f:
        f.write(dictionary())
    print('make_corpus: wrote %d files to %s, and %s' % (len(out), os.path.relpath(OUT, ROOT),
                                                        os.path.relpath(DICT, ROOT)))


if __name__ == '__main__':
    sys.exit(main())
