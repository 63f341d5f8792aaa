/* cdb_make.c: the writer, byte-identical to djb's cdbmake.
 *
 * Records stream to the file through a 64 KiB buffer.  In memory the
 * maker keeps two 32-bit words per record (hash, position) in fixed-size
 * blocks, so growing never copies; finishing sorts them by table into a
 * second array of the same size, freeing the blocks as it goes. */

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "pycdb.h"
#include "internal.h"

#define BUFSZ 65536
#define BLOCK 8192 /* records per block */

typedef struct hp { uint32_t h, p; } hp;

typedef struct block {
    struct block *next;
    size_t n;
    hp e[BLOCK];
} block;

struct pycdb_maker {
    int fd;
    uint64_t limit;
    uint64_t pos;       /* end of the records written so far */
    uint64_t n;         /* records */
    block *first, *last;
    int done;           /* finished, closed, or failed: refuse everything */
    int busy;           /* claimed by a call running without the GIL */
    int err;            /* errno of the write that failed, or 0 */
    size_t blen;
    unsigned char buf[BUFSZ];
};

static void pack(unsigned char *p, uint32_t u)
{
    p[0] = u & 255;
    p[1] = (u >> 8) & 255;
    p[2] = (u >> 16) & 255;
    p[3] = u >> 24;
}

