// The arithmetic of a binary GEMM with nothing else: register-only loops of vpxord + vpopcntd + vpaddd, one
// triple per 512 multiply-accumulates (a word of 16 lanes), no memory access, no store of results, no scheduling.
// Timed in the same rounds as the layers (popcount_floor.py), that many triples are the time no kernel of this
// design reaches on this machine at that moment.
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

// 12 independent accumulators, as in the GEMM's 4 x 3 register tile: 4 broadcast rows x 3 panels, all in
// registers. Spelled out: GCC keeps an array of vectors in memory, and its stores would be what is measured.
static void triple_loop(long n) {
  const __m512i seed = _mm512_set1_epi32((int)n);  // not a constant the compiler could fold
  __m512i b0 = seed, b1 = _mm512_add_epi32(seed, seed), b2 = _mm512_sub_epi32(b1, seed);
  __m512i r0 = _mm512_slli_epi32(seed, 1), r1 = _mm512_slli_epi32(seed, 2), r2 = _mm512_slli_epi32(seed, 3);
  __m512i r3 = _mm512_slli_epi32(seed, 4);
  __m512i a0 = seed, a1 = seed, a2 = seed, a3 = seed, a4 = seed, a5 = seed;
  __m512i a6 = seed, a7 = seed, a8 = seed, a9 = seed, a10 = seed, a11 = seed;
#define TRIPLE(acc, row, panel) acc = _mm512_add_epi32(acc, _mm512_popcnt_epi32(_mm512_xor_si512(row, panel)))
  for (long done = 0; done < n; done += 12) {
    TRIPLE(a0, r0, b0), TRIPLE(a1, r0, b1), TRIPLE(a2, r0, b2), TRIPLE(a3, r1, b0), TRIPLE(a4, r1, b1);
    TRIPLE(a5, r1, b2), TRIPLE(a6, r2, b0), TRIPLE(a7, r2, b1), TRIPLE(a8, r2, b2), TRIPLE(a9, r3, b0);
    TRIPLE(a10, r3, b1), TRIPLE(a11, r3, b2);
    // Never used and never stored: this keeps every accumulator, and new operands for the next word.
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7),
                     "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    __asm__ volatile("" : "+v"(b0), "+v"(b1), "+v"(b2), "+v"(r0), "+v"(r1), "+v"(r2), "+v"(r3));
  }
#undef TRIPLE
}

static double seconds_between(struct timespec begin, struct timespec end) {
  return (double)(end.tv_sec - begin.tv_sec) + (double)(end.tv_nsec - begin.tv_nsec) * 1e-9;
}

// A start line for the threads of one call: a thread created on an idle vCPU of a VM can take milliseconds to
// begin, which is not the machine's arithmetic; each thread waits here, spinning, until all of them run.
struct start_line {
  atomic_int arrived;
  atomic_int threads;
  long n;
};

static void wait_for_all(struct start_line* line) {
  atomic_fetch_add(&line->arrived, 1);
  while (atomic_load(&line->arrived) < atomic_load(&line->threads)) {
  }
}

static void* triple_thread(void* arg) {
  struct start_line* line = arg;
  wait_for_all(line);
  triple_loop(line->n);
  return 0;
}

// n triples on each of `threads` threads at once (at most 64), the caller being one of them. Returns the seconds
// from the moment all of them run to the moment the last one is done, or -1 when a thread could not be started.
double triples(long n, int threads) {
  pthread_t others[63];
  struct start_line line = {0, threads, n};
  int started = 0;
  for (; started < threads - 1 && started < 63; ++started) {
    if (pthread_create(&others[started], 0, triple_thread, &line) != 0) break;
  }
  if (started != threads - 1) atomic_store(&line.threads, started + 1);  // releases the threads that did start
  wait_for_all(&line);
  struct timespec begin, end;
  clock_gettime(CLOCK_MONOTONIC, &begin);
  triple_loop(n);
  for (int i = 0; i < started; ++i) pthread_join(others[i], 0);
  clock_gettime(CLOCK_MONOTONIC, &end);
  if (started != threads - 1) return -1;
  return seconds_between(begin, end);
}

// The host's state, which no load average shows: on this VM the cores' loads from L1 ran 1.6x slower (at times
// 4x) in phases of seconds, another guest sharing the core most likely, while register-only arithmetic
// (triple_loop) and the clock did not change. The fastest of `repeats` timings of `passes` sums of a 32 KB buffer
// (512-bit loads into one chain of adds), after an untimed pass that brings the buffer back into L1.
#define PROBE_WORDS (32768 / sizeof(__m512i))

static __m512i sum_passes(const __m512i* words, long passes) {
  __m512i sum = _mm512_setzero_si512();
  for (long pass = 0; pass < passes; ++pass) {
    for (unsigned i = 0; i < PROBE_WORDS; ++i) sum = _mm512_add_epi32(sum, words[i]);
    __asm__ volatile("" : "+v"(sum));  // each pass loads again
  }
  return sum;
}

double l1_load_seconds(long passes, int repeats) {
  static __m512i buffer[PROBE_WORDS];
  const __m512i* words = buffer;
  __asm__ volatile("" : "+r"(words));  // contents the compiler cannot know (they are zeros), so it loads them
  __m512i sum = sum_passes(words, 1);
  double fastest = -1;
  for (int i = 0; i < repeats; ++i) {
    struct timespec begin, end;
    clock_gettime(CLOCK_MONOTONIC, &begin);
    sum = _mm512_add_epi32(sum, sum_passes(words, passes));
    clock_gettime(CLOCK_MONOTONIC, &end);
    const double seconds = seconds_between(begin, end);
    if (fastest < 0 || seconds < fastest) fastest = seconds;
  }
  __asm__ volatile("" : : "v"(sum));
  return fastest;
}
