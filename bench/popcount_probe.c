// The arithmetic of a binary GEMM with nothing else: register-only loops of xor, popcount and add, no memory
// access, no store of results, no scheduling. Timed in the same rounds as the layers (popcount_floor.py), the
// layer's bit-pairs counted this way take the time no kernel reaches on this machine at that moment.
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "carry_save.h"

// A unit of work is 512 bit-pairs: one 512-bit xor/popcount/add triple, two 256-bit words of 8 lanes, or eight
// 64-bit scalar words. Built for AVX-512 VPOPCNTDQ (-mavx512vpopcntdq) the probe has one method; built for AVX2
// (-mavx2 -mpopcnt) four, and popcount_floor.py takes the fastest as the floor. In every loop the operands are
// kept in registers and declared changed after each use (empty asm), so nothing is folded or stored.
#define KEEP(...) __asm__ volatile("" : __VA_ARGS__)

#if defined(__AVX512VPOPCNTDQ__)
// 12 independent accumulators, as in the GEMM's 4 x 3 register tile: 4 broadcast rows x 3 panels, all in
// registers. Spelled out: GCC keeps an array of vectors in memory, and its stores would be what is measured.
static void vpopcntd_loop(long n) {
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
    KEEP("+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9),
         "+v"(a10), "+v"(a11));
    KEEP("+v"(b0), "+v"(b1), "+v"(b2), "+v"(r0), "+v"(r1), "+v"(r2), "+v"(r3));
  }
#undef TRIPLE
}

static void (*const kLoops[])(long) = {vpopcntd_loop};
static const char* const kNames[] = {"vpopcntd"};
typedef __m512i vector;
#define VECTOR_ADD _mm512_add_epi32
#define VECTOR_ZERO _mm512_setzero_si512

#elif defined(__AVX2__) && defined(__POPCNT__)
// Nibble lookup, as the AVX2 GEMM counts: 3 broadcast rows x 2 half panels into byte counters (their widening,
// once per 31 words, left out).
static void nibble_loop(long n) {
  const __m256i seed = _mm256_set1_epi32((int)n);
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  __m256i b0 = seed, b1 = _mm256_add_epi32(seed, seed);
  __m256i r0 = _mm256_slli_epi32(seed, 1), r1 = _mm256_slli_epi32(seed, 2), r2 = _mm256_slli_epi32(seed, 3);
  __m256i a0 = seed, a1 = seed, a2 = seed, a3 = seed, a4 = seed, a5 = seed;
#define COUNT(acc, row, half)                                                                                      \
  do {                                                                                                             \
    const __m256i x = _mm256_xor_si256(row, half);                                                                 \
    const __m256i lo = _mm256_and_si256(x, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble);       \
    acc = _mm256_add_epi8(acc, _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi)));       \
  } while (0)
  for (long done = 0; done < n; done += 3) {  // 6 counts of 8 lanes: 3 units
    COUNT(a0, r0, b0); COUNT(a1, r0, b1); COUNT(a2, r1, b0); COUNT(a3, r1, b1); COUNT(a4, r2, b0); COUNT(a5, r2, b1);
    KEEP("+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
    KEEP("+x"(b0), "+x"(b1), "+x"(r0), "+x"(r1), "+x"(r2));
  }
#undef COUNT
}

