// Sends each argument (or each line of stdin) to a TLS echo server as a line and prints what
// comes back, after checking the server's certificate against the system's CAs (or --ca-file)
// and its name (--host, or --server-name). Exits 0 once every byte came back, 1 with a message
// when connecting or the handshake fails (an unknown CA, an expired certificate, the wrong
// name...) or the connection ends early.
//   tls_echo_client --host localhost --port 8443 --ca-file /tmp/cert.pem hello world
#include <iostream>
#include <string>

#include "examples/echo.h"
#include "examples/flags.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tls.h"

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
  auto factory =
      std::make_shared<twist::examples::EchoClientFactory>(reactor, payload, "tls_echo_client");
  reactor.callWhenRunning([&] {
    twist::tls::connectSSL(reactor, flags.host, flags.port, factory, context,
                           {.timeout = flags.timeout, .serverName = serverName});
  });
  reactor.run();
  return factory->exitCode;
}
