// Shared by the libFuzzer targets: cut an input into chunks deterministically from a seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace twist::fuzz {

// Chunk sizes (1..16 bytes, then the rest) for `size` bytes, from a tiny PRNG seeded by `seed`.
inline std::vector<size_t> chunkSizes(size_t size, uint8_t seed) {
  std::vector<size_t> out;
  uint32_t x = seed * 2654435761u + 1;
  for (size_t left = size; left > 0;) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    size_t c = std::min<size_t>(left, 1 + x % 16);
    out.push_back(c);
    left -= c;
  }
  return out;
}

}  // namespace twist::fuzz
