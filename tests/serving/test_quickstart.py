"""examples/clients/python_quickstart.py runs to the end against a real server."""
import os
import subprocess
import sys

from serving_util import ROOT, serve
from tap import diag, done_testing, ok

with serve() as srv:
    p = subprocess.run([sys.executable, os.path.join(ROOT, 'examples', 'clients', 'python_quickstart.py'),
                        srv.endpoint], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    out = p.stdout.decode('utf-8', 'replace')
    ok(p.returncode == 0, 'the quickstart exits 0')
    diag(out[-6000:])
    ok('finish_reason=abort' in out, 'its abort ends the stream with finish_reason abort')
    ok('kv blocks used after the abort: 0' in out, 'and the KV blocks are freed')
done_testing()
