// NetstringReceiver on arbitrary bytes: no crash or hang, and split invariance of the strings,
// of whether the peer was found broken, and of the reason given.
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "twist/protocols/basic.h"
#include "twist/protocols/testing/string_transport.h"
#include "twist/reactor/log.h"

namespace {

class Netstrings : public twist::NetstringReceiver {
 public:
  std::vector<std::string> got;
  void stringReceived(std::string_view s) override { got.emplace_back(s); }
  void netstringParseError(const twist::NetstringParseError&) override {
    transport()->loseConnection();  // quietly: no log line per input
  }
};

auto run(std::string_view stream, uint8_t config, const std::vector<size_t>& chunks) {
  twist::StringTransport t;
  Netstrings p;
  p.setMaxLength(config * 5u);
  p.makeConnection(&t);
  twist::fuzz::feed(p, stream, chunks);
  return std::make_tuple(p.got, p.brokenPeer(), p.parseError());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return twist::fuzz::checkSplitInvariance(data, size, run);
}
