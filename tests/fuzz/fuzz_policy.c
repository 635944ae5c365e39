/*
 * Fuzz target: the policy loader on arbitrary bytes.
 *
 * compile is 0, so YARA paths are never opened and a run depends on the
 * input alone (nDPI file keys are still checked with open(), read-only).
 * Every input must either load or fail with a "name:line:column: reason"
 * message; both paths must free everything (libFuzzer's leak check).
 */
#include "rules.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[RULES_ERRLEN];
    struct rules_policy *p;

    p = rules_policy_parse("fuzz.yaml", (const char *)data, size, 0, err, sizeof(err));
    if (p == NULL) {
        /* Every error names the file it is about. */
        if (strncmp(err, "fuzz.yaml:", 10) != 0)
            abort();
        return 0;
    }
    if (err[0] != '\0' || p->refs != 1 || p->compiled != NULL)
        abort();
    rules_policy_unref(rules_policy_ref(p));
    rules_policy_unref(p);
    return 0;
}
