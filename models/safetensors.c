/*  models/safetensors.c - safetensors reader: an 8-byte little-endian header length, a JSON
 *  header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then
 *  the data; offsets are relative to the end of the header. Every entry is validated when
 *  the file is opened, so tr_st_find only looks up.                                   */
#include "models/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *path;
    const uint8_t *map;
    size_t size;
    json_t *header;               /* owned */
    const uint8_t *data;          /* start of the data section */
} s_file_t;

struct tr_st {
    s_file_t *files;
    int32_t n_files;
    json_t *weight_map;           /* sharded: name -> file name (owned index json) */
    json_t *index;
};

static const struct {
    const char *name;
    int dtype;                    /* tr_dtype_t, or -1: known but unsupported */
    int size;
} s_dtypes[] = {
    {"F32", TR_DTYPE_F32, 4}, {"BF16", TR_DTYPE_BF16, 2}, {"F16", TR_DTYPE_F16, 2},
    {"F64", -1, 8}, {"I64", -1, 8}, {"I32", -1, 4}, {"I16", -1, 2}, {"I8", -1, 1},
    {"U8", -1, 1}, {"BOOL", -1, 1}, {"F8_E4M3", -1, 1}, {"F8_E5M2", -1, 1},
};

static int s_dtype_index(const char *name) {
    for (size_t i = 0; i < TR_ARRAY_LEN(s_dtypes); i++)
        if (strcmp(name, s_dtypes[i].name) == 0) return (int)i;
    return -1;
}

#define FAIL(status, ...) tr_model_fail(err, err_size, (status), __VA_ARGS__)

static int s_map(s_file_t *f, const char *path, char *err, size_t err_size) {
    f->path = strdup(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return FAIL(errno == ENOENT ? TR_ENOENT : TR_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return FAIL(TR_EIO, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        return FAIL(TR_EPROTO, "%s: %zu bytes is too short for a safetensors file (truncated?)",
                    path, f->size);
    }
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return FAIL(TR_EIO, "%s: mmap: %s", path, strerror(errno));
    f->map = p;
    return TR_OK;
}

static int s_parse(s_file_t *f, char *err, size_t err_size) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->map[i];
    if (hlen > f->size - 8)
        return FAIL(TR_EPROTO, "%s: header of %llu bytes runs past the end of the %zu-byte file"
                    " (truncated, or not safetensors)", f->path, (unsigned long long)hlen, f->size);
    json_error_t je;
    f->header = json_loadb((const char *)f->map + 8, (size_t)hlen, 0, &je);
    if (!f->header || !json_is_object(f->header))
        return FAIL(TR_EPROTO, "%s: header is not a JSON object (%s)", f->path,
                    f->header ? "wrong type" : je.text);
    f->data = f->map + 8 + hlen;
    size_t data_size = f->size - 8 - (size_t)hlen;
    const char *name;
    json_t *v;
    json_object_foreach(f->header, name, v) {
        if (strcmp(name, "__metadata__") == 0) continue;
        json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
        json_t *off = json_object_get(v, "data_offsets");
        if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(off) ||
            json_array_size(off) != 2 || json_array_size(shape) > 4)
            return FAIL(TR_EPROTO, "%s: tensor %s: header entry needs dtype, shape (<= 4 dims)"
                        " and data_offsets", f->path, name);
        int di = s_dtype_index(json_string_value(dt));
        if (di < 0)
            return FAIL(TR_EPROTO, "%s: tensor %s: unknown dtype %s", f->path, name,
                        json_string_value(dt));
        uint64_t numel = 1;
        for (size_t i = 0; i < json_array_size(shape); i++) {
            json_t *d = json_array_get(shape, i);
            if (!json_is_integer(d) || json_integer_value(d) < 0 ||
                json_integer_value(d) > ((int64_t)1 << 40))
                return FAIL(TR_EPROTO, "%s: tensor %s: bad shape", f->path, name);
            numel *= (uint64_t)json_integer_value(d);
        }
        json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
        if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
            json_integer_value(e) < json_integer_value(b))
            return FAIL(TR_EPROTO, "%s: tensor %s: bad data_offsets", f->path, name);
        uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
        if (end - begin != numel * (uint64_t)s_dtypes[di].size)
            return FAIL(TR_EPROTO, "%s: tensor %s: data_offsets span %llu bytes, its shape needs %llu",
                        f->path, name, (unsigned long long)(end - begin),
                        (unsigned long long)(numel * s_dtypes[di].size));
        if (end > data_size)
            return FAIL(TR_EPROTO, "%s: tensor %s: data [%llu, %llu) lies past the end of the"
                        " file's %zu data bytes (truncated?)", f->path, name,
                        (unsigned long long)begin, (unsigned long long)end, data_size);
    }
    return TR_OK;
}

