// TLS over real sockets on 127.0.0.1: twist against twist, against OpenSSL's s_client and
// s_server, and against Python's ssl module; certificates made at test time.
#include "twist/transports/tls.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/subprocess.h"
#include "tests/test_util.h"
#include "tests/tls/tls_util.h"
#include "twist/protocols/basic.h"
#include "twist/reactor/reactor.h"

namespace twist {
namespace {

using testing::certFile;
using testing::clientContext;
using testing::runUntil;
using testing::serverContext;
using testing::TLSRecorder;

struct Servers : ServerFactory {
  std::vector<std::shared_ptr<TLSRecorder>> built;
  bool echo = true;
  std::string greeting;
  size_t closeAfter = 0;
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    auto p = std::make_shared<TLSRecorder>();
    p->echo = echo;
    p->greeting = greeting;
    p->closeAfter = closeAfter;
    built.push_back(p);
    return p;
  }
};

struct Clients : ClientFactory {
  std::vector<std::shared_ptr<TLSRecorder>> built;
  std::string greeting = "hello";
  size_t closeAfter = 5;
  std::optional<Failure> failed, lost;
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    auto p = std::make_shared<TLSRecorder>();
    p->greeting = greeting;
    p->closeAfter = closeAfter;
    built.push_back(p);
    return p;
  }
  void clientConnectionFailed(IConnector&, const Failure& r) override { failed = r; }
  void clientConnectionLost(IConnector&, const Failure& r) override { lost = r; }
  bool ended() const { return failed.has_value() || lost.has_value(); }
};

class TLSTest : public ::testing::Test {
 protected:
  Reactor reactor{testing::quietOptions()};

  uint16_t listen(std::shared_ptr<Factory> f, std::shared_ptr<tls::ServerContext> ctx,
                  tls::ListenSSLOptions o = {}) {
    o.interface = "127.0.0.1";
    auto port = tls::listenSSL(reactor, 0, std::move(f), std::move(ctx), o);
    ports.push_back(port);
    return port->getHost().port();
  }
  // The factories hold their protocols and the protocols their factory: the cycle is broken
  // when the test ends.
  std::shared_ptr<Servers> makeServers() {
    auto f = std::make_shared<Servers>();
    cleanups.push_back([f] { f->built.clear(); });
    return f;
  }
  std::shared_ptr<Clients> makeClients() {
    auto f = std::make_shared<Clients>();
    cleanups.push_back([f] { f->built.clear(); });
    return f;
  }
  void TearDown() override {
    for (auto& c : cleanups) c();
  }
  std::vector<std::shared_ptr<IListeningPort>> ports;
  std::vector<std::function<void()>> cleanups;
};

TEST_F(TLSTest, EchoBetweenTwistServerAndClient) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext());
  auto clients = makeClients();
  tls::connectSSL(reactor, "localhost", port, clients, clientContext());
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_FALSE(clients->failed) << clients->failed->toString();
  auto& c = *clients->built.at(0);
  EXPECT_TRUE(c.made);
  EXPECT_TRUE(c.handshakeDoneAtMade);  // connectionMade comes after the handshake
  EXPECT_EQ(c.version, "TLSv1.3");
  EXPECT_EQ(c.peerCN, "localhost");
  EXPECT_EQ(c.data, "hello");
  // The client closed with close_notify: a clean close on both sides.
  EXPECT_TRUE(c.reason->check<ConnectionDone>()) << c.reason->toString();
  ASSERT_TRUE(runUntil(reactor, [&] { return servers->built.at(0)->reason.has_value(); }));
  auto& s = *servers->built.at(0);
  EXPECT_EQ(s.data, "hello");
  EXPECT_EQ(s.serverName, "localhost");
  EXPECT_TRUE(s.reason->check<ConnectionDone>()) << s.reason->toString();
}

