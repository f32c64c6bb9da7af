"""examples/clients/python_quickstart.py runs to the end against the mock server."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, '..'))

from mock_server import MockServer  # noqa: E402
from tap import diag, done_testing, ok  # noqa: E402

with MockServer() as m:
    p = subprocess.run([sys.executable, os.path.join(ROOT, 'examples', 'clients', 'python_quickstart.py'),
                        m.endpoint], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode('utf-8', 'replace')
    ok(p.returncode == 0, 'the quickstart exits 0')
    if p.returncode:
        diag(out[-4000:])
    ok('finish_reason=abort' in out, 'its abort cell ends the stream with finish_reason abort')
    ok('tokens/s over 8 requests' in out, 'its asyncio cell ran 8 concurrent requests')
    ok(m.aborts and len(m.aborts) == 1, 'it sent exactly one abort')
done_testing()
