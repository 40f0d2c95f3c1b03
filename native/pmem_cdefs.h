/*
 * The part of libpmemobj (PMDK >= 1.12) and libpmem that tiered calls, as cffi cdefs.
 *
 * These are declarations only: native/build_pmem.py turns them into the
 * pure-Python module tiered._native_pmemobj (cffi out-of-line ABI mode), which
 * dlopen()s libpmemobj.so.1 and libpmem.so.1 at run time. Signatures are
 * copied from <libpmemobj/*.h> and <libpmem.h>; on x86-64 and aarch64 Linux
 * `mode_t` is a 32-bit unsigned int and a jmp_buf argument is passed as a
 * pointer, which is what these declarations say.
 *
 * The last block is tiered's own on-media layout: the root object of a pool
 * holds a fixed directory of named arrays. Changing it needs a new
 * TIERED_POOL_VERSION (see tiered/tiers/pmem.py).
 */

typedef struct pmemobjpool PMEMobjpool;

typedef struct pmemoid {
    uint64_t pool_uuid_lo;
    uint64_t off;
} PMEMoid;

enum pobj_tx_stage {
    TX_STAGE_NONE,
    TX_STAGE_WORK,
    TX_STAGE_ONCOMMIT,
    TX_STAGE_ONABORT,
    TX_STAGE_FINALLY,
    MAX_TX_STAGE
};

enum pobj_tx_param {
    TX_PARAM_NONE,
    TX_PARAM_MUTEX,
    TX_PARAM_RWLOCK,
    TX_PARAM_CB
};

/* libpmemobj: pools */
const char *pmemobj_check_version(unsigned major_required, unsigned minor_required);
const char *pmemobj_errormsg(void);
PMEMobjpool *pmemobj_create(const char *path, const char *layout, size_t poolsize,
                            unsigned int mode);
PMEMobjpool *pmemobj_open(const char *path, const char *layout);
void pmemobj_close(PMEMobjpool *pop);
PMEMoid pmemobj_root(PMEMobjpool *pop, size_t size);
size_t pmemobj_root_size(PMEMobjpool *pop);
size_t pmemobj_alloc_usable_size(PMEMoid oid);

/* libpmemobj: persistence */
void pmemobj_persist(PMEMobjpool *pop, const void *addr, size_t len);
void pmemobj_drain(PMEMobjpool *pop);
void *pmemobj_memcpy(PMEMobjpool *pop, void *dest, const void *src, size_t len,
                     unsigned flags);

/* libpmemobj: transactions (begin is variadic: a list of enum pobj_tx_param ended by NONE) */
int pmemobj_tx_begin(PMEMobjpool *pop, void *env, ...);
enum pobj_tx_stage pmemobj_tx_stage(void);
void pmemobj_tx_abort(int errnum);
void pmemobj_tx_commit(void);
int pmemobj_tx_end(void);
int pmemobj_tx_add_range_direct(const void *ptr, size_t size);
PMEMoid pmemobj_tx_xalloc(size_t size, uint64_t type_num, uint64_t flags);
int pmemobj_tx_free(PMEMoid oid);

/* libpmem: the flush primitives the pool uses, for sync() and the is_pmem report */
int pmem_is_pmem(const void *addr, size_t len);
int pmem_msync(const void *addr, size_t len);

/* tiered's root object: a directory of arrays */
struct tiered_array_entry {
    char name[96];          /* NUL-terminated; empty: free slot */
    char dtype[16];         /* numpy dtype.str, e.g. "<f4" */
    uint64_t ndim;
    uint64_t shape[6];
    uint64_t chunk_rows;    /* rows per allocation (the last one may hold fewer) */
    uint64_t num_chunks;
    uint64_t state;         /* 0 free, 1 allocated (contents undefined), 2 ready */
    uint64_t source_key;    /* caller's fingerprint of where the contents came from */
    PMEMoid chunks;         /* num_chunks PMEMoids, one allocation each */
    uint8_t reserved[40];
};

struct tiered_pool_root {
    char magic[8];          /* "TIEREDPM" */
    uint64_t version;
    uint64_t max_arrays;
    uint8_t reserved[40];
    struct tiered_array_entry arrays[128];
};
