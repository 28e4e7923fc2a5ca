// Endpoint strings from hostile configuration: parse() and serverFromString/clientFromString on
// arbitrary bytes. Only std::invalid_argument may come out (a bad string), never a crash or
// another exception; and a parsed description, written out again with every value escaped,
// parses back to the same thing. ssl strings are only parsed (making one loads key files).
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "twist/reactor/reactor.h"
#include "twist/transports/endpoints.h"

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ':' || c == '\\' || c == '=') out += '\\';
    out += c;
  }
  return out;
}

twist::Reactor& reactor() {
  static twist::Reactor* r = new twist::Reactor(twist::ReactorBase::Options{
      .installSignalHandlers = false});
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  twist::endpoints::Description d;
  try {
    d = twist::endpoints::parse(text);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  // Written out again (the type escaped too), it parses back to the same description.
  std::string again = escape(d.type);
  for (const auto& p : d.positional) again += ":" + escape(p);
  for (const auto& [k, v] : d.keywords) again += ":" + escape(k) + "=" + escape(v);
  auto back = twist::endpoints::parse(again);
  if (back.type != d.type || back.positional != d.positional || back.keywords != d.keywords) {
    std::abort();
  }
  if (d.type == "ssl" || d.type == "tls") return 0;
  for (int side = 0; side < 2; ++side) {
    try {
      if (side == 0) {
        (void)twist::endpoints::serverFromString(reactor(), text);
      } else {
        (void)twist::endpoints::clientFromString(reactor(), text);
      }
    } catch (const std::invalid_argument&) {
    }
  }
  return 0;
}
