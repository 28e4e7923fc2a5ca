// An echo server over TLS: everything a client sends comes back, encrypted. Make a certificate
// (or use your own), run it, then talk to it with openssl s_client or tls_echo_client:
//
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30
//     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1
//     -keyout /tmp/key.pem -out /tmp/cert.pem          (one command)
//   bazel run //examples:tls_echo_server -- --cert /tmp/cert.pem --key /tmp/key.pem
//   openssl s_client -quiet -CAfile /tmp/cert.pem -connect 127.0.0.1:8443
//
// --listen ENDPOINT serves TLS wherever a stream endpoint says, a UNIX socket for example:
//   bazel run //examples:tls_echo_server -- --cert ... --key ... --listen unix:/tmp/tls.sock
//   openssl s_client -quiet -CAfile /tmp/cert.pem -unix /tmp/tls.sock
// --client-ca FILE asks every client for a certificate signed by one of those CAs. The same
// idle timeout and keepalive as echo_server; a peer that connects and never finishes its
// handshake is dropped after 30 s (ListenSSLOptions::handshakeTimeout).
#include <iostream>
#include <optional>

#include "examples/echo.h"
#include "examples/flags.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/endpoints.h"
#include "twist/transports/tls.h"

// The echo of examples/echo_server, saying who connected and how.
class Echo : public twist::examples::IdleEcho {
 public:
  using IdleEcho::IdleEcho;
  void connectionMade() override {
    IdleEcho::connectionMade();
    // The handshake is done here: who the client is, and how it is protected, are known.
    if (auto* tls = twist::tls::tlsTransport(*this)) {
      std::string who = transport()->getPeer().toString();
      if (auto cert = tls->getPeerCertificate()) who += " (" + cert->subject() + ")";
      std::cout << who << ": " << tls->version() << " " << tls->cipher() << std::endl;
    }
  }
};

int main(int argc, char** argv) {
  auto flags =
      twist::examples::parseServerFlags(argc, argv, {"--cert", "--key", "--client-ca"}, 8443);
  if (flags.get("--cert").empty() || flags.get("--key").empty()) {
    std::cerr << "usage: " << argv[0]
              << " --cert CHAIN.pem --key KEY.pem [--client-ca CA.pem]"
                 " [--listen ENDPOINT | --port N --interface ADDRESS] [--idle-timeout SECONDS]"
              << std::endl;
    return 2;
  }
  twist::Reactor reactor;  // SIGINT and SIGTERM stop it
  std::shared_ptr<twist::IListeningPort> port;
  try {
    auto context = std::make_shared<twist::tls::ServerContext>(
        twist::tls::ServerOptions{.certificateChainFile = flags.get("--cert"),
                                  .privateKeyFile = flags.get("--key"),
                                  .clientCAFile = flags.get("--client-ca")});
    auto factory = twist::Factory::forProtocol<Echo>(static_cast<twist::IReactorTime*>(&reactor),
                                                     flags.idleTimeout);
    if (flags.listen.empty()) {
      port = twist::tls::listenSSL(reactor, flags.port, factory, context,
                                   {.interface = flags.interface});
    } else {
      // TLS over any stream endpoint: the protocols sit behind a TLS layer, as listenSSL's do.
      port = twist::endpoints::serverFromString(reactor, flags.listen)
                 ->listen(std::make_shared<twist::tls::TLSFactory>(
                     factory, context,
                     twist::tls::LayerOptions{.clock = &reactor, .handshakeTimeout = 30}));
    }
  } catch (const std::exception& e) {  // CannotListenError, ContextError, a bad endpoint
    std::cerr << e.what() << std::endl;
    return 1;
  }
  twist::examples::announceWhenRunning(reactor, port);
  reactor.run();
  return 0;
}
