/*
 * Which YARA rules can be trusted on a piece of a file.
 *
 * sluice's verdict on a body must equal `yara` on the whole decoded body.
 * Inline, a body is also scanned while it arrives, in pieces, so that a
 * match can stop the transfer before the receiver has the file; but a
 * match on a piece only proves a match on the whole file for some rules.
 * "filesize < 1MB and $a", "$a and not $b", "$a at 0", "uint16(0) == 0x5a4d",
 * "#a == 1", the modules: each can match a piece and not the file.
 *
 * A rule is "window-certain" when its condition only asks that strings
 * occur: string references ($a, $a*), "them", "any/all/N of (...)", "and",
 * "or", parentheses, "#a > N" / "#a >= N" and "true". Each of these stays
 * true when the data grows around the piece, so a match on any piece of a
 * body is a match on the body. Anything else in a condition (another rule's
 * name, an external variable, a module, "not", offsets, comparisons other
 * than a count from below) makes the rule uncertain: it decides only on the
 * whole body. So do strings that read the edges of the data they are given:
 * regular expressions (^, $, \b) and the fullword modifier. Not understanding a rule is always the
 * safe answer.
 *
 * The reader below is a small YARA lexer: it skips comments, meta values,
 * and string definitions (text, hex and regular expressions), and reads the
 * tokens of each rule's condition up to the rule's closing brace.
 */
#include "rules.h"

#include <ctype.h>
#include <string.h>

#include "yara_window.h"

struct lexer {
    const char *s, *end;
};

static void skip_space_and_comments(struct lexer *lx)
{
    while (lx->s < lx->end) {
        if (isspace((unsigned char)*lx->s)) {
            lx->s++;
        } else if (lx->end - lx->s >= 2 && lx->s[0] == '/' && lx->s[1] == '/') {
            while (lx->s < lx->end && *lx->s != '\n')
                lx->s++;
        } else if (lx->end - lx->s >= 2 && lx->s[0] == '/' && lx->s[1] == '*') {
            lx->s += 2;
            while (lx->end - lx->s >= 2 && !(lx->s[0] == '*' && lx->s[1] == '/'))
                lx->s++;
            lx->s = lx->end - lx->s >= 2 ? lx->s + 2 : lx->end;
        } else {
            return;
        }
    }
}

/* Skips a quoted literal or a /regex/ starting at lx->s (the opening
 * character), escapes included, and the modifiers of a regex. */
static void skip_quoted(struct lexer *lx, char close)
{
    lx->s++;
    while (lx->s < lx->end && *lx->s != close) {
        if (*lx->s == '\\' && lx->s + 1 < lx->end)
            lx->s++;
        lx->s++;
    }
    if (lx->s < lx->end)
        lx->s++;
    if (close == '/')
        while (lx->s < lx->end && isalpha((unsigned char)*lx->s))
            lx->s++;
}

static int is_ident(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* The next token: an identifier (with a leading $ # @ ! allowed), a number,
 * or one punctuation character (two for "..", ">=", "<=", "==", "!="). */
static size_t next_token(struct lexer *lx, const char **tok)
{
    skip_space_and_comments(lx);
    *tok = lx->s;
    if (lx->s >= lx->end)
        return 0;
    const char *p = lx->s;
    if (*p == '$' || *p == '#' || *p == '@' || *p == '!' || is_ident(*p)) {
        p++;
        while (p < lx->end && (is_ident(*p) || *p == '*'))
            p++;
    } else if (lx->end - p >= 2 &&
               ((p[0] == '.' && p[1] == '.') || (p[1] == '=' && strchr("<>=!", p[0])))) {
        p += 2;
    } else {
        p++;
    }
    lx->s = p;
    return (size_t)(p - *tok);
}

static int tok_is(const char *t, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(t, word, n) == 0;
}

static int is_number(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)t[i]) && !(i == 1 && (t[i] == 'x' || t[i] == 'X')) &&
            !(i + 2 == n && (t[i] == 'K' || t[i] == 'M') && t[i + 1] == 'B'))
            return 0;
    return n > 0 && isdigit((unsigned char)t[0]);
}

