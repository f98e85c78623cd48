/* common/status.h: the one error convention of bigtable-c.
 *
 * Every fallible function returns `int`: 0 (BT_OK) on success, or one of the
 * negative BT_E* codes below.  Codes are stable and distinct so callers can
 * branch on them; bt_strerror() turns any code into a fixed text.
 *
 * For a human-readable detail ("000012.sst: block at 4096: checksum mismatch")
 * the function that detects an error calls bt_err(code, fmt, ...), which
 * records the detail in a thread-local buffer and returns the code, so
 *     return bt_err(BT_ECORRUPT, "%s: bad footer magic", path);
 * reads naturally.  bt_errmsg() returns the last detail recorded on this thread
 * (valid until the next bt_err on the same thread).
 */
#ifndef BT_COMMON_STATUS_H
#define BT_COMMON_STATUS_H

#include <stdarg.h>

#include "client/bt_status.h" /* the codes (public: libbt installs it) */

/* Records a formatted detail for the current thread and returns `code`. */
int bt_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps an errno value to a BT_E* code (ENOSPC->BT_ENOSPC, ENOENT->BT_ENOTFOUND,
 * ENOMEM->BT_ENOMEM, EEXIST->BT_EEXIST, EINVAL->BT_EINVAL, EDQUOT->BT_ENOSPC,
 * everything else -> BT_EIO). */
int bt_from_errno(int e);

/* Clears this thread's detail. */
void bt_errclear(void);

#endif
