// Benchmark server: twist's Echo protocol behind listenTCP. Flags as examples/echo_server.
#include <iostream>

#include "examples/flags.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_port.h"

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  twist::Reactor reactor;
  auto port = reactor.listenTCP(flags.port, twist::Factory::forProtocol<twist::wire::Echo>(),
                                {.interface = flags.interface, .backlog = 1024});
  reactor.callWhenRunning(
      [&] { std::cout << "listening on " << port->getHost().toString() << std::endl; });
  reactor.run();
}
