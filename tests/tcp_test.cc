// TCP transports through real sockets on 127.0.0.1: Port, Server, the connection life cycle and
// every way a connection ends.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "tests/scripted.h"
#include "tests/test_util.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_port.h"

namespace twist {
namespace {

using testing::ClientThread;
using testing::connectTo;
using testing::ConnRecord;
using testing::duplexEcho;
using testing::Hooks;
using testing::LogCaptureScope;
using testing::pattern;
using testing::portOf;
using testing::quietOptions;
using testing::recvAtMost;
using testing::recvUntilEof;
using testing::runFor;
using testing::runUntil;
using testing::ScriptedFactory;
using testing::ScriptedProtocol;
using testing::sendAll;

TEST(Tcp, EchoIsByteExactFromOneByteTo16MiB) {
  Reactor r(quietOptions());
  auto port = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
  uint16_t p = portOf(port);
  ASSERT_NE(p, 0);
  std::vector<size_t> sizes = {1, 2, 100, 4095, 4096, 4097, 65535, 65536, 65537, 1 << 20, 16 << 20};
  std::vector<bool> ok(sizes.size(), false);
  ClientThread client([&] {
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::string payload = pattern(sizes[i], static_cast<unsigned>(i));
      ok[i] = duplexEcho(p, payload) == payload;
    }
  });
  ASSERT_TRUE(runUntil(
      r, [&] { return client.done(); }, 120));
  for (size_t i = 0; i < sizes.size(); ++i) EXPECT_TRUE(ok[i]) << "size " << sizes[i];
}

// Options::backend picks libevent's method; every one serves the same protocol code.
TEST(Tcp, EveryBackendServesTheSameProtocol) {
  for (const char* backend : {"epoll", "poll", "select"}) {
    SCOPED_TRACE(backend);
    auto o = quietOptions();
    o.backend = backend;
    Reactor r(o);
    EXPECT_EQ(r.backend(), backend);
    auto port = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
    uint16_t p = portOf(port);
    std::string payload = pattern(1 << 20, 7), got;
    ClientThread client([&] { got = duplexEcho(p, payload); });
    ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
    EXPECT_TRUE(got == payload);
    // A timer too.
    bool fired = false;
    r.callLater(0.01, [&] { fired = true; });
    EXPECT_TRUE(runUntil(r, [&] { return fired; }));
  }
  auto o = quietOptions();
  o.backend = "kqueue";
  try {
    Reactor r(o);
    ADD_FAILURE() << "kqueue on Linux";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("there are: epoll"), std::string::npos) << e.what();
  }
}

// select() cannot watch a descriptor of FD_SETSIZE or more (glibc aborts the process when asked
// to): with the select backend such a connection is closed with a warning, never watched; a
// connectTCP fails with a ConnectError. The reactor goes on serving.
TEST(Tcp, TheSelectBackendRefusesDescriptorsItCannotWatch) {
  rlimit old{};
  ::getrlimit(RLIMIT_NOFILE, &old);
  if (old.rlim_max < FD_SETSIZE + 64) GTEST_SKIP() << "needs " << FD_SETSIZE + 64 << " fds";
  auto o = quietOptions();
  o.backend = "select";
  Reactor r(o);
  auto port = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
  uint16_t p = portOf(port);
  rlimit raised = old;
  raised.rlim_cur = FD_SETSIZE + 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
  std::vector<int> filler;  // every descriptor below FD_SETSIZE taken
  for (int fd = 0; fd < FD_SETSIZE;) {
    fd = ::open("/dev/null", O_RDONLY);
    if (fd < 0) break;
    filler.push_back(fd);
  }
  LogCaptureScope logs;
  int client = connectTo(p);
  bool eof = false;
  std::string got;
  ClientThread c([&] { got = recvUntilEof(client, &eof, 10); });  // closed, unread: a FIN
  ASSERT_TRUE(runUntil(r, [&] { return c.done(); }));
  EXPECT_TRUE(eof);
  EXPECT_EQ(got, "");
  EXPECT_EQ(logs->count("cannot watch descriptor"), 1);
  struct Failed : ClientFactory {
    std::optional<Failure> reason;
    std::shared_ptr<Protocol> buildProtocol(const Address&) override { return nullptr; }
    void clientConnectionFailed(IConnector&, const Failure& f) override { reason = f; }
  };
  auto f = std::make_shared<Failed>();
  r.connectTCP("127.0.0.1", p, f);
  ASSERT_TRUE(runUntil(r, [&] { return f->reason.has_value(); }));
  EXPECT_TRUE(f->reason->check<ConnectError>());
  EXPECT_NE(f->reason->getErrorMessage().find("cannot watch"), std::string::npos);
  ::close(client);
  for (int fd : filler) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);
  // Below FD_SETSIZE again: served.
  std::string echoed;
  ClientThread again([&] { echoed = duplexEcho(p, "served"); });
  ASSERT_TRUE(runUntil(r, [&] { return again.done(); }));
  EXPECT_EQ(echoed, "served");
}

