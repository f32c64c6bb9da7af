/*  models/loader.c - tr_model_load: picks the loader from what the path is.
 *  A directory is an HF checkpoint; a file whose first four bytes are "GGUF" is GGUF;
 *  any other file is tried as a llama2.c checkpoint (whose loader checks the header and
 *  the exact file size, so a foreign file is refused with a reason).                 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "models/model_impl.h"

int tr_model_load(tr_model_t **out, const char *path, tr_ops_t *ops,
                  const tr_model_load_opts_t *opts, char *err, size_t err_size) {
    *out = NULL;
    struct stat st;
    if (!path || !ops) return tr_model_fail(err, err_size, TR_EINVAL, "no path or no backend");
    if (stat(path, &st) < 0)
        return tr_model_fail(err, err_size, errno == ENOENT ? TR_ENOENT : TR_EIO, "%s: %s", path,
                             strerror(errno));
    if (S_ISDIR(st.st_mode)) return tr_model_load_hf(out, path, ops, opts, err, err_size);
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return tr_model_fail(err, err_size, TR_EIO, "%s: %s", path, strerror(errno));
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    if (n == 4 && memcmp(magic, "GGUF", 4) == 0)
        return tr_model_load_gguf(out, path, ops, opts, err, err_size);
    return tr_model_load_llama2c(out, path, ops, opts, err, err_size);
}
