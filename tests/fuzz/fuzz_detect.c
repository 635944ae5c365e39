/*
 * Fuzz target: the detection socket's line parser on any bytes.
 *
 * A refused line must say why; an accepted one must keep the contract of
 * detect.h: every field NUL-terminated inside its array and free of control
 * characters, a signature and a path, a container or a host path, paths
 * absolute, sha256 empty or 64 lowercase hex digits, a known action.
 */
#include "detect.h"

#include <stdlib.h>
#include <string.h>

static void check_field(const char *s, size_t cap, int required)
{
    size_t n = strnlen(s, cap);
    if (n == cap || (required && n == 0))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sl_detection d;
    char err[256];

    err[0] = '\0';
    if (sl_detection_parse((const char *)data, size, &d, err, sizeof(err)) != 0) {
        if (err[0] == '\0' || strnlen(err, sizeof(err)) == sizeof(err))
            abort();
        return 0;
    }
    check_field(d.container, sizeof(d.container), 0);
    check_field(d.host_path, sizeof(d.host_path), 0);
    check_field(d.path, sizeof(d.path), 1);
    check_field(d.sha256, sizeof(d.sha256), 0);
    check_field(d.signature, sizeof(d.signature), 1);
    check_field(d.action, sizeof(d.action), 1);
    check_field(d.scanner, sizeof(d.scanner), 0);
    check_field(d.time, sizeof(d.time), 0);
    if (d.container[0] == '\0' && d.host_path[0] == '\0')
        abort();
    if (d.path[0] != '/' || (d.host_path[0] && d.host_path[0] != '/'))
        abort();
    if (d.sha256[0] && (strlen(d.sha256) != 64 || strspn(d.sha256, "0123456789abcdef") != 64))
        abort();
    if (strcmp(d.action, "none") && strcmp(d.action, "deleted") &&
        strcmp(d.action, "quarantined") && strcmp(d.action, "stopped"))
        abort();
    return 0;
}