// A careless protocol: an exception from its dataReceived, under the TLS layer, ends its own
// connection (aborted, the exception as connectionLost's reason), as over plain TCP; the
// server goes on serving.
TEST_F(TLSTest, AnExceptionInTheProtocolAbortsOnlyItsConnection) {
  struct Thrower : TLSRecorder {
    void dataReceived(std::string_view d) override {
      if (d.find("boom") != std::string_view::npos) throw std::runtime_error("boom");
      TLSRecorder::dataReceived(d);
    }
  };
  struct Throwers : ServerFactory {
    std::vector<std::shared_ptr<Thrower>> built;
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
      auto p = std::make_shared<Thrower>();
      p->echo = true;
      built.push_back(p);
      return p;
    }
  };
  auto servers = std::make_shared<Throwers>();
  cleanups.push_back([servers] { servers->built.clear(); });
  uint16_t port = listen(servers, serverContext());
  auto first = makeClients();
  first->greeting = "boom";
  tls::connectSSL(reactor, "localhost", port, first, clientContext());
  ASSERT_TRUE(runUntil(reactor, [&] { return first->ended(); }));
  EXPECT_TRUE(first->lost.has_value());  // the handshake had succeeded: lost, not failed
  ASSERT_TRUE(runUntil(reactor, [&] { return servers->built.at(0)->reason.has_value(); }));
  EXPECT_EQ(servers->built.at(0)->reason->getErrorMessage(), "boom");

  auto second = makeClients();
  tls::connectSSL(reactor, "localhost", port, second, clientContext());
  ASSERT_TRUE(runUntil(reactor, [&] { return second->ended(); }));
  ASSERT_FALSE(second->failed);
  EXPECT_EQ(second->built.at(0)->data, "hello");
}

TEST_F(TLSTest, ConnectingByIPAddressChecksTheAddress) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext());
  auto clients = makeClients();
  tls::connectSSL(reactor, "127.0.0.1", port, clients, clientContext());
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_FALSE(clients->failed) << clients->failed->toString();
  EXPECT_EQ(clients->built.at(0)->data, "hello");
  EXPECT_EQ(servers->built.at(0)->serverName, "");  // no SNI for an address
}

TEST_F(TLSTest, LargeTransfersInBothDirections) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext());
  auto clients = makeClients();
  std::string big(3 * 1024 * 1024 + 17, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  clients->greeting = big;
  clients->closeAfter = big.size();
  tls::connectSSL(reactor, "localhost", port, clients, clientContext());
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_FALSE(clients->failed);
  EXPECT_TRUE(clients->built.at(0)->data == big);
}

struct Refused {
  const char* server;
  const char* name;
  tls::CertificateError::Kind kind;
};

TEST_F(TLSTest, ClientRefusesBadCertificatesWithDistinctErrors) {
  using K = tls::CertificateError::Kind;
  for (Refused r :
       {Refused{"self", "localhost", K::UnknownIssuer}, Refused{"expired", "localhost", K::Expired},
        Refused{"other", "localhost", K::HostnameMismatch},
        Refused{"server", "wrong.example", K::HostnameMismatch}}) {
    SCOPED_TRACE(std::string(r.server) + " as " + r.name);
    auto servers = makeServers();
    uint16_t port = listen(servers, serverContext(r.server));
    auto clients = makeClients();
    tls::connectSSL(reactor, "127.0.0.1", port, clients, clientContext(), {.serverName = r.name});
    ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
    ASSERT_TRUE(clients->failed.has_value()) << "connected instead";
    EXPECT_FALSE(clients->lost.has_value());
    const auto* e = clients->failed->get<tls::CertificateError>();
    ASSERT_NE(e, nullptr) << clients->failed->toString();
    EXPECT_EQ(e->kind(), r.kind) << e->what();
    EXPECT_FALSE(clients->built.at(0)->made);  // the protocol never saw a connection
    // The server refused nothing: it heard the client's alert; its protocol never connected.
    ASSERT_TRUE(runUntil(reactor, [&] { return reactor.selectableCount() <= ports.size(); }));
    EXPECT_FALSE(servers->built.at(0)->made);
  }
}

TEST_F(TLSTest, VerificationCanBeTurnedOff) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext("self"));
  auto clients = makeClients();
  tls::connectSSL(reactor, "localhost", port, clients,
                  std::make_shared<tls::ClientContext>(tls::ClientOptions{.verifyPeer = false}));
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_FALSE(clients->failed) << clients->failed->toString();
  EXPECT_EQ(clients->built.at(0)->data, "hello");
}

TEST_F(TLSTest, NoCommonVersionIsAHandshakeError) {
  auto servers = makeServers();
  uint16_t port =
      listen(servers, serverContext("server", {.minimumVersion = tls::Version::TLS1_3}));
  auto client = clientContext();
  SSL_CTX_set_max_proto_version(client->native(), TLS1_2_VERSION);
  auto clients = makeClients();
  tls::connectSSL(reactor, "localhost", port, clients, client);
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_TRUE(clients->failed.has_value());
  const auto* e = clients->failed->get<tls::HandshakeError>();
  ASSERT_NE(e, nullptr) << clients->failed->toString();
  EXPECT_EQ(e->kind(), tls::HandshakeError::Kind::ProtocolVersion) << e->what();
}