TEST(Tcp, AdoptStreamPortServesASocketMadeElsewhere) {
  Reactor r(quietOptions());
  uint16_t p = 0;
  int fd = testing::bindLoopback(SOCK_STREAM, &p, 16);  // made by hand, as a parent would
  auto port = r.adoptStreamPort(fd, Factory::forProtocol<wire::Echo>());
  EXPECT_EQ(port->getHost().port(), p);
  std::string got;
  ClientThread client([&] { got = duplexEcho(p, "adopted"); });
  ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(got, "adopted");
  // The port works on a duplicate: stopping it leaves the caller's descriptor open, listening.
  (void)port->stopListening();
  EXPECT_GE(::fcntl(fd, F_GETFD), 0);
  EXPECT_TRUE(testing::isListening(fd));
  ::close(fd);
}

TEST(Tcp, AdoptingWhatIsNotAListeningTCPSocketIsRefused) {
  Reactor r(quietOptions());
  int unbound = ::socket(AF_INET, SOCK_STREAM, 0);
  int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
  for (int fd : {unbound, udp, -1, 12345}) {
    EXPECT_THROW(r.adoptStreamPort(fd, Factory::forProtocol<wire::Echo>()), std::invalid_argument);
    EXPECT_THROW(r.adoptStreamConnection(fd, Factory::forProtocol<wire::Echo>()),
                 std::invalid_argument);
  }
  EXPECT_THROW(r.adoptStreamPort(unbound, nullptr), std::invalid_argument);
  ::close(unbound);
  ::close(udp);
}

TEST(Tcp, AdoptStreamConnectionServesASocketAcceptedElsewhere) {
  Reactor r(quietOptions());
  uint16_t p = 0;
  int lfd = testing::bindLoopback(SOCK_STREAM, &p, 16);
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& proto, std::string_view d) { proto.transport()->write(d); };
  int client = connectTo(p);
  int accepted = ::accept(lfd, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  r.adoptStreamConnection(accepted, f);
  ::close(accepted);  // ours; the reactor has its own
  ::close(lfd);
  std::string got;
  ClientThread c([&] {
    testing::sendAll(client, "handed over");
    got = recvAtMost(client, 11);
    ::close(client);
  });
  ASSERT_TRUE(runUntil(r, [&] { return c.done(); }));
  EXPECT_EQ(got, "handed over");
  ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1 && f->conns[0]->lost == 1; }));
  EXPECT_EQ(f->conns[0]->host.port(), p);
  EXPECT_EQ(f->starts, 0);  // as in Twisted: buildProtocol only
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionDone>());
}

TEST(Tcp, HundredConcurrentClients) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& p, std::string_view d) { p.transport()->write(d); };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1", .backlog = 128});
  constexpr int kClients = 100;
  int good = 0;
  ClientThread client([&] {
    std::vector<int> fds;
    for (int i = 0; i < kClients; ++i) fds.push_back(connectTo(portOf(port)));
    for (int i = 0; i < kClients; ++i) sendAll(fds[i], "client " + std::to_string(i) + ";");
    for (int i = 0; i < kClients; ++i) {
      std::string want = "client " + std::to_string(i) + ";";
      good += recvAtMost(fds[i], want.size()) == want;
    }
    for (int fd : fds) ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done() && f->lostCount() == kClients; }));
  EXPECT_EQ(good, kClients);
  ASSERT_EQ(f->conns.size(), static_cast<size_t>(kClients));
  f->expectEachLostOnce();
  for (auto& c : f->conns) EXPECT_TRUE(c->reason.check<ConnectionDone>());
}

TEST(Tcp, PeerCloseGivesConnectionDone) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  sendAll(fd, "bye");
  ::close(fd);
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  f->expectEachLostOnce();
  EXPECT_EQ(f->conns[0]->data, "bye");
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionDone>());
  EXPECT_FALSE(f->conns[0]->reason.check<ConnectionLost>());
}

