// Sends each argument (or each line of stdin) to a TLS echo server as a line and prints what
// comes back, after checking the server's certificate against the system's CAs (or --ca-file)
// and its name (--host, or --server-name). Exits 0 once every byte came back, 1 with a message
// when connecting or the handshake fails (an unknown CA, an expired certificate, the wrong
// name...) or the connection ends early.
//   tls_echo_client --host localhost --port 8443 --ca-file /tmp/cert.pem hello world
#include <iostream>
#include <string>

#include "examples/flags.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tls.h"

namespace {

class EchoClient : public twist::Protocol {
 public:
  EchoClient(std::string payload, bool* complete)
      : payload_(std::move(payload)), complete_(complete) {}
  void connectionMade() override { transport()->write(payload_); }
  void dataReceived(std::string_view data) override {
    std::cout << data << std::flush;
    received_ += data.size();
    if (received_ >= payload_.size()) {
      *complete_ = true;
      transport()->loseConnection();  // sends close_notify
    }
  }

 private:
  std::string payload_;
  bool* complete_;
  size_t received_ = 0;
};

class EchoClientFactory : public twist::ClientFactory {
 public:
  EchoClientFactory(twist::Reactor& reactor, std::string payload)
      : reactor_(reactor), payload_(std::move(payload)) {}
  std::shared_ptr<twist::Protocol> buildProtocol(const twist::Address&) override {
    return std::make_unique<EchoClient>(payload_, &complete_);
  }
  void clientConnectionFailed(twist::IConnector& c, const twist::Failure& reason) override {
    finish("cannot connect to " + c.getDestination().toString() + ": " + reason.getErrorMessage());
  }
  void clientConnectionLost(twist::IConnector&, const twist::Failure& reason) override {
    finish(complete_ ? "" : "the connection ended early: " + reason.getErrorMessage());
  }
  int exitCode = 1;

 private:
  void finish(const std::string& error) {
    if (!error.empty()) std::cerr << "tls_echo_client: " << error << std::endl;
    exitCode = error.empty() ? 0 : 1;
    reactor_.stop();
  }
  twist::Reactor& reactor_;
  std::string payload_;
  bool complete_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseClientFlags(argc, argv, {"--ca-file", "--server-name"}, 8443);
  std::string caFile, serverName, payload;
  for (size_t i = 0; i < flags.args.size(); ++i) {
    const std::string& a = flags.args[i];
    if ((a == "--ca-file" || a == "--server-name") && i + 1 < flags.args.size()) {
      (a == "--ca-file" ? caFile : serverName) = flags.args[++i];
    } else {
      payload += a + "\n";
    }
  }
  if (payload.empty()) {
    for (std::string line; std::getline(std::cin, line);) payload += line + "\n";
  }
  if (payload.empty()) return 0;
  std::shared_ptr<twist::tls::ClientContext> context;
  try {
    context =
        std::make_shared<twist::tls::ClientContext>(twist::tls::ClientOptions{.caFile = caFile});
  } catch (const twist::tls::ContextError& e) {
    std::cerr << "tls_echo_client: " << e.what() << std::endl;
    return 1;
  }
  twist::Reactor reactor;
  auto factory = std::make_shared<EchoClientFactory>(reactor, payload);
  reactor.callWhenRunning([&] {
    twist::tls::connectSSL(reactor, flags.host, flags.port, factory, context,
                           {.timeout = flags.timeout, .serverName = serverName});
  });
  reactor.run();
  return factory->exitCode;
}
