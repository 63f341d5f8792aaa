/* rules_parse.c: tcprules' compiler, byte-identical to ucspi-tcp 0.88.
 *
 * The text arrives in chunks.  Complete lines are compiled where they
 * lie in the caller's buffer; only a line cut by the chunk's end is
 * copied (into carry), and a comment cut that way is not even copied:
 * its first byte already says it will be skipped.  Per line the parser
 * needs two scratch buffers no longer than the line (the record data,
 * and a key of a range), reused from line to line.
 *
 * The language, as tcprules.c reads it (pycdb/rules/parse.py is the
 * reference twin, and the differential tests hold both to the real
 * program):
 *   - skip an empty line and one whose first byte is '#';
 *   - trim trailing '\n', ' ', '\t' (only those: '\r' stays);
 *   - skip a line with no ':'; the address is what precedes the first;
 *   - "deny" adds "D\0" to the data, "allow" nothing, else an error;
 *   - each ",NAME=" d VALUE d adds "+NAME=VALUE\0";
 *   - an address with '-' and neither '=' nor '@' is a range of one
 *     octet; its bounds are read as scan_ulong reads a NUL-terminated
 *     copy (digits up to the end or a NUL byte, wrapping mod 2^64).
 */

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pycdb.h"
#include "internal.h"

struct pycdb_rules {
    pycdb_maker *mk;
    pycdb_rules_status *st;
    int dead;             /* the error returned once; 0 while healthy */
    int skipping;         /* inside a comment line cut by a chunk's end */
    unsigned char *carry; /* a line cut by a chunk's end */
    size_t clen, ccap;
    unsigned char *data;  /* the record data of the current line */
    size_t dcap;
    unsigned char *key;   /* a key of the current range */
    size_t kcap;
    char *errline;        /* the refused line, for the status */
};