// Harley-Seal: 16 xored words through carry-save adders (5 instructions each without ternary logic), one nibble
// lookup per 16 words. The 16 words are one row xored with 4 columns, the columns renewed after each 4.
static void harley_seal_loop(long n) {
  const __m256i seed = _mm256_set1_epi32((int)n);
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  __m256i r0 = _mm256_add_epi32(seed, seed);
  __m256i b0 = _mm256_slli_epi32(seed, 1), b1 = _mm256_slli_epi32(seed, 2), b2 = _mm256_slli_epi32(seed, 3);
  __m256i b3 = _mm256_slli_epi32(seed, 4);
  __m256i ones = seed, twos = seed, fours = seed, eights = seed, total = seed;
// Adds 8 xored words into ones, twos and fours; the carry out of fours is `carry`.
#define ADD_EIGHT(carry)                                                                                    \
  do {                                                                                                      \
    __m256i twos_a, twos_b, fours_a, fours_b;                                                               \
    CSA(twos_a, ones, ones, _mm256_xor_si256(r0, b0), _mm256_xor_si256(r0, b1));                            \
    CSA(twos_b, ones, ones, _mm256_xor_si256(r0, b2), _mm256_xor_si256(r0, b3));                            \
    CSA(fours_a, twos, twos, twos_a, twos_b);                                                               \
    KEEP("+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3));                                                           \
    CSA(twos_a, ones, ones, _mm256_xor_si256(r0, b0), _mm256_xor_si256(r0, b1));                            \
    CSA(twos_b, ones, ones, _mm256_xor_si256(r0, b2), _mm256_xor_si256(r0, b3));                            \
    CSA(fours_b, twos, twos, twos_a, twos_b);                                                               \
    CSA(carry, fours, fours, fours_a, fours_b);                                                             \
    KEEP("+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3));                                                           \
  } while (0)
  for (long done = 0; done < n; done += 8) {  // 16 words of 8 lanes: 8 units
    __m256i eights_a, eights_b, sixteens;
    ADD_EIGHT(eights_a);
    ADD_EIGHT(eights_b);
    CSA(sixteens, eights, eights, eights_a, eights_b);
    const __m256i lo = _mm256_and_si256(sixteens, nibble);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(sixteens, 4), nibble);
    total = _mm256_add_epi8(total, _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi)));
    KEEP("+x"(total), "+x"(ones), "+x"(twos), "+x"(fours), "+x"(eights), "+x"(r0));
  }
#undef ADD_EIGHT
}

