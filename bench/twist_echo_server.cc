// Benchmark server: twist's Echo protocol behind listenTCP; with --lines, a LineReceiver that
// answers each "\n"-terminated line with itself (one sendLine per line: what a pipelining
// request/response server does). --threads N: N reactors (a ReactorPool, SO_REUSEPORT);
// --workers N: N pre-forked processes (twist/reactor/prefork.h);
// --backend epoll|poll|select. Other flags as examples/echo_server.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "examples/flags.h"
#include "twist/protocols/basic.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/prefork.h"
#include "twist/reactor/reactor.h"
#include "twist/reactor/reactor_pool.h"
#include "twist/transports/endpoints.h"

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
  auto flags = twist::examples::parseServerFlags(static_cast<int>(args.size()), args.data(),
                                                 {"--threads", "--workers", "--backend"});
  std::shared_ptr<twist::Factory> (*make)() =
      lines
          ? +[] { return std::shared_ptr<twist::Factory>(twist::Factory::forProtocol<LineEcho>()); }
          : +[] {
              return std::shared_ptr<twist::Factory>(
                  twist::Factory::forProtocol<twist::wire::Echo>());
            };
  if (!flags.get("--workers").empty()) {  // pre-forked worker processes on one socket
    int fd = twist::prefork::bindTCP(flags.port, {.interface = flags.interface, .backlog = 1024});
    std::cout << "listening on " << twist::prefork::localAddress(fd).toString() << std::endl;
    return twist::prefork::run(
        [&](size_t) {
          twist::Reactor reactor(twist::ReactorBase::Options{.backend = flags.get("--backend")});
          auto port = reactor.adoptStreamPort(fd, make());
          reactor.run();
          return 0;
        },
        {.workers = static_cast<size_t>(std::atoi(flags.get("--workers").c_str()))});
  }
  if (!flags.get("--threads").empty()) {  // a ReactorPool, SO_REUSEPORT
    twist::ReactorPool::Options o;
    o.reactors = static_cast<size_t>(std::atoi(flags.get("--threads").c_str()));
    o.reactor.backend = flags.get("--backend");
    twist::ReactorPool pool(o);
    auto bound = pool.listenTCP(flags.port, [make](twist::Reactor&) { return make(); },
                                {.interface = flags.interface, .backlog = 1024});
    std::cout << "listening on " << bound.toString() << std::endl;
    pool.run();
    return 0;
  }
  twist::Reactor reactor(twist::ReactorBase::Options{.backend = flags.get("--backend")});
  // --listen ENDPOINT (a UNIX socket for bench/run_unix.py), else TCP on --port.
  auto port =
      flags.listen.empty()
          ? reactor.listenTCP(flags.port, make(), {.interface = flags.interface, .backlog = 1024})
          : twist::endpoints::serverFromString(reactor, flags.listen)->listen(make());
  twist::examples::announceWhenRunning(reactor, port);
  reactor.run();
}
