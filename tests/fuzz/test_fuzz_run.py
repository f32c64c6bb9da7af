"""A bounded libFuzzer run of tr_msg_decode inside `scons test` (at most ~20 s).

Runs $TROUPE_BUILD/tests/fuzz/fuzz_msg_decode (built by tests/fuzz/SConscript where clang
can link libFuzzer) with tests/fuzz/msg_decode.dict over a copy of
tests/fuzz/corpus/msg_decode/ in a temporary folder, since libFuzzer writes the inputs it
finds into its first corpus folder. A fixed seed keeps
the run repeatable. Any single allocation over 64 MiB counts as a crash: the decoder must
refuse hostile sizes before allocating by them. On a crash the input is kept in
$TROUPE_BUILD/tests/fuzz/crashes/; replay it with
    build-asan/tests/fuzz/test_fuzz_replay <file>
Skips when the fuzzer was not built (no clang or libclang-rt).
"""
import glob
import os
import shutil
import subprocess
import tempfile

from tap import diag, done_testing, ok, skip

ROOT = os.environ.get('TROUPE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get('TROUPE_BUILD') or os.path.join(ROOT, 'build')
FUZZER = os.path.join(BUILD, 'tests', 'fuzz', 'fuzz_msg_decode')
CORPUS = os.path.join(ROOT, 'tests', 'fuzz', 'corpus', 'msg_decode')
DICT = os.path.join(ROOT, 'tests', 'fuzz', 'msg_decode.dict')
ARGS = ['-seed=1', '-runs=200000', '-max_total_time=20', '-max_len=4096',
        '-malloc_limit_mb=64', '-timeout=10', '-print_final_stats=1']


def main():
    if not os.access(FUZZER, os.X_OK):
        skip('fuzzer not built (no clang/libFuzzer)')
        return
    with tempfile.TemporaryDirectory(prefix='troupe-fuzz-') as tmp:
        corpus = os.path.join(tmp, 'corpus')
        shutil.copytree(CORPUS, corpus)
        n_seeds = len(os.listdir(corpus))
        artifacts = os.path.join(tmp, 'artifacts') + os.sep
        os.makedirs(artifacts)
        cmd = [FUZZER] + ARGS + ['-dict=' + DICT, '-artifact_prefix=' + artifacts, corpus]
        try:
            p = subprocess.run(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=120)
            out, rc = p.stdout.decode('utf-8', 'replace'), p.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = (e.stdout or b'').decode('utf-8', 'replace'), 'timeout'
        lines = out.splitlines()
        stats = [l for l in lines if l.startswith(('stat::', '#', 'Done'))]
        if ok(rc == 0, 'fuzz_msg_decode: %d seeds, %s exits 0 (got %s)'
              % (n_seeds, ' '.join(ARGS[:4]), rc)):
            for line in stats[-4:]:
                diag(line)
        else:
            for line in lines[-40:]:
                diag(line)
            crashes = glob.glob(artifacts + '*')
            if crashes:
                keep = os.path.join(BUILD, 'tests', 'fuzz', 'crashes')
                os.makedirs(keep, exist_ok=True)
                for c in crashes:
                    shutil.copy(c, keep)
                diag('crash inputs kept in %s' % keep)


if __name__ == '__main__':
    main()
    done_testing()
