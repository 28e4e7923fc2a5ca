// An echo server: everything a client sends comes back. Run it, then: nc 127.0.0.1 8000
//
// Beyond the echo itself, what a server facing the internet needs: a connection that stays
// silent for --idle-timeout seconds is closed (TimeoutMixin), and TCP keepalive finds clients
// that vanished without a FIN or a reset (a crashed host, a dropped NAT entry), which would
// otherwise hold their socket forever. A client that sends without reading is not buffered
// without bound: the transport stops reading it while its replies wait (README, "Flow
// control").
#include <iostream>
#include <optional>

#include "examples/flags.h"
#include "twist/protocols/policies.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_port.h"

class Echo : public twist::Protocol, public twist::TimeoutMixin {
 public:
  Echo(twist::IReactorTime* clock, double idleTimeout)
      : TimeoutMixin(*clock), idleTimeout_(idleTimeout) {}
  void connectionMade() override {
    // Probes after 60 s of silence, every 10 s; 6 unanswered ones end the connection.
    transport()->setTcpKeepAliveTimes(60, 10, 6);
    if (idleTimeout_ > 0) setTimeout(idleTimeout_);
  }
  void dataReceived(std::string_view data) override {
    resetTimeout();
    transport()->write(data);
  }
  void connectionLost(const twist::Failure&) override { setTimeout(std::nullopt); }

 private:
  double idleTimeout_;
};

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  twist::Reactor reactor;  // SIGINT and SIGTERM stop it
  std::shared_ptr<twist::IListeningPort> port;
  try {
    auto factory = twist::Factory::forProtocol<Echo>(static_cast<twist::IReactorTime*>(&reactor),
                                                     flags.idleTimeout);
    port = reactor.listenTCP(flags.port, factory, {.interface = flags.interface});
  } catch (const twist::CannotListenError& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  reactor.callWhenRunning(
      [&] { std::cout << "listening on " << port->getHost().toString() << std::endl; });
  reactor.run();
  return 0;
}
