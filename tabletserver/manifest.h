/* tabletserver/manifest.h: a tablet's durable state (docs/formats.md,
 * "Tablet manifest").  One file, DIR/MANIFEST, replaced atomically
 * (write MANIFEST.tmp, fsync, rename, fsync DIR) on every change. */
#ifndef BT_TS_MANIFEST_H
#define BT_TS_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>

#include "common/coding.h"
#include "common/env.h"
#include "tabletserver/tablet.h"

#define TS_MANIFEST_MAGIC   0x464d5442u   /* "BTMF" little-endian */
#define TS_MANIFEST_VERSION 2u   /* 1 is read too (no global_seq) */

/* One SSTable the tablet reads. */
typedef struct ts_file_meta {
    char *path;          /* as stored: own files "NNNNNN.sst" relative to the
                            tablet dir; inherited ones a full path */
    int group;           /* locality group */
    uint64_t size;
    uint64_t max_seq;
    bool inherited;      /* shared with a split sibling: never deleted by the tablet */
    /* internal-key range this tablet may read from the file: [lo, hi); empty = unbounded */
    bt_buf lo, hi;
    /* bulk-loaded file: every key's sequence is this one (its keys carry the
     * placeholder tag TS_BULK_TAG); 0 for files the tablet wrote */
    uint64_t global_seq;
} ts_file_meta;

/* The tag bytes of every key of a bulk-loaded file as written. */
#define TS_BULK_TAG_BYTE 0xFF

typedef struct ts_manifest {
    uint64_t tablet_id;
    bt_buf start_row, end_row;   /* raw rows; end empty = unbounded */
    ts_schema schema;
    uint64_t flushed_seq;        /* every mutation <= this is in the files */
    uint64_t last_seq;           /* highest sequence ever assigned (at write time) */
    uint64_t next_file;
    int n_files;
    ts_file_meta *files;         /* malloc'd array */
} ts_manifest;

int ts_manifest_write(bt_env *env, const char *dir, const ts_manifest *m);
/* BT_ENOTFOUND if absent, BT_ECORRUPT if damaged (checksum, magic, fields). */
int ts_manifest_read(bt_env *env, const char *dir, ts_manifest *m);
void ts_manifest_free(ts_manifest *m);
/* Deep-copies a file entry. */
int ts_file_meta_copy(ts_file_meta *dst, const ts_file_meta *src);
void ts_file_meta_free(ts_file_meta *f);

/* ---- split marker: <parent dir>/SPLIT (docs/formats.md, "Split marker") ----
 * Written by the tablet server once a split is done locally, before it
 * commits the split in METADATA: a parent directory holding one is never
 * loaded again, and the marker tells the master what the children are. */
#define TS_SPLIT_MAGIC   0x50535442u   /* "BTSP" little-endian */
#define TS_SPLIT_VERSION 1u
#define TS_SPLIT_FILE    "SPLIT"

typedef struct ts_split_child {
    uint64_t id;
    char *dir;                   /* relative to --data-dir (malloc'd) */
    bt_buf start, end;           /* raw rows; end empty = unbounded */
} ts_split_child;

typedef struct ts_split_marker {
    uint64_t parent_id;
    bt_buf mid;                  /* the split row: left is [start, mid), right [mid, end) */
    ts_split_child left, right;
} ts_split_marker;

/* Writes DIR/SPLIT atomically (SPLIT.tmp, fsync, rename, fsync DIR). */
int ts_split_marker_write(bt_env *env, const char *dir, const ts_split_marker *m);
/* Reads DIR/SPLIT into *m (zeroed first; free with ts_split_marker_free).
 * BT_ENOTFOUND if there is none, BT_ECORRUPT if it is damaged. */
int ts_split_marker_read(bt_env *env, const char *dir, ts_split_marker *m);
void ts_split_marker_free(ts_split_marker *m);

int ts_schema_encode(const ts_schema *s, bt_buf *b);
int ts_schema_decode(const uint8_t **p, const uint8_t *end, ts_schema *s);

#endif
