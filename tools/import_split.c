/* tools/import_split.c: reservoir sample and split keys (import_split.h). */
#include "tools/import_split.h"

#include <stdlib.h>
#include <string.h>

int imp_sample_init(imp_sample *s, size_t cap, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->cap = cap ? cap : IMP_SAMPLE_KEYS;
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    s->keys = calloc(s->cap, sizeof *s->keys);
    return s->keys ? 0 : -1;
}

static uint64_t next_rand(imp_sample *s)
{
    /* xorshift64* */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1Dull;
}

static int put(bt_key *k, const void *key, size_t len)
{
    void *p = malloc(len ? len : 1);
    if (!p) return -1;
    memcpy(p, key, len);
    free((void *)k->data);
    k->data = p;
    k->len = len;
    return 0;
}

int imp_sample_add(imp_sample *s, const void *key, size_t len)
{
    s->seen++;
    if (s->n < s->cap) {
        if (put(&s->keys[s->n], key, len)) return -1;
        s->n++;
        return 0;
    }
    uint64_t j = next_rand(s) % s->seen;
    if (j < s->cap) return put(&s->keys[j], key, len);
    return 0;
}

void imp_sample_free(imp_sample *s)
{
    for (size_t i = 0; i < s->n; i++) free((void *)s->keys[i].data);
    free(s->keys);
    memset(s, 0, sizeof *s);
}

unsigned imp_tablets_for(uint64_t bytes, uint64_t tablet_bytes, unsigned max_tablets)
{
    if (!tablet_bytes) tablet_bytes = 1;
    uint64_t n = (bytes + tablet_bytes - 1) / tablet_bytes;
    if (n < 1) n = 1;
    if (max_tablets && n > max_tablets) n = max_tablets;
    return (unsigned)n;
}

static int key_cmp(const bt_key *a, const bt_key *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int cmp_keys(const void *a, const void *b) { return key_cmp(a, b); }

int imp_pick_splits(imp_sample *s, unsigned n_tablets, bt_key **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (n_tablets <= 1 || s->n == 0) return 0;
    qsort(s->keys, s->n, sizeof *s->keys, cmp_keys);
    bt_key *sp = calloc(n_tablets, sizeof *sp);
    if (!sp) return -1;
    size_t n = 0;
    for (unsigned i = 1; i < n_tablets; i++) {
        const bt_key *k = &s->keys[(size_t)((uint64_t)i * s->n / n_tablets)];
        if (k->len == 0) continue;
        if (n && key_cmp(&sp[n - 1], k) >= 0) continue;
        sp[n++] = *k;
    }
    *out = sp;
    *n_out = n;
    return 0;
}
