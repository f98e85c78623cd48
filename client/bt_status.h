/* client/bt_status.h: the error codes of bigtable-c, shared by the public
 * SDK (client/bt.h, installed as <bt/bt_status.h>) and every internal module
 * (through common/status.h).
 *
 * Every fallible function returns `int`: 0 (BT_OK) on success, or one of the
 * negative BT_E* codes below.  Codes are stable and distinct so callers can
 * branch on them.  The function that detects an error records a detail for
 * the calling thread, which bt_errmsg() returns.
 */
#ifndef BT_STATUS_CODES_H
#define BT_STATUS_CODES_H

#ifdef __cplusplus
extern "C" {
#endif

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

/* Last detail recorded on this thread by a failing call ("table \"users\"
 * has no family \"cf9\""), or "" if none.  The pointer stays valid until the
 * next failing call on this thread. */
const char *bt_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif
