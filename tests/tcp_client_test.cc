// connectTCP: Connector, Client, ClientFactory and ReconnectingClientFactory through real
// sockets on loopback, and a DNS responder the test runs itself (no real DNS server needed).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <thread>

#include "tests/test_util.h"
#include "twist/protocols/reconnecting.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/clock.h"
#include "twist/reactor/endpoints.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_connector.h"
#include "twist/transports/tcp_port.h"

namespace twist {
namespace {

using testing::quietOptions;
using testing::runUntil;

// Sends `greeting` when connected, collects replies, closes after `expect` bytes.
class Greeter : public Protocol {
 public:
  Greeter(std::string greeting, size_t expect, std::string* out)
      : greeting_(std::move(greeting)), expect_(expect), out_(out) {}
  void connectionMade() override { transport()->write(greeting_); }
  void dataReceived(std::string_view d) override {
    out_->append(d);
    if (out_->size() >= expect_) transport()->loseConnection();
  }

 private:
  std::string greeting_;
  size_t expect_;
  std::string* out_;
};

// Records what a ClientFactory hears.
class RecordingFactory : public ClientFactory {
 public:
  std::function<std::unique_ptr<Protocol>()> make;
  std::shared_ptr<Protocol> buildProtocol(const Address& addr) override {
    peer = addr;
    ++built;
    return make ? make() : nullptr;
  }
  void startFactory() override { ++starts; }
  void stopFactory() override { ++stops; }
  void startedConnecting(IConnector&) override { ++started; }
  void clientConnectionFailed(IConnector&, const Failure& r) override {
    ++failed;
    reason = r;
  }
  void clientConnectionLost(IConnector&, const Failure& r) override {
    ++lost;
    reason = r;
  }
  int built = 0, starts = 0, stops = 0, started = 0, failed = 0, lost = 0;
  Failure reason;
  Address peer;
};

uint16_t echoPort(Reactor& r, std::string_view iface = "127.0.0.1") {
  auto p = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = std::string(iface)});
  return p->getHost().port();
}

// A port on which nothing listens (bound, then closed).
uint16_t closedPort() {
  uint16_t port;
  ::close(testing::bindLoopback(SOCK_STREAM, &port));
  return port;
}

TEST(ConnectTCP, ConnectsSendsReceivesAndReportsTheLostConnection) {
  Reactor r(quietOptions());
  uint16_t port = echoPort(r);
  std::string got;
  auto f = std::make_shared<RecordingFactory>();
  f->make = [&] { return std::make_unique<Greeter>("hello", 5, &got); };
  auto c = r.connectTCP("127.0.0.1", port, f);
  EXPECT_EQ(c->state(), IConnector::State::Connecting);
  EXPECT_EQ(c->getDestination(), Address(IPv4Address{"127.0.0.1", port}));
  ASSERT_TRUE(runUntil(r, [&] { return f->lost == 1; }));
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(f->started, 1);
  EXPECT_EQ(f->built, 1);
  EXPECT_EQ(f->failed, 0);
  EXPECT_EQ(f->peer.port(), port);
  EXPECT_TRUE(f->reason.check<ConnectionDone>());
  EXPECT_EQ(f->starts, 1);
  EXPECT_EQ(f->stops, 1);
  EXPECT_EQ(c->state(), IConnector::State::Disconnected);
  EXPECT_EQ(c->transport(), nullptr);
}

TEST(ConnectTCP, ClientFactoryForProtocol) {
  Reactor r(quietOptions());
  uint16_t port = echoPort(r);
  const std::string greeting = "made by forProtocol";
  std::string got;
  auto c = r.connectTCP("127.0.0.1", port,
                        ClientFactory::forProtocol<Greeter>(greeting, greeting.size(), &got));
  ASSERT_TRUE(runUntil(r, [&] {
    return got.size() == greeting.size() && c->state() == IConnector::State::Disconnected;
  }));
  EXPECT_EQ(got, greeting);
}