TEST(Tcp, PeerResetGivesConnectionLostWithTheOsError) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  sendAll(fd, "x");
  ASSERT_TRUE(runUntil(r, [&] { return !f->conns.empty() && f->conns[0]->data == "x"; }));
  testing::setLingerZero(fd);
  ::close(fd);
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  f->expectEachLostOnce();
  const Failure& why = f->conns[0]->reason;
  ASSERT_TRUE(why.check<ConnectionLost>()) << why.toString();
  EXPECT_FALSE(why.check<ConnectionDone>());
  EXPECT_EQ(why.get<ConnectionLost>()->osError(), ECONNRESET);
  EXPECT_NE(why.getErrorMessage().find("reset"), std::string::npos) << why.getErrorMessage();
}

TEST(Tcp, LoseConnectionDeliversEverythingWrittenBeforeIt) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  const std::string big = pattern(8 << 20, 7);
  f->hooks.made = [&](Protocol& p) {
    // More than the default cap of what may wait to be sent: lift it to write it in one go.
    p.transport()->setWriteBufferLimits({.hardCap = WriteBufferLimits::kNoLimit});
    p.transport()->write(big);
    p.transport()->loseConnection();
    EXPECT_TRUE(p.transport()->disconnecting());
    p.transport()->write("written after loseConnection: ignored");
    p.transport()->loseConnection();  // idempotent
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  std::string got;
  bool eof = false;
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    got = recvUntilEof(fd, &eof, 60);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(
      r, [&] { return client.done() && f->lostCount() == 1; }, 60));
  EXPECT_TRUE(eof);
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big);
  f->expectEachLostOnce();
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionDone>());
}

TEST(Tcp, AbortConnectionDropsUnsentDataAndReportsLater) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  const size_t kBig = 64 << 20;  // far more than the socket buffers hold
  bool lostInsideAbort = false;
  f->hooks.made = [&](Protocol& p) {
    p.transport()->setWriteBufferLimits({.hardCap = WriteBufferLimits::kNoLimit});
    p.transport()->write(std::string(kBig, 'a'));
    EXPECT_GT(p.transport()->bufferedSize(), 0u);
    p.transport()->abortConnection();
    lostInsideAbort = f->conns[0]->lost != 0;
    p.transport()->abortConnection();  // idempotent
    p.transport()->write("after abort: ignored");
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  std::string got = recvUntilEof(fd, nullptr, 20);
  ::close(fd);
  EXPECT_FALSE(lostInsideAbort);
  EXPECT_LT(got.size(), kBig);
  f->expectEachLostOnce();
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionAborted>());
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionLost>());
}

TEST(Tcp, LoseConnectionFromInsideDataReceived) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& p, std::string_view d) {
    p.transport()->write("bye ");
    p.transport()->write(d);
    p.transport()->loseConnection();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  std::string got;
  bool eof = false;
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    sendAll(fd, "now");
    got = recvUntilEof(fd, &eof);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done() && f->lostCount() == 1; }));
  EXPECT_EQ(got, "bye now");
  EXPECT_TRUE(eof);
  f->expectEachLostOnce();
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionDone>());
}

TEST(Tcp, AbortFromInsideDataReceived) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  int lostDuringCallback = -1;
  f->hooks.data = [&](Protocol& p, std::string_view) {
    p.transport()->abortConnection();
    p.transport()->write("ignored");
    lostDuringCallback = f->conns[0]->lost;
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  sendAll(fd, "trigger");
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  EXPECT_EQ(recvUntilEof(fd), "");
  ::close(fd);
  EXPECT_EQ(lostDuringCallback, 0);
  f->expectEachLostOnce();
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionAborted>());
}

TEST(Tcp, WritesDuringConnectionLostAreIgnored) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.lost = [](Protocol& p, const Failure&) {
    ASSERT_NE(p.transport(), nullptr);
    p.transport()->write("too late");
    p.transport()->loseConnection();
    p.transport()->abortConnection();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ::close(fd);
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  runFor(r, 0.05);
  f->expectEachLostOnce();
}

TEST(Tcp, BuildProtocolReturningNullRefusesTheConnection) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->refuse = true;
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  std::string got = "unset";
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    got = recvUntilEof(fd);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(got, "");
  EXPECT_TRUE(f->conns.empty());
  EXPECT_EQ(r.selectableCount(), 1u);  // just the port
}

