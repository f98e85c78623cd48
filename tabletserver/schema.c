/* tabletserver/schema.c: table schemas (families, locality groups, GC
 * policies) and their binary encoding inside the tablet manifest. */
#include "tabletserver/tablet.h"
#include "tabletserver/manifest.h"
#include "common/status.h"

#include <stdio.h>
#include <string.h>

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > TS_MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

void ts_schema_init(ts_schema *s)
{
    memset(s, 0, sizeof *s);
    s->n_groups = 1;
    strcpy(s->groups[0].name, "default");
    s->groups[0].compress = true;
    s->groups[0].bloom = TS_BLOOM_ROW;
    s->groups[0].block_size = 4096;
}

int ts_schema_find(const ts_schema *s, const char *name, size_t len)
{
    for (int i = 0; i < s->n_families; i++)
        if (strlen(s->families[i].name) == len && memcmp(s->families[i].name, name, len) == 0)
            return i;
    return -1;
}

int ts_schema_add_family(ts_schema *s, const char *name, uint32_t max_versions, int64_t max_age_us)
{
    size_t n = strlen(name);
    if (!valid_name(name, n))
        return bt_err(BT_EINVAL, "family name \"%s\" must match [A-Za-z0-9_.-]{1,64}", name);
    if (ts_schema_find(s, name, n) >= 0)
        return bt_err(BT_EEXIST, "family \"%s\" already exists", name);
    if (s->n_families >= TS_MAX_FAMILIES)
        return bt_err(BT_EINVAL, "at most %d families per table", TS_MAX_FAMILIES);
    if (max_age_us < 0) return bt_err(BT_EINVAL, "family \"%s\": max_age must be >= 0", name);
    ts_family *f = &s->families[s->n_families++];
    memset(f, 0, sizeof *f);
    memcpy(f->name, name, n + 1);
    f->max_versions = max_versions;
    f->max_age_us = max_age_us;
    return BT_OK;
}

int ts_schema_validate(const ts_schema *s)
{
    if (s->n_groups < 1 || s->n_groups > TS_MAX_GROUPS)
        return bt_err(BT_EINVAL, "schema needs 1..%d locality groups, has %d", TS_MAX_GROUPS, s->n_groups);
    if (s->n_families < 0 || s->n_families > TS_MAX_FAMILIES)
        return bt_err(BT_EINVAL, "schema has %d families (max %d)", s->n_families, TS_MAX_FAMILIES);
    for (int g = 0; g < s->n_groups; g++) {
        const ts_locality_group *lg = &s->groups[g];
        if (!valid_name(lg->name, strnlen(lg->name, TS_MAX_NAME + 1)))
            return bt_err(BT_EINVAL, "locality group %d has an invalid name", g);
        if (lg->bloom < TS_BLOOM_NONE || lg->bloom > TS_BLOOM_ROW_COLUMN)
            return bt_err(BT_EINVAL, "locality group %s: unknown bloom setting", lg->name);
        if (lg->block_size != 0 && (lg->block_size < 256 || lg->block_size > (4u << 20)))
            return bt_err(BT_EINVAL, "locality group %s: block size %u outside 256..4194304",
                          lg->name, lg->block_size);
    }
    for (int i = 0; i < s->n_families; i++) {
        const ts_family *f = &s->families[i];
        size_t n = strnlen(f->name, TS_MAX_NAME + 1);
        if (!valid_name(f->name, n))
            return bt_err(BT_EINVAL, "family %d has an invalid name", i);
        if (ts_schema_find(s, f->name, n) != i)
            return bt_err(BT_EINVAL, "family \"%s\" appears twice", f->name);
        if (f->group < 0 || f->group >= s->n_groups)
            return bt_err(BT_EINVAL, "family \"%s\": locality group %d does not exist", f->name, f->group);
        if (f->max_age_us < 0)
            return bt_err(BT_EINVAL, "family \"%s\": negative max_age", f->name);
    }
    return BT_OK;
}

int ts_schema_encode(const ts_schema *s, bt_buf *b)
{
    int rc = bt_buf_put_varint64(b, (uint64_t)s->n_groups);
    for (int g = 0; !rc && g < s->n_groups; g++) {
        const ts_locality_group *lg = &s->groups[g];
        rc = bt_buf_put_lenbytes(b, lg->name, strlen(lg->name));
        if (!rc) rc = bt_buf_put_varint64(b, (uint64_t)(lg->compress | (lg->in_memory << 1)));
        if (!rc) rc = bt_buf_put_varint64(b, (uint64_t)lg->bloom);
        if (!rc) rc = bt_buf_put_varint64(b, lg->block_size);
    }
    if (!rc) rc = bt_buf_put_varint64(b, (uint64_t)s->n_families);
    for (int i = 0; !rc && i < s->n_families; i++) {
        const ts_family *f = &s->families[i];
        rc = bt_buf_put_lenbytes(b, f->name, strlen(f->name));
        if (!rc) rc = bt_buf_put_varint64(b, f->max_versions);
        if (!rc) rc = bt_buf_put_varint64(b, (uint64_t)f->max_age_us);
        if (!rc) rc = bt_buf_put_varint64(b, (uint64_t)f->gc_intersection);
        if (!rc) rc = bt_buf_put_varint64(b, (uint64_t)f->group);
    }
    return rc;
}

static int get_name(const uint8_t **p, const uint8_t *end, char *out)
{
    const uint8_t *s;
    size_t n;
    if (bt_get_lenbytes(p, end, &s, &n) || n > TS_MAX_NAME) return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int get_u64(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = bt_get_varint64(*p, end, v);
    if (!q) return -1;
    *p = q;
    return 0;
}

int ts_schema_decode(const uint8_t **p, const uint8_t *end, ts_schema *s)
{
    uint64_t flags, bloom, bs, ng, nf;
    memset(s, 0, sizeof *s);
    if (get_u64(p, end, &ng) || ng < 1 || ng > TS_MAX_GROUPS) return BT_ECORRUPT;
    s->n_groups = (int)ng;
    for (int g = 0; g < s->n_groups; g++) {
        ts_locality_group *lg = &s->groups[g];
        if (get_name(p, end, lg->name) || get_u64(p, end, &flags) || get_u64(p, end, &bloom) ||
            get_u64(p, end, &bs) || bloom > TS_BLOOM_ROW_COLUMN || bs > UINT32_MAX)
            return BT_ECORRUPT;
        lg->compress = flags & 1;
        lg->in_memory = (flags >> 1) & 1;
        lg->bloom = (ts_bloom)bloom;
        lg->block_size = (uint32_t)bs;
    }
    if (get_u64(p, end, &nf) || nf > TS_MAX_FAMILIES) return BT_ECORRUPT;
    s->n_families = (int)nf;
    for (int i = 0; i < s->n_families; i++) {
        ts_family *f = &s->families[i];
        uint64_t mv, age, inter, grp;
        if (get_name(p, end, f->name) || get_u64(p, end, &mv) || get_u64(p, end, &age) ||
            get_u64(p, end, &inter) || get_u64(p, end, &grp) || mv > UINT32_MAX ||
            grp >= ng || age > INT64_MAX)
            return BT_ECORRUPT;
        f->max_versions = (uint32_t)mv;
        f->max_age_us = (int64_t)age;
        f->gc_intersection = inter != 0;
        f->group = (int)grp;
    }
    return ts_schema_validate(s) ? BT_ECORRUPT : BT_OK;
}