TEST(ConnectTCP, RefusedIsAConnectionRefusedError) {
  Reactor r(quietOptions());
  auto f = std::make_shared<RecordingFactory>();
  r.connectTCP("127.0.0.1", closedPort(), f);
  ASSERT_TRUE(runUntil(r, [&] { return f->failed == 1; }));
  EXPECT_TRUE(f->reason.check<ConnectionRefusedError>()) << f->reason.toString();
  EXPECT_EQ(f->built, 0);
  EXPECT_EQ(f->stops, 1);
}

TEST(ConnectTCP, TimeoutWhenTheServerNeverAnswers) {
  // A listener that never accepts: once its accept queue is full, the kernel drops new SYNs,
  // so a further connect stays pending (all on 127.0.0.1).
  uint16_t port;
  int lfd = testing::bindLoopback(SOCK_STREAM, &port, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  std::vector<int> fillers;
  for (int i = 0; i < 16; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    fillers.push_back(fd);
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 200) == 0) break;  // this one hangs: the queue is full
  }
  Reactor r(quietOptions());
  auto f = std::make_shared<RecordingFactory>();
  double start = r.seconds();
  r.connectTCP("127.0.0.1", port, f, {.timeout = 0.3});
  ASSERT_TRUE(runUntil(r, [&] { return f->failed == 1; }));
  EXPECT_TRUE(f->reason.check<TimeoutError>()) << f->reason.toString();
  EXPECT_GE(r.seconds() - start, 0.3);
  for (int fd : fillers) ::close(fd);
  ::close(lfd);
}

TEST(ConnectTCP, ResolvesLocalhostFromTheHostsFile) {
  Reactor r(quietOptions());
  uint16_t port = echoPort(r);  // 127.0.0.1 only: if localhost gives ::1 first, that is refused
  std::string got;
  auto f = std::make_shared<RecordingFactory>();
  f->make = [&] { return std::make_unique<Greeter>("by name", 7, &got); };
  r.connectTCP("localhost", port, f);
  ASSERT_TRUE(runUntil(r, [&] { return f->lost + f->failed > 0; }));
  EXPECT_EQ(f->failed, 0) << f->reason.toString();
  EXPECT_EQ(got, "by name");
}