static int s_open_file(s_file_t *f, const char *path, char *err, size_t err_size) {
    int rc = s_map(f, path, err, err_size);
    return rc ? rc : s_parse(f, err, err_size);
}

tr_st_t *tr_st_open(const char *dir, int *status, char *err, size_t err_size) {
    int rc = TR_OK, dummy;
    status = status ? status : &dummy;
    tr_st_t *st = calloc(1, sizeof(*st));
    char path[4096];
    if (!st) {
        *status = FAIL(TR_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) == 0) {
        json_error_t je;
        st->index = json_load_file(path, 0, &je);
        st->weight_map = st->index ? json_object_get(st->index, "weight_map") : NULL;
        if (!json_is_object(st->weight_map)) {
            rc = FAIL(TR_EPROTO, "%s: no weight_map object (%s)", path, st->index ? "" : je.text);
            goto fail;
        }
        /* the distinct shard files, in order of first appearance */
        const char *name;
        json_t *v;
        json_object_foreach(st->weight_map, name, v) {
            if (!json_is_string(v) || strchr(json_string_value(v), '/')) {
                rc = FAIL(TR_EPROTO, "%s: %s maps to a bad file name", path, name);
                goto fail;
            }
            int32_t i = 0;
            while (i < st->n_files && strcmp(strrchr(st->files[i].path, '/') + 1, json_string_value(v)))
                i++;
            if (i < st->n_files) continue;
            s_file_t *nf = realloc(st->files, (size_t)(st->n_files + 1) * sizeof(s_file_t));
            if (!nf) {
                rc = FAIL(TR_ENOMEM, "out of memory");
                goto fail;
            }
            st->files = nf;
            memset(&st->files[st->n_files], 0, sizeof(s_file_t));
            char fp[4096];
            snprintf(fp, sizeof(fp), "%s/%s", dir, json_string_value(v));
            rc = s_open_file(&st->files[st->n_files++], fp, err, err_size);
            if (rc) goto fail;
        }
    } else {
        st->files = calloc(1, sizeof(s_file_t));
        if (!st->files) {
            rc = FAIL(TR_ENOMEM, "out of memory");
            goto fail;
        }
        st->n_files = 1;
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        rc = s_open_file(&st->files[0], path, err, err_size);
        if (rc == TR_ENOENT)
            rc = FAIL(TR_ENOENT, "%s: neither model.safetensors nor model.safetensors.index.json",
                      dir);
        if (rc) goto fail;
    }
    *status = TR_OK;
    return st;
fail:
    tr_st_destroy(&st);
    *status = rc;
    return NULL;
}

int tr_st_find(const tr_st_t *st, const char *name, tr_tensor_view_t *out, char *err,
               size_t err_size) {
    const s_file_t *f = &st->files[0];
    if (st->weight_map) {
        json_t *fn = json_object_get(st->weight_map, name);
        if (!fn) return TR_ENOENT;
        f = NULL;
        for (int32_t i = 0; i < st->n_files && !f; i++)
            if (strcmp(strrchr(st->files[i].path, '/') + 1, json_string_value(fn)) == 0)
                f = &st->files[i];
    }
    json_t *v = f ? json_object_get(f->header, name) : NULL;
    if (!v || strcmp(name, "__metadata__") == 0) {
        if (st->weight_map)
            return FAIL(TR_EPROTO, "the index puts it in %s, which does not hold it",
                        f ? f->path : "a missing file");
        return TR_ENOENT;
    }
    int di = s_dtype_index(json_string_value(json_object_get(v, "dtype")));
    if (s_dtypes[di].dtype < 0)
        return FAIL(TR_EINVAL, "dtype %s is not supported (f32, bf16, f16 are)", s_dtypes[di].name);
    json_t *shape = json_object_get(v, "shape");
    out->dtype = (tr_dtype_t)s_dtypes[di].dtype;
    out->n_dims = (int32_t)json_array_size(shape);
    for (int32_t i = 0; i < out->n_dims; i++)
        out->shape[i] = json_integer_value(json_array_get(shape, i));
    out->data = f->data + json_integer_value(json_array_get(json_object_get(v, "data_offsets"), 0));
    return TR_OK;
}

size_t tr_st_count(const tr_st_t *st) {
    size_t n = 0;
    for (int32_t i = 0; i < st->n_files; i++)
        n += json_object_size(st->files[i].header) -
             (json_object_get(st->files[i].header, "__metadata__") ? 1 : 0);
    return n;
}

void tr_st_destroy(tr_st_t **self_p) {
    if (!self_p || !*self_p) return;
    tr_st_t *st = *self_p;
    for (int32_t i = 0; i < st->n_files; i++) {
        s_file_t *f = &st->files[i];
        if (f->map) munmap((void *)f->map, f->size);
        json_decref(f->header);
        free(f->path);
    }
    free(st->files);
    json_decref(st->index);
    free(st);
    *self_p = NULL;
}
