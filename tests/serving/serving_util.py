"""Helpers of the serving integration tests: a real `troupe serve` (tests/harness.Server)
with the bundled stories260K model, talked to with the Python client package."""
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ROOT = os.path.dirname(TESTS)
for p in (TESTS, os.path.join(ROOT, 'clients', 'python')):
    if p not in sys.path:
        sys.path.insert(0, p)

from harness import Server  # noqa: E402,F401
from troupe_client import AsyncClient, Client, TroupeError, TroupeTimeout  # noqa: E402,F401

MODEL = os.path.join(ROOT, 'tests', 'data', 'models', 'stories260K.bin')
CONTEXT = 512

PROMPTS = [
    'Once upon a time', 'The cat sat', 'Lily wanted to', 'One day, a little boy',
    'The sun was hot', 'Tom and Sue went', 'There was a big red', 'In the park,',
    'Mom said', 'The dog was happy because', 'A bird flew', 'Ben had a toy',
    'It was a rainy day', 'The little girl saw', 'Sam liked to eat', 'They played with the ball',
]


def serve(args=(), **kw):
    """A Server for the bundled model (args are added to `troupe serve`). With
    TROUPE_TEST_DEVICE set (e.g. cuda:0, from tests/gpu/run.sh) and no topology in args, the
    server is one process whose executor runs on that device."""
    args = list(args)
    device = os.environ.get('TROUPE_TEST_DEVICE')
    if device and '-c' not in args:
        args += ['-c', device_topology(device)]
    return Server(['--model', MODEL] + args, **kw)


def device_topology(device, extra=''):
    """A one-process topology with every actor and the executor on `device`."""
    return topology_file('processes:\n  - {name: main, device: %s, actors: [frontend, '
                         'tokenizer, scheduler, kv_manager, executor, communicator]}\n%s'
                         % (device, extra))


def topology_file(text):
    f = tempfile.NamedTemporaryFile('w', suffix='.yaml', prefix='troupe-topo-', delete=False)
    f.write(text)
    f.close()
    return f.name


def actor_counters(stats, kind):
    """The own counters (`actor`) of the first actor whose name is kind or kind.N."""
    for name, a in sorted(stats.get('actors', {}).items()):
        if name == kind or name.startswith(kind + '.'):
            return a.get('actor') or {}
    return {}


def kv_blocks_used(client):
    return actor_counters(client.stats(), 'kv_manager').get('blocks_used')


def wait_kv_free(client, timeout=15):
    """Poll stats until kv_manager's blocks_used is 0 -> (True, last value) or (False, ...)."""
    deadline = time.time() + timeout
    used = None
    while time.time() < deadline:
        used = kv_blocks_used(client)
        if used == 0:
            return True, used
        time.sleep(0.05)
    return False, used


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
