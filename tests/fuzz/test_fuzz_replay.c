/*  tests/fuzz/test_fuzz_replay.c - replays the fuzz corpus through the fuzz target's check.
 *
 *  Every file in tests/fuzz/corpus/msg_decode/ (relative to TROUPE_ROOT, else the current
 *  directory) goes through tr_msg_check_input, the same function the libFuzzer target
 *  calls, so the corpus is exercised by gcc in the normal and the asan build even where
 *  clang is missing. Each file is read into a buffer of exactly its size, so ASan sees any
 *  read past the end. Arguments, when given, replace the corpus: files or folders, e.g. a
 *  crash file the fuzzer saved:   build-asan/tests/fuzz/test_fuzz_replay crash-1234    */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz_msg_check.h"
#include "tests/tap.h"

#define CORPUS "tests/fuzz/corpus/msg_decode"

/* Reads a whole file into a malloc'd buffer of exactly its size (NULL for size 0 is ok). */
static int s_read_file(const char *path, uint8_t **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return -1;
    }
    *n = (size_t)st.st_size;
    *out = *n ? malloc(*n) : NULL;
    int rc = (*n && !*out) || (*n && fread(*out, 1, *n, f) != *n) ? -1 : 0;
    fclose(f);
    return rc;
}

static void s_replay_file(const char *path, const char *label) {
    uint8_t *buf = NULL;
    size_t n = 0;
    if (s_read_file(path, &buf, &n) != 0) {
        ok(0, "%s: cannot read", label);
        return;
    }
    char why[512];
    int rc = tr_msg_check_input(buf, n, why, sizeof why);
    ok(rc == 0, "%s (%zu bytes)%s%s", label, n, rc ? ": " : "", rc ? why : "");
    free(buf);
}

static int s_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file in dir, in name order; returns how many. */
static int s_replay_dir(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names) break;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(dp);
    if (!names) return -1;
    qsort(names, n, sizeof *names, s_cmp);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            s_replay_file(path, names[i]);
            count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv) {
    plan_lazy();
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            struct stat st;
            if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
                s_replay_dir(argv[i]);
            else
                s_replay_file(argv[i], argv[i]);
        }
        return done_testing();
    }
    const char *root = getenv("TROUPE_ROOT");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root ? root : "", root ? "/" : "", CORPUS);
    int count = s_replay_dir(dir);
    ok(count >= 30, "corpus %s holds at least 30 files (%d)", CORPUS, count);
    return done_testing();
}
