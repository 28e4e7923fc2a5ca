// Stays connected to an echo server: says hello on every connection and prints the reply; when
// the server goes away it retries with exponential backoff (ReconnectingClientFactory) until
// the server is back. Ctrl-C to stop; with --max-retries N it gives up (exit 1) after N retries.
//   reconnecting_client --port 8000 --initial-delay 0.5
#include <cstdlib>
#include <iostream>

#include "examples/flags.h"
#include "twist/protocols/reconnecting.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_connector.h"

namespace {

class Hello : public twist::Protocol {
 public:
  void connectionMade() override;
  void dataReceived(std::string_view data) override { std::cout << "echo: " << data << std::flush; }
};

class HelloFactory : public twist::ReconnectingClientFactory {
 public:
  HelloFactory(twist::Reactor& reactor) : ReconnectingClientFactory(reactor), reactor_(reactor) {}
  std::shared_ptr<twist::Protocol> buildProtocol(const twist::Address&) override {
    return std::make_unique<Hello>();
  }
  void clientConnectionFailed(twist::IConnector& c, const twist::Failure& reason) override {
    std::cout << "connection failed: " << reason.getErrorMessage() << std::endl;
    ReconnectingClientFactory::clientConnectionFailed(c, reason);
    report();
  }
  void clientConnectionLost(twist::IConnector& c, const twist::Failure& reason) override {
    std::cout << "connection lost: " << reason.getErrorMessage() << std::endl;
    ReconnectingClientFactory::clientConnectionLost(c, reason);
    report();
  }
  int exitCode = 0;

 private:
  void report() {
    if (pendingRetry().active()) {
      std::cout << "retrying in " << delay() << " s" << std::endl;
    } else if (continueTrying()) {
      std::cout << "giving up after " << retries() - 1 << " retries" << std::endl;
      exitCode = 1;
      reactor_.stop();
    }
  }
  twist::Reactor& reactor_;
};

void Hello::connectionMade() {
  std::cout << "connected to " << transport()->getPeer().toString() << std::endl;
  static_cast<HelloFactory*>(factory())->resetDelay();
  transport()->write("hello\n");
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseClientFlags(argc, argv, {"--initial-delay", "--max-retries"});
  twist::Reactor reactor;
  auto factory = std::make_shared<HelloFactory>(reactor);
  for (size_t i = 0; i + 1 < flags.args.size(); i += 2) {
    if (flags.args[i] == "--initial-delay")
      factory->initialDelay = std::atof(flags.args[i + 1].c_str());
    if (flags.args[i] == "--max-retries")
      factory->maxRetries = std::atoi(flags.args[i + 1].c_str());
  }
  factory->maxDelay = 10;
  reactor.callWhenRunning(
      [&] { reactor.connectTCP(flags.host, flags.port, factory, {.timeout = flags.timeout}); });
  reactor.run();
  return factory->exitCode;
}
