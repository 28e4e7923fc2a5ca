// TimeoutMixin on the fake clock (fires, is reset by data, is cancelled with the protocol) and on
// the real reactor with real sockets.
#include "twist/protocols/policies.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <map>

#include "tests/test_util.h"
#include "twist/protocols/basic.h"
#include "twist/protocols/testing/memory_reactor.h"
#include "twist/protocols/testing/string_transport.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/clock.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_port.h"

namespace twist {
namespace {

// A line echo that hangs up after `idle` seconds without a line.
class IdleEcho : public LineReceiver, public TimeoutMixin {
 public:
  IdleEcho(IReactorTime& clock, double idle, int* timeouts)
      : TimeoutMixin(clock), idle_(idle), timeouts_(timeouts) {}
  void connectionMade() override { setTimeout(idle_); }
  void lineReceived(std::string_view line) override {
    resetTimeout();
    sendLine(line);
  }
  void connectionLost(const Failure&) override { setTimeout(std::nullopt); }

 protected:
  void timeoutConnection() override {
    ++*timeouts_;
    sendLine("idle too long");
    TimeoutMixin::timeoutConnection();
  }

 private:
  double idle_;
  int* timeouts_;
};

TEST(TimeoutMixin, FiresAfterTheIdlePeriod) {
  task::Clock clock;
  StringTransport t;
  int timeouts = 0;
  IdleEcho p(clock, 10, &timeouts);
  p.makeConnection(&t);
  clock.advance(9.9);
  EXPECT_EQ(timeouts, 0);
  clock.advance(0.1);
  EXPECT_EQ(timeouts, 1);
  EXPECT_TRUE(t.loseConnectionCalled());
  EXPECT_EQ(t.value(), "idle too long\r\n");
  EXPECT_FALSE(p.timeOut().has_value());
  clock.advance(100);
  EXPECT_EQ(timeouts, 1) << "once";
}

TEST(TimeoutMixin, DataResetsIt) {
  task::Clock clock;
  StringTransport t;
  int timeouts = 0;
  IdleEcho p(clock, 10, &timeouts);
  p.makeConnection(&t);
  for (int i = 0; i < 5; ++i) {
    clock.advance(9);
    p.dataReceived("ping\r\n");
  }
  EXPECT_EQ(timeouts, 0);
  clock.advance(10);
  EXPECT_EQ(timeouts, 1);
}

TEST(TimeoutMixin, CancelledOnCloseAndWithTheProtocol) {
  task::Clock clock;
  int timeouts = 0;
  {
    StringTransport t;
    IdleEcho p(clock, 10, &timeouts);
    p.makeConnection(&t);
    p.notifyConnectionLost(ConnectionDone::failure());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
  }
  {
    StringTransport t;
    IdleEcho p(clock, 10, &timeouts);
    p.makeConnection(&t);
  }  // destroyed without connectionLost: the mixin cancels its call
  EXPECT_TRUE(clock.getDelayedCalls().empty());
  clock.advance(20);
  EXPECT_EQ(timeouts, 0);
}

TEST(TimeoutMixin, SetTimeoutReturnsThePreviousPeriod) {
  task::Clock clock;
  int timeouts = 0;
  IdleEcho p(clock, 10, &timeouts);
  EXPECT_FALSE(p.setTimeout(5).has_value());
  EXPECT_EQ(p.setTimeout(std::nullopt), 5);
  clock.advance(10);
  EXPECT_EQ(timeouts, 0);
}

TEST(TimeoutMixin, OnTheRealReactorWithSockets) {
  Reactor r(testing::quietOptions());
  int timeouts = 0;
  class Factory : public ServerFactory {
   public:
    Factory(Reactor& r, int* t) : r_(r), t_(t) {}
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
      return std::make_unique<IdleEcho>(r_, 0.2, t_);
    }
    Reactor& r_;
    int* t_;
  };
  auto port = r.listenTCP(0, std::make_shared<Factory>(r, &timeouts), {.interface = "127.0.0.1"});
  std::string got;
  bool eof = false;
  double start = r.seconds();
  testing::ClientThread client([&] {
    int fd = testing::connectTo(port->getHost().port());
    testing::sendAll(fd, "hi\r\n");
    got = testing::recvUntilEof(fd, &eof, 20);
    ::close(fd);
  });
  ASSERT_TRUE(testing::runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(got, "hi\r\nidle too long\r\n");
  EXPECT_TRUE(eof);
  EXPECT_EQ(timeouts, 1);
  EXPECT_GE(r.seconds() - start, 0.2);
}

// A blocking client socket bound to `source` (any 127.x address works on Linux).
int connectFrom(uint16_t port, const char* source) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, source, &local.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True if the connection echoes; false if the server refused it (EOF or reset, no echo).
// `refusal` gets whatever the server sent before closing.
bool echoes(int fd, std::string* refusal = nullptr) {
  testing::sendAll(fd, "ping");
  bool eof = false;
  std::string got = testing::recvAtMost(fd, 4, 10);
  if (got == "ping") return true;
  got += testing::recvUntilEof(fd, &eof, 10);
  if (refusal) *refusal = got;
  return false;
}

TEST(ConnectionLimiter, TotalLimitUnderTwiceTheLoad) {
  Reactor r(testing::quietOptions());
  auto limiter = std::make_shared<ConnectionLimiter>(Factory::forProtocol<wire::Echo>(), 4);
  auto port = r.listenTCP(0, limiter, {.interface = "127.0.0.1"});
  uint16_t p = port->getHost().port();
  int served = 0, refused = 0;
  std::vector<int> fds;
  testing::ClientThread client([&] {
    for (int i = 0; i < 8; ++i) fds.push_back(testing::connectTo(p));  // all at once, in order
    for (int fd : fds) (echoes(fd) ? served : refused)++;
  });
  ASSERT_TRUE(testing::runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(served, 4);
  EXPECT_EQ(refused, 4);
  EXPECT_EQ(limiter->active(), 4u);
  EXPECT_EQ(limiter->refused(), 4u);
  // A served client leaves: its slot is free again.
  ::close(fds[0]);
  ASSERT_TRUE(testing::runUntil(r, [&] { return limiter->active() == 3; }));
  bool again = false;
  testing::ClientThread next([&] {
    int fd = testing::connectTo(p);
    again = echoes(fd);
    ::close(fd);
  });
  ASSERT_TRUE(testing::runUntil(r, [&] { return next.done(); }));
  EXPECT_TRUE(again);
  for (size_t i = 1; i < fds.size(); ++i) ::close(fds[i]);
  ASSERT_TRUE(testing::runUntil(r, [&] { return limiter->active() == 0; }));
}

TEST(ConnectionLimiter, PerPeerLimitAndRefusalMessage) {
  Reactor r(testing::quietOptions());
  auto limiter = std::make_shared<ConnectionLimiter>(Factory::forProtocol<wire::Echo>(), 100, 2,
                                                     "too many connections from you\r\n");
  auto port = r.listenTCP(0, limiter, {.interface = "127.0.0.1"});
  uint16_t p = port->getHost().port();
  std::atomic<int> phase{0};
  std::map<std::string, int> served;
  std::vector<std::string> refusals;
  std::vector<int> fds;
  std::vector<std::string> sources;
  testing::ClientThread client([&] {
    for (const char* source : {"127.0.0.2", "127.0.0.3"}) {
      for (int i = 0; i < 4; ++i) {
        fds.push_back(connectFrom(p, source));
        sources.push_back(source);
      }
    }
    phase = 1;
    while (phase.load() != 2) {
    }
    // The server has decided: a refused client has its message (and soon EOF) waiting; a
    // served one has nothing until it speaks. Read before writing, so no reset can overtake
    // the message.
    for (size_t i = 0; i < fds.size(); ++i) {
      pollfd pf{fds[i], POLLIN, 0};
      if (::poll(&pf, 1, 0) == 1) {
        refusals.push_back(testing::recvUntilEof(fds[i], nullptr, 10));
      } else if (echoes(fds[i])) {
        ++served[sources[i]];
      }
    }
  });
  ASSERT_TRUE(testing::runUntil(
      r, [&] { return phase.load() == 1 && limiter->refused() == 4 && limiter->active() == 4; }));
  EXPECT_EQ(limiter->activeFrom("127.0.0.2"), 2u);
  EXPECT_EQ(limiter->activeFrom("127.0.0.3"), 2u);
  phase = 2;
  ASSERT_TRUE(testing::runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(served["127.0.0.2"], 2);
  EXPECT_EQ(served["127.0.0.3"], 2);
  ASSERT_EQ(refusals.size(), 4u);
  for (const auto& why : refusals) EXPECT_EQ(why, "too many connections from you\r\n");
  for (int fd : fds) ::close(fd);
  ASSERT_TRUE(testing::runUntil(r, [&] { return limiter->active() == 0; }));
  EXPECT_EQ(limiter->activeFrom("127.0.0.2"), 0u);
}

TEST(ThrottlingFactory, ReadsOverTheLimitPauseEveryConnectionUntilTheNextSecond) {
  task::Clock clock;
  auto f = std::make_shared<ThrottlingFactory>(Factory::forProtocol<wire::Echo>(), clock, 100, 0);
  f->doStart();
  StringTransport t1, t2;
  auto p1 = f->buildProtocol(t1.getPeer());
  auto p2 = f->buildProtocol(t2.getPeer());
  p1->makeConnection(&t1);
  p2->makeConnection(&t2);
  p1->dataReceived(std::string(60, 'a'));
  EXPECT_FALSE(t1.paused());
  p2->dataReceived(std::string(60, 'b'));  // 120 bytes this second: over the limit
  EXPECT_TRUE(f->readsThrottled());
  EXPECT_TRUE(t1.paused());
  EXPECT_TRUE(t2.paused());
  EXPECT_EQ(t1.value(), std::string(60, 'a')) << "the wrapped Echo works through it";
  clock.advance(1);
  EXPECT_FALSE(t1.paused());
  EXPECT_FALSE(t2.paused());
  EXPECT_EQ(f->readThisSecond(), 0u);
  EXPECT_EQ(f->readThrottles(), 1);
  p1->notifyConnectionLost(ConnectionDone::failure());
  p2->notifyConnectionLost(ConnectionDone::failure());
  f->doStop();
}

TEST(ThrottlingFactory, WritesOverTheLimitPauseTheProducers) {
  task::Clock clock;
  struct Counts {
    int pauses = 0, resumes = 0;
  } counts;
  class Writer : public Protocol, public IProducer {
   public:
    explicit Writer(Counts* c) : c_(c) {}
    void connectionMade() override { transport()->registerProducer(this, true); }
    void dataReceived(std::string_view) override { transport()->write(std::string(150, 'w')); }
    void pauseProducing() override { ++c_->pauses; }
    void resumeProducing() override { ++c_->resumes; }
    Counts* c_;
  };
  auto f =
      std::make_shared<ThrottlingFactory>(Factory::forProtocol<Writer>(&counts), clock, 0, 100);
  f->doStart();
  StringTransport t;
  auto p = f->buildProtocol(t.getPeer());
  p->makeConnection(&t);
  p->dataReceived("go");
  EXPECT_EQ(t.value().size(), 150u) << "writes are never dropped";
  EXPECT_EQ(counts.pauses, 1);
  clock.advance(1);
  EXPECT_EQ(counts.resumes, 1);
  EXPECT_EQ(f->writeThrottles(), 1);
  p->notifyConnectionLost(ConnectionDone::failure());
  f->doStop();
}

TEST(ThrottlingFactory, EchoesEverythingOverARealSocket) {
  Reactor r(testing::quietOptions());
  auto f = std::make_shared<ThrottlingFactory>(Factory::forProtocol<wire::Echo>(), r, 32 * 1024, 0);
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  const std::string payload(96 * 1024, 'z');
  std::string got;
  testing::ClientThread client([&] {
    int fd = testing::connectTo(port->getHost().port());
    testing::sendAll(fd, payload);
    got = testing::recvAtMost(fd, payload.size(), 30);
    ::close(fd);
  });
  ASSERT_TRUE(testing::runUntil(
      r, [&] { return client.done(); }, 60));
  EXPECT_EQ(got.size(), payload.size());
  EXPECT_GE(f->readThrottles(), 1);
}

// ---- ProtocolWrapper and WrappingFactory ----

// Records what passes in both directions: a wrapper that sits between a protocol and its
// socket, as TLS, logging or throttling do.
struct Recording {
  std::string in, out;
  ITransport* innerSaw = nullptr;  // the transport the wrapped protocol was given
  int registered = 0, unregistered = 0;
};

class Recorder : public ProtocolWrapper {
 public:
  Recorder(std::shared_ptr<Protocol> wrapped, WrappingFactory* f, Recording* rec)
      : ProtocolWrapper(std::move(wrapped), f), rec_(rec) {}
  void connectionMade() override {
    ProtocolWrapper::connectionMade();
    rec_->innerSaw = wrapped().transport();
  }
  void dataReceived(std::string_view data) override {
    rec_->in.append(data);
    ProtocolWrapper::dataReceived(data);
  }
  void write(std::string_view data) override {
    rec_->out.append(data);
    ProtocolWrapper::write(data);
  }

 private:
  Recording* rec_;
};

class RecordingFactory : public WrappingFactory {
 public:
  RecordingFactory(std::shared_ptr<Factory> wrapped, Recording* rec)
      : WrappingFactory(std::move(wrapped)), rec_(rec) {}
  void registerProtocol(ProtocolWrapper* p) override {
    WrappingFactory::registerProtocol(p);
    ++rec_->registered;
  }
  void unregisterProtocol(ProtocolWrapper* p) override {
    WrappingFactory::unregisterProtocol(p);
    ++rec_->unregistered;
  }

 protected:
  std::shared_ptr<ProtocolWrapper> wrap(std::shared_ptr<Protocol> wrapped,
                                        const Address&) override {
    return std::make_shared<Recorder>(std::move(wrapped), this, rec_);
  }

 private:
  Recording* rec_;
};

TEST(ProtocolWrapper, IsTheWrappedProtocolsTransportOverARealSocket) {
  Reactor r(testing::quietOptions());
  Recording rec;
  auto f = std::make_shared<RecordingFactory>(Factory::forProtocol<wire::Echo>(), &rec);
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  std::string got;
  testing::ClientThread client([&] {
    int fd = testing::connectTo(port->getHost().port());
    testing::sendAll(fd, "through the wrapper");
    got = testing::recvAtMost(fd, 19);
    ::close(fd);
  });
  ASSERT_TRUE(testing::runUntil(r, [&] { return client.done() && rec.unregistered == 1; }));
  EXPECT_EQ(got, "through the wrapper");
  EXPECT_EQ(rec.in, "through the wrapper");
  EXPECT_EQ(rec.out, "through the wrapper") << "the Echo wrote through the wrapper";
  EXPECT_NE(rec.innerSaw, nullptr);
  EXPECT_EQ(rec.registered, 1);
  EXPECT_TRUE(f->protocols().empty());
}

TEST(ProtocolWrapper, ForwardsEveryTransportCallAndTheClientFactorysNews) {
  StringTransport t;
  Recording rec;
  auto inner = std::make_shared<wire::Echo>();
  Recorder wrapper(inner, nullptr, &rec);
  wrapper.makeConnection(&t);
  EXPECT_EQ(inner->transport(), static_cast<ITransport*>(&wrapper));
  inner->transport()->setTcpKeepAliveTimes(1, 2, 3);
  EXPECT_EQ(t.keepAliveTimes(), (std::array<int, 3>{1, 2, 3}));
  inner->transport()->pauseProducing();
  EXPECT_TRUE(t.paused());
  EXPECT_EQ(inner->transport()->getPeer(), t.getPeer());
  inner->transport()->loseConnection();
  EXPECT_TRUE(t.loseConnectionCalled());
  wrapper.notifyConnectionLost(ConnectionDone::failure());
  EXPECT_TRUE(inner->transport()->disconnecting()) << "a closed transport after connectionLost";

  struct Heard : ClientFactory {
    int failed = 0;
    std::shared_ptr<Protocol> buildProtocol(const Address&) override { return nullptr; }
    void clientConnectionFailed(IConnector&, const Failure&) override { ++failed; }
  };
  auto heard = std::make_shared<Heard>();
  MemoryReactor reactor;
  auto connector = reactor.connectTCP("192.0.2.1", 80, std::make_shared<WrappingFactory>(heard));
  static_cast<MemoryReactor::FakeConnector&>(*connector)
      .fail(Failure::of(ConnectionRefusedError()));
  EXPECT_EQ(heard->failed, 1) << "the wrapping factory passes the connector's news on";
}

}  // namespace
}  // namespace twist
