/* The reader for benchmark 5: N preads of 4 KiB at pseudo-random page offsets inside the
 * first SPAN bytes of FILE (random, so a handler's sequential read-ahead never starts),
 * timing each. Prints "median_ns mean_ns p99_ns".
 *   preader FILE N SPAN
 * (Also the sequential reader of benchmark 4: see seq() below, and the first-byte timer
 * of benchmark 3: first().) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* preader FILE seq: reads FILE front to back in 128 KiB read()s (what cat does) and
 * prints "elapsed_ns bytes": the read loop alone, without process start-up. */
static int seq(const char *path) {
  static char buf[128 * 1024];
  int fd = open(path, O_RDONLY);
  if (fd < 0) { perror(path); return 1; }
  uint64_t t0 = now_ns(), total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) { perror("read"); return 1; }
    if (n == 0) break;
    total += (uint64_t)n;
  }
  printf("%llu %llu\n", (unsigned long long)(now_ns() - t0), (unsigned long long)total);
  return 0;
}

/* preader FILE first: open() + read() of 1 byte, timed from before the open to after the
 * read returns (what "first byte" means: no process start-up). Prints "elapsed_ns open_ns". */
static int first(const char *path) {
  char c;
  uint64_t t0 = now_ns();
  int fd = open(path, O_RDONLY);
  if (fd < 0) { perror(path); return 1; }
  uint64_t t1 = now_ns();
  if (read(fd, &c, 1) != 1) { perror("read"); return 1; }
  uint64_t t2 = now_ns();
  printf("%llu %llu\n", (unsigned long long)(t2 - t0), (unsigned long long)(t1 - t0));
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[2], "seq") == 0) return seq(argv[1]);
  if (argc == 3 && strcmp(argv[2], "first") == 0) return first(argv[1]);
  if (argc != 4) {
    fprintf(stderr, "usage: %s FILE N SPAN\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  long pages = atol(argv[3]) / 4096;
  if (n <= 0 || pages <= 0) { fprintf(stderr, "preader: bad N or SPAN\n"); return 2; }
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) { perror(argv[1]); return 1; }
  uint64_t *t = malloc(sizeof *t * (size_t)n);
  char buf[4096];
  uint32_t x = 2463534242u;
  uint64_t sum = 0;
  for (long i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    off_t off = (off_t)(x % (uint32_t)pages) * 4096;
    uint64_t t0 = now_ns();
    if (pread(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf) { perror("pread"); return 1; }
    t[i] = now_ns() - t0;
    sum += t[i];
  }
  qsort(t, (size_t)n, sizeof *t, cmp);
  printf("%llu %llu %llu\n", (unsigned long long)t[n / 2], (unsigned long long)(sum / (uint64_t)n),
         (unsigned long long)t[(n * 99) / 100]);
  return 0;
}
