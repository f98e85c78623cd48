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

enum {
    BT_OK           = 0,
    BT_ENOTFOUND    = -30001, /* key, file, table or family does not exist */
    BT_ECORRUPT     = -30002, /* checksum mismatch or malformed on-disk data */
    BT_EIO          = -30003, /* an I/O call failed */
    BT_EINVAL       = -30004, /* invalid argument from the caller */
    BT_ENOTSERVING  = -30005, /* this server does not serve that tablet */
    BT_EUNAVAIL     = -30006, /* peer or service unavailable, retry later */
    BT_ENOSPC       = -30007, /* disk full */
    BT_ENOMEM       = -30008, /* allocation failed */
    BT_EEXIST       = -30009, /* already exists */
    BT_ETIMEDOUT    = -30010, /* deadline passed */
    BT_ETOOBIG      = -30011, /* value, key or frame over its size limit */
    BT_ECLOSED      = -30012, /* object closed or shutting down */
    BT_EBUSY        = -30013, /* resource busy (lock held, file in use) */
    BT_EFAILED_PRECONDITION = -30014, /* state does not allow the operation */
};

/* Fixed text for a code; never NULL.  Unknown codes give "unknown error". */
const char *bt_strerror(int code);

/* Short symbolic name for a code ("NOT_FOUND", "CORRUPTION", ...). */
const char *bt_errname(int code);

/* Records a formatted detail for the current thread and returns `code`. */
int bt_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps an errno value to a BT_E* code (ENOSPC->BT_ENOSPC, ENOENT->BT_ENOTFOUND,
 * ENOMEM->BT_ENOMEM, EEXIST->BT_EEXIST, EINVAL->BT_EINVAL, EDQUOT->BT_ENOSPC,
 * everything else -> BT_EIO). */
int bt_from_errno(int e);

/* Last detail recorded by bt_err() on this thread, or "" if none.
 * The pointer stays valid until the next bt_err() on this thread. */
const char *bt_errmsg(void);

/* Clears this thread's detail. */
void bt_errclear(void);

#endif
