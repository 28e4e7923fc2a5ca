// An echo server: everything a client sends comes back. Run it, then: nc 127.0.0.1 8000
#include <iostream>

#include "examples/flags.h"
#include "protocols/protocol.h"
#include "reactor/errors.h"
#include "reactor/reactor.h"
#include "transports/tcp_port.h"

class Echo : public twist::Protocol {
 public:
  void dataReceived(std::string_view data) override { transport()->write(data); }
};

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  twist::Reactor reactor;  // SIGINT and SIGTERM stop it
  std::shared_ptr<twist::IListeningPort> port;
  try {
    port = reactor.listenTCP(flags.port, twist::Factory::forProtocol<Echo>(), 50, flags.interface);
  } catch (const twist::CannotListenError& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  reactor.callWhenRunning(
      [&] { std::cout << "listening on " << port->getHost().hostPort() << std::endl; });
  reactor.run();
  return 0;
}
