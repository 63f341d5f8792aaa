/* cdb_read.c: hashing and lookups over a mapped cdb file.
 *
 * Nothing here trusts the file: every position and length read from it
 * is checked against the mapping (64-bit sums, so no 32-bit wrap) before
 * a byte behind it is touched, and every walk is bounded by the table's
 * slot count. */

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "pycdb.h"

static uint32_t unpack(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
           | ((uint32_t)p[3] << 24);
}

/* djb's hash: h = ((h << 5) + h) ^ c, from 5381. */
uint32_t pycdb_hash(const char *key, size_t len)
{
    const unsigned char *k = (const unsigned char *)key;
    uint32_t h = 5381;

    while (len--)
        h = ((h << 5) + h) ^ *k++;
    return h;
}

/* Start a walk for hash h: 1 ready, 0 empty table, ECORRUPT for a table
 * that lies outside the file. */
static int find_start(const pycdb_map *m, pycdb_find *f, uint32_t h)
{
    const unsigned char *e;
    uint64_t tend;

    if (m->size < 2048)
        return PYCDB_ECORRUPT;
    e = m->base + ((h & 255) << 3);
    f->hslots = unpack(e + 4);
    if (!f->hslots)
        return 0;
    f->hpos = unpack(e);
    tend = (uint64_t)f->hpos + ((uint64_t)f->hslots << 3);
    /* Inside the file, past the header, and addressable in 32 bits (so
     * the slot arithmetic below cannot wrap). */
    if (f->hpos < 2048 || tend > m->size || tend > 0xffffffffu)
        return PYCDB_ECORRUPT;
    f->khash = h;
    f->kpos = f->hpos + (uint32_t)((uint64_t)((h >> 8) % f->hslots) << 3);
    return 1;
}

int pycdb_findnext(const pycdb_map *m, pycdb_find *f,
                   const char *key, size_t len)
{
    uint32_t pos, klen, dlen;
    const unsigned char *slot, *rec;
    uint32_t tend;
    int r;

    if (!f->loop) {
        if (len > m->maxklen)
            return 0; /* no record holds such a key */
        r = find_start(m, f, pycdb_hash(key, len));
        if (r <= 0)
            return r;
    }
    tend = f->hpos + (f->hslots << 3);
    while (f->loop < f->hslots) {
        slot = m->base + f->kpos;
        pos = unpack(slot + 4);
        if (!pos)
            return 0;
        f->loop += 1;
        f->kpos += 8;
        if (f->kpos == tend)
            f->kpos = f->hpos;
        if (unpack(slot) != f->khash)
            continue;
        /* The record must lie wholly inside the record area. */
        if (pos < 2048 || (uint64_t)pos + 8 > m->eod)
            return PYCDB_ECORRUPT;
        rec = m->base + pos;
        klen = unpack(rec);
        dlen = unpack(rec + 4);
        if ((uint64_t)pos + 8 + klen + dlen > m->eod)
            return PYCDB_ECORRUPT;
        if (klen == len && memcmp(rec + 8, key, len) == 0) {
            f->dpos = pos + 8 + klen;
            f->dlen = dlen;
            return 1;
        }
    }
    /* Every slot visited and none empty: a sound table is half empty. */
    return PYCDB_ECORRUPT;
}

int pycdb_findfirst(const pycdb_map *m, pycdb_find *f, const char *key, size_t len)
{
    f->loop = 0;
    return pycdb_findnext(m, f, key, len);
}

uint64_t pycdb_get(const pycdb_map *m, const char *key, size_t len)
{
    pycdb_find f;
    int r;

    r = pycdb_findfirst(m, &f, key, len);
    if (r == 1)
        return ((uint64_t)(f.dpos + f.dlen) << 32) | f.dpos;
    return r == 0 ? 0 : 1;
}

int64_t pycdb_survey(const pycdb_map *m, uint32_t *maxklen)
{
    uint64_t pos = 2048;
    int64_t n = 0;
    uint32_t klen, longest = 0;
    const unsigned char *rec;

    if (m->eod > m->size)
        return PYCDB_ECORRUPT;
    while (pos < m->eod) {
        if (pos + 8 > m->eod)
            return PYCDB_ECORRUPT;
        rec = m->base + pos;
        klen = unpack(rec);
        pos += 8 + (uint64_t)klen + unpack(rec + 4);
        if (pos > m->eod)
            return PYCDB_ECORRUPT;
        if (klen > longest)
            longest = klen;
        ++n;
    }
    if (maxklen)
        *maxklen = longest;
    return n;
}
