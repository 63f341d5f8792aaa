/* pycdb.h: the C core's declarations, and nothing else.
 *
 * This file is read twice: by the C sources (after <stdint.h> and
 * <stddef.h>) and by src_c/build_ffi.py, which hands it verbatim to
 * cffi's cdef().  So: no #include, no include guard, no macros other
 * than plain integer #defines.
 *
 * Conventions (djb / tinycdb idiom): every name is prefixed pycdb_;
 * functions return 0 or a positive count on success, -1 on a system
 * error (the maker keeps its errno: pycdb_maker_error), and the PYCDB_E*
 * codes below for the rest; nothing is reported through errno itself,
 * so the Python side never reads it; every offset read from a file is
 * checked against the mapping before use.
 */

/* Return codes shared by the core. */
#define PYCDB_ECORRUPT -2   /* the file is not a sound cdb */
#define PYCDB_ETOOBIG -3    /* the record would push the file past its limit */
#define PYCDB_ENOMEM -4     /* malloc failed */
#define PYCDB_EDONE -5      /* the maker was finished, failed or closed */
#define PYCDB_EBUSY -6      /* the maker is claimed by a call running in another thread */
#define PYCDB_EIPV6 -7      /* an address with ':' given to ucspi-tcp 0.88's rules walk */

/* ---- hashing ---------------------------------------------------------- */

/* djb's cdb hash of len bytes at key. */
uint32_t pycdb_hash(const char *key, size_t len);

/* ---- reading ---------------------------------------------------------- */

/* A read-only view of a whole cdb file.  base/size describe the mapping;
 * eod is where the records end (the lowest table position), set by the
 * caller after checking the header; maxklen is the longest key a record
 * can hold (eod - 2056 at most, or the longest key found by
 * pycdb_survey): a longer key is absent without a look.  The struct is
 * never written by the lookup functions, so one can be shared by any
 * number of threads. */
typedef struct pycdb_map {
    const unsigned char *base;
    uint64_t size;
    uint32_t eod;
    uint32_t maxklen;
} pycdb_map;

/* The state of one walk through a key's hash table (cdb_findnext's). */
typedef struct pycdb_find {
    uint32_t loop;     /* slots visited so far; 0 before the first call */
    uint32_t khash;
    uint32_t hpos;
    uint32_t hslots;
    uint32_t kpos;
    uint32_t dpos;     /* set when pycdb_findnext returns 1 */
    uint32_t dlen;
} pycdb_find;

/* Next record whose key is key[0..len): 1 found (f->dpos, f->dlen set),
 * 0 no more, PYCDB_ECORRUPT for a record outside the record area or a
 * table walked all the way round without an empty slot.  Zero *f before
 * the first call.  A key longer than m->maxklen is absent, found without
 * hashing it. */
int pycdb_findnext(const pycdb_map *m, pycdb_find *f,
                   const char *key, size_t len);

/* Start a walk for key and find its first record: pycdb_findnext's
 * codes, f set as after pycdb_findnext. */
int pycdb_findfirst(const pycdb_map *m, pycdb_find *f, const char *key, size_t len);

/* The first record for key, packed for a single trip from Python:
 * (dend << 32) | dpos when found (the data is bytes dpos..dend), 0 when
 * absent, 1 when the walk met corruption.  A found record's dpos is at
 * least 2056, so the packed value can never be 0 or 1. */
uint64_t pycdb_get(const pycdb_map *m, const char *key, size_t len);

/* Number of records between byte 2048 and m->eod, or PYCDB_ECORRUPT when
 * one of them runs past m->eod; *maxklen (when not NULL) is set to the
 * longest key among them. */
int64_t pycdb_survey(const pycdb_map *m, uint32_t *maxklen);

/* ---- writing ---------------------------------------------------------- */