// Table lookup, as the AVX2 GEMM counts: 4 rows' tables (each a row's nibble's popcounts) x 2 panels of 32
// columns' nibbles, a shuffle and a byte add each (the tables' loads by the rows' nibbles, and the counters'
// widening, left out).
static void table_loop(long n) {
  const __m256i seed = _mm256_set1_epi32((int)n);
  __m256i t0 = seed, t1 = _mm256_add_epi32(seed, seed), t2 = _mm256_slli_epi32(seed, 1);
  __m256i t3 = _mm256_slli_epi32(seed, 2), p0 = _mm256_slli_epi32(seed, 3), p1 = _mm256_slli_epi32(seed, 4);
  __m256i a0 = seed, a1 = seed, a2 = seed, a3 = seed, a4 = seed, a5 = seed, a6 = seed, a7 = seed;
#define LOOKUP(acc, table, panel) acc = _mm256_add_epi8(acc, _mm256_shuffle_epi8(table, panel))
  for (long done = 0; done < n; done += 2) {  // 4 rows x 64 columns x 4 bits: 2 units
    LOOKUP(a0, t0, p0); LOOKUP(a1, t0, p1); LOOKUP(a2, t1, p0); LOOKUP(a3, t1, p1);
    LOOKUP(a4, t2, p0); LOOKUP(a5, t2, p1); LOOKUP(a6, t3, p0); LOOKUP(a7, t3, p1);
    KEEP("+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7));
    KEEP("+x"(t0), "+x"(t1), "+x"(t2), "+x"(t3), "+x"(p0), "+x"(p1));
  }
#undef LOOKUP
}

// Scalar popcnt of 64-bit words: 2 rows x 3 columns, 6 accumulators (the general registers hold 15 values).
static void scalar_popcnt_loop(long n) {
  uint64_t r0 = (uint64_t)n, r1 = r0 * 3, b0 = r0 * 5, b1 = r0 * 7, b2 = r0 * 11;
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0;
#define TRIPLE(acc, row, column) acc += (uint64_t)__builtin_popcountll(row ^ column)
  for (long done = 0; done < 4 * n; done += 3) {  // 6 words of 64 bits: 3/4 unit
    TRIPLE(a0, r0, b0), TRIPLE(a1, r0, b1), TRIPLE(a2, r0, b2), TRIPLE(a3, r1, b0), TRIPLE(a4, r1, b1);
    TRIPLE(a5, r1, b2);
    KEEP("+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5));
    KEEP("+r"(b0), "+r"(b1), "+r"(b2), "+r"(r0), "+r"(r1));
  }
#undef TRIPLE
}

static void (*const kLoops[])(long) = {nibble_loop, harley_seal_loop, table_loop, scalar_popcnt_loop};
static const char* const kNames[] = {"nibble lookup", "Harley-Seal", "table lookup", "scalar popcnt"};
typedef __m256i vector;
#define VECTOR_ADD _mm256_add_epi32
#define VECTOR_ZERO _mm256_setzero_si256

#else
#error "build with -mavx512f -mavx512vpopcntdq, or with -mavx2 -mpopcnt"
#endif

#undef KEEP

int methods(void) { return (int)(sizeof(kLoops) / sizeof(kLoops[0])); }
const char* method_name(int method) { return kNames[method]; }

static double seconds_between(struct timespec begin, struct timespec end) {
  return (double)(end.tv_sec - begin.tv_sec) + (double)(end.tv_nsec - begin.tv_nsec) * 1e-9;
}

// A start line for the threads of one call: a thread created on an idle vCPU of a VM can take milliseconds to
// begin, which is not the machine's arithmetic; each thread waits here, spinning, until all of them run.
struct start_line {
  atomic_int arrived;
  atomic_int threads;
  void (*loop)(long);
  long n;
};

static void wait_for_all(struct start_line* line) {
  atomic_fetch_add(&line->arrived, 1);
  while (atomic_load(&line->arrived) < atomic_load(&line->threads)) {
  }
}

static void* unit_thread(void* arg) {
  struct start_line* line = arg;
  wait_for_all(line);
  line->loop(line->n);
  return 0;
}

// n units of `method` on each of `threads` threads at once (at most 64), the caller being one of them. Returns the
// seconds from the moment all of them run to the moment the last one is done, or -1 when a thread could not be
// started.
double units(int method, long n, int threads) {
  pthread_t others[63];
  struct start_line line = {0, threads, kLoops[method], n};
  int started = 0;
  for (; started < threads - 1 && started < 63; ++started) {
    if (pthread_create(&others[started], 0, unit_thread, &line) != 0) break;
  }
  if (started != threads - 1) atomic_store(&line.threads, started + 1);  // releases the threads that did start
  wait_for_all(&line);
  struct timespec begin, end;
  clock_gettime(CLOCK_MONOTONIC, &begin);
  line.loop(n);
  for (int i = 0; i < started; ++i) pthread_join(others[i], 0);
  clock_gettime(CLOCK_MONOTONIC, &end);
  if (started != threads - 1) return -1;
  return seconds_between(begin, end);
}

// The host's state, which no load average shows: on this VM the cores' loads from L1 ran 1.6x slower (at times
// 4x) in phases of seconds, another guest sharing the core most likely, while register-only arithmetic
// (the loops above) and the clock did not change. The fastest of `repeats` timings of `passes` sums of a 32 KB buffer
// (vector loads into one chain of adds), after an untimed pass that brings the buffer back into L1.
#define PROBE_WORDS (32768 / sizeof(vector))

static vector sum_passes(const vector* words, long passes) {
  vector sum = VECTOR_ZERO();
  for (long pass = 0; pass < passes; ++pass) {
    for (unsigned i = 0; i < PROBE_WORDS; ++i) sum = VECTOR_ADD(sum, words[i]);
    __asm__ volatile("" : "+x"(sum));  // each pass loads again
  }
  return sum;
}

double l1_load_seconds(long passes, int repeats) {
  static vector buffer[PROBE_WORDS];
  const vector* words = buffer;
  __asm__ volatile("" : "+r"(words));  // contents the compiler cannot know (they are zeros), so it loads them
  vector sum = sum_passes(words, 1);
  double fastest = -1;
  for (int i = 0; i < repeats; ++i) {
    struct timespec begin, end;
    clock_gettime(CLOCK_MONOTONIC, &begin);
    sum = VECTOR_ADD(sum, sum_passes(words, passes));
    clock_gettime(CLOCK_MONOTONIC, &end);
    const double seconds = seconds_between(begin, end);
    if (fastest < 0 || seconds < fastest) fastest = seconds;
  }
  __asm__ volatile("" : : "x"(sum));
  return fastest;
}
