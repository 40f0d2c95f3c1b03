/* See ssd_reader.h. One gather call: sort the requested rows by file offset,
 * turn them into page-aligned runs (each page read once, adjacent pages
 * merged), keep queue_depth runs in flight, and copy each finished run's rows
 * to their places in the caller's buffer. No state is shared between calls,
 * so concurrent calls on one handle are safe. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef TIERED_HAVE_URING
#include <liburing.h>
#endif
#include "ssd_reader.h"

#define PAGE 4096LL
#define BACKEND_URING 1
#define BACKEND_THREADS 2

struct tiered_ssd {
    int nfiles;
    int *rfd;            /* read descriptors (O_DIRECT when direct) */
    int *wfd;            /* buffered read-write descriptors, or -1 */
    long long chunk_bytes;
    int direct;
    int backend;
};

typedef struct { long long id; long long pos; } entry;               /* row id, place in out */
typedef struct { int file; long long off, len; long long e0, e1; } run; /* entries [e0, e1) */

static void seterr(char *err, int errlen, const char *fmt, ...)
{
    if (!err || errlen <= 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)errlen, fmt, ap);
    va_end(ap);
}

int tiered_ssd_page_bytes(void) { return (int)PAGE; }
int tiered_ssd_is_direct(const tiered_ssd *h) { return h->direct; }
int tiered_ssd_backend(const tiered_ssd *h) { return h->backend; }

void tiered_ssd_close(tiered_ssd *h)
{
    if (!h) return;
    for (int i = 0; i < h->nfiles; i++) {
        if (h->rfd && h->rfd[i] >= 0) close(h->rfd[i]);
        if (h->wfd && h->wfd[i] >= 0) close(h->wfd[i]);
    }
    free(h->rfd);
    free(h->wfd);
    free(h);
}

static int uring_usable(void)
{
#ifdef TIERED_HAVE_URING
    struct io_uring ring;
    if (io_uring_queue_init(2, &ring, 0) < 0) return 0;
    io_uring_queue_exit(&ring);
    return 1;
#else
    return 0;
#endif
}

tiered_ssd *tiered_ssd_open(const char **paths, int nfiles, long long chunk_bytes,
                            int want_direct, int writable, int backend,
                            char *err, int errlen)
{
    tiered_ssd *h = calloc(1, sizeof *h);
    if (!h) { seterr(err, errlen, "out of memory"); return NULL; }
    h->nfiles = nfiles;
    h->chunk_bytes = chunk_bytes;
    h->rfd = malloc(sizeof(int) * (size_t)(nfiles > 0 ? nfiles : 1));
    h->wfd = malloc(sizeof(int) * (size_t)(nfiles > 0 ? nfiles : 1));
    if (!h->rfd || !h->wfd) { seterr(err, errlen, "out of memory"); tiered_ssd_close(h); return NULL; }
    for (int i = 0; i < nfiles; i++) h->rfd[i] = h->wfd[i] = -1;

    h->direct = want_direct ? 1 : 0;
    for (int i = 0; i < nfiles; i++) {
        int fd = -1;
        if (h->direct) {
            fd = open(paths[i], O_RDONLY | O_CLOEXEC | O_DIRECT);
            if (fd < 0 && errno == EINVAL && i == 0) h->direct = 0;   /* e.g. tmpfs */
        }
        if (!h->direct) fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            seterr(err, errlen, "%s: cannot open for reading: %s", paths[i], strerror(errno));
            tiered_ssd_close(h);
            return NULL;
        }
        h->rfd[i] = fd;
        if (writable) {
            h->wfd[i] = open(paths[i], O_RDWR | O_CLOEXEC);
            if (h->wfd[i] < 0) {
                seterr(err, errlen, "%s: cannot open for writing: %s", paths[i], strerror(errno));
                tiered_ssd_close(h);
                return NULL;
            }
        }
    }
    if (backend == 0) backend = uring_usable() ? BACKEND_URING : BACKEND_THREADS;
    else if (backend == BACKEND_URING && !uring_usable()) {
#ifdef TIERED_HAVE_URING
        seterr(err, errlen, "io_uring is not usable here (kernel or seccomp refuses it)");
#else
        seterr(err, errlen, "this build has no io_uring (liburing-dev was absent at build time)");
#endif
        tiered_ssd_close(h);
        return NULL;
    }
    h->backend = backend;
    return h;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Group sorted entries into page runs. buf_cap bounds a run's length. */
