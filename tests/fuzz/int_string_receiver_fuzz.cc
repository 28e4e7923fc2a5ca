// Int8/16/32StringReceiver on arbitrary bytes: no crash, and split invariance.
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "twist/protocols/basic.h"
#include "twist/protocols/testing/string_transport.h"

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
  twist::fuzz::feed(p, stream, chunks);
  return {p.got, p.exceeded};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return twist::fuzz::checkSplitInvariance(data, size, run);
}