TEST(Tcp, StopListeningFromInsideBuildProtocol) {
  Reactor r(quietOptions());
  std::shared_ptr<IListeningPort> port;
  // Accepts one connection, then stops listening from inside buildProtocol.
  class OneShot : public ServerFactory {
   public:
    explicit OneShot(std::shared_ptr<IListeningPort>* port) : port_(port) {}
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
      (*port_)->stopListening();
      return std::make_unique<wire::Echo>();
    }
    std::shared_ptr<IListeningPort>* port_;
  };
  port = r.listenTCP(0, std::make_shared<OneShot>(&port), {.interface = "127.0.0.1"});
  uint16_t p = portOf(port);
  std::string got;
  ClientThread client([&] {
    int fd = connectTo(p);
    sendAll(fd, "once");
    got = recvAtMost(fd, 4);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(got, "once");
  EXPECT_FALSE(port->listening());
  EXPECT_THROW(connectTo(p), std::runtime_error);  // refused: nothing listens any more
}

TEST(Tcp, StartAndStopFactoryCountPorts) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  auto a = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  auto b = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  EXPECT_EQ(f->starts, 1);
  EXPECT_EQ(f->numPorts(), 2);
  a->stopListening();
  EXPECT_EQ(f->stops, 0);
  a->stopListening();  // idempotent: does not count twice
  EXPECT_EQ(f->stops, 0);
  b->stopListening();
  EXPECT_EQ(f->stops, 1);
  auto c = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  EXPECT_EQ(f->starts, 2);
}

TEST(Tcp, StopListeningThenListenAgainOnTheSamePort) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& p, std::string_view d) { p.transport()->write(d); };
  auto first = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  uint16_t p = portOf(first);
  int fd = connectTo(p);  // a connection that outlives the port
  ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1; }));
  first->stopListening();
  EXPECT_FALSE(first->listening());
  EXPECT_EQ(first->getHost().port(), p);  // the handle stays usable
  auto second = r.listenTCP(p, f, {.interface = "127.0.0.1"});
  EXPECT_EQ(portOf(second), p);
  std::string got;
  ClientThread client([&] {
    sendAll(fd, "old");
    got = recvAtMost(fd, 3);
    int fd2 = connectTo(p);
    sendAll(fd2, "new");
    got += recvAtMost(fd2, 3);
    ::close(fd2);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done() && f->lostCount() == 2; }));
  EXPECT_EQ(got, "oldnew");
}

TEST(Tcp, AddressInUseIsAClearError) {
  Reactor r(quietOptions());
  auto port = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
  uint16_t p = portOf(port);
  try {
    r.listenTCP(p, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
    FAIL() << "expected CannotListenError";
  } catch (const CannotListenError& e) {
    EXPECT_EQ(e.osError(), EADDRINUSE);
    EXPECT_EQ(e.port(), p);
    std::string what = e.what();
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(p)), std::string::npos) << what;
    EXPECT_NE(what.find("Address already in use"), std::string::npos) << what;
  }
  EXPECT_THROW(r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "not-an-ip"}),
               CannotListenError);
}

TEST(Tcp, ExceptionInDataReceivedIsLoggedAndAbortsOnlyThatConnection) {
  LogCaptureScope logs;
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& p, std::string_view d) {
    if (d.find("bad") != std::string_view::npos) throw std::runtime_error("cannot parse bad input");
    p.transport()->write(d);
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int bad = connectTo(portOf(port));
  sendAll(bad, "bad");
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  std::string peer = f->conns[0]->peer.toString();
  ::close(bad);
  std::string got;
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    sendAll(fd, "good");
    got = recvAtMost(fd, 4);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done() && f->lostCount() == 2; }));
  EXPECT_EQ(got, "good");
  f->expectEachLostOnce();
  EXPECT_TRUE(f->conns[0]->reason.check<std::runtime_error>());
  EXPECT_EQ(logs->count("cannot parse bad input"), 1);
  EXPECT_EQ(logs->count(peer), 1) << "the log line names the peer " << peer;
}

TEST(Tcp, ExceptionInConnectionMadeAbortsTheConnection) {
  LogCaptureScope logs;
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.made = [](Protocol&) { throw std::logic_error("refusing in connectionMade"); };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  ::close(fd);
  f->expectEachLostOnce();
  EXPECT_TRUE(f->conns[0]->reason.check<std::logic_error>());
  EXPECT_EQ(logs->count("refusing in connectionMade"), 1);
}

TEST(Tcp, AddressesAndSocketOptions) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  bool noDelay = false, keepAlive = false;
  f->hooks.made = [&](Protocol& p) {
    p.transport()->setTcpNoDelay(true);
    p.transport()->setTcpKeepAlive(true);
    noDelay = p.transport()->getTcpNoDelay();
    keepAlive = p.transport()->getTcpKeepAlive();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  sockaddr_in local{};
  socklen_t len = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1; }));
  ::close(fd);
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  const ConnRecord& c = *f->conns[0];
  EXPECT_EQ(c.host, Address(IPv4Address{"127.0.0.1", portOf(port)}));
  EXPECT_EQ(c.peer.port(), ntohs(local.sin_port));
  EXPECT_EQ(c.peer.host(), "127.0.0.1");
  EXPECT_EQ(c.host.repr(),
            "IPv4Address(host='127.0.0.1', port=" + std::to_string(portOf(port)) + ")");
  EXPECT_TRUE(noDelay);
  EXPECT_TRUE(keepAlive);
}