static long long build_runs(const entry *ent, long long n, long long chunk_rows, long long row_bytes,
                            long long max_run, long long buf_cap, int max_gap_pages, run *runs)
{
    long long nr = 0;
    for (long long k = 0; k < n; k++) {
        long long id = ent[k].id;
        int file = (int)(id / chunk_rows);
        long long off = (id % chunk_rows) * row_bytes;
        long long p0 = off / PAGE * PAGE;
        long long pend = (off + row_bytes + PAGE - 1) / PAGE * PAGE;
        if (nr > 0) {
            run *r = &runs[nr - 1];
            long long rend = r->off + r->len;
            if (r->file == file) {
                if (p0 < rend) {                       /* shares a page already planned */
                    if (pend <= rend) { r->e1 = k + 1; continue; }
                    if (pend - r->off <= buf_cap) { r->len = pend - r->off; r->e1 = k + 1; continue; }
                } else if (p0 - rend <= max_gap_pages * PAGE && pend - r->off <= max_run) {
                    r->len = pend - r->off; r->e1 = k + 1; continue;
                }
            }
        }
        runs[nr].file = file; runs[nr].off = p0; runs[nr].len = pend - p0;
        runs[nr].e0 = k; runs[nr].e1 = k + 1;
        nr++;
    }
    return nr;
}

/* Copy a finished run's rows out; got = bytes the device returned. */
static int copy_run(const run *r, const entry *ent, const char *buf, long long got,
                    long long chunk_rows, long long row_bytes, char *out)
{
    for (long long k = r->e0; k < r->e1; k++) {
        long long off = (ent[k].id % chunk_rows) * row_bytes - r->off;
        if (off + row_bytes > got) return -1;
        memcpy(out + ent[k].pos * row_bytes, buf + off, (size_t)row_bytes);
    }
    return 0;
}

typedef struct {
    const tiered_ssd *h;
    const run *runs;
    long long nr;
    const entry *ent;
    long long chunk_rows, row_bytes, buf_cap;
    char *out;
    atomic_llong next;
    atomic_llong bytes;
    atomic_int failed;
    pthread_mutex_t lock;
    char msg[256];
} pool_job;

static void pool_fail(pool_job *j, const char *fmt, long long a, const char *b)
{
    pthread_mutex_lock(&j->lock);
    if (!atomic_load(&j->failed)) snprintf(j->msg, sizeof j->msg, fmt, a, b);
    atomic_store(&j->failed, 1);
    pthread_mutex_unlock(&j->lock);
}

static void *pool_worker(void *arg)
{
    pool_job *j = arg;
    char *buf = NULL;
    if (posix_memalign((void **)&buf, (size_t)PAGE, (size_t)j->buf_cap)) {
        pool_fail(j, "out of memory for a %lld-byte read buffer%s", j->buf_cap, "");
        return NULL;
    }
    for (;;) {
        long long i = atomic_fetch_add(&j->next, 1);
        if (i >= j->nr || atomic_load(&j->failed)) break;
        const run *r = &j->runs[i];
        long long got = 0;
        while (got < r->len) {
            ssize_t res = pread(j->h->rfd[r->file], buf + got, (size_t)(r->len - got), r->off + got);
            if (res < 0) {
                if (errno == EINTR) continue;
                pool_fail(j, "read of chunk %lld failed: %s", r->file, strerror(errno));
                goto out;
            }
            if (res == 0) break;
            got += res;
        }
        if (copy_run(r, j->ent, buf, got, j->chunk_rows, j->row_bytes, j->out)) {
            pool_fail(j, "chunk %lld is shorter than its rows need (file truncated?)%s", r->file, "");
            goto out;
        }
        atomic_fetch_add(&j->bytes, r->len);
    }
out:
    free(buf);
    return NULL;
}

