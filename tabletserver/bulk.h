/* tabletserver/bulk.h: bulk loading -- SSTables written outside the tablet
 * server and attached to a tablet (libbt's bt_bulk_*, docs/architecture.md
 * "Bulk load").
 *
 * The protocol, per tablet:
 *   1. prepare: the tablet reserves one sequence number S (as if it were a
 *      write) and answers S, its incarnation nonce and its directory;
 *   2. the loader writes SSTables of internal keys (PUT cells only, every
 *      key with sequence S, keys inside the tablet's range, one locality
 *      group per file) into that directory, named bulk-<nonce>-<k>.sst;
 *   3. attach: the tablet renames the files to its own names and installs
 *      them with one manifest write: all of them become visible at once.
 * A bulk load thus takes effect as of step 1: a mutation of the same cell
 * applied while it runs has a higher sequence and wins, a deletion applied
 * meanwhile hides the loaded cells it covers.  The nonce changes with every
 * load of the tablet, so an attach after the tablet moved, split or its
 * server restarted (when S may not have survived) is refused with
 * BT_ENOTSERVING and the loader starts again from step 1.  Staged files that
 * are never attached are *.sst files no manifest names: the master's GC
 * removes them after its grace period.
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

/* Step 1: reserves sequence *seq; *nonce names this incarnation. */
int ts_tablet_bulk_prepare(ts_tablet *t, uint64_t *seq, uint64_t *nonce);

typedef struct ts_bulk_file {
    const char *name;               /* bulk-*.sst in the tablet directory */
    int group;                      /* locality group of every key in it */
} ts_bulk_file;

/* Step 3: checks every file (name, group, its max_seq property == seq, its
 * keys' rows inside the tablet), renames them to the tablet's own names and
 * installs them atomically.  BT_ENOTSERVING if nonce is not this
 * incarnation's, BT_EINVAL / BT_ECORRUPT for a bad file (nothing attached). */
int ts_tablet_bulk_attach(ts_tablet *t, uint64_t nonce, uint64_t seq, const ts_bulk_file *files, int n);

/* Is name a valid staged bulk file name (bulk-<16 hex>-<digits>.sst)? */
bool ts_bulk_name_ok(const char *name);

#endif
