/*
 * The NFQUEUE overflow count: the kernel numbers the packets it offers a
 * queue 1, 2, 3... and a packet its full socket could not take leaves a gap;
 * nfq_ids_missed turns the ids a worker reads into the number it never saw,
 * across the 32-bit wrap, and never counts an id twice.
 */
#include "nfq.h"

#include <stdint.h>

#include "check.h"

int main(void)
{
    uint32_t last = 0;

    /* A new queue: ids from 1, none missed. */
    CHECK_EQ_INT(nfq_ids_missed(&last, 1), 0);
    CHECK_EQ_INT(nfq_ids_missed(&last, 2), 0);
    CHECK_EQ_INT(last, 2);
    /* 3..9 could not be queued. */
    CHECK_EQ_INT(nfq_ids_missed(&last, 10), 7);
    CHECK_EQ_INT(last, 10);
    /* The same id again, or an older one: nothing, and last stays. */
    CHECK_EQ_INT(nfq_ids_missed(&last, 10), 0);
    CHECK_EQ_INT(nfq_ids_missed(&last, 5), 0);
    CHECK_EQ_INT(last, 10);
    CHECK_EQ_INT(nfq_ids_missed(&last, 11), 0);

    /* The first packets of a queue lost: the first id read says how many. */
    last = 0;
    CHECK_EQ_INT(nfq_ids_missed(&last, 4), 3);

    /* Across the wrap: 0xfffffffe, then 0xffffffff and 0 missed, then 1. */
    last = 0xfffffffeu;
    CHECK_EQ_INT(nfq_ids_missed(&last, 1), 2);
    CHECK_EQ_INT(last, 1);
    last = 0xffffffffu;
    CHECK_EQ_INT(nfq_ids_missed(&last, 0), 0);
    CHECK_EQ_INT(last, 0);

    /* A big burst lost, short of half the id space. */
    last = 100;
    CHECK_EQ_INT(nfq_ids_missed(&last, 100 + 1000001), 1000000);
    CHECK_DONE();
}