/* Reads a condition up to the closing brace of its rule; 1 if every token
 * is one that stays true as the data grows. */
static int read_condition(struct lexer *lx)
{
    static const char *const words[] = {"and", "or", "any", "all", "of", "them", "true", NULL};
    int certain = 1;
    const char *t;
    size_t n;

    while ((n = next_token(lx, &t)) > 0) {
        if (tok_is(t, n, "}"))
            return certain;
        if (*t == '"') {
            lx->s = t;
            skip_quoted(lx, '"');
            certain = 0;
            continue;
        }
        if (tok_is(t, n, "matches")) {
            skip_space_and_comments(lx);
            if (lx->s < lx->end && *lx->s == '/')
                skip_quoted(lx, '/');
            certain = 0;
            continue;
        }
        if (*t == '$' || tok_is(t, n, "(") || tok_is(t, n, ")") || tok_is(t, n, ","))
            continue;
        if (*t == '#' && n > 1) {
            /* A count is certain only bounded from below: "#a > 2". */
            const char *op, *num;
            size_t on = next_token(lx, &op), nn = next_token(lx, &num);
            if (!((tok_is(op, on, ">") || tok_is(op, on, ">=")) && is_number(num, nn)))
                certain = 0;
            continue;
        }
        if (is_number(t, n))
            continue; /* "2 of them" */
        int known = 0;
        for (const char *const *w = words; *w && !known; w++)
            known = tok_is(t, n, *w);
        if (!known)
            certain = 0;
    }
    return 0; /* no closing brace: not understood */
}

/* Skips a rule's meta and strings sections up to "condition:". Returns 0
 * at "condition:", -1 at the end of the text or of the rule. A string that
 * reads the edges of the data (a regular expression: ^, $, \b; the
 * fullword modifier) can match a piece and not the whole: *edges is set. */
static int skip_to_condition(struct lexer *lx, int *edges)
{
    const char *t;
    size_t n;

    while ((n = next_token(lx, &t)) > 0) {
        if (tok_is(t, n, "condition")) {
            if (next_token(lx, &t) == 1 && *t == ':')
                return 0;
            return -1;
        }
        if (tok_is(t, n, "}"))
            return -1;
        if (tok_is(t, n, "fullword"))
            *edges = 1;
        if (*t == '"' || *t == '/') {
            *edges |= *t == '/';
            lx->s = t;
            skip_quoted(lx, *t);
        } else if (*t == '{') {
            /* A hex string: no braces nest inside one. */
            while (lx->s < lx->end && *lx->s != '}')
                lx->s++;
            if (lx->s < lx->end)
                lx->s++;
        }
    }
    return -1;
}

void rules_yara_classify(const char *src, size_t len, rules_yara_classify_fn fn, void *ctx)
{
    struct lexer lx = {src, src + len};
    const char *t;
    size_t n;
    char name[128];

    while ((n = next_token(&lx, &t)) > 0) {
        if (*t == '"') {
            lx.s = t;
            skip_quoted(&lx, '"'); /* import "pe", include "x.yar" */
            continue;
        }
        if (!tok_is(t, n, "rule"))
            continue;
        n = next_token(&lx, &t);
        if (n == 0 || n >= sizeof(name) || !is_ident(*t))
            continue;
        memcpy(name, t, n);
        name[n] = '\0';
        /* Tags up to the opening brace. */
        while ((n = next_token(&lx, &t)) > 0 && !tok_is(t, n, "{"))
            ;
        if (n == 0)
            return;
        int edges = 0;
        int certain = skip_to_condition(&lx, &edges) == 0 && read_condition(&lx) && !edges;
        fn(ctx, name, certain);
    }
}