// Answers every query with NXDOMAIN, from 127.0.0.1 on its own thread.
class NxDomainResponder {
 public:
  NxDomainResponder() {
    fd_ = testing::bindLoopback(SOCK_DGRAM, &port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~NxDomainResponder() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int queries() const { return queries_.load(); }

 private:
  void serve() {
    unsigned char buf[512];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      sockaddr_in from{};
      socklen_t fromLen = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
      if (n < 12) continue;
      size_t end = 12;  // header, then the question: a name of labels, type and class
      while (end < static_cast<size_t>(n) && buf[end] != 0) end += buf[end] + 1;
      end += 5;
      if (end > static_cast<size_t>(n)) continue;
      ++queries_;
      buf[2] = static_cast<unsigned char>(0x80 | (buf[2] & 0x01));  // a response; RD as asked
      buf[3] = 0x83;                                                // RA, NXDOMAIN
      buf[4] = 0, buf[5] = 1;                                       // one question
      for (int i = 6; i < 12; ++i) buf[i] = 0;                      // no records
      ::sendto(fd_, buf, end, 0, reinterpret_cast<sockaddr*>(&from), fromLen);
    }
  }
  int fd_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

TEST(ConnectTCP, UnresolvableNameIsADNSLookupError) {
  NxDomainResponder dns;
  Reactor r(quietOptions());
  r.setNameservers({dns.address()});
  auto f = std::make_shared<RecordingFactory>();
  r.connectTCP("no-such-host.invalid", 80, f, {.timeout = 10});
  ASSERT_TRUE(runUntil(r, [&] { return f->failed == 1; }));
  EXPECT_TRUE(f->reason.check<DNSLookupError>()) << f->reason.toString();
  EXPECT_NE(f->reason.getErrorMessage().find("no-such-host.invalid"), std::string::npos);
  EXPECT_GE(dns.queries(), 1);
  EXPECT_THROW(r.setNameservers({"not an address"}), std::invalid_argument);
}

TEST(ConnectTCP, StopConnectingDuringALookup) {
  // A name server that never answers: the lookup stays pending until we stop it.
  int silent = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ::bind(silent, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&sa), &len);
  Reactor r(quietOptions());
  r.setNameservers({"127.0.0.1:" + std::to_string(ntohs(sa.sin_port))});
  auto f = std::make_shared<RecordingFactory>();
  {
    auto c = r.connectTCP("slow.invalid", 80, f, {.timeout = 10});
    testing::runFor(r, 0.05);  // the query is on its way
    c->stopConnecting();
    EXPECT_EQ(f->failed, 1);
    EXPECT_TRUE(f->reason.check<UserError>());
  }  // the connector may be freed now; libevent's cancel callback comes later
  testing::runFor(r, 0.1);
  EXPECT_EQ(f->failed, 1);
  EXPECT_EQ(f->stops, 1);
  ::close(silent);
}

TEST(ConnectTCP, IPv6Loopback) {
  Reactor r(quietOptions());
  uint16_t port;
  try {
    port = echoPort(r, "::1");
  } catch (const CannotListenError& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  std::string got;
  auto f = std::make_shared<RecordingFactory>();
  f->make = [&] { return std::make_unique<Greeter>("v6", 2, &got); };
  auto c = r.connectTCP("::1", port, f);
  EXPECT_TRUE(c->getDestination().is<IPv6Address>());
  ASSERT_TRUE(runUntil(r, [&] { return f->lost + f->failed > 0; }));
  EXPECT_EQ(got, "v6");
  EXPECT_EQ(f->peer.toString(), "[::1]:" + std::to_string(port));
}

TEST(ConnectTCP, StopConnectingAndDisconnect) {
  Reactor r(quietOptions());
  uint16_t port = echoPort(r);
  auto f = std::make_shared<RecordingFactory>();
  f->make = [] { return std::make_unique<Protocol>(); };
  auto c = r.connectTCP("127.0.0.1", port, f);
  c->stopConnecting();  // before the connection completes
  EXPECT_EQ(f->failed, 1);
  EXPECT_TRUE(f->reason.check<UserError>());
  EXPECT_THROW(c->stopConnecting(), std::logic_error);
  runUntil(
      r, [] { return false; }, 0.05);
  EXPECT_EQ(f->built, 0);

  c->connect();  // try again, and this time disconnect once connected
  EXPECT_THROW(c->connect(), std::logic_error);
  ASSERT_TRUE(runUntil(r, [&] { return c->state() == IConnector::State::Connected; }));
  ASSERT_NE(c->transport(), nullptr);
  c->disconnect();
  ASSERT_TRUE(runUntil(r, [&] { return f->lost == 1; }));
  EXPECT_TRUE(f->reason.check<ConnectionDone>());
  EXPECT_EQ(f->starts, 2);
  EXPECT_EQ(f->stops, 2);
}

TEST(ConnectTCP, BindAddressAndNoProtocol) {
  Reactor r(quietOptions());
  uint16_t port = echoPort(r);
  auto f = std::make_shared<RecordingFactory>();  // make unset: buildProtocol returns nullptr
  r.connectTCP(
      "127.0.0.1", port, f,
      {.timeout = 5, .bindAddress = std::make_pair(std::string("127.0.0.1"), uint16_t{0})});
  ASSERT_TRUE(runUntil(r, [&] { return f->failed == 1; }));
  EXPECT_TRUE(f->reason.check<NoProtocol>());

  auto g = std::make_shared<RecordingFactory>();
  r.connectTCP("127.0.0.1", port, g,
               {.timeout = 5, .bindAddress = std::make_pair(std::string("::1"), uint16_t{0})});
  ASSERT_TRUE(runUntil(r, [&] { return g->failed == 1; }));
  EXPECT_TRUE(g->reason.check<ConnectError>()) << "an IPv6 bind address for an IPv4 peer";
}

TEST(ConnectTCP, BindFailuresAreConnectBindErrorsWithTheirOwnCause) {
  Reactor r(quietOptions());
  uint16_t port = echoPort(r);
  // A local address that is in use: a listening socket holds it.
  uint16_t busy = echoPort(r);
  auto inUse = std::make_shared<RecordingFactory>();
  r.connectTCP("127.0.0.1", port, inUse,
               {.timeout = 5, .bindAddress = std::make_pair(std::string("127.0.0.1"), busy)});
  auto notIp = std::make_shared<RecordingFactory>();
  r.connectTCP("127.0.0.1", port, notIp,
               {.timeout = 5, .bindAddress = std::make_pair(std::string("nowhere"), uint16_t{0})});
  auto family = std::make_shared<RecordingFactory>();
  r.connectTCP("127.0.0.1", port, family,
               {.timeout = 5, .bindAddress = std::make_pair(std::string("::1"), uint16_t{0})});
  ASSERT_TRUE(runUntil(r, [&] { return inUse->failed + notIp->failed + family->failed == 3; }));
  ASSERT_TRUE(inUse->reason.check<ConnectBindError>()) << inUse->reason.toString();
  EXPECT_TRUE(inUse->reason.check<ConnectError>());
  EXPECT_EQ(inUse->reason.get<ConnectBindError>()->osError(), EADDRINUSE);
  EXPECT_NE(inUse->reason.getErrorMessage().find("127.0.0.1:" + std::to_string(busy)),
            std::string::npos);
  for (auto* f : {notIp.get(), family.get()}) {
    ASSERT_TRUE(f->reason.check<ConnectBindError>()) << f->reason.toString();
    // Not a stale errno from an earlier call: these failures have no OS error.
    EXPECT_EQ(f->reason.get<ConnectBindError>()->osError(), 0) << f->reason.toString();
  }
  EXPECT_NE(notIp->reason.getErrorMessage().find("not an IPv4 or IPv6 address"), std::string::npos);
}

// Retries from clientConnectionFailed at once; records whether a failure was ever reported
// inside connectTCP or connect() (it must always come from the loop).
class ImpatientFactory : public ClientFactory {
 public:
  int failures = 0, retries = 0;
  bool insideConnect = false, reportedInside = false;
  std::shared_ptr<Protocol> buildProtocol(const Address&) override { return nullptr; }
  void clientConnectionFailed(IConnector& c, const Failure& reason) override {
    reportedInside |= insideConnect;
    last = reason;
    if (++failures < retries) {
      insideConnect = true;
      c.connect();
      insideConnect = false;
    }
  }
  Failure last;
};

TEST(ConnectTCP, FailuresComeFromTheLoopSoRetryingAtOnceDoesNotRecurse) {
  Reactor r(quietOptions());
  uint16_t port = echoPort(r);
  uint16_t busy = echoPort(r);
  auto f = std::make_shared<ImpatientFactory>();
  f->retries = 20000;  // deep enough to overflow the stack if each retry recursed
  f->insideConnect = true;
  auto c =
      r.connectTCP("127.0.0.1", port, f,
                   {.timeout = 5, .bindAddress = std::make_pair(std::string("127.0.0.1"), busy)});
  f->insideConnect = false;
  EXPECT_EQ(f->failures, 0) << "reported inside connectTCP";
  ASSERT_TRUE(runUntil(
      r, [&] { return f->failures == f->retries; }, 60));
  EXPECT_FALSE(f->reportedInside);
  EXPECT_TRUE(f->last.check<ConnectBindError>());
  EXPECT_EQ(c->state(), IConnector::State::Disconnected);
}

TEST(ConnectTCP, HostsAndBindAddressesWithANulByteAreRefused) {
  Reactor r(quietOptions());
  using namespace std::string_view_literals;
  auto f = std::make_shared<RecordingFactory>();
  EXPECT_THROW(r.connectTCP("localhost\0.example.com"sv, 80, f), std::invalid_argument);
  EXPECT_THROW(r.connectTCP("127.0.0.1", 80, f,
                            {.timeout = 5,
                             .bindAddress =
                                 std::make_pair(std::string("127.0.0.1\0junk", 14), uint16_t{0})}),
               std::invalid_argument);
  EXPECT_EQ(f->started, 0);
  EXPECT_EQ(r.selectableCount(), 0u);
}

// Accepts and resets every connection at once (SO_LINGER 0): a hostile server.
class ResettingServer {
 public:
  ResettingServer() {
    fd_ = testing::bindLoopback(SOCK_STREAM, &port, 1024);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;  // the listening socket was shut down
        testing::setLingerZero(c);
        ::close(c);
      }
    });
  }
  ~ResettingServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  uint16_t port = 0;

 private:
  int fd_;
  std::thread thread_;
};