/* Streams records to fd, keeping only (hash, position) per record in
 * memory.  The file is written front to back from fd's current offset,
 * which must be 0 (a new, empty file): the header's 2048 bytes go out
 * as zeros first and are rewritten in place (pwrite) by finish. */
typedef struct pycdb_maker pycdb_maker;

/* A maker writing to fd.  limit is the largest file size allowed
 * (0xffffffff for the cdb format; lower only in tests).  NULL when out of
 * memory. */
pycdb_maker *pycdb_maker_new(int fd, uint64_t limit);

/* Append one record.  0 ok; PYCDB_ETOOBIG (nothing written) when the
 * finished file would exceed the limit; PYCDB_ENOMEM; -1 write error
 * (pycdb_maker_error says which); PYCDB_EBUSY while the maker is claimed;
 * PYCDB_EDONE after finish, close, or an earlier write error (a failed
 * write may leave a partial record in the file, so the maker refuses
 * everything afterwards). */
int pycdb_maker_add(pycdb_maker *mk, const char *key, size_t klen,
                    const char *data, size_t dlen);

/* 1 when records more records holding bytes bytes in all (8 + klen +
 * dlen each) would still fit under the limit, else 0. */
int pycdb_maker_fits(const pycdb_maker *mk, uint64_t bytes, uint64_t records);

/* Number of records added so far. */
uint64_t pycdb_maker_count(const pycdb_maker *mk);

/* The errno of the write that failed (after a -1), else 0. */
int pycdb_maker_error(const pycdb_maker *mk);

/* Write the hash tables and the header.  0 ok; PYCDB_ENOMEM; -1 write
 * error; PYCDB_EDONE when already finished, failed or closed.  Adding
 * afterwards returns PYCDB_EDONE.  Called from Python through
 * pycdb_py_maker_finish, which claims the maker first. */
int pycdb_maker_finish(pycdb_maker *mk);

/* Claim the maker for a call that runs without the GIL: 0, or
 * PYCDB_EBUSY when it is already claimed.  While claimed, add and close
 * refuse with PYCDB_EBUSY, so no other thread can touch the maker's
 * memory.  Call with the GIL held; unclaim when done. */
int pycdb_maker_claim(pycdb_maker *mk);
void pycdb_maker_unclaim(pycdb_maker *mk);

/* Drop the records' bookkeeping and refuse further use (PYCDB_EDONE);
 * the struct itself stays valid until pycdb_maker_free, so a stale
 * reference from Python can never touch freed memory.  0, or
 * PYCDB_EBUSY (nothing done) while the maker is claimed. */
int pycdb_maker_close(pycdb_maker *mk);

/* Release the maker (does not close fd). */
void pycdb_maker_free(pycdb_maker *mk);

/* ---- rules: parsing (rules_parse.c) ---------------------------------- */

/* tcprules' compiler: rules text in, records out through a maker, byte
 * for byte what tcprules 0.88 adds (docs/rules-language.md).  The text is
 * fed in chunks of any size; only a partial line is carried between
 * them (a comment line not even that), so memory does not grow with
 * the number of lines. */

#define PYCDB_ESYNTAX -16         /* a line tcprules refuses: see the status */

/* Why a line was refused (pycdb_rules_status.code); the same numbers as
 * E_* in pycdb/rules/parse.py. */
#define PYCDB_RULES_EACTION 1     /* neither allow nor deny after the first ':' */
#define PYCDB_RULES_EINSTR 2      /* no ',' where an instruction must start */
#define PYCDB_RULES_ENOEQ 3       /* ",NAME" without '=' */
#define PYCDB_RULES_ENODELIM 4    /* ",NAME=" ends the line: no delimiter */
#define PYCDB_RULES_EUNTERM 5     /* a value's closing delimiter is missing */
#define PYCDB_RULES_ELOW 6        /* a range's low bound is not a number */
#define PYCDB_RULES_EHIGH 7       /* a range's high bound is not a number */

