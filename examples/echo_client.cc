// Sends each argument (or each line of stdin) to an echo server as a line and prints what comes
// back. Exits 0 once every byte came back, 1 with a message if connecting fails or the
// connection ends early.
//   echo_client --host 127.0.0.1 --port 8000 hello world
//   echo_client --connect unix:/tmp/echo.sock hello     (any client endpoint string)
#include <iostream>
#include <string>

#include "examples/echo.h"
#include "examples/flags.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/endpoints.h"
#include "twist/transports/tcp_connector.h"

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
  auto factory =
      std::make_shared<twist::examples::EchoClientFactory>(reactor, payload, "echo_client");
  reactor.callWhenRunning([&] {
    if (flags.connect.empty()) {
      reactor.connectTCP(flags.host, flags.port, factory, {.timeout = flags.timeout});
      return;
    }
    try {
      // The factory hears how it goes (and reports it); the Deferred's failure is the same news.
      twist::endpoints::clientFromString(reactor, flags.connect)
          ->connect(factory)
          .addErrback(
              [](const twist::Failure&) -> std::shared_ptr<twist::Protocol> { return nullptr; });
    } catch (const std::exception& e) {  // a bad endpoint string
      std::cerr << e.what() << std::endl;
      factory->exitCode = 2;
      reactor.stop();
    }
  });
  reactor.run();
  return factory->exitCode;
}
