/* rules_check.c: tcpserver's rules check over a mapped rules cdb.
 *
 * ucspi-tcp's rules() builds each candidate key in turn and asks
 * cdb_find() for it; the first key with a record decides.  This does the
 * same walk in one call, so a check from Python costs one trip into C
 * whatever the number of keys tried.  Every lookup goes through
 * pycdb_findnext, which checks every position it reads against the
 * mapping; nothing here reads the file directly. */

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pycdb.h"

/* Keys up to this size are built on the stack; longer ones (a host or
 * ident answer no real tcpserver would pass) in a malloc'd buffer. */
#define SMALL 512

/* The position of the first record for key[0..len): >= 2048 found, 0
 * absent, PYCDB_ECORRUPT. */
static int64_t first(const pycdb_map *m, const char *key, size_t len)
{
    pycdb_find f;
    int r;

    r = pycdb_findfirst(m, &f, key, len);
    if (r == 1)
        /* findnext checked pos + 8 + klen + dlen <= eod, and klen == len. */
        return (int64_t)f.dpos - 8 - (int64_t)len;
    return r;
}

static void put(char *to, const char *from, size_t len)
{
    if (len)
        memcpy(to, from, len);
}

/* The walk proper; buf has room for every key built (see the caller). */
static int64_t walk(const pycdb_map *m, char *buf,
                    const char *ip, size_t iplen,
                    const char *host, size_t hostlen,
                    const char *info, size_t infolen)
{
    int64_t r;
    size_t i;

#define TRY(key, len)             \
    do {                          \
        r = first(m, key, len);   \
        if (r)                    \
            return r;             \
    } while (0)

    if (info) {
        /* info@ip, then info@=host */
        put(buf, info, infolen);
        buf[infolen] = '@';
        put(buf + infolen + 1, ip, iplen);
        TRY(buf, infolen + 1 + iplen);
        if (host) {
            buf[infolen + 1] = '=';
            put(buf + infolen + 2, host, hostlen);
            TRY(buf, infolen + 2 + hostlen);
        }
    }

    TRY(ip, iplen);

    if (host) {
        buf[0] = '=';
        put(buf + 1, host, hostlen);
        TRY(buf, hostlen + 1);
    }

    /* The ip cut just after each '.', longest first (tcpserver does not
     * skip the whole ip when it ends in '.': neither do we). */
    for (i = iplen; i > 0; --i)
        if (ip[i - 1] == '.')
            TRY(ip, i);

    if (host) {
        /* buf holds "=" host: the key for the suffix at host[i] is "="
         * host[i..], i.e. buf[i..] once buf[i] (host[i-1], no longer
         * needed as i only grows) becomes '='. */
        for (i = 0; i < hostlen; ++i)
            if (host[i] == '.') {
                buf[i] = '=';
                TRY(buf + i, hostlen - i + 1);
            }
        TRY("=", 1);
    }

    TRY("", 0);
    return 0;
#undef TRY
}

int64_t pycdb_rules_find(const pycdb_map *m, const char *ip,
                         const char *host, const char *info)
{
    char small[SMALL];
    char *buf = small;
    size_t iplen = strlen(ip);
    size_t hostlen = host ? strlen(host) : 0;
    size_t infolen = info ? strlen(info) : 0;
    size_t need;
    int64_t r;

    /* 0.88's walk is for IPv4 text; an IPv6 address is the caller's
     * business (pycdb/rules/ruleset.py), found here at no cost to it. */
    if (memchr(ip, ':', iplen))
        return PYCDB_EIPV6;
    /* Each length is far below this (they are Python objects); the bound
     * keeps the sums below from wrapping. */
    if (iplen > SIZE_MAX / 4 || hostlen > SIZE_MAX / 4 || infolen > SIZE_MAX / 4)
        return PYCDB_ENOMEM;
    /* The longest key built: info "@=" host or info "@" ip, or "=" host. */
    need = (iplen > hostlen + 1 ? iplen : hostlen + 1) + infolen + 2;
    if (need > sizeof small) {
        buf = malloc(need);
        if (!buf)
            return PYCDB_ENOMEM;
    }
    r = walk(m, buf, ip, iplen, host, hostlen, info, infolen);
    if (buf != small)
        free(buf);
    return r;
}
