/*  =========================================================================
    dp_task_pack - a task's packed reply (include/dpool_pack.h, "Tasks"):
    the task-side helpers of dp_pack, built on its public builders
    =========================================================================
*/
#include "dpool_pack.h"
#include "dpool_task.h"

#include <stdarg.h>

int
dp_pack_reply_with (struct dp_task *task, const dp_pack_t *pack)
{
    size_t len;
    const void *data = dp_pack_data (pack, &len);
    //  a value takes at least one byte: none means nothing packed, or a
    //  builder that ran out of memory
    if (!pack || len == 0)
        return dp_task_fail (task, "dp_pack_reply: out of memory or nothing packed");
    return dp_task_reply (task, data, len);
}

int
dp_pack_reply (struct dp_task *task, const char *format, ...)
{
    dp_pack_t *pack = dp_pack_new ();
    if (!pack)
        return dp_task_fail (task, "dp_pack_reply: out of memory");
    va_list args;
    va_start (args, format);
    int rc = dp_pack_vformat (pack, format, args);
    va_end (args);
    if (rc == 0)
        rc = dp_pack_reply_with (task, pack);
    else
        rc = dp_task_fail (task, "dp_pack_reply: bad format '%.40s' or out of memory",
                           format ? format : "(null)");
    dp_pack_destroy (&pack);
    return rc;
}
