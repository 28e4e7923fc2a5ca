// A UDP echo server: every datagram goes back to its sender. Run it, then:
//   nc -u 127.0.0.1 8000     (each line you type comes back)
// Datagrams larger than --max-packet bytes (default 65535) are dropped and logged, never echoed
// cut short. --interface :: serves IPv6 (and IPv4) peers.
#include <cstdlib>
#include <iostream>
#include <string>

#include "examples/flags.h"
#include "twist/reactor/datagram.h"
#include "twist/reactor/reactor.h"

namespace {

class Echo : public twist::DatagramProtocol {
 public:
  void datagramReceived(std::string_view data, const twist::Address& from) override {
    transport()->write(data, from);
  }
};

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv, {"--max-packet"});
  std::string max = flags.get("--max-packet");
  twist::Reactor reactor;  // SIGINT and SIGTERM stop it
  std::shared_ptr<twist::IUDPTransport> port;
  try {
    port = reactor.listenUDP(
        flags.port, std::make_shared<Echo>(),
        {.interface = flags.interface,
         .maxPacketSize = max.empty() ? 65535 : std::strtoul(max.c_str(), nullptr, 10)});
  } catch (const std::exception& e) {  // CannotListenError, a bad --max-packet
    std::cerr << e.what() << std::endl;
    return 1;
  }
  twist::examples::announceWhenRunning(reactor, port);
  reactor.run();
  return 0;
}
