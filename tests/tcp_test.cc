// TCP transports through real sockets on 127.0.0.1: Port, Server, the connection life cycle and
// every way a connection ends.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "protocols/echo.h"
#include "protocols/protocol.h"
#include "reactor/errors.h"
#include "reactor/reactor.h"
#include "tests/test_util.h"
#include "transports/tcp_port.h"

namespace twist {
namespace {

using testing::ClientThread;
using testing::connectTo;
using testing::LogCaptureScope;
using testing::quietOptions;
using testing::recvAtMost;
using testing::recvUntilEof;
using testing::runFor;
using testing::runUntil;
using testing::sendAll;

// What one server-side connection saw.
struct ConnRecord {
  int made = 0;
  int lost = 0;
  bool dataAfterLost = false;
  bool dataBeforeMade = false;
  std::string data;
  Failure reason;
  Address host, peer;
};

struct Hooks {
  std::function<void(Protocol&)> made;
  std::function<void(Protocol&, std::string_view)> data;
  std::function<void(Protocol&, const Failure&)> lost;
};

class ScriptedProtocol : public Protocol {
 public:
  ScriptedProtocol(const Hooks& hooks, std::shared_ptr<ConnRecord> rec)
      : hooks_(hooks), rec_(std::move(rec)) {}
  void connectionMade() override {
    ++rec_->made;
    rec_->host = transport()->getHost();
    rec_->peer = transport()->getPeer();
    if (hooks_.made) hooks_.made(*this);
  }
  void dataReceived(std::string_view d) override {
    if (rec_->lost) rec_->dataAfterLost = true;
    if (!rec_->made) rec_->dataBeforeMade = true;
    rec_->data.append(d);
    if (hooks_.data) hooks_.data(*this, d);
  }
  void connectionLost(const Failure& reason) override {
    ++rec_->lost;
    rec_->reason = reason;
    if (hooks_.lost) hooks_.lost(*this, reason);
  }

 private:
  const Hooks& hooks_;
  std::shared_ptr<ConnRecord> rec_;
};

class ScriptedFactory : public ServerFactory {
 public:
  std::unique_ptr<Protocol> buildProtocol(const Address&) override {
    if (refuse) return nullptr;
    conns.push_back(std::make_shared<ConnRecord>());
    return std::make_unique<ScriptedProtocol>(hooks, conns.back());
  }
  void startFactory() override { ++starts; }
  void stopFactory() override { ++stops; }

  int lostCount() const {
    int n = 0;
    for (auto& c : conns) n += c->lost;
    return n;
  }
  // Every connection: made once, lost once, nothing delivered outside that window.
  void expectEachLostOnce() const {
    for (auto& c : conns) {
      EXPECT_EQ(c->made, 1);
      EXPECT_EQ(c->lost, 1);
      EXPECT_FALSE(c->dataAfterLost);
      EXPECT_FALSE(c->dataBeforeMade);
    }
  }

