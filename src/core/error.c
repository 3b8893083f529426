/* Error texts and the reporter. */
#include <stdarg.h>
#include <stdlib.h>

#include "internal.h"

const char *cio_strerror(int err)
{
    switch (err) {
#define CIO__ERR_TEXT(name, value, text) \
    case name:                           \
        return text;
        CIO_ERRORS(CIO__ERR_TEXT)
#undef CIO__ERR_TEXT
    default:
        break;
    }
    if (err >= 0)
        return "success";
    const char *s = strerrordesc_np(-err);
    return s ? s : "unknown error";
}

const char *cio_err_name(int err)
{
    switch (err) {
#define CIO__ERR_NAME(name, value, text) \
    case name:                           \
        return #name;
        CIO_ERRORS(CIO__ERR_NAME)
#undef CIO__ERR_NAME
    default:
        break;
    }
    if (err >= 0)
        return "OK";
    const char *s = strerrorname_np(-err);
    return s ? s : "EUNKNOWN";
}

static void default_reporter(const char *line, void *arg)
{
    (void)arg;
    fprintf(stderr, "cio: %s\n", line);
}

static cio_report_fn reporter = default_reporter;
static void *reporter_arg;

void cio_set_reporter(cio_report_fn fn, void *arg)
{
    reporter = fn ? fn : default_reporter;
    reporter_arg = fn ? arg : NULL;
}

void cio__report(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    reporter(line, reporter_arg);
}
