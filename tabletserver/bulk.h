/* tabletserver/bulk.h: bulk loading -- SSTables written outside the tablet
 * server and attached to a tablet (libbt's bt_bulk_*, docs/architecture.md
 * "Bulk load").
 *
 * The protocol, per tablet:
 *   1. prepare: the server serving the tablet answers the tablet's directory
 *      (an absolute path, which the loader must see at the same path);
 *   2. the loader picks a random 64-bit load id and writes SSTables into that
 *      directory, named bulk-<load id, 16 hex>-<n>.sst: PUT cells only, rows
 *      inside the tablet, one locality group per file, every key with the
 *      placeholder tag (8 bytes 0xFF) instead of a sequence;
 *   3. attach: the tablet checks the files, gives them ONE new sequence
 *      number G (as if they were one write, taken now), renames them to its
 *      own names and installs them with one manifest write that records G as
 *      each file's global_seq: all of them become visible at once.
 * The load thus takes effect at the attach: it overrides what was written
 * to the same cells before, and what is written or deleted after overrides
 * it.  An attach retried with the same load id after it succeeded is
 * answered OK (the tablet remembers its last TS_BULK_DONE loads).  Staged
 * files that are never attached are *.sst files no manifest names: the
 * master's GC removes them after its grace period.
 */
#ifndef BT_TS_BULK_H
#define BT_TS_BULK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sstable/table.h"
#include "tabletserver/tablet.h"

#define TS_BULK_PREFIX "bulk-"
#define TS_BULK_MAX_FILES 4096      /* files per attach */

/* The SSTable options the engine uses for locality group `group`. */
int ts_sst_options_for(const ts_schema *sc, int group, sst_options *so);

/* Appends the placeholder tag of a bulk file's keys to a key being built:
 * writes 8 bytes at p. */
void ts_bulk_put_tag(uint8_t *p);

typedef struct ts_bulk_file {
    const char *name;               /* bulk-<load id>-<n>.sst in the tablet directory */
    int group;                      /* locality group of every key in it */
} ts_bulk_file;

/* Step 3.  Checks every file (its name carries load_id; the group exists;
 * entries, no deletions, placeholder tags, rows inside the tablet), then
 * renames and installs them atomically; *seq (may be NULL) receives G.
 * BT_ENOTSERVING if the tablet is closing, splitting or fenced; BT_EINVAL /
 * BT_ECORRUPT for a bad request or file (nothing attached, files untouched);
 * BT_ENOTFOUND when a file is missing. */
int ts_tablet_bulk_attach(ts_tablet *t, uint64_t load_id, const ts_bulk_file *files, int n, uint64_t *seq);

/* Is name bulk-<16 hex>-<digits>.sst with that load id? */
bool ts_bulk_name_ok(const char *name, uint64_t load_id);

#endif
