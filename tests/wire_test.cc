// The RFC wire protocols: through StringTransport, and each served over real sockets.
#include "twist/protocols/wire.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <mutex>

#include "tests/test_util.h"
#include "twist/protocols/testing/string_transport.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_port.h"

namespace twist {
namespace {

using namespace twist::wire;  // the protocols under test

TEST(Wire, DiscardIgnoresEverything) {
  StringTransport t;
  Discard p;
  p.makeConnection(&t);
  p.dataReceived("anything at all");
  EXPECT_EQ(t.value(), "");
  EXPECT_FALSE(t.loseConnectionCalled());
}

TEST(Wire, DaytimeSendsTheDateAndCloses) {
  StringTransport t;
  Daytime p;
  p.makeConnection(&t);
  std::tm tm{};
  ASSERT_NE(strptime(t.value().c_str(), "%a %b %d %H:%M:%S %Y", &tm), nullptr) << t.value();
  EXPECT_EQ(t.value().substr(t.value().size() - 2), "\r\n");
  EXPECT_TRUE(t.loseConnectionCalled());
}

TEST(Wire, TimeSendsSecondsSince1900) {
  StringTransport t;
  Time p;
  p.makeConnection(&t);
  ASSERT_EQ(t.value().size(), 4u);
  uint32_t v = 0;
  for (char c : t.value()) v = (v << 8) | static_cast<unsigned char>(c);
  int64_t unix = static_cast<int64_t>(v) - static_cast<int64_t>(Time::kSecondsFrom1900To1970);
  EXPECT_NEAR(static_cast<double>(unix), static_cast<double>(std::time(nullptr)), 5);
  EXPECT_TRUE(t.loseConnectionCalled());
}

TEST(Wire, QotdSendsAQuoteAndCloses) {
  StringTransport t;
  QOTD p("Be yourself.\r\n");
  p.makeConnection(&t);
  EXPECT_EQ(t.value(), "Be yourself.\r\n");
  EXPECT_TRUE(t.loseConnectionCalled());
}

TEST(Wire, ChargenIsAPullProducer) {
  StringTransport t;
  Chargen p;
  p.makeConnection(&t);
  ASSERT_EQ(t.producer(), &p);
  EXPECT_FALSE(t.streaming());
  EXPECT_EQ(t.value(), "") << "nothing until the consumer asks";
  t.producer()->resumeProducing();
  t.producer()->resumeProducing();
  std::string expected;
  for (size_t i = 0; i < 2 * Chargen::kChunkLines; ++i) expected += Chargen::line(i);
  EXPECT_EQ(t.value(), expected);
  EXPECT_EQ(Chargen::line(0).substr(0, 3), " !\"");
  EXPECT_EQ(Chargen::line(1).substr(0, 3), "!\"#");
}

// A slow reader: chargen keeps at most about one chunk in its own buffer (the kernel's socket
// buffers take the rest), and what arrives is the pattern, in order.
TEST(Wire, ChargenFlowControlOverARealSocket) {
  Reactor r(testing::quietOptions());
  size_t mostBuffered = 0;
  class Watched : public Chargen {
   public:
    explicit Watched(size_t* most) : most_(most) {}
    void resumeProducing() override {
      Chargen::resumeProducing();
      *most_ = std::max(*most_, transport()->bufferedSize());
    }
    size_t* most_;
  };
  auto port =
      r.listenTCP(0, Factory::forProtocol<Watched>(&mostBuffered), {.interface = "127.0.0.1"});
  // The client thread writes `first` and `rest`; this thread reads them only once the flag or
  // done() (both atomic) say the writing is over.
  std::string first, rest;
  std::atomic<bool> firstDone{false};
  std::mutex m;
  std::condition_variable cv;
  bool readAgain = false;  // guarded by m
  testing::ClientThread client([&] {
    int fd = testing::connectTo(port->getHost().port());
    first = testing::recvAtMost(fd, 64 * 1024);  // then stop reading for a while
    firstDone = true;
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return readAgain; });
    }
    rest = testing::recvAtMost(fd, 256 * 1024);
    ::close(fd);
  });
  ASSERT_TRUE(testing::runUntil(r, [&] { return firstDone.load() || client.done(); }));
  testing::runFor(r, 0.3);  // the client is not reading: chargen must not pile up data
  EXPECT_LE(mostBuffered, Chargen::kChunkLines * (Chargen::kLine + 2));
  {
    std::lock_guard<std::mutex> lock(m);
    readAgain = true;
  }
  cv.notify_all();
  ASSERT_TRUE(testing::runUntil(r, [&] { return client.done(); }));
  std::string got = first + rest;
  std::string expected;
  for (size_t i = 0; expected.size() < got.size(); ++i) expected += Chargen::line(i);
  expected.resize(got.size());
  EXPECT_EQ(got.size(), 320u * 1024);
  EXPECT_TRUE(got == expected);
}

// Each server over a real socket: what a client reads until the server closes.
std::string fetch(Reactor& r, std::shared_ptr<ServerFactory> f, const std::string& send = "") {
  auto port = r.listenTCP(0, std::move(f), {.interface = "127.0.0.1"});
  std::string got;
  testing::ClientThread client([&] {
    int fd = testing::connectTo(port->getHost().port());
    if (!send.empty()) {
      testing::sendAll(fd, send);
      ::shutdown(fd, SHUT_WR);
    }
    got = testing::recvUntilEof(fd);
    ::close(fd);
  });
  EXPECT_TRUE(testing::runUntil(r, [&] { return client.done(); }));
  return got;
}

TEST(Wire, OverRealSockets) {
  Reactor r(testing::quietOptions());
  EXPECT_EQ(fetch(r, Factory::forProtocol<Echo>(), "echo me"), "echo me");
  EXPECT_EQ(fetch(r, Factory::forProtocol<Discard>(), "drop me"), "");
  EXPECT_EQ(fetch(r, Factory::forProtocol<QOTD>(std::string("Q\r\n"))), "Q\r\n");
  EXPECT_EQ(fetch(r, Factory::forProtocol<Time>()).size(), 4u);
  std::string daytime = fetch(r, Factory::forProtocol<Daytime>());
  std::tm tm{};
  EXPECT_NE(strptime(daytime.c_str(), "%a %b %d %H:%M:%S %Y\r\n", &tm), nullptr) << daytime;
}

}  // namespace
}  // namespace twist
