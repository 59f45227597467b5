/* The baseline for benchmark 5: the smallest fanotify pre-content handler. It marks one
 * file with FAN_PRE_ACCESS and answers every event FAN_ALLOW at once (no lookup, no
 * fill), so the difference to tier's Node handler is that handler's own cost.
 *   c-handler FILE     prints "ready" once the mark is in place; SIGTERM ends it.
 * Debian's <linux/fanotify.h> predates pre-content events: the constants are defined here
 * (values measured, /work/shared/docs/kernel-facts.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#ifndef FAN_CLASS_PRE_CONTENT
#define FAN_CLASS_PRE_CONTENT 0x08
#endif
#define PRE_ACCESS 0x00100000ULL

static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_term; /* no SA_RESTART: read() returns EINTR and we leave */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int g = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
  if (g < 0) { perror("fanotify_init"); return 1; }
  if (fanotify_mark(g, FAN_MARK_ADD, PRE_ACCESS, AT_FDCWD, argv[1]) < 0) {
    fprintf(stderr, "fanotify_mark %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  static char buf[64 * 1024] __attribute__((aligned(8)));
  unsigned long events = 0;
  while (!stop) {
    ssize_t n = read(g, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("read");
      continue; /* ETXTBSY and friends: never fatal */
    }
    struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)buf;
    for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
      if (m->fd < 0) continue;
      struct fanotify_response r = { .fd = m->fd, .response = FAN_ALLOW };
      if (write(g, &r, sizeof r) != sizeof r) perror("write response");
      close(m->fd);
      events++;
    }
  }
  fprintf(stderr, "c-handler: %lu events\n", events);
  return 0;
}