// Connects again and again, whatever happens.
class Persistent : public ClientFactory {
 public:
  int attempts = 0, failed = 0, lost = 0, made = 0;
  int limit = 0;
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    class Hello : public Protocol {
     public:
      explicit Hello(int* made) : made_(made) {}
      void connectionMade() override {
        ++*made_;
        transport()->write("hello");
      }

     private:
      int* made_;
    };
    return std::make_unique<Hello>(&made);
  }
  void clientConnectionFailed(IConnector& c, const Failure&) override {
    ++failed;
    again(c);
  }
  void clientConnectionLost(IConnector& c, const Failure&) override {
    ++lost;
    again(c);
  }
  void again(IConnector& c) {
    if (++attempts < limit) c.connect();
  }
};

// When set, the next getsockopt(SO_ERROR) that reports a completed connect makes the server
// accept that connection and reset it before the connector goes on: the window in which a
// hostile server's reset used to crash the client, made certain instead of rare.
std::atomic<int> gResetOnConnect{-1};  // the listening socket to accept from

}  // namespace
}  // namespace twist

// Interposes the C library's getsockopt for this test binary (twist's code is linked into it).
extern "C" int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  using Real = int (*)(int, int, int, void*, socklen_t*);
  static const Real real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "getsockopt"));
  int rc = real(fd, level, name, value, len);
  if (level == SOL_SOCKET && name == SO_ERROR && rc == 0 && *static_cast<int*>(value) == 0) {
    int listener = twist::gResetOnConnect.exchange(-1);
    if (listener >= 0) {
      int peer = ::accept(listener, nullptr, nullptr);
      twist::testing::setLingerZero(peer);
      ::close(peer);
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 5000);  // until the reset has arrived
    }
  }
  return rc;
}

