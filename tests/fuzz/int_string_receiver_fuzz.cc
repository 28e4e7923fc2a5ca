// Int8/16/32StringReceiver on arbitrary bytes: no crash, and split invariance.
#include <cstdlib>
#include <string>
#include <vector>

#include "protocols/basic.h"
#include "protocols/testing/string_transport.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

class Strings : public twist::IntNStringReceiver {
 public:
  explicit Strings(int n) : IntNStringReceiver(n) {}
  std::vector<std::string> got;
  bool exceeded = false;
  void stringReceived(std::string_view s) override { got.emplace_back(s); }
  void lengthLimitExceeded(size_t n) override {
    exceeded = true;
    IntNStringReceiver::lengthLimitExceeded(n);
  }
};

std::pair<std::vector<std::string>, bool> run(std::string_view stream, uint8_t config,
                                              const std::vector<size_t>& chunks) {
  static const int prefixes[] = {1, 2, 4, 4};
  twist::StringTransport t;
  Strings p(prefixes[config & 3]);
  p.setMaxLength((config >> 2) * 37);
  p.makeConnection(&t);
  size_t pos = 0;
  for (size_t c : chunks) {
    p.dataReceived(stream.substr(pos, c));
    pos += c;
  }
  p.dataReceived(stream.substr(pos));
  return {p.got, p.exceeded};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (run(stream, data[0], {}) !=
      run(stream, data[0], twist::fuzz::chunkSizes(stream.size(), data[1]))) {
    std::abort();
  }
  return 0;
}
