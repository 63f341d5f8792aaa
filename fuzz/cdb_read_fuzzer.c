/* cdb_read_fuzzer.c: libFuzzer harness for the C reader (src_c/cdb_read.c).
 *
 * The input is a cdb file.  The harness maps it twice: once as pycdb's
 * Python layer does (after the header check of _common.parse_header, eod
 * = the lowest table position), and once with the header unchecked and
 * eod taken from the file (clamped to its size: the one thing the C
 * contract asks of the caller).  Then it looks up keys taken from the
 * records and from the input with pycdb_get and pycdb_findnext loops, and
 * surveys the records with pycdb_survey.
 *
 * Beyond what ASan/UBSan see, it aborts when the core breaks its own
 * contract: a found record outside the record area or with another key,
 * more matches than slots, pycdb_get disagreeing with the first
 * pycdb_findnext, or a return code outside the documented set.
 *
 * Build (see fuzz/README.md):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -I src_c \
 *       fuzz/cdb_read_fuzzer.c src_c/cdb_read.c -o fuzz/cdb_read_fuzzer
 */

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pycdb.h"

#define MAXKEYS 16

static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
           | ((uint32_t)p[3] << 24);
}

/* pycdb's header check (_common.parse_header): 1 and *eod set when every
 * table lies past the header and inside the file. */
static int header_ok(const uint8_t *d, size_t n, uint32_t *eod)
{
    uint64_t low = UINT64_MAX;
    int i;

    if (n < 2048 || n > 0xffffffffu)
        return 0;
    for (i = 0; i < 256; ++i) {
        uint64_t pos = u32(d + 8 * i), slots = u32(d + 8 * i + 4);
        if (pos < 2048 || pos + 8 * slots > n)
            return 0;
        if (pos < low)
            low = pos;
    }
    *eod = (uint32_t)low;
    return 1;
}

static void check_key(const pycdb_map *m, const char *key, size_t len)
{
    pycdb_find f;
    uint64_t got = pycdb_get(m, key, len);
    uint64_t first = 0;
    uint64_t n = 0;
    int r;

    memset(&f, 0, sizeof f);
    while ((r = pycdb_findnext(m, &f, key, len)) == 1) {
        if (f.dpos < 2048 + 8 + len || (uint64_t)f.dpos + f.dlen > m->eod)
            abort(); /* a match outside the record area */
        if (u32(m->base + f.dpos - len - 8) != len
            || memcmp(m->base + f.dpos - len, key, len) != 0)
            abort(); /* a match with another key */
        if (n == 0)
            first = ((uint64_t)(f.dpos + f.dlen) << 32) | f.dpos;
        if (++n > f.hslots)
            abort(); /* more matches than slots: the walk did not stop */
    }
    if (r != 0 && r != PYCDB_ECORRUPT)
        abort();
    if (n)
        { if (got != first) abort(); }
    else if (got != (r == 0 ? 0 : 1))
        abort();
}

/* Keys to look up: those of the first records in [2048, eod), the empty
 * key, and a few cut from the input itself. */
static void check_map(const pycdb_map *m)
{
    const char *keys[MAXKEYS];
    size_t lens[MAXKEYS];
    int nkeys = 0, i;
    uint64_t pos = 2048;
    int64_t count;
    uint32_t longest = 0;

    count = pycdb_survey(m, &longest);
    if (count < 0 && count != PYCDB_ECORRUPT)
        abort();
    if (count >= 0 && longest > m->maxklen)
        abort();

    while (nkeys < MAXKEYS - 3 && pos + 8 <= m->eod) {
        uint64_t klen = u32(m->base + pos), dlen = u32(m->base + pos + 4);
        if (pos + 8 + klen > m->eod)
            break;
        keys[nkeys] = (const char *)m->base + pos + 8;
        lens[nkeys++] = (size_t)klen;
        pos += 8 + klen + dlen;
    }
    keys[nkeys] = "";
    lens[nkeys++] = 0;
    if (m->size >= 8) {
        keys[nkeys] = (const char *)m->base + m->size - 8;
        lens[nkeys++] = 8;
    }
    if (m->size >= 2) {
        keys[nkeys] = (const char *)m->base + m->size / 2;
        lens[nkeys++] = m->size - m->size / 2 > 5 ? 5 : m->size - m->size / 2;
    }
    for (i = 0; i < nkeys; ++i)
        check_key(m, keys[i], lens[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pycdb_map m;
    uint32_t eod;

    m.base = data;
    m.size = size;

    /* As pycdb's Reader maps a file. */
    if (header_ok(data, size, &eod)) {
        m.eod = eod;
        m.maxklen = eod - 2056 > eod ? 0 : eod - 2056;
        check_map(&m);
    }

    /* Header unchecked; eod from entry 0, kept inside the file; every
     * key length allowed. */
    m.eod = size >= 4 ? u32(data) : 0;
    if (m.eod > size)
        m.eod = (uint32_t)size;
    m.maxklen = 0xffffffffu;
    check_map(&m);
    return 0;
}
