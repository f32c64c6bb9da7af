"""`troupe serve` under valgrind: a health request, then SIGINT; no leaks, no errors.

Runs the plain (non-ASan) build only; under the ASan build, LeakSanitizer does this job.
"""
import os
import shutil

from harness import Client, Server
from tap import diag, done_testing, ok, skip

binary = os.environ.get('TROUPE_BIN', '')
# ld.so false positives when a CUDA build links cuBLASLt (see the file)
SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'valgrind.supp')
if not shutil.which('valgrind'):
    skip('valgrind not installed')
elif 'asan' in binary:
    skip('ASan build: LeakSanitizer checks leaks instead of valgrind')
else:
    srv = Server([], ready_timeout=60)
    log = os.path.join(srv.tmp, 'vg.log')
    srv.args = ['valgrind', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect',
                '--error-exitcode=99', '--suppressions=' + SUPP, '--log-file=' + log] + srv.args
    with srv:
        c = Client(srv.endpoint, timeout=30)
        h = c.request({'type': 'health'})
        ok(h.get('status') == 'ok', 'health answers under valgrind')
        s = c.request({'type': 'stats'})
        ok(s.get('type') == 'stats', 'stats answers under valgrind')
        c.close()
        rc = srv.stop(timeout=60)
    text = open(log).read() if os.path.exists(log) else ''
    ok(rc == 0, 'clean exit with no valgrind errors or definite/indirect leaks (rc=%s)' % (rc,))
    ok('ERROR SUMMARY: 0 errors' in text, 'valgrind: 0 errors')
    if rc != 0 or 'ERROR SUMMARY: 0 errors' not in text:
        diag(text[-4000:])
done_testing()
