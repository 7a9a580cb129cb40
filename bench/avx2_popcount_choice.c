// Why the AVX2 kernel (custom_ops/src/kernels/bgemm_avx2.cc) counts bits by nibble lookup and not by Harley-Seal: both in
// the binary GEMM's pattern, out[r][l] = sum over K words of popcount(a[r][k] ^ b[k][l]) for 16 lanes (two ymm),
// checked equal, and timed per (row, 16 lanes, word) for the reductions of 64- to 512-channel 3x3 layers (K = 18
// to 144 words). Nibble lookup: 3 rows x 2 halves, byte counters widened every 31 words, as the kernel does.
// Harley-Seal: carry-save adders over blocks of 16 words (AVX2 has no ternary logic: 5 instructions per adder),
// one row at a time, since its 4 counters per half leave no registers for more.
// On this project's Ice Lake VM (2026-11-26, -mavx2), Harley-Seal took 1.03-1.60x nibble lookup's time (3 runs).
//     cc -O2 -mavx2 -o /tmp/avx2_popcount_choice bench/avx2_popcount_choice.c && /tmp/avx2_popcount_choice
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "carry_save.h"

#define ROWS 48
#define MAX_WORDS 160
static uint32_t A[ROWS][MAX_WORDS], B[MAX_WORDS][16];
static int32_t OUT[ROWS][16];

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static __m256i PopcountBytes(__m256i v) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(v, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

static __m256i Widen(__m256i bytes) {  // each 32-bit lane's four byte counts, summed
  return _mm256_madd_epi16(_mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
}

static __m256i Popcount32(__m256i v) { return Widen(PopcountBytes(v)); }

static __m256i Column(int k, int half) { return _mm256_loadu_si256((const __m256i*)(B[k] + 8 * half)); }

static void NibbleLookup(int words) {
  for (int r0 = 0; r0 < ROWS; r0 += 3) {
    __m256i totals[3][2];
    for (int r = 0; r < 3; r++) totals[r][0] = totals[r][1] = _mm256_setzero_si256();
    for (int chunk = 0; chunk < words; chunk += 31) {
      const int end = words < chunk + 31 ? words : chunk + 31;
      __m256i bytes[3][2];
      for (int r = 0; r < 3; r++) bytes[r][0] = bytes[r][1] = _mm256_setzero_si256();
      for (int k = chunk; k < end; k++) {
        const __m256i b0 = Column(k, 0), b1 = Column(k, 1);
        for (int r = 0; r < 3; r++) {
          const __m256i a = _mm256_set1_epi32((int)A[r0 + r][k]);
          bytes[r][0] = _mm256_add_epi8(bytes[r][0], PopcountBytes(_mm256_xor_si256(a, b0)));
          bytes[r][1] = _mm256_add_epi8(bytes[r][1], PopcountBytes(_mm256_xor_si256(a, b1)));
        }
      }
      for (int r = 0; r < 3; r++) {
        for (int h = 0; h < 2; h++) totals[r][h] = _mm256_add_epi32(totals[r][h], Widen(bytes[r][h]));
      }
    }
    for (int r = 0; r < 3; r++) {
      for (int h = 0; h < 2; h++) _mm256_storeu_si256((__m256i*)(OUT[r0 + r] + 8 * h), totals[r][h]);
    }
  }
}


// Adds 8 words into the ones, twos and fours counters; the carries out of fours come back as eights.
static inline void AddEight(const __m256i* x, __m256i* ones, __m256i* twos, __m256i* fours, __m256i* eights) {
  __m256i twos_a, twos_b, fours_a, fours_b;
  CSA(twos_a, *ones, *ones, x[0], x[1]);
  CSA(twos_b, *ones, *ones, x[2], x[3]);
  CSA(fours_a, *twos, *twos, twos_a, twos_b);
  CSA(twos_a, *ones, *ones, x[4], x[5]);
  CSA(twos_b, *ones, *ones, x[6], x[7]);
  CSA(fours_b, *twos, *twos, twos_a, twos_b);
  CSA(*eights, *fours, *fours, fours_a, fours_b);
}

static void HarleySeal(int words) {
  for (int r = 0; r < ROWS; r++) {
    for (int h = 0; h < 2; h++) {
      __m256i total = _mm256_setzero_si256(), ones = total, twos = total, fours = total, eights = total;
      int k = 0;
      for (; k + 16 <= words; k += 16) {
        __m256i x[16];
        for (int i = 0; i < 16; i++) x[i] = _mm256_xor_si256(_mm256_set1_epi32((int)A[r][k + i]), Column(k + i, h));
        __m256i eights_a, eights_b, sixteens;
        AddEight(x, &ones, &twos, &fours, &eights_a);
        AddEight(x + 8, &ones, &twos, &fours, &eights_b);
        CSA(sixteens, eights, eights, eights_a, eights_b);
        total = _mm256_add_epi32(total, Popcount32(sixteens));
      }
      total = _mm256_slli_epi32(total, 4);
      total = _mm256_add_epi32(total, _mm256_slli_epi32(Popcount32(eights), 3));
      total = _mm256_add_epi32(total, _mm256_slli_epi32(Popcount32(fours), 2));
      total = _mm256_add_epi32(total, _mm256_slli_epi32(Popcount32(twos), 1));
      total = _mm256_add_epi32(total, Popcount32(ones));
      for (; k < words; k++) {
        total = _mm256_add_epi32(total, Popcount32(_mm256_xor_si256(_mm256_set1_epi32((int)A[r][k]), Column(k, h))));
      }
      _mm256_storeu_si256((__m256i*)(OUT[r] + 8 * h), total);
    }
  }
}

static double Seconds(void (*kernel)(int), int words, long reps) {
  const double start = now();
  for (long i = 0; i < reps; i++) {
    kernel(words);
    __asm__ volatile("" ::: "memory");
  }
  return now() - start;
}

int main(void) {
  srand(1);
  for (int r = 0; r < ROWS; r++) {
    for (int k = 0; k < MAX_WORDS; k++) A[r][k] = (uint32_t)rand() * 2654435761u;
  }
  for (int k = 0; k < MAX_WORDS; k++) {
    for (int l = 0; l < 16; l++) B[k][l] = (uint32_t)rand() * 2246822519u;
  }
  const int sizes[] = {18, 36, 72, 144};
  for (int s = 0; s < 4; s++) {
    const int words = sizes[s];
    int32_t expected[ROWS][16];
    NibbleLookup(words);
    for (int r = 0; r < ROWS; r++) {
      for (int l = 0; l < 16; l++) expected[r][l] = OUT[r][l];
    }
    HarleySeal(words);
    for (int r = 0; r < ROWS; r++) {
      for (int l = 0; l < 16; l++) {
        if (OUT[r][l] != expected[r][l]) {
          printf("the two kernels disagree at %d words\n", words);
          return 1;
        }
      }
    }
    const long reps = 200000000L / words / ROWS;
    const double outputs = (double)reps * ROWS * words;
    double nibble = 1e9, harley = 1e9;  // the best of 5 turns each, taken in turn (the machine drifts)
    for (int turn = 0; turn < 5; turn++) {
      const double n = Seconds(NibbleLookup, words, reps) / outputs * 1e9;
      const double h = Seconds(HarleySeal, words, reps) / outputs * 1e9;
      nibble = n < nibble ? n : nibble;
      harley = h < harley ? h : harley;
    }
    printf("%3d words: nibble lookup %.3f ns, Harley-Seal %.3f ns per (row, 16 lanes, word); Harley-Seal / nibble "
           "%.2f\n", words, nibble, harley, harley / nibble);
  }
  return 0;
}