static long long gather_threads(const tiered_ssd *h, const run *runs, long long nr, const entry *ent,
                                long long chunk_rows, long long row_bytes, char *out,
                                int nthreads, long long buf_cap, char *err, int errlen)
{
    pool_job j = { .h = h, .runs = runs, .nr = nr, .ent = ent, .chunk_rows = chunk_rows,
                   .row_bytes = row_bytes, .buf_cap = buf_cap, .out = out };
    atomic_init(&j.next, 0);
    atomic_init(&j.bytes, 0);
    atomic_init(&j.failed, 0);
    pthread_mutex_init(&j.lock, NULL);
    if (nthreads > nr) nthreads = (int)nr;
    if (nthreads < 1) nthreads = 1;
    pthread_t *tids = calloc((size_t)nthreads, sizeof(pthread_t));
    int started = 0;
    if (tids) {
        for (; started < nthreads - 1; started++)
            if (pthread_create(&tids[started], NULL, pool_worker, &j)) break;
    }
    pool_worker(&j);                      /* the calling thread works too */
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    free(tids);
    pthread_mutex_destroy(&j.lock);
    if (atomic_load(&j.failed)) { seterr(err, errlen, "%s", j.msg); return -1; }
    return atomic_load(&j.bytes);
}

#ifdef TIERED_HAVE_URING
static long long gather_uring(const tiered_ssd *h, const run *runs, long long nr, const entry *ent,
                              long long chunk_rows, long long row_bytes, char *out,
                              int qd, long long buf_cap, char *err, int errlen)
{
    if (qd > nr) qd = (int)nr;
    if (qd < 1) qd = 1;
    struct io_uring ring;
    int ret = io_uring_queue_init((unsigned)qd, &ring, 0);
    if (ret < 0) { seterr(err, errlen, "io_uring_queue_init: %s", strerror(-ret)); return -1; }
    char *mem = NULL;
    long long *slot_run = malloc(sizeof(long long) * (size_t)qd);
    long long *slot_got = malloc(sizeof(long long) * (size_t)qd);
    int *free_slots = malloc(sizeof(int) * (size_t)qd);
    if (posix_memalign((void **)&mem, (size_t)PAGE, (size_t)(buf_cap * qd)) || !slot_run ||
        !slot_got || !free_slots) {
        seterr(err, errlen, "out of memory for %d read buffers", qd);
        free(slot_run); free(slot_got); free(free_slots); free(mem);
        io_uring_queue_exit(&ring);
        return -1;
    }
    int nfree = qd;
    for (int s = 0; s < qd; s++) free_slots[s] = qd - 1 - s;
    long long next = 0, done = 0, total = 0;
    int inflight = 0, failed = 0;

    while (inflight > 0 || (!failed && done < nr)) {
        while (!failed && nfree > 0 && next < nr) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (!sqe) break;
            int s = free_slots[--nfree];
            const run *r = &runs[next];
            io_uring_prep_read(sqe, h->rfd[r->file], mem + (long long)s * buf_cap, (unsigned)r->len, (__u64)r->off);
            sqe->user_data = (__u64)s;
            slot_run[s] = next++;
            slot_got[s] = 0;
            inflight++;
        }
        ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0 && ret != -EINTR) {
            if (!failed) seterr(err, errlen, "io_uring_submit: %s", strerror(-ret));
            failed = 1;
            if (ret != -EAGAIN && ret != -EBUSY) break;   /* cannot reap safely: give up below */
        }
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            int s = (int)cqe->user_data;
            int res = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            const run *r = &runs[slot_run[s]];
            if (!failed && (res == -EAGAIN || res == -EINTR || (res > 0 && slot_got[s] + res < r->len))) {
                if (res > 0) slot_got[s] += res;      /* short read: ask for the rest */
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                if (sqe) {
                    io_uring_prep_read(sqe, h->rfd[r->file], mem + (long long)s * buf_cap + slot_got[s],
                                       (unsigned)(r->len - slot_got[s]), (__u64)(r->off + slot_got[s]));
                    sqe->user_data = (__u64)s;
                    continue;
                }
                res = -EAGAIN;
            }
            inflight--;
            free_slots[nfree++] = s;
            if (failed) continue;
            if (res < 0) {
                seterr(err, errlen, "read of chunk %d at offset %lld failed: %s", r->file, r->off, strerror(-res));
                failed = 1;
                continue;
            }
            long long got = slot_got[s] + res;
            if (copy_run(r, ent, mem + (long long)s * buf_cap, got, chunk_rows, row_bytes, out)) {
                seterr(err, errlen, "chunk %d is shorter than its rows need (file truncated?)", r->file);
                failed = 1;
                continue;
            }
            total += r->len;
            done++;
        }
    }
    io_uring_queue_exit(&ring);
    free(slot_run); free(slot_got); free(free_slots); free(mem);
    return failed ? -1 : total;
}
#endif

