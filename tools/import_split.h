/* tools/import_split.h: split keys for `bt-import --create` from a uniform
 * reservoir sample (Vitter's algorithm R) of the input's row keys.  Not
 * thread-safe. */
#ifndef BT_TOOLS_IMPORT_SPLIT_H
#define BT_TOOLS_IMPORT_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "client/bt.h"

#define IMP_SAMPLE_KEYS 16384

typedef struct imp_sample {
    bt_key *keys;               /* owned copies */
    size_t n, cap;
    uint64_t seen;
    uint64_t rng;
} imp_sample;

/* cap keys at most (0: IMP_SAMPLE_KEYS).  0 or -1 (no memory). */
int imp_sample_init(imp_sample *s, size_t cap, uint64_t seed);
/* Offers one key (copied if kept).  0 or -1 (no memory). */
int imp_sample_add(imp_sample *s, const void *key, size_t len);
void imp_sample_free(imp_sample *s);

/* Tablets for an input of `bytes`: ceil(bytes / tablet_bytes) within
 * [1, max_tablets]. */
unsigned imp_tablets_for(uint64_t bytes, uint64_t tablet_bytes, unsigned max_tablets);

/* Sorts the sample and picks up to n_tablets-1 strictly increasing split
 * keys at its quantiles; *out points into the sample (valid until it is
 * freed; free the array with free()).  Fewer when the sample has fewer
 * distinct keys.  0 or -1 (no memory). */
int imp_pick_splits(imp_sample *s, unsigned n_tablets, bt_key **out, size_t *n_out);

#endif
