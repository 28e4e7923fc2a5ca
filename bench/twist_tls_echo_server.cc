// Benchmark server: twist's Echo protocol behind listenSSL (TLS 1.2+, twist's defaults), with
// TCP_NODELAY as bench/openssl_echo_server sets it. The TLS echo benchmark
// (bench/run_tls.py) measures it against that hand-written OpenSSL server.
//
//   twist_tls_echo_server --cert CHAIN.pem --key KEY.pem [--port N] [--interface ADDRESS]
#include <iostream>

#include "examples/flags.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tls.h"

namespace {
class Echo : public twist::Protocol {
 public:
  void connectionMade() override { transport()->setTcpNoDelay(true); }
  void dataReceived(std::string_view data) override { transport()->write(data); }
};
}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv, {"--cert", "--key"}, 8443);
  twist::Reactor reactor;
  std::shared_ptr<twist::IListeningPort> port;
  try {
    auto context = std::make_shared<twist::tls::ServerContext>(twist::tls::ServerOptions{
        .certificateChainFile = flags.get("--cert"), .privateKeyFile = flags.get("--key")});
    port = twist::tls::listenSSL(reactor, flags.port, twist::Factory::forProtocol<Echo>(), context,
                                 {.interface = flags.interface, .backlog = 1024});
  } catch (const std::exception& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  twist::examples::announceWhenRunning(reactor, port);
  reactor.run();
}
