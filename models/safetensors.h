/*  models/safetensors.h - read-only safetensors checkpoints over mmap.
 *
 *  tr_st_open() takes a model directory holding either model.safetensors or a sharded
 *  model.safetensors.index.json (whose weight_map names the shard of every tensor), maps
 *  each file once and checks every header entry up front: the header length against the
 *  file, dtype names, shapes and that data_offsets match the shape and lie inside the file
 *  (a truncated download is reported there, naming the file and the first tensor cut off).
 *  Tensors are then found by name as views into the mapping (no copies).
 *  Owns: the mappings and parsed headers. Thread: immutable after open; any thread may read.
 *
 *      tr_st_t *st = tr_st_open("models/tiny", &rc, err, sizeof err);
 *      tr_tensor_view_t v;
 *      if (tr_st_find(st, "model.norm.weight", &v, err, sizeof err) == TR_OK) use(v.data);
 *      tr_st_destroy(&st);                                                            */
#ifndef TR_SAFETENSORS_H
#define TR_SAFETENSORS_H

#include <stddef.h>

#include "models/model_impl.h"

typedef struct tr_st tr_st_t;

/* Opens the checkpoint in dir; NULL with *status and err set on failure. */
tr_st_t *tr_st_open(const char *dir, int *status, char *err, size_t err_size);
/* TR_OK and *out; TR_ENOENT when absent; TR_EINVAL for a dtype troupe cannot use. */
int tr_st_find(const tr_st_t *st, const char *name, tr_tensor_view_t *out, char *err,
               size_t err_size);
/* Number of tensors across all files. */
size_t tr_st_count(const tr_st_t *st);
/* Unmaps; NULL-safe; sets *self_p to NULL. */
void tr_st_destroy(tr_st_t **self_p);

#endif
