/*  tests/fuzz/fuzz_msg_decode.c - libFuzzer target for tr_msg_decode.
 *
 *  Every input goes through tr_msg_check_input (fuzz_msg_check.h): decode must fail
 *  cleanly, or succeed and survive re-encode + decode with the same type, present bits
 *  and field values. A broken property aborts, which libFuzzer reports as a crash and
 *  saves; replay it with build/tests/fuzz/test_fuzz_replay <file>.
 *  Built by tests/fuzz/SConscript with clang -fsanitize=fuzzer,address,undefined, only
 *  where clang can link libFuzzer. Run by hand:
 *
 *      cp -r tests/fuzz/corpus/msg_decode /tmp/c     (libFuzzer adds to the first folder)
 *      build/tests/fuzz/fuzz_msg_decode -dict=tests/fuzz/msg_decode.dict -max_len=4096 \
 *          -malloc_limit_mb=64 /tmp/c
 *  (-malloc_limit_mb: any larger allocation is a finding; hostile sizes must be refused
 *  before msgpack-c allocates by them.)                                              */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/fuzz/fuzz_msg_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char why[512];
    if (tr_msg_check_input(data, size, why, sizeof why) != 0) {
        fprintf(stderr, "fuzz_msg_decode: %s\n", why);
        abort(); /* the fuzzer's way to report a finding (this is its main) */
    }
    return 0;
}
