#include <cstring>

#include "bgemm.h"

namespace bnn2onnx {
namespace {

// Popcount without relying on the popcnt instruction (this file is built for the baseline ISA).
inline int Popcount64(uint64_t v) {
  v = v - ((v >> 1) & 0x5555555555555555ull);
  v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
  v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<int>((v * 0x0101010101010101ull) >> 56);
}

inline uint64_t Load64(const Word* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

void BinaryGemmPortable(const Word* a, int64_t a_stride, int64_t m, const Word* b, int64_t b_stride, int64_t n,
                        int64_t words, int32_t* counts, int64_t counts_stride) {
  for (int64_t i = 0; i < m; ++i) {
    const Word* row_a = a + i * a_stride;
    for (int64_t j = 0; j < n; ++j) {
      const Word* row_b = b + j * b_stride;
      int32_t count = 0;
      for (int64_t k = 0; k < words; k += 2) count += Popcount64(Load64(row_a + k) ^ Load64(row_b + k));
      counts[i * counts_stride + j] = count;
    }
  }
}

}  // namespace bnn2onnx
