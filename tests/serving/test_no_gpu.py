"""An executor placed on `device: cuda:0` where no GPU can be used (no device, no driver, or
a build without CUDA) stops `troupe serve` at once: one error naming the device and saying
"no usable GPU", and a non-zero exit, in one process and under the launcher. Skipped when
nvidia-smi lists a GPU (then the executor would start)."""
import shutil
import subprocess
import time

from harness import BIN
from serving_util import MODEL, topology_file
from tap import diag, done_testing, ok, skip


def gpu_present():
    smi = shutil.which('nvidia-smi')
    if not smi:
        return False
    try:
        r = subprocess.run([smi, '-L'], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and 'GPU' in r.stdout


if gpu_present():
    skip('a GPU is present: the executor on cuda:0 would start')
    done_testing()

ONE = topology_file('''
processes:
  - {name: main, device: cuda:0,
     actors: [frontend, tokenizer, scheduler, kv_manager, executor, communicator]}
''')
SPLIT = topology_file('''
processes:
  - {name: front, actors: [frontend, tokenizer, scheduler, kv_manager]}
  - {name: rank0, actors: [executor, communicator], rank: 0, device: cuda:0}
''')

for name, topo in (('one process', ONE), ('launcher, executor in its own process', SPLIT)):
    t0 = time.monotonic()
    r = subprocess.run([BIN, 'serve', '-m', MODEL, '-c', topo, '--listen', 'tcp://127.0.0.1:0'],
                       capture_output=True, text=True, timeout=60)
    dt = time.monotonic() - t0
    lines = [l for l in r.stderr.splitlines() if 'device cuda:0' in l and 'no usable GPU' in l]
    ok(r.returncode != 0, '%s: exit status %d (non-zero)' % (name, r.returncode))
    ok(len(lines) == 1, '%s: one error naming the device and "no usable GPU"' % name)
    ok(dt < 30, '%s: exits promptly (%.1f s)' % (name, dt))
    if len(lines) != 1:
        diag(r.stderr[-1500:])
    else:
        diag(lines[0])
done_testing()
