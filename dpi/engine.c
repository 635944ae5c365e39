/*
 * The per-thread engine: an nDPI detection module configured like
 * ndpiReader (every protocol on, the policy's nDPI files loaded in
 * ndpiReader's order), a YARA scanner, and the policy's nDPI alert names
 * resolved to bits once, so the packet path only tests bits.
 */
#include "dpi_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compares two nDPI names the way users type them: case, spaces, dashes and
 * underscores do not matter ("malicious_ja3_fingerprint" is "Malicious JA3
 * Fingerprint"). */
static int name_equal(const char *a, const char *b)
{
    for (;;) {
        while (*a == ' ' || *a == '_' || *a == '-')
            a++;
        while (*b == ' ' || *b == '_' || *b == '-')
            b++;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
        a++, b++;
    }
}

const char *dpi_risk_name(unsigned bit)
{
    if (bit == 0 || bit >= NDPI_MAX_RISK)
        return NULL;
    return ndpi_risk2str((ndpi_risk_enum)bit);
}

int dpi_risk_severity(unsigned bit)
{
    ndpi_risk_info *info = ndpi_risk2severity((ndpi_risk_enum)bit);
    if (info == NULL)
        return 3;
    switch (info->severity) {
    case NDPI_RISK_SEVERE:
    case NDPI_RISK_HIGH:
        return 1;
    case NDPI_RISK_MEDIUM:
        return 2;
    default:
        return 3;
    }
}

static int resolve_alerts(struct dpi_engine *e, char *err, size_t errlen)
{
    const struct rules_policy *p = e->policy;

    for (size_t i = 0; i < p->ndpi.alert_risks.n; i++) {
        const struct rules_str *s = &p->ndpi.alert_risks.v[i];
        unsigned bit;
        for (bit = 1; bit < NDPI_MAX_RISK; bit++)
            if (name_equal(s->s, ndpi_risk2str((ndpi_risk_enum)bit)))
                break;
        if (bit == NDPI_MAX_RISK) {
            snprintf(err, errlen, "%s:%d:%d: ndpi.alert_risks: unknown nDPI risk '%s'", p->path,
                     s->line, s->column, s->s);
            return -1;
        }
        e->alert_risks |= 1ULL << bit;
    }
    for (size_t i = 0; i < p->ndpi.alert_categories.n; i++) {
        const struct rules_str *s = &p->ndpi.alert_categories.v[i];
        int found = 0;
        for (unsigned c = 0; c < NDPI_PROTOCOL_NUM_CATEGORIES && c < 256; c++) {
            const char *name = ndpi_category_get_name(e->ndpi, (ndpi_protocol_category_t)c);
            if (name && name_equal(s->s, name)) {
                e->alert_category[c] = 1;
                found = 1;
            }
        }
        if (!found) {
            snprintf(err, errlen, "%s:%d:%d: ndpi.alert_categories: unknown nDPI category '%s'",
                     p->path, s->line, s->column, s->s);
            return -1;
        }
    }
    return 0;
}

static int load_ndpi_files(struct dpi_engine *e, char *err, size_t errlen)
{
    const struct rules_ndpi_files *nf = &e->policy->ndpi.files;
    struct {
        const char *key, *path;
        int (*load)(struct ndpi_detection_module_struct *, const char *);
    } files[] = {
        {"protos_file", nf->protos_file, ndpi_load_protocols_file},
        {"categories_file", nf->categories_file, ndpi_load_categories_file},
        {"risky_domains_file", nf->risky_domains_file, ndpi_load_risk_domain_file},
        {"ja3_file", nf->ja3_file, ndpi_load_malicious_ja3_file},
        {"sha1_file", nf->sha1_file, ndpi_load_malicious_sha1_file},
    };

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i].path == NULL)
            continue;
        if (files[i].load(e->ndpi, files[i].path) < 0) {
            snprintf(err, errlen, "%s: ndpi.%s: nDPI could not load %s", e->policy->path,
                     files[i].key, files[i].path);
            return -1;
        }
    }
    return 0;
}

struct dpi_engine *dpi_engine_new(struct rules_policy *policy, dpi_event_fn fn, void *ctx,
                                  char *err, size_t errlen)
{
    NDPI_PROTOCOL_BITMASK all;
    struct dpi_engine *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->policy = rules_policy_ref(policy);
    e->emit = fn;
    e->emit_ctx = ctx;
    e->ndpi = ndpi_init_detection_module(ndpi_no_prefs);
    if (e->ndpi == NULL) {
        snprintf(err, errlen, "nDPI initialisation failed");
        goto fail;
    }
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(e->ndpi, &all);
    if (load_ndpi_files(e, err, errlen) != 0)
        goto fail;
    ndpi_finalize_initialization(e->ndpi);
    if (resolve_alerts(e, err, errlen) != 0)
        goto fail;
    e->joins = join_new(policy->limits.body, (uint64_t)policy->limits.flow_timeout_s * 1000000);
    if (e->joins == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (policy->compiled) {
        e->scanner = rules_scanner_new(policy);
        e->window_rules = rules_yara_window_count(policy) > 0;
        if (e->scanner == NULL) {
            snprintf(err, errlen, "cannot create a YARA scanner");
            goto fail;
        }
    }
    return e;
fail:
    dpi_engine_free(e);
    return NULL;
}

void dpi_engine_free(struct dpi_engine *e)
{
    if (e == NULL)
        return;
    if (e->scanner)
        rules_scanner_free(e->scanner);
    if (e->ndpi)
        ndpi_exit_detection_module(e->ndpi);
    join_free(e->joins);
    rules_policy_unref(e->policy);
    free(e);
}

int dpi_policy_check(struct rules_policy *policy, char *err, size_t errlen)
{
    struct dpi_engine *e = dpi_engine_new(policy, NULL, NULL, err, errlen);
    if (e == NULL)
        return -1;
    dpi_engine_free(e);
    return 0;
}

void dpi_engine_stats(const struct dpi_engine *e, struct dpi_engine_stats *out)
{
    *out = e->stats;
    out->body_bytes_held = e->body_held;
}

void engine_describe(struct dpi_engine *e, ndpi_protocol proto, char *name, size_t namelen,
                     char *id, size_t idlen, const char **category)
{
    ndpi_protocol2name(e->ndpi, proto, name, (u_int)namelen);
    ndpi_protocol2id(e->ndpi, proto, id, (u_int)idlen);
    *category = ndpi_category_get_name(e->ndpi, proto.category);
    if (*category == NULL)
        *category = "Unspecified";
}

void dpi_engine_set_inline(struct dpi_engine *e, int on)
{
    e->inline_scans = on;
}

void dpi_engine_set_tls_policy(struct dpi_engine *e, int on)
{
    e->tls_policy = on;
}