TEST_F(TLSTest, TLS12WorksAndUsesAnAEADCipher) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext());
  auto client = clientContext();
  SSL_CTX_set_max_proto_version(client->native(), TLS1_2_VERSION);
  auto clients = makeClients();
  tls::connectSSL(reactor, "localhost", port, clients, client);
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_FALSE(clients->failed) << clients->failed->toString();
  EXPECT_EQ(clients->built.at(0)->version, "TLSv1.2");
  EXPECT_EQ(clients->built.at(0)->data, "hello");
}

TEST_F(TLSTest, ALPNNegotiatesTheServersPreference) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext("server", {.alpn = {"h2", "http/1.1"}}));
  auto clients = makeClients();
  tls::connectSSL(reactor, "localhost", port, clients, clientContext({.alpn = {"http/1.1", "h2"}}));
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_FALSE(clients->failed) << clients->failed->toString();
  EXPECT_EQ(clients->built.at(0)->alpn, "h2");
  EXPECT_EQ(servers->built.at(0)->alpn, "h2");
}

TEST_F(TLSTest, ALPNWithoutACommonProtocolIsRefused) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext("server", {.alpn = {"h2"}}));
  auto clients = makeClients();
  tls::connectSSL(reactor, "localhost", port, clients, clientContext({.alpn = {"spdy/3"}}));
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_TRUE(clients->failed.has_value());
  const auto* e = clients->failed->get<tls::HandshakeError>();
  ASSERT_NE(e, nullptr) << clients->failed->toString();
  EXPECT_EQ(e->kind(), tls::HandshakeError::Kind::NoApplicationProtocol) << e->what();
}

TEST_F(TLSTest, SNIPicksTheCertificateForTheName) {
  auto servers = makeServers();
  tls::ServerOptions o;
  o.sniCertificates.push_back({certFile("other.pem"), certFile("other.key")});
  uint16_t port = listen(servers, serverContext("server", o));
  for (const char* name : {"other.example", "localhost"}) {
    SCOPED_TRACE(name);
    auto clients = makeClients();
    tls::connectSSL(reactor, "127.0.0.1", port, clients, clientContext(), {.serverName = name});
    ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
    ASSERT_FALSE(clients->failed) << clients->failed->toString();
    EXPECT_EQ(clients->built.at(0)->peerCN, name);
    EXPECT_EQ(servers->built.back()->serverName, name);
  }
}

TEST_F(TLSTest, SessionsAreResumed) {
  for (auto v : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(v);
    auto servers = makeServers();
    uint16_t port = listen(servers, serverContext());
    auto client = clientContext();
    SSL_CTX_set_max_proto_version(client->native(), v);
    for (int i = 0; i < 3; ++i) {
      auto clients = makeClients();
      tls::connectSSL(reactor, "localhost", port, clients, client);
      ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
      ASSERT_FALSE(clients->failed) << clients->failed->toString();
      EXPECT_EQ(clients->built.at(0)->reused, i > 0) << "connection " << i;
    }
  }
}

TEST_F(TLSTest, ClientCertificates) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext("server", {.clientCAFile = certFile("ca.pem")}));
  // With one: the server's protocol sees it.
  auto clients = makeClients();
  tls::connectSSL(reactor, "localhost", port, clients,
                  clientContext({.certificateChainFile = certFile("client.pem"),
                                 .privateKeyFile = certFile("client.key")}));
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_FALSE(clients->failed) << clients->failed->toString();
  EXPECT_EQ(clients->built.at(0)->data, "hello");
  EXPECT_EQ(servers->built.at(0)->peerCN, "client");

  // Without: refused. (In TLS 1.3 the client's handshake ends before the server has checked,
  // so the client hears it as the server's alert after its connectionMade.)
  auto anonymous = makeClients();
  tls::connectSSL(reactor, "localhost", port, anonymous, clientContext());
  ASSERT_TRUE(runUntil(reactor, [&] { return anonymous->ended(); }));
  const Failure& why = anonymous->failed ? *anonymous->failed : *anonymous->lost;
  EXPECT_TRUE(why.check<tls::TLSError>()) << why.toString();
  EXPECT_NE(why.toString().find("certificate required"), std::string::npos) << why.toString();
  ASSERT_TRUE(runUntil(reactor, [&] { return reactor.selectableCount() <= ports.size(); }));
  EXPECT_FALSE(servers->built.at(1)->made);
}

// Idle connections give their record buffers back (bench/tls_idle_memory.py: 48 KiB per idle
// server connection become 15.6).
TEST_F(TLSTest, ContextsReleaseIdleBuffers) {
  EXPECT_NE(SSL_CTX_get_mode(serverContext()->native()) & SSL_MODE_RELEASE_BUFFERS, 0u);
  EXPECT_NE(SSL_CTX_get_mode(clientContext()->native()) & SSL_MODE_RELEASE_BUFFERS, 0u);
}

