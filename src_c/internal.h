/* internal.h: declarations shared between the C sources and not offered
 * to Python (cffi reads pycdb.h only). */

/* pycdb_maker_add without the claim check: for callers that hold the
 * claim themselves (the rules compiler, fed through pycdb_py_rules_feed
 * with the maker claimed).  Same return codes as pycdb_maker_add. */
int pycdb_maker_put(pycdb_maker *mk, const char *key, size_t klen,
                    const char *data, size_t dlen);
