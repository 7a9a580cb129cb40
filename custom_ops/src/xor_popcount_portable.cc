#include <cstring>

#include "xor_popcount.h"

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

void XorPopcountPortable(const Word* a, const Word* b, int64_t words, int64_t rows, int64_t b_stride,
                         int32_t* counts) {
  for (int64_t r = 0; r < rows; ++r) {
    const Word* row = b + r * b_stride;
    int32_t count = 0;
    int64_t i = 0;
    for (; i + 2 <= words; i += 2) count += Popcount64(Load64(a + i) ^ Load64(row + i));
    if (i < words) count += Popcount64(a[i] ^ row[i]);
    counts[r] = count;
  }
}

}  // namespace bnn2onnx
