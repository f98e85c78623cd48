/* common/env_mem.c: a bt_rfile over a buffer in memory.  Used for SSTables
 * of in-memory locality groups: the whole file is read once at open and every
 * later read is a memcpy, never a disk access. */
#include "common/env.h"
#include "common/status.h"

#include <stdlib.h>
#include <string.h>

struct mem_rfile {
    bt_rfile base;
    uint8_t *data;   /* owned */
    size_t len;
};

static int mem_read_at(bt_rfile *rf, uint64_t off, size_t n, void *buf, size_t *got)
{
    struct mem_rfile *f = (struct mem_rfile *)rf;
    *got = 0;
    if (off >= f->len) return BT_OK;
    size_t avail = f->len - (size_t)off;
    size_t k = n < avail ? n : avail;
    memcpy(buf, f->data + off, k);
    *got = k;
    return BT_OK;
}

static int mem_close(bt_rfile *rf)
{
    struct mem_rfile *f = (struct mem_rfile *)rf;
    free(f->data);
    free(f);
    return BT_OK;
}

static const struct bt_rfile_ops mem_rfile_ops = { mem_read_at, mem_close };

int bt_rfile_from_memory(uint8_t *data, size_t len, bt_rfile **out)
{
    struct mem_rfile *f = malloc(sizeof *f);
    if (!f) return BT_ENOMEM;
    f->base.ops = &mem_rfile_ops;
    f->data = data;
    f->len = len;
    *out = &f->base;
    return BT_OK;
}