long long tiered_ssd_gather(tiered_ssd *h, const long long *ids, long long n,
                            long long chunk_rows, long long row_bytes, char *out,
                            int queue_depth, long long max_run_bytes, int max_gap_pages,
                            char *err, int errlen)
{
    if (n <= 0) return 0;
    if (chunk_rows <= 0 || row_bytes <= 0 || queue_depth <= 0) {
        seterr(err, errlen, "bad arguments: chunk_rows %lld, row_bytes %lld, queue_depth %d",
               chunk_rows, row_bytes, queue_depth);
        return -1;
    }
    entry *ent = malloc(sizeof(entry) * (size_t)n);
    run *runs = malloc(sizeof(run) * (size_t)n);
    if (!ent || !runs) { free(ent); free(runs); seterr(err, errlen, "out of memory for %lld ids", n); return -1; }
    int sorted = 1;
    for (long long k = 0; k < n; k++) {
        ent[k].id = ids[k];
        ent[k].pos = k;
        if (k && ids[k] < ids[k - 1]) sorted = 0;
        if (ids[k] / chunk_rows >= h->nfiles) {
            seterr(err, errlen, "row %lld is past the last chunk file", ids[k]);
            free(ent); free(runs);
            return -1;
        }
    }
    if (!sorted) qsort(ent, (size_t)n, sizeof(entry), cmp_entry);
    long long max_run = max_run_bytes < PAGE ? PAGE : max_run_bytes / PAGE * PAGE;
    long long row_span = (row_bytes + PAGE - 1) / PAGE * PAGE + PAGE;   /* pages one row can touch */
    long long buf_cap = max_run + row_span;
    long long nr = build_runs(ent, n, chunk_rows, row_bytes, max_run, buf_cap, max_gap_pages, runs);
    long long total;
#ifdef TIERED_HAVE_URING
    if (h->backend == BACKEND_URING)
        total = gather_uring(h, runs, nr, ent, chunk_rows, row_bytes, out, queue_depth, buf_cap, err, errlen);
    else
#endif
        total = gather_threads(h, runs, nr, ent, chunk_rows, row_bytes, out, queue_depth, buf_cap, err, errlen);
    free(ent);
    free(runs);
    return total;
}

long long tiered_ssd_write(tiered_ssd *h, const long long *ids, long long n,
                           long long chunk_rows, long long row_bytes, const char *rows,
                           char *err, int errlen)
{
    if (n > 0 && (!h->wfd || h->wfd[0] < 0)) { seterr(err, errlen, "tier was opened read-only"); return -1; }
    long long total = 0;
    for (long long k = 0; k < n; k++) {
        long long file = ids[k] / chunk_rows;
        if (file >= h->nfiles) { seterr(err, errlen, "row %lld is past the last chunk file", ids[k]); return -1; }
        long long off = (ids[k] % chunk_rows) * row_bytes, done = 0;
        while (done < row_bytes) {
            ssize_t res = pwrite(h->wfd[file], rows + k * row_bytes + done, (size_t)(row_bytes - done), off + done);
            if (res < 0) {
                if (errno == EINTR) continue;
                seterr(err, errlen, "write to chunk %lld failed: %s", file, strerror(errno));
                return -1;
            }
            done += res;
        }
        total += row_bytes;
    }
    return total;
}

int tiered_ssd_sync(tiered_ssd *h, char *err, int errlen)
{
    for (int i = 0; i < h->nfiles; i++) {
        if (h->wfd[i] >= 0 && fsync(h->wfd[i])) {
            seterr(err, errlen, "fsync of chunk %d failed: %s", i, strerror(errno));
            return -1;
        }
    }
    return 0;
}
