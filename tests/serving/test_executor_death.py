"""A dead executor process (on_failure: keep): the requests it was running end with an
error naming the lost process, new ones are refused with a clear error, and the frontend
keeps answering -- nothing hangs."""
import os
import signal
import time

from harness import pids_of_children
from serving_util import Client, TroupeError, serve, topology_file
from tap import diag, done_testing, ok

topo = topology_file('''on_failure: keep
processes:
  - {name: front, actors: [frontend, tokenizer, scheduler, kv_manager]}
  - {name: rank0, actors: [executor, communicator], rank: 0}
''')
with serve(['-c', topo]) as srv:
    c = Client(srv.endpoint, timeout=20)
    ok(len(c.generate('Once upon a time', max_tokens=8, temperature=0).tokens) == 8,
       'the split troupe serves')
    s = c.stream('Once upon a time', max_tokens=480, temperature=0, ignore_eos=True)
    first = next(iter(s))
    victim = [p for p in pids_of_children(srv.proc.pid)
              if 'rank0' in open('/proc/%d/cmdline' % p).read()]
    os.kill(victim[0], signal.SIGKILL)
    t0 = time.time()
    err = None
    try:
        for d in s:
            pass
        r = s.result()
        err = 'finished: %s' % r.finish_reason
    except TroupeError as e:
        err = e
    ok(isinstance(err, TroupeError) and 'rank0' in str(err),
       'the running request ends with an error naming the lost process in %.1f s: %s'
       % (time.time() - t0, err))
    try:
        c.generate('Once upon a time', max_tokens=4, timeout=10)
        ok(False, 'a new request after the loss is refused')
    except TroupeError as e:
        ok(e.code != 'timeout', 'a new request after the loss is refused at once: %s' % e)
    h = c.health()
    ok(h['status'] == 'degraded', 'health answers, degraded')
    c.close()
    srv.stop()
done_testing()