TEST_F(TLSTest, BadContextsAreClearErrors) {
  EXPECT_THROW(serverContext("missing"), tls::ContextError);
  tls::ServerOptions mismatch{.certificateChainFile = certFile("server.pem"),
                              .privateKeyFile = certFile("other.key")};
  try {
    tls::ServerContext c(mismatch);
    ADD_FAILURE() << "a key that does not match was accepted";
  } catch (const tls::ContextError& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }
  tls::ServerOptions encrypted{.certificateChainFile = certFile("server.pem"),
                               .privateKeyFile = certFile("server-enc.key"),
                               .password = "wrong"};
  EXPECT_THROW(tls::ServerContext{encrypted}, tls::ContextError);
  encrypted.password = "secret";
  EXPECT_NO_THROW(tls::ServerContext{encrypted});
  EXPECT_THROW(clientContext({.alpn = {""}}), tls::ContextError);
  EXPECT_THROW(serverContext("server", {.cipherList = "NOT-A-CIPHER"}), tls::ContextError);
  EXPECT_THROW(clientContext({.caFile = "/nonexistent.pem"}), tls::ContextError);
}

// ---- hostile and careless peers ----

TEST_F(TLSTest, GarbageInsteadOfAClientHelloIsClosedCleanly) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext());
  auto capture = testing::LogCapture::install();
  for (std::string garbage : {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                              std::string(5000, '\x16'), std::string("\x16\x03\x01\xff\xff", 5)}) {
    bool eof = false;
    testing::ClientThread client([&] {
      int fd = testing::connectTo(port);
      testing::sendAll(fd, garbage);
      testing::recvUntilEof(fd, &eof);
      ::close(fd);
    });
    ASSERT_TRUE(runUntil(reactor, [&] { return client.done(); }));
    EXPECT_TRUE(eof);
  }
  ASSERT_TRUE(runUntil(reactor, [&] { return reactor.selectableCount() <= ports.size(); }));
  for (auto& p : servers->built) EXPECT_FALSE(p->made);
  EXPECT_GE(capture->count("TLS handshake with"), 3);
}

TEST_F(TLSTest, ASilentPeerIsTimedOut) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext(), {.handshakeTimeout = 0.2});
  bool eof = false;
  testing::ClientThread client([&] {
    int fd = testing::connectTo(port);
    testing::recvUntilEof(fd, &eof);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(reactor, [&] { return client.done(); }));
  EXPECT_TRUE(eof);
  EXPECT_FALSE(servers->built.at(0)->made);
}

// The server writes as fast as a producer may; the client never reads. The producer is paused,
// and what waits stays near the high mark: the server's memory does not grow (Twisted #5063).
class Flooder : public Protocol, public IProducer {
 public:
  explicit Flooder(Reactor& r) : reactor_(r) {}
  void connectionMade() override {
    transport()->registerProducer(this, true);
    resumeProducing();
  }
  void resumeProducing() override {
    paused = false;
    while (!paused && written < (64u << 20)) {
      transport()->write(chunk_);
      written += chunk_.size();
      maxBuffered = std::max(maxBuffered, transport()->bufferedSize());
    }
  }
  void pauseProducing() override {
    paused = true;
    ++pauses;
  }
  void connectionLost(const Failure& r) override { reason = r; }
  Reactor& reactor_;
  std::string chunk_ = std::string(16384, 'z');
  bool paused = false;
  int pauses = 0;
  size_t written = 0, maxBuffered = 0;
  std::optional<Failure> reason;
};

TEST_F(TLSTest, ANonReadingClientCannotGrowTheServersMemory) {
  std::shared_ptr<Flooder> flooder;
  struct F : ServerFactory {
    Reactor& r;
    std::shared_ptr<Flooder>& out;
    F(Reactor& r, std::shared_ptr<Flooder>& out) : r(r), out(out) {}
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
      return out = std::make_shared<Flooder>(r);
    }
  };
  uint16_t port = listen(std::make_shared<F>(reactor, flooder), serverContext());
  // A TLS client (Python) that completes the handshake and then never reads.
  std::string script =
      "import socket, ssl, time\n"
      "ctx = ssl.create_default_context(cafile='" +
      certFile("ca.pem") +
      "')\n"
      "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', " +
      std::to_string(port) +
      ")), server_hostname='localhost')\n"
      "time.sleep(120)\n";
  testing::Subprocess py({"/usr/bin/python3", "-c", script});
  ASSERT_TRUE(runUntil(reactor, [&] { return flooder && flooder->pauses > 0; }));
  testing::runFor(reactor, 0.5);
  EXPECT_TRUE(flooder->paused);
  EXPECT_LT(flooder->written, 16u << 20);  // the kernel's buffers and the high mark, no more
  EXPECT_LT(flooder->maxBuffered, 256u * 1024) << "plaintext and ciphertext waiting";
}