/* Progress and, after an error, what went wrong.  Written by the parser
 * only; the caller owns it and keeps it alive as long as the parser. */
typedef struct pycdb_rules_status {
    uint64_t lineno;      /* lines read; after an error, the line it is on */
    uint64_t records;     /* records added */
    int code;             /* PYCDB_RULES_E* after PYCDB_ESYNTAX */
    uint64_t pos;         /* byte of the trimmed line where it was found */
    const char *line;     /* after PYCDB_ESYNTAX: the trimmed line (owned */
    uint64_t linelen;     /*   by the parser, freed with it) */
    uint64_t klen;        /* after PYCDB_ETOOBIG: the record refused */
    uint64_t dlen;
    uint64_t skipped;     /* lines with text but no ':', which tcprules */
    uint64_t skipped_at[8]; /* skips without a word; the first ones' numbers */
} pycdb_rules_status;

typedef struct pycdb_rules pycdb_rules;

/* A compiler adding records to mk and reporting in *st (zeroed here).
 * NULL when out of memory. */
pycdb_rules *pycdb_rules_new(pycdb_maker *mk, pycdb_rules_status *st);

/* Compile the complete lines in buf[0..len), keeping a partial last line
 * for the next call.  0 ok; PYCDB_ESYNTAX; PYCDB_ETOOBIG; PYCDB_ENOMEM;
 * PYCDB_EDONE; -1 write error (pycdb_maker_error).  After an error the
 * compiler must only be freed.  Called from Python through
 * pycdb_py_rules_feed, which claims the maker first. */
int pycdb_rules_feed(pycdb_rules *r, const char *buf, size_t len);

/* End of input: compile the last line if it had no newline.  Returns as
 * pycdb_rules_feed.  The maker is not finished. */
int pycdb_rules_end(pycdb_rules *r);

/* Release the compiler (not the maker). */
void pycdb_rules_free(pycdb_rules *r);

/* The maker the compiler adds to. */
pycdb_maker *pycdb_rules_maker(const pycdb_rules *r);

/* ---- rules: tcpserver's lookup order (rules_check.c) ----------------- */

/* tcpserver's rules check (ucspi-tcp's rules()), whole, in one call:
 * try the keys made from the remote ip, host and info in tcpserver's
 * order (info@ip, info@=host, ip, =host, the ip cut after each '.'
 * longest first, = plus each host suffix starting at '.' longest first,
 * =, the empty key) and stop at the first key that has a record.  The
 * arguments are C strings, as tcpserver passes them (so none can hold a
 * NUL); host and info are NULL when not known, "" when known and empty.
 * Returns the position of the deciding (first) record for that key,
 * >= 2048, its klen, dlen, key and data checked to lie inside m->eod;
 * 0 when no key has a record (the default); PYCDB_ECORRUPT when a walk
 * met corruption; PYCDB_ENOMEM; PYCDB_EIPV6, before any lookup, when ip
 * holds a ':' (an IPv6 address, which 0.88's tcpserver never gives: the
 * caller decides what that means).  One return value, so a check is one
 * call and no output struct; reads *m only, so it is thread-safe. */
int64_t pycdb_rules_find(const pycdb_map *m, const char *ip,
                         const char *host, const char *info);

/* ---- Python glue (src_c/pyglue.c, compiled into cffi's module) ------ */

/* cffi's generated wrappers keep the GIL for every call above (lookups
 * and adds take well under a microsecond: releasing the GIL would cost
 * more than the call).  These run the long calls with it released,
 * claiming the maker first (PYCDB_EBUSY when another thread holds it),
 * so other Python threads run meanwhile and none can touch the maker. */
int pycdb_py_maker_finish(pycdb_maker *mk);
int pycdb_py_rules_feed(pycdb_rules *r, const char *buf, size_t len);
int pycdb_py_rules_end(pycdb_rules *r);

/* The package version the extension was built from (checked at import). */
const char *pycdb_version(void);
