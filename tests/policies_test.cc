// TimeoutMixin on the fake clock (fires, is reset by data, is cancelled with the protocol) and on
// the real reactor with real sockets.
#include "protocols/policies.h"

#include <gtest/gtest.h>

#include "protocols/basic.h"
#include "protocols/testing/string_transport.h"
#include "reactor/clock.h"
#include "reactor/reactor.h"
#include "tests/test_util.h"
#include "transports/tcp_port.h"

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
  Clock clock;
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
  Clock clock;
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
  Clock clock;
  int timeouts = 0;
  {
    StringTransport t;
    IdleEcho p(clock, 10, &timeouts);
    p.makeConnection(&t);
    p.notifyConnectionLost(Failure::of(ConnectionDone()));
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
  Clock clock;
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
    std::unique_ptr<Protocol> buildProtocol(const Address&) override {
      return std::make_unique<IdleEcho>(r_, 0.2, t_);
    }
    Reactor& r_;
    int* t_;
  };
  auto port = r.listenTCP(0, std::make_shared<Factory>(r, &timeouts), 50, "127.0.0.1");
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

}  // namespace
}  // namespace twist
