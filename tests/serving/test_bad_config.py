"""Bad serving configuration is refused at start (exit 2) with a message naming the key."""
import subprocess

from harness import BIN
from serving_util import MODEL, topology_file
from tap import diag, done_testing, ok

cases = [
    ('scheduler: {policy: lottery}\n', "unknown policy 'lottery'"),
    ('scheduler: {max_seqs: 0}\n', 'max_seqs'),
    ('scheduler: {mixed_batch_tokens: 0}\n', 'mixed_batch_tokens'),
    ('tokenizer: {path: /nonexistent/tokenizer.json}\n', '/nonexistent/tokenizer.json'),
    ('executor: {threads: -2}\n', 'executor.threads'),
    ('kv: {block_size: 0}\n', 'kv.block_size'),
    ('kv: {n_blocks: -4}\n', 'kv.n_blocks'),
    ('kv: {memory_gb: -1.5}\n', 'kv.memory_gb'),
    ('kv: {memory_fraction: 0}\n', 'kv.memory_fraction must be in (0, 1]'),
    ('kv: {memory_fraction: 1.5}\n', 'kv.memory_fraction must be in (0, 1]'),
    ('frontend: {max_message_bytes: 10}\n', 'max_message_bytes'),
]
for yaml, want in cases:
    r = subprocess.run([BIN, 'serve', '-m', MODEL, '-c', topology_file(yaml),
                        '--listen', 'tcp://127.0.0.1:0'], capture_output=True, text=True,
                       timeout=60)
    ok(r.returncode == 2 and want in r.stderr,
       '%s -> exit 2 naming %r (rc %d)' % (yaml.strip(), want, r.returncode))
    if want not in r.stderr:
        diag(r.stderr[-600:])
# a value of the wrong type is a usage error of the topology file (exit 1), naming the key
r = subprocess.run([BIN, 'serve', '-m', MODEL, '-c', topology_file('executor: {park: maybe}\n'),
                    '--listen', 'tcp://127.0.0.1:0'], capture_output=True, text=True, timeout=60)
ok(r.returncode == 1 and "'executor.park' must be true or false" in r.stderr,
   'executor: {park: maybe} -> exit 1 naming executor.park (rc %d)' % r.returncode)
r = subprocess.run([BIN, 'serve', '-m', '/nonexistent/model.bin', '--listen', 'tcp://127.0.0.1:0'],
                   capture_output=True, text=True, timeout=60)
ok(r.returncode == 2 and '/nonexistent/model.bin' in r.stderr,
   'a missing model -> exit 2 naming the path (rc %d)' % r.returncode)
done_testing()