/* Make *buf hold at least need bytes: 0, or PYCDB_ENOMEM. */
static int reserve(unsigned char **buf, size_t *cap, size_t need)
{
    unsigned char *p;
    size_t n;

    if (need <= *cap)
        return 0;
    n = *cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * *cap;
    if (n < need)
        n = need;
    if (n < 256)
        n = 256;
    p = realloc(*buf, n);
    if (!p)
        return PYCDB_ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

pycdb_rules *pycdb_rules_new(pycdb_maker *mk, pycdb_rules_status *st)
{
    pycdb_rules *r = calloc(1, sizeof *r);

    if (!r)
        return NULL;
    r->mk = mk;
    r->st = st;
    memset(st, 0, sizeof *st);
    return r;
}

pycdb_maker *pycdb_rules_maker(const pycdb_rules *r)
{
    return r->mk;
}

void pycdb_rules_free(pycdb_rules *r)
{
    if (!r)
        return;
    free(r->carry);
    free(r->data);
    free(r->key);
    free(r->errline);
    free(r);
}

/* Record a refused line (x[0..len), already trimmed): PYCDB_ESYNTAX, or
 * PYCDB_ENOMEM when even the copy for the message cannot be made. */
static int bad(pycdb_rules *r, const unsigned char *x, size_t len, int code, size_t pos)
{
    free(r->errline);
    r->errline = malloc(len ? len : 1);
    if (!r->errline)
        return PYCDB_ENOMEM;
    memcpy(r->errline, x, len);
    r->st->code = code;
    r->st->pos = pos;
    r->st->line = r->errline;
    r->st->linelen = len;
    return PYCDB_ESYNTAX;
}

/* One record: pycdb_maker_add's codes. */
static int add(pycdb_rules *r, const unsigned char *key, size_t klen,
               const unsigned char *data, size_t dlen)
{
    int rc = pycdb_maker_put(r->mk, (const char *)key, klen, (const char *)data, dlen);

    if (rc == PYCDB_ETOOBIG) {
        r->st->klen = klen;
        r->st->dlen = dlen;
    }
    if (!rc)
        r->st->records += 1;
    return rc;
}

/* scan_ulong over a NUL-terminated copy of s[0..n): 0 with *u set when
 * the digits run to the end of the text or to a NUL byte, -1 when
 * another byte stops them.  Wraps mod 2^64 as C's unsigned long does
 * on the machines tcprules runs on. */
static int number(const unsigned char *s, size_t n, uint64_t *u)
{
    uint64_t v = 0;
    size_t k;

    for (k = 0; k < n && s[k] >= '0' && s[k] <= '9'; ++k)
        v = v * 10 + (uint64_t)(s[k] - '0');
    *u = v;
    return k < n && s[k] != 0 ? -1 : 0;
}

/* Decimal digits of u at p (no leading zeros): the count, at most 20. */
static size_t decimal(unsigned char *p, uint64_t u)
{
    unsigned char tmp[20];
    size_t n = 0, k;

    do {
        tmp[n++] = (unsigned char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (k = 0; k < n; ++k)
        p[k] = tmp[n - 1 - k];
    return n;
}

/* The records of address x[0..alen) (the line is x[0..len)). */
static int address(pycdb_rules *r, const unsigned char *x, size_t alen, size_t len,
                   const unsigned char *data, size_t dlen)
{
    const unsigned char *dash, *dot;
    size_t i, left, right, k, n;
    uint64_t bot, top;
    int rc;

    if (memchr(x, '=', alen) || memchr(x, '@', alen))
        return add(r, x, alen, data, dlen);
    dash = memchr(x, '-', alen);
    if (!dash)
        return add(r, x, alen, data, dlen);

    i = (size_t)(dash - x);
    left = 0;
    for (k = i; k > 0; --k)
        if (x[k - 1] == '.') {
            left = k;
            break;
        }
    dot = memchr(dash + 1, '.', alen - i - 1);
    right = dot ? (size_t)(dot - x) : alen;

    if (number(x + left, i - left, &bot) == -1)
        return bad(r, x, len, PYCDB_RULES_ELOW, left);
    if (number(x + i + 1, right - i - 1, &top) == -1)
        return bad(r, x, len, PYCDB_RULES_EHIGH, i + 1);
    if (top > 255)
        top = 255;

    /* prefix + at most 20 digits + suffix: no longer than the line + 20 */
    if (reserve(&r->key, &r->kcap, alen + 20))
        return PYCDB_ENOMEM;
    memcpy(r->key, x, left);
    for (; bot <= top; ++bot) { /* top <= 255: ++bot cannot wrap */
        n = left + decimal(r->key + left, bot);
        memcpy(r->key + n, x + right, alen - right);
        rc = add(r, r->key, n + alen - right, data, dlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* One input line x[0..len), without its newline. */
static int line(pycdb_rules *r, const unsigned char *x, size_t len)
{
    const unsigned char *colon, *eq, *end;
    unsigned char *d;
    size_t i, n, dlen = 0;
    unsigned char ch;

    r->st->lineno += 1;
    if (!len || x[0] == '#')
        return 0;
    while (len && (x[len - 1] == '\n' || x[len - 1] == ' ' || x[len - 1] == '\t'))
        --len;
    colon = memchr(x, ':', len);
    if (!colon) {
        if (len) {
            if (r->st->skipped < sizeof r->st->skipped_at / sizeof r->st->skipped_at[0])
                r->st->skipped_at[r->st->skipped] = r->st->lineno;
            r->st->skipped += 1;
        }
        return 0;
    }

    /* Every instruction ",N=dVd" becomes "+N=V\0", one byte shorter, and
     * "deny" becomes "D\0": the data never outgrows the line. */
    if (reserve(&r->data, &r->dcap, len + 2))
        return PYCDB_ENOMEM;
    d = r->data;

    i = (size_t)(colon - x) + 1;
    if (len - i >= 4 && !memcmp(x + i, "deny", 4)) {
        d[dlen++] = 'D';
        d[dlen++] = 0;
        i += 4;
    } else if (len - i >= 5 && !memcmp(x + i, "allow", 5)) {
        i += 5;
    } else {
        return bad(r, x, len, PYCDB_RULES_EACTION, i);
    }

    while (i < len) {
        if (x[i] != ',')
            return bad(r, x, len, PYCDB_RULES_EINSTR, i);
        eq = memchr(x + i, '=', len - i);
        if (!eq)
            return bad(r, x, len, PYCDB_RULES_ENOEQ, i);
        n = (size_t)(eq - (x + i)); /* NAME and its '=' */
        d[dlen++] = '+';
        memcpy(d + dlen, x + i + 1, n);
        dlen += n;
        i += n + 1; /* at the delimiter */
        if (i == len)
            return bad(r, x, len, PYCDB_RULES_ENODELIM, i);
        ch = x[i];
        end = memchr(x + i + 1, ch, len - i - 1);
        if (!end)
            return bad(r, x, len, PYCDB_RULES_EUNTERM, i);
        n = (size_t)(end - (x + i + 1));
        memcpy(d + dlen, x + i + 1, n);
        dlen += n;
        d[dlen++] = 0;
        i += n + 2;
    }

    return address(r, x, (size_t)(colon - x), len, d, dlen);
}

static int fail(pycdb_rules *r, int rc)
{
    r->dead = rc;
    return rc;
}

/* Append p[0..n) to the carried partial line. */
static int carry(pycdb_rules *r, const unsigned char *p, size_t n)
{
    if (n > SIZE_MAX - r->clen)
        return PYCDB_ENOMEM;
    if (reserve(&r->carry, &r->ccap, r->clen + n))
        return PYCDB_ENOMEM;
    memcpy(r->carry + r->clen, p, n);
    r->clen += n;
    return 0;
}

int pycdb_rules_feed(pycdb_rules *r, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    const unsigned char *end = p + len, *nl;
    size_t n;
    int rc;

    if (r->dead)
        return r->dead;
    if (!len)
        return 0;

    if (r->clen || r->skipping) {
        nl = memchr(p, '\n', len);
        if (!nl) {
            if (!r->skipping && (rc = carry(r, p, len)))
                return fail(r, rc);
            return 0;
        }
        if (r->skipping) {
            r->skipping = 0;
            r->st->lineno += 1;
        } else {
            if ((rc = carry(r, p, (size_t)(nl - p))))
                return fail(r, rc);
            n = r->clen;
            r->clen = 0;
            if ((rc = line(r, r->carry, n)))
                return fail(r, rc);
        }
        p = nl + 1;
    }

    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
        if ((rc = line(r, p, (size_t)(nl - p))))
            return fail(r, rc);
        p = nl + 1;
    }

    if (p < end) {
        if (*p == '#')
            r->skipping = 1;
        else if ((rc = carry(r, p, (size_t)(end - p))))
            return fail(r, rc);
    }
    return 0;
}

int pycdb_rules_end(pycdb_rules *r)
{
    size_t n;
    int rc;

    if (r->dead)
        return r->dead;
    if (r->skipping) {
        r->skipping = 0;
        r->st->lineno += 1;
    } else if (r->clen) {
        n = r->clen;
        r->clen = 0;
        if ((rc = line(r, r->carry, n)))
            return fail(r, rc);
    }
    return 0;
}