TEST(Tcp, WriteSequenceSendsThePiecesInOrder) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  const std::string big = pattern(3 << 20, 3);
  f->hooks.made = [&](Protocol& p) {
    std::string_view pieces[] = {"a", "", "bc", "def"};
    p.transport()->writeSequence(pieces);
    std::string_view more[] = {big, "tail"};  // more than the kernel takes at once
    p.transport()->writeSequence(more);
    p.transport()->loseConnection();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  std::string got;
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    got = recvUntilEof(fd);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(
      r, [&] { return client.done(); }, 60));
  EXPECT_TRUE(got == "abcdef" + big + "tail");
}

TEST(Tcp, PauseAndResumeProducing) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  ITransport* transport = nullptr;
  f->hooks.made = [&](Protocol& p) {
    transport = p.transport();
    transport->pauseProducing();
  };
  f->hooks.lost = [&](Protocol&, const Failure&) { transport = nullptr; };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  sendAll(fd, "held back");
  ASSERT_TRUE(runUntil(r, [&] { return transport != nullptr; }));
  runFor(r, 0.1);  // paused: nothing may be delivered
  EXPECT_EQ(f->conns[0]->data, "");
  transport->resumeProducing();
  ASSERT_TRUE(runUntil(r, [&] { return f->conns[0]->data == "held back"; }));
  ::close(fd);
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  f->expectEachLostOnce();
}

// A push producer that writes 256 KiB per loop pass while it is not paused, to a client that
// reads slowly: the transport pauses it above the high-water mark and resumes it once drained,
// so its buffer stays bounded; everything arrives in order; stopProducing comes at the end.
TEST(Tcp, StreamingProducerIsPausedAndResumed) {
  Reactor r(quietOptions());
  constexpr size_t kPiece = 256 * 1024, kTotal = 32 << 20;
  struct Stats {
    int pauses = 0, resumes = 0, stops = 0;
    size_t written = 0, mostBuffered = 0;
  } stats;
  class Pusher : public Protocol, public IProducer {
   public:
    Pusher(Reactor* r, Stats* s) : r_(r), s_(s) {}
    void connectionMade() override {
      transport()->registerProducer(this, true);
      pump();
    }
    void pauseProducing() override {
      ++s_->pauses;
      paused_ = true;
    }
    void resumeProducing() override {
      ++s_->resumes;
      paused_ = false;
      pump();
    }
    void stopProducing() override { ++s_->stops; }
    // The reactor may drop this protocol once its connection is gone: no pump may be left.
    void connectionLost(const Failure&) override {
      if (next_.active()) next_.cancel();
    }

   private:
    void pump() {
      if (paused_ || s_->written >= kTotal || !connected()) return;
      std::string piece(kPiece, '\0');
      for (size_t i = 0; i < kPiece; ++i) piece[i] = static_cast<char>((s_->written + i) % 251);
      transport()->write(piece);
      s_->written += kPiece;
      s_->mostBuffered = std::max(s_->mostBuffered, transport()->bufferedSize());
      if (s_->written == kTotal) {
        transport()->unregisterProducer();
        transport()->loseConnection();
        return;
      }
      if (!next_.active()) next_ = r_->callLater(0, [this] { pump(); });  // one chain of pumps
    }
    Reactor* r_;
    Stats* s_;
    bool paused_ = false;
    DelayedCall next_;
  };
  class PusherFactory : public ServerFactory {
   public:
    PusherFactory(Reactor* r, Stats* s) : r_(r), s_(s) {}
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
      return std::make_unique<Pusher>(r_, s_);
    }
    Reactor* r_;
    Stats* s_;
  };
  auto port =
      r.listenTCP(0, std::make_shared<PusherFactory>(&r, &stats), {.interface = "127.0.0.1"});
  std::string got;
  std::atomic<bool> go{false};
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    while (!go.load()) {
    }
    got = recvUntilEof(fd, nullptr, 60);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return stats.pauses > 0; }));
  runFor(r, 0.1);  // paused: nothing more is produced while the client does not read
  size_t writtenWhilePaused = stats.written;
  runFor(r, 0.1);
  EXPECT_EQ(stats.written, writtenWhilePaused);
  go = true;
  ASSERT_TRUE(runUntil(
      r, [&] { return client.done(); }, 60));
  EXPECT_GE(stats.resumes, 1);
  EXPECT_LE(stats.mostBuffered, ITransport::kHighWater + kPiece);
  ASSERT_EQ(got.size(), kTotal);
  bool inOrder = true;
  for (size_t i = 0; i < kTotal && inOrder; ++i) inOrder = got[i] == static_cast<char>(i % 251);
  EXPECT_TRUE(inOrder);
  EXPECT_EQ(stats.stops, 0) << "it unregistered before closing: nothing to stop";
}