namespace twist {
namespace {

TEST(ConnectTCP, AResetRightAfterTheConnectCompletesIsALostConnection) {
  uint16_t port;
  int listener = testing::bindLoopback(SOCK_STREAM, &port, 16);
  Reactor r(quietOptions());
  auto f = std::make_shared<RecordingFactory>();
  f->make = [] { return std::make_unique<Protocol>(); };
  gResetOnConnect = listener;
  r.connectTCP("127.0.0.1", port, f, {.timeout = 5});
  ASSERT_TRUE(runUntil(r, [&] { return f->lost + f->failed == 1; }));
  ::close(listener);
  EXPECT_EQ(gResetOnConnect.load(), -1) << "the reset was not staged";
  EXPECT_EQ(f->lost, 1);
  EXPECT_EQ(f->peer.port(), port);
  ASSERT_TRUE(f->reason.check<ConnectionLost>()) << f->reason.toString();
  EXPECT_EQ(f->reason.get<ConnectionLost>()->osError(), ECONNRESET);
}

TEST(ConnectTCP, AServerThatResetsAtOnceIsALostConnectionNotACrash) {
  // Many attempts at once: the server resets some while the reactor is busy with others.
  ResettingServer hostile;
  Reactor r(quietOptions());
  constexpr int kParallel = 50;
  std::vector<std::shared_ptr<Persistent>> factories;
  for (int i = 0; i < kParallel; ++i) {
    factories.push_back(std::make_shared<Persistent>());
    factories.back()->limit = 100;
    r.connectTCP("127.0.0.1", hostile.port, factories.back(), {.timeout = 5});
  }
  ASSERT_TRUE(runUntil(
      r,
      [&] {
        for (auto& f : factories) {
          if (f->failed + f->lost < f->limit) return false;
        }
        return true;
      },
      120));
  for (auto& f : factories) EXPECT_EQ(f->lost, f->made);  // each one made was lost once
}

// The pattern examples/coroutine_client.cc teaches, with the peer hanging up between two
// co_awaits: the coroutine still holds the protocol, and using it is safe (it used to be a raw
// pointer to a freed protocol: heap-use-after-free under ASan).
class Talker : public Protocol {
 public:
  void connectionLost(const Failure& r) override { reason = r; }
  Failure reason;
};

class HangUp : public Protocol {
 public:
  void connectionMade() override { transport()->loseConnection(); }
};

TEST(ConnectProtocol, TheProtocolStaysSafeAfterThePeerHangsUp) {
  Reactor r(quietOptions());
  auto server = r.listenTCP(0, Factory::forProtocol<HangUp>(), {.interface = "127.0.0.1"});
  Deferred<void> gate;
  bool done = false;
  std::string outcome;
  auto talk = [&]() -> Deferred<void> {
    std::shared_ptr<Talker> talker =
        co_await connectProtocol<Talker>(r, "127.0.0.1", server->getHost().port(), {});
    co_await gate;  // meanwhile the server hangs up and the connection is gone
    talker->transport()->write("into a closed transport");
    talker->transport()->loseConnection();
    outcome = talker->reason.check<ConnectionDone>() ? "lost cleanly" : talker->reason.toString();
    outcome += talker->transport()->disconnecting() ? ", transport closed" : ", transport open";
    done = true;
  };
  talk();
  ASSERT_TRUE(runUntil(r, [&] { return r.selectableCount() == 1; }));  // only the port is left
  gate.callback();
  EXPECT_TRUE(done);
  EXPECT_EQ(outcome, "lost cleanly, transport closed");
}

TEST(ConnectTCP, ReactorShutdownEndsAttemptsAndConnections) {
  auto f = std::make_shared<RecordingFactory>();
  auto g = std::make_shared<RecordingFactory>();
  std::string got;
  {
    Reactor r(quietOptions());
    uint16_t port = echoPort(r);
    f->make = [&] { return std::make_unique<Protocol>(); };
    auto live = r.connectTCP("127.0.0.1", port, f);
    ASSERT_TRUE(runUntil(r, [&] { return live->state() == IConnector::State::Connected; }));
    NxDomainResponder never;  // answers, but we shut down before evdns even sends
    r.connectTCP("pending.invalid", 80, g, {.timeout = 10});
  }
  EXPECT_EQ(f->lost, 1);
  EXPECT_TRUE(f->reason.check<ConnectionLost>());
  EXPECT_EQ(g->failed, 1);
  EXPECT_TRUE(g->reason.check<UserError>());
}

// Reconnects to a server that comes and goes.
class ReconnectingEcho : public ReconnectingClientFactory {
 public:
  using ReconnectingClientFactory::ReconnectingClientFactory;
  class P : public Protocol {
   public:
    void connectionMade() override {
      auto* f = static_cast<ReconnectingEcho*>(factory());
      f->resetDelay();
      ++f->connections;
    }
  };
  std::shared_ptr<Protocol> buildProtocol(const Address&) override { return std::make_unique<P>(); }
  void clientConnectionFailed(IConnector& c, const Failure& r) override {
    ++failures;
    ReconnectingClientFactory::clientConnectionFailed(c, r);
  }
  int connections = 0, failures = 0;
};

TEST(ReconnectingClientFactory, ReconnectsWhenTheServerComesBack) {
  Reactor r(quietOptions());
  testing::LogCaptureScope quiet;  // whatever is logged goes to the capture, not stderr
  auto listen = [&](uint16_t port) {
    return r.listenTCP(port, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
  };
  auto port = listen(0);
  uint16_t p = port->getHost().port();
  auto f = std::make_shared<ReconnectingEcho>(r);
  f->initialDelay = 0.01;
  f->factor = 2;
  f->maxDelay = 0.1;
  f->jitter = 0;
  auto c = r.connectTCP("127.0.0.1", p, f);
  ASSERT_TRUE(runUntil(r, [&] { return f->connections == 1; }));

  // The server goes away: the connection is lost, and reconnecting fails for a while.
  port->stopListening();
  c->transport()->abortConnection();
  ASSERT_TRUE(runUntil(r, [&] { return f->failures >= 3; }));
  EXPECT_GT(f->retries(), 2);
  EXPECT_LE(f->delay(), 0.1);
  // It comes back on the same port: the next retry connects and resets the delay.
  port = listen(p);
  ASSERT_TRUE(runUntil(r, [&] { return f->connections == 2; }));
  EXPECT_EQ(f->retries(), 0);

  // stopTrying: a lost connection is not retried any more.
  f->stopTrying();
  c->disconnect();
  ASSERT_TRUE(runUntil(r, [&] { return c->state() == IConnector::State::Disconnected; }));
  testing::runFor(r, 0.15);
  EXPECT_EQ(f->connections, 2);
  EXPECT_FALSE(f->pendingRetry().active());
}

TEST(ReconnectingClientFactory, BackoffGrowsByFactorUpToMaxDelayAndStopsAtMaxRetries) {
  // The delays are computed from the fake clock; the connector only fails (refused).
  task::Clock clock;  // outlives the reactor, whose shutdown may still make the factory retry
  Reactor r(quietOptions());
  auto f = std::make_shared<ReconnectingEcho>(clock);
  f->initialDelay = 1;
  f->factor = 2;
  f->maxDelay = 10;
  f->jitter = 0;
  f->maxRetries = 6;
  auto c = r.connectTCP("127.0.0.1", closedPort(), f);
  std::vector<double> delays;
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(runUntil(r, [&] { return f->failures == i + 1; }));
    if (!f->pendingRetry().active()) break;
    delays.push_back(f->delay());
    clock.advance(f->delay());  // the retry calls connector.connect()
  }
  EXPECT_EQ(delays, (std::vector<double>{2, 4, 8, 10, 10, 10}));
  EXPECT_EQ(f->failures, 7);
  EXPECT_FALSE(f->pendingRetry().active()) << "gave up after maxRetries";
}

TEST(ReconnectingClientFactory, JitterSpreadsTheDelay) {
  task::Clock clock;
  Reactor r(quietOptions());
  auto f = std::make_shared<ReconnectingEcho>(clock);
  f->initialDelay = 100;
  f->factor = 1;
  f->maxDelay = 1000;
  f->jitter = 0.1;
  auto c = r.connectTCP("127.0.0.1", closedPort(), f);
  std::vector<double> delays;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(runUntil(r, [&] { return f->failures == i + 1; }));
    delays.push_back(f->delay());
    f->resetDelay();  // keeps the base at 100
    clock.advance(f->pendingRetry().getTime() - clock.seconds());
  }
  double lo = *std::min_element(delays.begin(), delays.end());
  double hi = *std::max_element(delays.begin(), delays.end());
  EXPECT_LT(lo, hi);
  EXPECT_GT(lo, 50);
  EXPECT_LT(hi, 150);
}

}  // namespace
}  // namespace twist
