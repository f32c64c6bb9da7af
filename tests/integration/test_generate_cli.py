"""`troupe generate` runs the whole troupe in one process on the bundled stories260K and
streams llama2.c's own greedy continuation (tests/data/models/stories260K_greedy_expected.txt,
from karpathy/llama2.c run.c; see tests/data/models/SOURCES.md)."""
import os
import subprocess

from harness import BIN, ROOT
from tap import diag, done_testing, ok

golden = open(os.path.join(ROOT, 'tests/data/models/stories260K_greedy_expected.txt')).read()

r = subprocess.run([BIN, 'generate', '--max-tokens', '120', 'Once upon a time'],
                   capture_output=True, text=True, timeout=60)
ok(r.returncode == 0, 'troupe generate exits 0 (%d)' % r.returncode)
out = r.stdout.rstrip('\n')
ok(len(out) > 300 and golden.startswith(out),
   'greedy output is llama2.c\'s golden continuation (%d chars)' % len(out))
if not golden.startswith(out):
    diag('got:  %r' % out[:300])
    diag('want: %r' % golden[:300])
ok('length' in r.stderr and '120 generated' in r.stderr, 'summary on stderr: %s' % r.stderr.strip())

r = subprocess.run([BIN, 'generate', '--max-tokens', '40', '--stop', 'Lily', 'Once upon a time'],
                   capture_output=True, text=True, timeout=60)
ok(r.returncode == 0 and r.stdout.rstrip('\n') == 'Once upon a time, there was a little girl named '
   and '[stop' in r.stderr, 'a stop string ends the text before it: %r' % r.stdout)

r = subprocess.run([BIN, 'generate', '--temperature', '-1', 'hi'], capture_output=True, text=True,
                   timeout=60)
ok(r.returncode == 1 and 'temperature' in r.stderr, 'a bad flag value is refused naming the field '
   '(rc %d): %s' % (r.returncode, r.stderr.strip()))

r = subprocess.run([BIN, 'generate', '-m', '/nonexistent/model.bin', 'hi'], capture_output=True,
                   text=True, timeout=60)
ok(r.returncode == 2 and 'nonexistent' in r.stderr, 'a missing model fails to start with exit 2: %s'
   % r.stderr.strip().splitlines()[-1:])

a = subprocess.run([BIN, 'generate', '--temperature', '1', '--seed', '7', '--max-tokens', '50',
                    'Once'], capture_output=True, text=True, timeout=60)
b = subprocess.run([BIN, 'generate', '--temperature', '1', '--seed', '7', '--max-tokens', '50',
                    'Once'], capture_output=True, text=True, timeout=60)
ok(a.returncode == 0 and a.stdout == b.stdout and a.stdout != out[:len(a.stdout)],
   'seeded sampling is reproducible (and not greedy)')
done_testing()