TEST(Tcp, ProducerIsStoppedWhenTheConnectionEnds) {
  Reactor r(quietOptions());
  int stops = 0;
  class Idle : public Protocol, public IProducer {
   public:
    explicit Idle(int* stops) : stops_(stops) {}
    void connectionMade() override { transport()->registerProducer(this, true); }
    void resumeProducing() override {}
    void stopProducing() override { ++*stops_; }
    int* stops_;
  };
  auto port = r.listenTCP(0, Factory::forProtocol<Idle>(&stops), {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  testing::runFor(r, 0.05);
  ::close(fd);
  ASSERT_TRUE(runUntil(r, [&] { return stops == 1; }));
}

TEST(Tcp, LoseWriteConnectionHalfCloses) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.made = [](Protocol& p) {
    p.transport()->write("half");
    p.transport()->loseWriteConnection();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  std::string got;
  bool eof = false;
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    got = recvUntilEof(fd, &eof);
    sendAll(fd, "still reading");
    ::shutdown(fd, SHUT_WR);
    recvUntilEof(fd);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done() && f->lostCount() == 1; }));
  EXPECT_EQ(got, "half");
  EXPECT_TRUE(eof);
  EXPECT_EQ(f->conns[0]->data, "still reading");
  f->expectEachLostOnce();
}

TEST(Tcp, StopClosesPortsAfterBeforeShutdownTriggersAndLosesConnections) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  bool listeningBefore = false, connectedBefore = false;
  r.addSystemEventTrigger("before", "shutdown", [&] {
    listeningBefore = port->listening();
    connectedBefore = f->conns.size() == 1 && f->conns[0]->lost == 0;
  });
  // Outlives run(): the copies callLater holds refer to it.
  std::function<void()> stopOnceAccepted = [&] {
    if (f->conns.empty()) {
      r.callLater(0.005, stopOnceAccepted);
    } else {
      r.stop();
    }
  };
  r.callWhenRunning(stopOnceAccepted);
  r.run();
  ::close(fd);
  EXPECT_TRUE(listeningBefore);
  EXPECT_TRUE(connectedBefore);
  EXPECT_FALSE(port->listening());
  EXPECT_EQ(f->stops, 1);
  f->expectEachLostOnce();
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionLost>());
  EXPECT_EQ(r.selectableCount(), 0u);
}

TEST(Tcp, DestroyingTheReactorEndsConnectionsOnce) {
  auto f = std::make_shared<ScriptedFactory>();
  std::shared_ptr<IListeningPort> port;
  int fd;
  {
    Reactor r(quietOptions());
    port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
    fd = connectTo(portOf(port));
    ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1; }));
  }
  ::close(fd);
  f->expectEachLostOnce();
  EXPECT_FALSE(port->listening());
  port->stopListening();  // a handle that outlived its reactor: a no-op
  EXPECT_EQ(f->stops, 1);
}

TEST(Tcp, ListensOnIPv6Loopback) {
  Reactor r(quietOptions());
  std::shared_ptr<IListeningPort> port;
  try {
    port = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "::1"});
  } catch (const CannotListenError& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  EXPECT_TRUE(port->getHost().is<IPv6Address>());
  EXPECT_EQ(port->getHost().toString(), "[::1]:" + std::to_string(portOf(port)));
  std::string got;
  ClientThread client([&] {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(portOf(port));
    inet_pton(AF_INET6, "::1", &sa.sin6_addr);
    int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      sendAll(fd, "six");
      got = recvAtMost(fd, 3);
    }
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(got, "six");
}

// ---- hardening: lifetimes, exceptions at the edges, closing from inside callbacks ----

// A factory whose protocols use it until their connectionLost; it says when it is destroyed.
class RoomFactory : public ServerFactory {
 public:
  class Member : public Protocol {
   public:
    explicit Member(std::shared_ptr<bool> alive) : alive_(std::move(alive)) {}
    void dataReceived(std::string_view d) override { room().messages += d.size(); }
    void connectionLost(const Failure&) override {
      factoryAliveAtLost = *alive_;
      if (*alive_) room().lost++;
    }
    RoomFactory& room() { return *static_cast<RoomFactory*>(factory()); }
    static inline bool factoryAliveAtLost = false;

   private:
    std::shared_ptr<bool> alive_;
  };
  ~RoomFactory() override { *alive = false; }
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    ++built;
    return std::make_unique<Member>(alive);
  }
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  size_t messages = 0;
  int built = 0;
  int lost = 0;
};

