// Benchmark server: twist's Echo protocol behind listenTCP; with --lines, a LineReceiver that
// answers each "\n"-terminated line with itself (one sendLine per line: what a pipelining
// request/response server does). Other flags as examples/echo_server.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "examples/flags.h"
#include "twist/protocols/basic.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/reactor.h"

namespace {
class LineEcho : public twist::LineReceiver {
 public:
  LineEcho() { setDelimiter("\n"); }
  void lineReceived(std::string_view line) override { sendLine(line); }
};
}  // namespace

int main(int argc, char** argv) {
  bool lines = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--lines") == 0) {
      lines = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  auto flags = twist::examples::parseServerFlags(static_cast<int>(args.size()), args.data());
  twist::Reactor reactor;
  std::shared_ptr<twist::Factory> factory;
  if (lines) {
    factory = twist::Factory::forProtocol<LineEcho>();
  } else {
    factory = twist::Factory::forProtocol<twist::wire::Echo>();
  }
  auto port =
      reactor.listenTCP(flags.port, factory, {.interface = flags.interface, .backlog = 1024});
  reactor.callWhenRunning(
      [&] { std::cout << "listening on " << port->getHost().toString() << std::endl; });
  reactor.run();
}
