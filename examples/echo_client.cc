// Sends each argument (or each line of stdin) to an echo server as a line and prints what comes
// back. Exits 0 once every byte came back, 1 with a message if connecting fails or the
// connection ends early.
//   echo_client --host 127.0.0.1 --port 8000 hello world
#include <iostream>
#include <string>

#include "examples/flags.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_connector.h"

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
      transport()->loseConnection();
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
    if (!error.empty()) std::cerr << "echo_client: " << error << std::endl;
    exitCode = error.empty() ? 0 : 1;
    reactor_.stop();
  }
  twist::Reactor& reactor_;
  std::string payload_;
  bool complete_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseClientFlags(argc, argv);
  std::string payload;
  if (flags.args.empty()) {
    for (std::string line; std::getline(std::cin, line);) payload += line + "\n";
  } else {
    for (const auto& a : flags.args) payload += a + "\n";
  }
  if (payload.empty()) return 0;
  twist::Reactor reactor;
  auto factory = std::make_shared<EchoClientFactory>(reactor, payload);
  reactor.callWhenRunning(
      [&] { reactor.connectTCP(flags.host, flags.port, factory, {.timeout = flags.timeout}); });
  reactor.run();
  return factory->exitCode;
}
