/* tiered native SSD reader: gathers fixed-size rows of a row-chunked array
 * from its chunk files with O_DIRECT, deduplicating and coalescing 4 KiB
 * pages, with many reads in flight (io_uring, or a pthread pool of pread).
 * This header is also the cffi cdef: keep it free of preprocessor lines
 * other than the include guard. */
#ifndef TIERED_SSD_READER_H
#define TIERED_SSD_READER_H

typedef struct tiered_ssd tiered_ssd;

/* backend: 0 auto (io_uring when the kernel allows it), 1 io_uring, 2 threads.
 * want_direct: 1 to open with O_DIRECT (falls back to buffered when the
 * filesystem refuses it; see tiered_ssd_is_direct). writable: also open a
 * buffered descriptor for writes. Returns NULL and fills err on failure. */
tiered_ssd *tiered_ssd_open(const char **paths, int nfiles, long long chunk_bytes,
                            int want_direct, int writable, int backend,
                            char *err, int errlen);
void tiered_ssd_close(tiered_ssd *h);
int tiered_ssd_is_direct(const tiered_ssd *h);
int tiered_ssd_backend(const tiered_ssd *h);   /* 1 io_uring, 2 threads */
int tiered_ssd_page_bytes(void);

/* out[i] = row ids[i] for n ids (any order, duplicates allowed; the caller
 * checked the range). Rows sharing a page cost one page read; adjacent pages
 * merge into one request of at most max_run_bytes (and at most
 * max_gap_pages unneeded pages bridged between them). queue_depth reads are in
 * flight. Returns the bytes read from the device, or -1 with err filled. */
long long tiered_ssd_gather(tiered_ssd *h, const long long *ids, long long n,
                            long long chunk_rows, long long row_bytes, char *out,
                            int queue_depth, long long max_run_bytes, int max_gap_pages,
                            char *err, int errlen);

/* Row ids[i] = rows[i] (ids unique), through the buffered descriptor.
 * Returns bytes written, or -1 with err filled. */
long long tiered_ssd_write(tiered_ssd *h, const long long *ids, long long n,
                           long long chunk_rows, long long row_bytes, const char *rows,
                           char *err, int errlen);
/* fsync every file written to. Returns 0, or -1 with err filled. */
int tiered_ssd_sync(tiered_ssd *h, char *err, int errlen);

#endif
