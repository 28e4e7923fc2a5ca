// Shared by the libFuzzer targets: cut an input into chunks deterministically from a seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
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

// Feeds `stream` to protocol `p` in the given chunk sizes, then the rest.
template <class P>
void feed(P& p, std::string_view stream, const std::vector<size_t>& chunks) {
  size_t pos = 0;
  for (size_t c : chunks) {
    p.dataReceived(stream.substr(pos, c));
    pos += c;
  }
  p.dataReceived(stream.substr(pos));
}

// The property every framer target checks: input byte 0 configures the framer, byte 1 seeds
// the chunking, the rest is the stream; run(stream, config, chunks) must give the same result
// for the whole stream and for the chunked one. Aborts (a finding) if it does not.
template <class Run>
int checkSplitInvariance(const uint8_t* data, size_t size, Run run) {
  if (size < 2) return 0;
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (!(run(stream, data[0], std::vector<size_t>{}) ==
        run(stream, data[0], chunkSizes(stream.size(), data[1])))) {
    std::abort();
  }
  return 0;
}

}  // namespace twist::fuzz
