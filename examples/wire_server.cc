// Serves the small RFC protocols on consecutive ports from --port (default 8000):
// echo (+0), discard (+1), chargen (+2), daytime (+3), time (+4), qotd (+5).
// Prints "listening on HOST:PORT NAME" for each once it listens.
//   nc 127.0.0.1 8003      # daytime
#include <iostream>

#include "examples/flags.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_port.h"

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  twist::Reactor reactor;
  std::vector<std::pair<std::string, std::shared_ptr<twist::Factory>>> services = {
      {"echo", twist::Factory::forProtocol<twist::wire::Echo>()},
      {"discard", twist::Factory::forProtocol<twist::wire::Discard>()},
      {"chargen", twist::Factory::forProtocol<twist::wire::Chargen>()},
      {"daytime", twist::Factory::forProtocol<twist::wire::Daytime>()},
      {"time", twist::Factory::forProtocol<twist::wire::Time>()},
      {"qotd", twist::Factory::forProtocol<twist::wire::QOTD>()},
  };
  std::vector<std::pair<std::string, std::shared_ptr<twist::IListeningPort>>> ports;
  try {
    for (size_t i = 0; i < services.size(); ++i) {
      // With --port 0 every service gets a free port of its own.
      uint16_t port = flags.port == 0 ? 0 : static_cast<uint16_t>(flags.port + i);
      ports.emplace_back(services[i].first, reactor.listenTCP(port, services[i].second,
                                                              {.interface = flags.interface}));
    }
  } catch (const twist::CannotListenError& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  reactor.callWhenRunning([&] {
    for (auto& [name, port] : ports) {
      std::cout << "listening on " << port->getHost().toString() << " " << name << std::endl;
    }
  });
  reactor.run();
  return 0;
}
