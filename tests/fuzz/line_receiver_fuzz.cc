// LineReceiver on arbitrary bytes: no crash or sanitizer report, and split invariance: the lines
// (and whether the length limit was hit) are the same whether the bytes come whole or in chunks.
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "twist/protocols/basic.h"
#include "twist/protocols/testing/string_transport.h"

namespace {

class Lines : public twist::LineReceiver {
 public:
  std::vector<std::string> got;
  bool exceeded = false;
  void lineReceived(std::string_view l) override { got.emplace_back(l); }
  void lineLengthExceeded(std::string_view l) override {
    exceeded = true;
    LineReceiver::lineLengthExceeded(l);
  }
};

struct Result {
  std::vector<std::string> lines;
  bool exceeded;
  bool operator==(const Result&) const = default;
};

Result run(std::string_view stream, uint8_t config, const std::vector<size_t>& chunks) {
  static const std::string delimiters[] = {"\r\n", "\n", "END", std::string(1, '\0')};
  twist::StringTransport t;
  Lines p;
  p.setDelimiter(delimiters[config & 3]);
  p.setMaxLength(1 + (config >> 2) % 64);
  p.makeConnection(&t);
  twist::fuzz::feed(p, stream, chunks);
  return {p.got, p.exceeded};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return twist::fuzz::checkSplitInvariance(data, size, run);
}