TEST(Tcp, ConnectionsKeepTheirFactoryAliveAfterStopListening) {
  Reactor r(quietOptions());
  auto factory = std::make_shared<RoomFactory>();
  std::shared_ptr<bool> alive = factory->alive;
  RoomFactory* raw = factory.get();
  auto port =
      r.listenTCP(0, std::move(factory), {.interface = "127.0.0.1"});  // the port is its only owner
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return raw->built == 1; }));
  port->stopListening();
  port.reset();
  r.iterate();  // the reactor frees the stopped port
  EXPECT_TRUE(*alive) << "the connection still needs its factory";
  sendAll(fd, "still here");
  ::close(fd);
  RoomFactory::Member::factoryAliveAtLost = false;
  ASSERT_TRUE(runUntil(r, [&] { return !*alive; }));  // freed with its last connection
  EXPECT_TRUE(RoomFactory::Member::factoryAliveAtLost);
}

class ThrowingFactory : public ServerFactory {
 public:
  bool throwOnStart = false, throwOnStop = false;
  int starts = 0, stops = 0;
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    return std::make_unique<wire::Echo>();
  }
  void startFactory() override {
    ++starts;
    if (throwOnStart) throw std::runtime_error("startFactory failed");
  }
  void stopFactory() override {
    ++stops;
    if (throwOnStop) throw std::runtime_error("stopFactory failed");
  }
};

TEST(Tcp, StartFactoryThrowingInsideListenTCPLeavesNothingListening) {
  Reactor r(quietOptions());
  auto probe = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
  uint16_t p = portOf(probe);
  probe->stopListening();
  size_t before = r.selectableCount();
  auto f = std::make_shared<ThrowingFactory>();
  f->throwOnStart = true;
  EXPECT_THROW(r.listenTCP(p, f, {.interface = "127.0.0.1"}), std::runtime_error);
  EXPECT_EQ(r.selectableCount(), before);
  EXPECT_EQ(f->numPorts(), 0);
  EXPECT_THROW(connectTo(p), std::runtime_error);  // refused: nothing listens
  f->throwOnStart = false;
  auto again = r.listenTCP(p, f, {.interface = "127.0.0.1"});
  EXPECT_EQ(f->starts, 2);
  EXPECT_EQ(f->numPorts(), 1);
}

TEST(Tcp, StopFactoryThrowingIsLoggedAndTheShutdownGoesOn) {
  LogCaptureScope logs;
  Reactor r(quietOptions());
  auto f = std::make_shared<ThrowingFactory>();
  f->throwOnStop = true;
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  EXPECT_NO_THROW(port->stopListening());
  EXPECT_EQ(f->stops, 1);
  EXPECT_FALSE(port->listening());
  // Again through the reactor's shutdown, which used to unwind out of the loop and abort.
  auto second = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  bool after = false;
  r.addSystemEventTrigger("after", "shutdown", [&] { after = true; });
  r.callWhenRunning([&] { r.stop(); });
  r.run();
  EXPECT_TRUE(after);
  EXPECT_EQ(f->stops, 2);
  EXPECT_EQ(logs->count("stopFactory failed"), 2);
}

TEST(Tcp, AnExceptionAfterAbortOrLoseConnectionIsTheReasonConnectionLostGets) {
  LogCaptureScope logs;
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& p, std::string_view d) {
    if (d == "abort") p.transport()->abortConnection();
    if (d == "lose") p.transport()->loseConnection();
    throw std::runtime_error("thrown after " + std::string(d));
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  for (std::string how : {"abort", "lose"}) {
    int fd = connectTo(portOf(port));
    sendAll(fd, how);
    size_t n = f->conns.size();
    ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == n + 1 && f->conns[n]->lost == 1; }));
    ::close(fd);
    const Failure& reason = f->conns[n]->reason;
    ASSERT_TRUE(reason.check<std::runtime_error>()) << how << ": " << reason.toString();
    EXPECT_EQ(reason.getErrorMessage(), "thrown after " + how);
  }
  f->expectEachLostOnce();
}

