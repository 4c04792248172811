/*
 * The Figure 4 workload of Balloon Performer, and the stand-in for a process VM.
 *
 *   memload random MIN_MIB MAX_MIB HOLD_MS SEED   every HOLD_MS: free the block, malloc a new one
 *                                                  of a random size in [MIN_MIB, MAX_MIB] MiB and
 *                                                  write every page of it (so it is resident)
 *   memload hold MIB                              allocate and write MIB MiB once, then sleep
 *
 * After each change it prints "size BYTES" on stdout (line-buffered). Runs until killed.
 * glibc serves blocks this large with mmap, so free() returns them to the kernel at once and
 * VmRSS follows the program's allocation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

static unsigned long long xorshift64(unsigned long long *s) {
  unsigned long long x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static char *allocate_and_touch(unsigned long bytes) {
  char *p = malloc(bytes);
  if (p == NULL) {
    fprintf(stderr, "memload: malloc(%lu) failed\n", bytes);
    exit(1);
  }
  /* Write one byte per page: every page becomes resident and private to us. */
  long page = sysconf(_SC_PAGESIZE);
  for (unsigned long off = 0; off < bytes; off += (unsigned long)page) p[off] = (char)(off >> 12);
  return p;
}

static long parse_long(const char *s, const char *what) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 0) {
    fprintf(stderr, "memload: %s must be a non-negative integer, got \"%s\"\n", what, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "hold") == 0) {
    unsigned long bytes = (unsigned long)parse_long(argv[2], "MIB") * MIB;
    char *p = allocate_and_touch(bytes);
    printf("size %lu\n", bytes);
    for (;;) pause();
    free(p);
  }
  if (argc == 6 && strcmp(argv[1], "random") == 0) {
    long min = parse_long(argv[2], "MIN_MIB"), max = parse_long(argv[3], "MAX_MIB");
    long hold = parse_long(argv[4], "HOLD_MS");
    unsigned long long seed = (unsigned long long)parse_long(argv[5], "SEED") | 1ULL;
    if (min < 1 || max < min || hold < 1) {
      fprintf(stderr, "memload: need 1 <= MIN_MIB <= MAX_MIB and HOLD_MS >= 1\n");
      return 2;
    }
    for (;;) {
      unsigned long bytes = (unsigned long)(min + (long)(xorshift64(&seed) % (unsigned long long)(max - min + 1))) * MIB;
      char *p = allocate_and_touch(bytes);
      printf("size %lu\n", bytes);
      sleep_ms(hold);
      free(p);
    }
  }
  fprintf(stderr, "usage: memload random MIN_MIB MAX_MIB HOLD_MS SEED | memload hold MIB\n");
  return 2;
}
