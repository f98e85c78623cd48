/* common/status.c: error texts and the thread-local error detail. */
#include "common/status.h"

#include <errno.h>
#include <stdio.h>

static _Thread_local char tls_msg[512];

const char *bt_strerror(int code)
{
    switch (code) {
    case BT_OK:          return "success";
    case BT_ENOTFOUND:   return "not found";
    case BT_ECORRUPT:    return "data corruption detected";
    case BT_EIO:         return "I/O error";
    case BT_EINVAL:      return "invalid argument";
    case BT_ENOTSERVING: return "tablet not served here";
    case BT_EUNAVAIL:    return "service unavailable";
    case BT_ENOSPC:      return "no space left on device";
    case BT_ENOMEM:      return "out of memory";
    case BT_EEXIST:      return "already exists";
    case BT_ETIMEDOUT:   return "timed out";
    case BT_ETOOBIG:     return "size limit exceeded";
    case BT_ECLOSED:     return "closed";
    case BT_EBUSY:       return "resource busy";
    case BT_EFAILED_PRECONDITION: return "failed precondition";
    default:             return "unknown error";
    }
}

const char *bt_errname(int code)
{
    switch (code) {
    case BT_OK:          return "OK";
    case BT_ENOTFOUND:   return "NOT_FOUND";
    case BT_ECORRUPT:    return "CORRUPTION";
    case BT_EIO:         return "IO_ERROR";
    case BT_EINVAL:      return "INVALID_ARGUMENT";
    case BT_ENOTSERVING: return "NOT_SERVING";
    case BT_EUNAVAIL:    return "UNAVAILABLE";
    case BT_ENOSPC:      return "NO_SPACE";
    case BT_ENOMEM:      return "OUT_OF_MEMORY";
    case BT_EEXIST:      return "ALREADY_EXISTS";
    case BT_ETIMEDOUT:   return "TIMED_OUT";
    case BT_ETOOBIG:     return "TOO_BIG";
    case BT_ECLOSED:     return "CLOSED";
    case BT_EBUSY:       return "BUSY";
    case BT_EFAILED_PRECONDITION: return "FAILED_PRECONDITION";
    default:             return "UNKNOWN";
    }
}

int bt_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
    va_end(ap);
    return code;
}

int bt_from_errno(int e)
{
    switch (e) {
    case 0:      return BT_OK;
    case ENOSPC:
    case EDQUOT: return BT_ENOSPC;
    case ENOENT: return BT_ENOTFOUND;
    case ENOMEM: return BT_ENOMEM;
    case EEXIST: return BT_EEXIST;
    case EINVAL: return BT_EINVAL;
    default:     return BT_EIO;
    }
}

const char *bt_errmsg(void) { return tls_msg; }

void bt_errclear(void) { tls_msg[0] = '\0'; }