  Hooks hooks;
  std::vector<std::shared_ptr<ConnRecord>> conns;
  bool refuse = false;
  int starts = 0;
  int stops = 0;
};

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Sends `payload` while reading the echo at the same time (so neither side's buffers fill up
// and deadlock); returns what came back.
std::string duplexEcho(uint16_t port, const std::string& payload) {
  int fd = connectTo(port);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t sent = 0;
  std::string got;
  std::vector<char> buf(1 << 16);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (got.size() < payload.size() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < payload.size() ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 1000) < 0) break;
    if ((p.revents & POLLOUT) && sent < payload.size()) {
      ssize_t n = ::send(fd, payload.data() + sent,
                         std::min<size_t>(payload.size() - sent, 1 << 16), MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0 && errno != EAGAIN) break;
      if (n > 0) got.append(buf.data(), static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return got;
}

uint16_t portOf(const std::shared_ptr<IListeningPort>& p) { return p->getHost().port(); }

TEST(Tcp, EchoIsByteExactFromOneByteTo16MiB) {
  Reactor r(quietOptions());
  auto port = r.listenTCP(0, Factory::forProtocol<Echo>(), 50, "127.0.0.1");
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

TEST(Tcp, HundredConcurrentClients) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& p, std::string_view d) { p.transport()->write(d); };
  auto port = r.listenTCP(0, f, 128, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
    p.transport()->write(big);
    p.transport()->loseConnection();
    EXPECT_TRUE(p.transport()->disconnecting());
    p.transport()->write("written after loseConnection: ignored");
    p.transport()->loseConnection();  // idempotent
  };
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
    p.transport()->write(std::string(kBig, 'a'));
    EXPECT_GT(p.transport()->bufferedSize(), 0u);
    p.transport()->abortConnection();
    lostInsideAbort = f->conns[0]->lost != 0;
    p.transport()->abortConnection();  // idempotent
    p.transport()->write("after abort: ignored");
  };
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
    std::unique_ptr<Protocol> buildProtocol(const Address&) override {
      (*port_)->stopListening();
      return std::make_unique<Echo>();
    }
    std::shared_ptr<IListeningPort>* port_;
  };
  port = r.listenTCP(0, std::make_shared<OneShot>(&port), 50, "127.0.0.1");
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
  auto a = r.listenTCP(0, f, 50, "127.0.0.1");
  auto b = r.listenTCP(0, f, 50, "127.0.0.1");
  EXPECT_EQ(f->starts, 1);
  EXPECT_EQ(f->numPorts(), 2);
  a->stopListening();
  EXPECT_EQ(f->stops, 0);
  a->stopListening();  // idempotent: does not count twice
  EXPECT_EQ(f->stops, 0);
  b->stopListening();
  EXPECT_EQ(f->stops, 1);
  auto c = r.listenTCP(0, f, 50, "127.0.0.1");
  EXPECT_EQ(f->starts, 2);
}

TEST(Tcp, StopListeningThenListenAgainOnTheSamePort) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& p, std::string_view d) { p.transport()->write(d); };
  auto first = r.listenTCP(0, f, 50, "127.0.0.1");
  uint16_t p = portOf(first);
  int fd = connectTo(p);  // a connection that outlives the port
  ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1; }));
  first->stopListening();
  EXPECT_FALSE(first->listening());
  EXPECT_EQ(first->getHost().port(), p);  // the handle stays usable
  auto second = r.listenTCP(p, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, Factory::forProtocol<Echo>(), 50, "127.0.0.1");
  uint16_t p = portOf(port);
  try {
    r.listenTCP(p, Factory::forProtocol<Echo>(), 50, "127.0.0.1");
    FAIL() << "expected CannotListenError";
  } catch (const CannotListenError& e) {
    EXPECT_EQ(e.osError(), EADDRINUSE);
    EXPECT_EQ(e.port(), p);
    std::string what = e.what();
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(p)), std::string::npos) << what;
    EXPECT_NE(what.find("Address already in use"), std::string::npos) << what;
  }
  EXPECT_THROW(r.listenTCP(0, Factory::forProtocol<Echo>(), 50, "not-an-ip"), CannotListenError);
}

TEST(Tcp, ExceptionInDataReceivedIsLoggedAndAbortsOnlyThatConnection) {
  LogCaptureScope logs;
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  f->hooks.data = [](Protocol& p, std::string_view d) {
    if (d.find("bad") != std::string_view::npos) throw std::runtime_error("cannot parse bad input");
    p.transport()->write(d);
  };
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
  int bad = connectTo(portOf(port));
  sendAll(bad, "bad");
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  std::string peer = f->conns[0]->peer.hostPort();
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
  int fd = connectTo(portOf(port));
  sockaddr_in local{};
  socklen_t len = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1; }));
  ::close(fd);
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  const ConnRecord& c = *f->conns[0];
  EXPECT_EQ(c.host, Address(Address::Family::IPv4, "127.0.0.1", portOf(port)));
  EXPECT_EQ(c.peer.port(), ntohs(local.sin_port));
  EXPECT_EQ(c.peer.host(), "127.0.0.1");
  EXPECT_EQ(c.host.toString(),
            "IPv4Address(type='TCP', host='127.0.0.1', port=" + std::to_string(portOf(port)) + ")");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
      r_->callLater(0, [this] { pump(); });
    }
    Reactor* r_;
    Stats* s_;
    bool paused_ = false;
  };
  class PusherFactory : public ServerFactory {
   public:
    PusherFactory(Reactor* r, Stats* s) : r_(r), s_(s) {}
    std::unique_ptr<Protocol> buildProtocol(const Address&) override {
      return std::make_unique<Pusher>(r_, s_);
    }
    Reactor* r_;
    Stats* s_;
  };
  auto port = r.listenTCP(0, std::make_shared<PusherFactory>(&r, &stats), 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, Factory::forProtocol<Idle>(&stops), 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
  auto port = r.listenTCP(0, f, 50, "127.0.0.1");
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
    port = r.listenTCP(0, f, 50, "127.0.0.1");
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
    port = r.listenTCP(0, Factory::forProtocol<Echo>(), 50, "::1");
  } catch (const CannotListenError& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  EXPECT_EQ(port->getHost().family(), Address::Family::IPv6);
  EXPECT_EQ(port->getHost().hostPort(), "[::1]:" + std::to_string(portOf(port)));
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

}  // namespace
}  // namespace twist