/* Write all of p[0..len) to mk->fd: 0, or -1 with mk->err set. */
static int allwrite(pycdb_maker *mk, const unsigned char *p, size_t len)
{
    ssize_t w;

    while (len) {
        w = write(mk->fd, p, len > 0x40000000 ? 0x40000000 : len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            mk->err = errno;
            return -1;
        }
        if (w == 0) {
            mk->err = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int flush(pycdb_maker *mk)
{
    size_t n = mk->blen;

    mk->blen = 0;
    return n ? allwrite(mk, mk->buf, n) : 0;
}

/* Buffered write: 0 or -1. */
static int put(pycdb_maker *mk, const unsigned char *p, size_t len)
{
    if (len > BUFSZ - mk->blen) {
        if (flush(mk) == -1)
            return -1;
        if (len >= BUFSZ)
            return allwrite(mk, p, len);
    }
    memcpy(mk->buf + mk->blen, p, len);
    mk->blen += len;
    return 0;
}

pycdb_maker *pycdb_maker_new(int fd, uint64_t limit)
{
    pycdb_maker *mk = malloc(sizeof *mk);

    if (!mk)
        return NULL;
    mk->fd = fd;
    mk->limit = limit > 0xffffffffu ? 0xffffffffu : limit;
    mk->pos = 2048;
    mk->n = 0;
    mk->first = mk->last = NULL;
    mk->done = 0;
    mk->busy = 0;
    mk->err = 0;
    /* The header's place, written over by finish: zeros go out with the
     * first records, so the file is written front to back. */
    memset(mk->buf, 0, 2048);
    mk->blen = 2048;
    return mk;
}

int pycdb_maker_claim(pycdb_maker *mk)
{
    if (mk->busy)
        return PYCDB_EBUSY;
    mk->busy = 1;
    return 0;
}

void pycdb_maker_unclaim(pycdb_maker *mk)
{
    mk->busy = 0;
}

int pycdb_maker_fits(const pycdb_maker *mk, uint64_t bytes, uint64_t records)
{
    if (bytes > mk->limit || records > mk->limit)
        return 0;
    return mk->pos + bytes + 16 * (mk->n + records) <= mk->limit;
}

int pycdb_maker_error(const pycdb_maker *mk)
{
    return mk->err;
}

int pycdb_maker_add(pycdb_maker *mk, const char *key, size_t klen,
                    const char *data, size_t dlen)
{
    if (mk->busy)
        return PYCDB_EBUSY;
    return pycdb_maker_put(mk, key, klen, data, dlen);
}

int pycdb_maker_put(pycdb_maker *mk, const char *key, size_t klen,
                    const char *data, size_t dlen)
{
    unsigned char head[8];
    block *b;

    if (mk->done)
        return PYCDB_EDONE;
    /* The finished file holds the records, 8 + klen + dlen bytes each,
     * and two 8-byte slots per record: it must fit in mk->limit.  Each
     * term is bounded before the sum so nothing can wrap. */
    if (klen > mk->limit || dlen > mk->limit
        || mk->pos + 8 + klen + dlen + 16 * (mk->n + 1) > mk->limit)
        return PYCDB_ETOOBIG;

    b = mk->last;
    if (!b || b->n == BLOCK) {
        b = malloc(sizeof *b);
        if (!b)
            return PYCDB_ENOMEM;
        b->next = NULL;
        b->n = 0;
        if (mk->last)
            mk->last->next = b;
        else
            mk->first = b;
        mk->last = b;
    }

    pack(head, (uint32_t)klen);
    pack(head + 4, (uint32_t)dlen);
    if (put(mk, head, 8) == -1 || put(mk, (const unsigned char *)key, klen) == -1
        || put(mk, (const unsigned char *)data, dlen) == -1) {
        mk->done = 1;
        return -1;
    }
    b->e[b->n].h = pycdb_hash(key, klen);
    b->e[b->n].p = (uint32_t)mk->pos;
    b->n += 1;
    mk->n += 1;
    mk->pos += 8 + klen + dlen;
    return 0;
}

uint64_t pycdb_maker_count(const pycdb_maker *mk)
{
    return mk->n;
}

static void free_blocks(pycdb_maker *mk)
{
    block *b, *next;

    for (b = mk->first; b; b = next) {
        next = b->next;
        free(b);
    }
    mk->first = mk->last = NULL;
}

int pycdb_maker_finish(pycdb_maker *mk)
{
    uint64_t count[256];
    uint64_t start[256];
    uint64_t maxslots = 0, u, i, where, len;
    unsigned char header[2048];
    unsigned char slot[8];
    hp *split = NULL, *table = NULL;
    block *b, *next;
    int t;
    size_t k;

    if (mk->done)
        return PYCDB_EDONE;
    mk->done = 1;
    memset(count, 0, sizeof count);
    for (b = mk->first; b; b = b->next)
        for (k = 0; k < b->n; ++k)
            ++count[b->e[k].h & 255];

    u = 0;
    for (t = 0; t < 256; ++t) {
        start[t] = u;
        u += count[t];
        if (2 * count[t] > maxslots)
            maxslots = 2 * count[t];
    }

    if (mk->n) {
        split = malloc(mk->n * sizeof *split);
        table = malloc(maxslots * sizeof *table);
        if (!split || !table) {
            free(split);
            free(table);
            return PYCDB_ENOMEM;
        }
        /* Stable by table: insertion order is kept within each one. */
        for (b = mk->first; b; b = next) {
            next = b->next;
            for (k = 0; k < b->n; ++k)
                split[start[b->e[k].h & 255]++] = b->e[k];
            free(b);
        }
        mk->first = mk->last = NULL;
    }

    for (t = 0; t < 256; ++t) {
        len = 2 * count[t];
        pack(header + 8 * t, (uint32_t)mk->pos);
        pack(header + 8 * t + 4, (uint32_t)len);
        if (!len)
            continue;
        memset(table, 0, len * sizeof *table);
        /* start[t] now points just past table t's records. */
        for (i = start[t] - count[t]; i < start[t]; ++i) {
            where = (split[i].h >> 8) % len;
            while (table[where].p)
                if (++where == len)
                    where = 0;
            table[where] = split[i];
        }
        for (i = 0; i < len; ++i) {
            pack(slot, table[i].h);
            pack(slot + 4, table[i].p);
            if (put(mk, slot, 8) == -1)
                goto fail;
        }
        mk->pos += 8 * len;
    }
    free(split);
    free(table);
    split = table = NULL;

    if (flush(mk) == -1)
        goto fail;
    for (k = 0; k < sizeof header;) {
        ssize_t w = pwrite(mk->fd, header + k, sizeof header - k, (off_t)k);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            mk->err = errno;
            return -1;
        }
        if (w == 0) {
            mk->err = EIO;
            return -1;
        }
        k += (size_t)w;
    }
    return 0;

fail:
    free(split);
    free(table);
    return -1;
}

int pycdb_maker_close(pycdb_maker *mk)
{
    if (mk->busy)
        return PYCDB_EBUSY;
    mk->done = 1;
    free_blocks(mk);
    return 0;
}

void pycdb_maker_free(pycdb_maker *mk)
{
    if (!mk)
        return;
    free_blocks(mk);
    free(mk);
}
