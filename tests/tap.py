"""TAP helpers for Python tests (same output as tests/tap.h)."""
import sys

_n = 0
_failed = 0


def ok(cond, msg):
    global _n, _failed
    _n += 1
    print('%sok %d - %s' % ('' if cond else 'not ', _n, msg), flush=True)
    if not cond:
        _failed += 1
    return cond


def skip(msg):
    global _n
    _n += 1
    print('ok %d # skip %s' % (_n, msg), flush=True)


def diag(msg):
    for line in str(msg).splitlines() or ['']:
        print('# ' + line, flush=True)


def done_testing():
    print('1..%d' % _n, flush=True)
    sys.exit(1 if _failed else 0)