TEST(Tcp, StopListeningFromInsideConnectionMadeFreesThePortAtOnce) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  std::shared_ptr<IListeningPort> port, rebound;
  std::string error;
  f->hooks.made = [&](Protocol&) {
    if (rebound) return;
    uint16_t p = portOf(port);
    port->stopListening();
    try {
      // Inside the port's own accept callback: the port must be free already.
      rebound = r.listenTCP(p, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
    } catch (const CannotListenError& e) {
      error = e.what();
    }
  };
  port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1; }));
  ::close(fd);
  EXPECT_EQ(error, "");
  ASSERT_TRUE(rebound);
  EXPECT_TRUE(rebound->listening());
  std::string got;
  ClientThread client([&] {
    int c = connectTo(portOf(rebound));
    sendAll(c, "echo");
    got = recvAtMost(c, 4);
    ::close(c);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(got, "echo");
}

TEST(Tcp, AnInterfaceWithANulByteIsRefused) {
  Reactor r(quietOptions());
  using namespace std::string_view_literals;
  try {
    r.listenTCP(0, Factory::forProtocol<wire::Echo>(),
                {.interface = std::string("127.0.0.1\0.example.com"sv)});
    FAIL() << "listened on a truncated interface";
  } catch (const CannotListenError& e) {
    EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << e.what();
  }
  EXPECT_EQ(r.selectableCount(), 0u);
}

int somaxconn() {
  int n = 0;
  if (std::FILE* f = std::fopen("/proc/sys/net/core/somaxconn", "r")) {
    if (std::fscanf(f, "%d", &n) != 1) n = 0;
    std::fclose(f);
  }
  return n;
}

TEST(Tcp, TheDefaultBacklogIsTheSystemMaximum) {
  constexpr int kClients = 300;
  if (somaxconn() < kClients) GTEST_SKIP() << "somaxconn is " << somaxconn();
  Reactor r(quietOptions());
  auto port = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
  // Nobody accepts (the reactor does not run): every handshake must still complete in the
  // kernel's accept queue. With a backlog of 50 the 52nd SYN is dropped and retried a second
  // later, again and again.
  std::vector<int> fds;
  for (int i = 0; i < kClients; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(portOf(port));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    fds.push_back(fd);
  }
  int connected = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (int fd : fds) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, std::max<int>(0, static_cast<int>(left.count()))) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      connected += err == 0;
    }
  }
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(connected, kClients);
}

TEST(Tcp, ReusePortLetsTwoPortsListenOnOne) {
  Reactor r(quietOptions());
  auto a = r.listenTCP(0, Factory::forProtocol<wire::Echo>(),
                       {.interface = "127.0.0.1", .reusePort = true});
  uint16_t p = portOf(a);
  EXPECT_THROW(r.listenTCP(p, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"}),
               CannotListenError);
  auto b = r.listenTCP(p, Factory::forProtocol<wire::Echo>(),
                       {.interface = "127.0.0.1", .reusePort = true});
  EXPECT_TRUE(a->listening());
  EXPECT_TRUE(b->listening());
  EXPECT_EQ(portOf(b), p);
}

TEST(Tcp, AnIPv6PortTakesIPv4ClientsUnlessIPv6Only) {
  Reactor r(quietOptions());
  std::shared_ptr<IListeningPort> dual, only;
  try {
    dual = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "::"});
    only =
        r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "::", .ipv6Only = true});
  } catch (const CannotListenError& e) {
    GTEST_SKIP() << "no IPv6 here: " << e.what();
  }
  int fd = connectTo(portOf(dual));  // 127.0.0.1 reaches the dual-stack port
  ::close(fd);
  EXPECT_THROW(connectTo(portOf(only)), std::runtime_error);  // refused
}

TEST(Tcp, AProtocolKeptAfterItsConnectionSeesAClosedTransport) {
  Reactor r(quietOptions());
  std::shared_ptr<Protocol> kept;
  class Keeper : public ServerFactory {
   public:
    explicit Keeper(std::shared_ptr<Protocol>* kept) : kept_(kept) {}
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
      *kept_ = std::make_shared<wire::Echo>();
      return *kept_;
    }
    std::shared_ptr<Protocol>* kept_;
  };
  auto port = r.listenTCP(0, std::make_shared<Keeper>(&kept), {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return kept && kept->connected(); }));
  ::close(fd);
  ASSERT_TRUE(runUntil(r, [&] { return !kept->connected() && r.selectableCount() == 1; }));
  r.iterate();  // the connection object is gone now; the protocol lives on
  ITransport* t = kept->transport();
  ASSERT_NE(t, nullptr);
  t->write("ignored");
  t->loseConnection();
  EXPECT_TRUE(t->disconnecting());
  EXPECT_EQ(t->bufferedSize(), 0u);
  EXPECT_TRUE(t->getPeer().empty());
}

}  // namespace
}  // namespace twist
