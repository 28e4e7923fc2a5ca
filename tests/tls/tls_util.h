// For the TLS tests: certificates made at test time by tests/tls/make_certs.sh (once per test
// binary, into TEST_TMPDIR), and protocols that record what a TLS connection showed them.
#pragma once

#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "twist/reactor/failure.h"
#include "twist/reactor/protocol.h"
#include "twist/transports/tls.h"

namespace twist::testing {

inline const std::string& certDir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string d = std::string(tmp != nullptr ? tmp : "/tmp") + "/twist-test-certs";
    std::string cmd = "tests/tls/make_certs.sh '" + d + "'";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make_certs.sh failed");
    return d;
  }();
  return dir;
}

inline std::string certFile(const std::string& name) { return certDir() + "/" + name; }

// A server context for `name` (server, other, expired, self).
inline std::shared_ptr<tls::ServerContext> serverContext(const std::string& name = "server",
                                                         tls::ServerOptions o = {}) {
  o.certificateChainFile = certFile(name + ".pem");
  o.privateKeyFile = certFile(name + ".key");
  return std::make_shared<tls::ServerContext>(o);
}

// A client context trusting the test CA.
inline std::shared_ptr<tls::ClientContext> clientContext(tls::ClientOptions o = {}) {
  if (o.caFile.empty()) o.caFile = certFile("ca.pem");
  return std::make_shared<tls::ClientContext>(o);
}

// Records what its TLS connection shows it.
class TLSRecorder : public Protocol {
 public:
  void connectionMade() override {
    made = true;
    if (auto* t = tls::tlsTransport(*this)) {
      handshakeDoneAtMade = t->handshakeDone();
      version = t->version();
      alpn = t->negotiatedProtocol();
      serverName = t->serverName();
      reused = t->sessionReused();
      if (auto c = t->getPeerCertificate()) peerCN = c->commonName();
    }
    if (!greeting.empty()) transport()->write(greeting);
  }
  void dataReceived(std::string_view d) override {
    data.append(d);
    if (echo) transport()->write(d);
    if (closeAfter != 0 && data.size() >= closeAfter) transport()->loseConnection();
  }
  void connectionLost(const Failure& r) override { reason = r; }

  bool echo = false;
  std::string greeting;
  size_t closeAfter = 0;
  bool made = false;
  bool handshakeDoneAtMade = false;
  std::string version, alpn, serverName, peerCN, data;
  bool reused = false;
  std::optional<Failure> reason;
};

}  // namespace twist::testing
