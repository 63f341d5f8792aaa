/* pyglue.c: the few functions that need Python's C API.
 *
 * Not compiled on its own: src_c/build_ffi.py includes it in the source
 * cffi generates (after Python.h), so it shares cffi's settings, the
 * limited API among them.  See "Python glue" in pycdb.h. */

/* Run call with the maker claimed and the GIL released. */
#define PYCDB_UNLOCKED(mk, call)                 \
    do {                                         \
        PyThreadState *ts_;                      \
        int r_ = pycdb_maker_claim(mk);          \
        if (r_)                                  \
            return r_;                           \
        ts_ = PyEval_SaveThread();               \
        r_ = (call);                             \
        PyEval_RestoreThread(ts_);               \
        pycdb_maker_unclaim(mk);                 \
        return r_;                               \
    } while (0)

int pycdb_py_maker_finish(pycdb_maker *mk)
{
    PYCDB_UNLOCKED(mk, pycdb_maker_finish(mk));
}

int pycdb_py_rules_feed(pycdb_rules *r, const char *buf, size_t len)
{
    PYCDB_UNLOCKED(pycdb_rules_maker(r), pycdb_rules_feed(r, buf, len));
}

int pycdb_py_rules_end(pycdb_rules *r)
{
    PYCDB_UNLOCKED(pycdb_rules_maker(r), pycdb_rules_end(r));
}
