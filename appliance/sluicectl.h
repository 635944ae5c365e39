/*
 * What the two halves of sluicectl share: sluicectl.c (the command line and
 * the control-socket commands) and sluicectl_reports.c (reports read from the
 * event log). Not a module interface: nothing else includes it.
 */
#ifndef SLUICECTL_H
#define SLUICECTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CTL_OK      0
#define CTL_FAILURE 1
#define CTL_USAGE   2

/* A text table whose columns widen to their longest cell, up to a cap; cells
 * are cleaned of control characters (events carry hostile URLs) and cut at
 * the cap. The last column is neither padded nor cut. */
struct ctl_table {
    int ncols;
    const char *const *head;
    const size_t *cap; /* per column, 0 for none */
    size_t *width;
    char **cells; /* nrows * ncols */
    size_t nrows, alloc;
    int head_printed;
    const char *indent;
};

int ctl_table_init(struct ctl_table *t, int ncols, const char *const *head, const size_t *cap);
/* Copies the row (NULL cells print as "-"); -1 when out of memory. */
int ctl_table_add(struct ctl_table *t, const char *const *row);
/* Prints the header (the first time) and the rows held, then drops them:
 * call it now and then to bound memory, the widths only grow. */
void ctl_table_flush(struct ctl_table *t, FILE *out);
void ctl_table_free(struct ctl_table *t);
/* Starts every column at its cap, so rows printed one at a time line up. */
void ctl_table_fixed(struct ctl_table *t);

struct reports_opts {
    const char *log;
    const char *container; /* name, ID, or ID prefix of 4+ characters */
    int follow;
    int json;
    long last;        /* -1: every report */
    int64_t since_us; /* INT64_MIN: no lower bound */
};

/* "2026-11-23T17:40:01Z", "2026-11-23 17:40:01" (local), "2026-11-23", or
 * an age "30s" "10m" "2h" "1d" before now. -1 when it is none of these. */
int reports_parse_since(const char *s, int64_t *us);
int reports_run(const struct reports_opts *o);

#endif
