// Prints how fast this machine hands a process fresh memory: MiB of anonymous pages
// touched (one write per 4 KiB page) per second, then freed. On a VM whose balloon reports
// free pages to the host (virtio-balloon free page reporting), a page the guest freed a few
// seconds ago may be gone from the host: its first touch is a host fault (seen here: 1-3
// GiB/s, the same run's pwrite into fresh page cache 0.4-5 GB/s). The page cache a recall (or cp) writes comes from the same
// free memory, so bench 2 prints this beside its figures (docs/recall.md "Fresh memory").
// Usage: memtouch MIB
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv) {
  long mib = argc > 1 ? atol(argv[1]) : 256;
  long n = mib << 20;
  struct timespec a, b;
  char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i += 4096) p[i] = 1;
  clock_gettime(CLOCK_MONOTONIC, &b);
  munmap(p, n);
  double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  printf("%.0f\n", mib / s);
  return 0;
}
