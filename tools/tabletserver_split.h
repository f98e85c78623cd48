/* tools/tabletserver_split.h: how bt-tabletserver commits a split (its
 * ts_server_options.commit_split hook): the children's rows go into METADATA
 * through libbt (left child first, then the row of the parent's key rewritten
 * for the right child), then the master is told in the background.  The
 * report is best effort: a master that misses it learns of the split from
 * METADATA.  It is sent from its own thread because the server holds its
 * admin lock while the hook runs, and a master may be waiting on that server
 * while it handles the report. */
#ifndef BT_TOOLS_TABLETSERVER_SPLIT_H
#define BT_TOOLS_TABLETSERVER_SPLIT_H

#include "tabletserver/server.h"
#include "tabletserver/ts_proto.h"

typedef struct ts_split_committer ts_split_committer;

/* Connects lazily (on the first split) to the cluster at lock_url. */
int ts_split_committer_new(const char *lock_url, ts_split_committer **out);
/* The server whose splits it commits (its address and id go into METADATA). */
void ts_split_committer_set_server(ts_split_committer *c, ts_server *s);
/* The hook: arg is the committer. */
int ts_split_commit(void *arg, const tsp_split_info *info);
/* Waits for reports in flight, then frees.  NULL is allowed. */
void ts_split_committer_free(ts_split_committer *c);

#endif