TEST_F(TLSTest, ATruncatedConnectionIsNotAClean) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext());
  // Python closes the socket without unwrap(): no close_notify.
  std::string script =
      "import socket, ssl\n"
      "ctx = ssl.create_default_context(cafile='" +
      certFile("ca.pem") +
      "')\n"
      "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', " +
      std::to_string(port) +
      ")), server_hostname='localhost')\n"
      "s.sendall(b'ping')\n"
      "assert s.recv(4) == b'ping'\n"
      "s.close()\n";
  testing::ClientThread client([&] {
    testing::Subprocess py({"/usr/bin/python3", "-c", script});
    EXPECT_EQ(py.waitExit(), 0);
  });
  ASSERT_TRUE(runUntil(reactor, [&] {
    return client.done() && !servers->built.empty() && servers->built[0]->reason;
  }));
  EXPECT_TRUE(servers->built[0]->reason->check<tls::TruncatedError>())
      << servers->built[0]->reason->toString();
}

// ---- real peers ----

TEST_F(TLSTest, PythonClientWithCloseNotify) {
  auto servers = makeServers();
  uint16_t port = listen(servers, serverContext("server", {.alpn = {"echo/1"}}));
  std::string script =
      "import socket, ssl\n"
      "ctx = ssl.create_default_context(cafile='" +
      certFile("ca.pem") +
      "')\n"
      "ctx.set_alpn_protocols(['echo/1'])\n"
      "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', " +
      std::to_string(port) +
      ")), server_hostname='localhost')\n"
      "assert s.selected_alpn_protocol() == 'echo/1'\n"
      "data = bytes(range(256)) * 1000\n"
      "s.sendall(data)\n"
      "got = b''\n"
      "while len(got) < len(data): got += s.recv(65536)\n"
      "assert got == data\n"
      "s.unwrap().close()\n"
      "print('ok', s.version() if False else 'done')\n";
  std::string out;
  testing::ClientThread client([&] {
    testing::Subprocess py({"/usr/bin/python3", "-c", script}, true);
    out = py.readLine(60);
    EXPECT_EQ(py.waitExit(), 0);
  });
  ASSERT_TRUE(runUntil(
      reactor, [&] { return client.done(); }, 60));
  EXPECT_EQ(out, "ok done\n");
  ASSERT_TRUE(runUntil(reactor, [&] { return servers->built.at(0)->reason.has_value(); }));
  EXPECT_TRUE(servers->built[0]->reason->check<ConnectionDone>())
      << servers->built[0]->reason->toString();
}

TEST_F(TLSTest, OpenSSLSClient) {
  auto servers = makeServers();
  servers->closeAfter = 14;  // s_client -quiet ends when the server closes
  uint16_t port = listen(servers, serverContext());
  std::string out;
  int status = -1;
  testing::ClientThread client([&] {
    out = testing::shell(
        "printf 'over s_client\\n' | /usr/bin/openssl s_client -quiet "
        "-verify_return_error -CAfile '" +
            certFile("ca.pem") +
            "' -servername localhost -connect 127.0.0.1:" + std::to_string(port) + " 2>/dev/null",
        &status);
  });
  ASSERT_TRUE(runUntil(reactor, [&] { return client.done(); }));
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "over s_client\n");
}

TEST_F(TLSTest, TwistClientAgainstOpenSSLSServer) {
  testing::Subprocess server({"/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                              certFile("server.pem"), "-key", certFile("server.key"), "-rev",
                              "-naccept", "1"});
  std::string all = server.readUntil("ACCEPT");  // "ACCEPT 127.0.0.1:PORT"
  size_t colon = all.rfind(':');
  ASSERT_NE(colon, std::string::npos) << all;
  auto port = static_cast<uint16_t>(std::stoi(all.substr(colon + 1)));
  auto clients = makeClients();
  clients->greeting = "olleh\n";  // -rev sends each line back reversed
  clients->closeAfter = 6;
  tls::connectSSL(reactor, "localhost", port, clients, clientContext());
  ASSERT_TRUE(runUntil(reactor, [&] { return clients->ended(); }));
  ASSERT_FALSE(clients->failed) << clients->failed->toString();
  EXPECT_EQ(clients->built.at(0)->data.substr(0, 6), "hello\n");
}

}  // namespace
}  // namespace twist
