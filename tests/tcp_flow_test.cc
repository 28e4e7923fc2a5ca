// Flow control and half-close on real sockets: what a transport buffers for a peer that does not
// read (write buffer limits), transports and protocols as producers of other connections, and
// both halves of a TCP connection closing separately (IHalfCloseableProtocol).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netinet/tcp.h>

#include <atomic>
#include <cstdio>
#include <optional>

#include "tests/scripted.h"
#include "tests/test_util.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_connector.h"
#include "twist/transports/tcp_port.h"

// Counts the system calls that send on one socket (set gCountFd to it): twist's code is linked
// into this binary, so these stand in for the C library's and pass the calls on.
namespace {
std::atomic<int> gCountFd{-1};
std::atomic<int> gSends{0};
}  // namespace

extern "C" ssize_t send(int fd, const void* buf, size_t len, int flags) {
  using Real = ssize_t (*)(int, const void*, size_t, int);
  static const Real real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "send"));
  if (fd == gCountFd.load()) ++gSends;
  return real(fd, buf, len, flags);
}

extern "C" ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  using Real = ssize_t (*)(int, const msghdr*, int);
  static const Real real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "sendmsg"));
  if (fd == gCountFd.load()) ++gSends;
  return real(fd, msg, flags);
}

namespace twist {
namespace {

using testing::ClientThread;
using testing::connectTo;
using testing::LogCaptureScope;
using testing::pattern;
using testing::portOf;
using testing::quietOptions;
using testing::recvAtMost;
using testing::recvUntilEof;
using testing::runUntil;
using testing::ScriptedFactory;
using testing::sendAll;

// ---- half-close ----

TEST(HalfClose, ThePeersFinAfterLoseWriteConnectionLosesNothing) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  const std::string big = pattern(8 << 20, 9);
  f->hooks.made = [&](Protocol& p) {
    p.transport()->setWriteBufferLimits({.hardCap = WriteBufferLimits::kNoLimit});
    p.transport()->write(big);
    p.transport()->loseWriteConnection();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  std::string got;
  bool eof = false;
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    ::shutdown(fd, SHUT_WR);  // our FIN reaches the server while most of `big` is still queued
    got = recvUntilEof(fd, &eof, 60);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(
      r, [&] { return client.done() && f->lostCount() == 1; }, 60));
  EXPECT_TRUE(eof);
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big);
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionDone>());
  f->expectEachLostOnce();
}

// Records the half-close callbacks; writes `reply` after the peer's FIN, then closes.
class HalfCloser : public Protocol, public IHalfCloseableProtocol {
 public:
  struct Record {
    std::string data;
    int readLost = 0, writeLost = 0, lost = 0;
    bool insideCall = false;  // a callback came while the protocol was calling the transport
    Failure reason;
  };
  HalfCloser(Record* rec, bool shutWriteFirst) : rec_(rec), shutWriteFirst_(shutWriteFirst) {}
  void connectionMade() override {
    if (shutWriteFirst_) {
      calling_ = true;
      transport()->write("first half");
      transport()->loseWriteConnection();
      transport()->write("after loseWriteConnection: ignored");
      calling_ = false;
    }
  }
  void dataReceived(std::string_view d) override { rec_->data.append(d); }
  void readConnectionLost() override {
    rec_->insideCall |= calling_;
    ++rec_->readLost;
    if (!shutWriteFirst_) {
      transport()->write("reply to " + rec_->data);
      transport()->loseConnection();
    }
  }
  void writeConnectionLost() override {
    rec_->insideCall |= calling_;
    ++rec_->writeLost;
  }
  void connectionLost(const Failure& reason) override {
    ++rec_->lost;
    rec_->reason = reason;
  }

 private:
  Record* rec_;
  bool shutWriteFirst_;
  bool calling_ = false;
};

TEST(HalfClose, AHalfCloseableProtocolWritesAfterThePeersFin) {
  Reactor r(quietOptions());
  HalfCloser::Record rec;
  auto port =
      r.listenTCP(0, Factory::forProtocol<HalfCloser>(&rec, false), {.interface = "127.0.0.1"});
  std::string got;
  bool eof = false;
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    sendAll(fd, "question");
    ::shutdown(fd, SHUT_WR);
    got = recvUntilEof(fd, &eof);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done() && rec.lost == 1; }));
  EXPECT_EQ(got, "reply to question");
  EXPECT_TRUE(eof);
  EXPECT_EQ(rec.readLost, 1);
  EXPECT_EQ(rec.writeLost, 0);
  EXPECT_TRUE(rec.reason.check<ConnectionDone>());
}

TEST(HalfClose, WriteConnectionLostComesFromTheLoopAndBothHalvesEndTheConnection) {
  Reactor r(quietOptions());
  HalfCloser::Record rec;
  auto port =
      r.listenTCP(0, Factory::forProtocol<HalfCloser>(&rec, true), {.interface = "127.0.0.1"});
  std::string got;
  bool eof = false;
  std::atomic<bool> sawEof{false};
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    got = recvUntilEof(fd, &eof);  // the server's half ends first...
    sawEof = true;
    sendAll(fd, "the client goes on");  // ...and it still reads ours
    ::shutdown(fd, SHUT_WR);
    recvUntilEof(fd);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done() && rec.lost == 1; }));
  EXPECT_EQ(got, "first half");
  EXPECT_TRUE(eof);
  EXPECT_EQ(rec.writeLost, 1);
  EXPECT_EQ(rec.readLost, 1);
  EXPECT_FALSE(rec.insideCall);
  EXPECT_EQ(rec.data, "the client goes on");
  EXPECT_TRUE(rec.reason.check<ConnectionDone>()) << rec.reason.toString();
}

// The relay of the issue: `printf 'GET r\n' | nc -N` through a twist relay to a backend that
// answers once the request has ended (EOF). Every hop must pass the half-close on.
class Backend : public Protocol, public IHalfCloseableProtocol {
 public:
  void dataReceived(std::string_view d) override { request_.append(d); }
  void readConnectionLost() override {
    transport()->write("reply to " + request_);
    transport()->loseConnection();
  }

 private:
  std::string request_;
};

class Relay;

// The relay's leg to the backend: what comes back goes to the client.
class RelayBackendLeg : public Protocol {
 public:
  explicit RelayBackendLeg(Relay* front) : front_(front) {}
  void connectionMade() override;
  void dataReceived(std::string_view d) override;
  void connectionLost(const Failure&) override;
  void detach() { front_ = nullptr; }

 private:
  Relay* front_;
};

class Relay : public Protocol, public IHalfCloseableProtocol {
 public:
  explicit Relay(uint16_t backendPort, Reactor* reactor)
      : backendPort_(backendPort), reactor_(reactor) {}
  void connectionMade() override {
    auto factory = std::make_shared<LegFactory>(this);
    connector_ = reactor_->connectTCP("127.0.0.1", backendPort_, factory, {.timeout = 5});
  }
  void dataReceived(std::string_view d) override {
    if (back_ != nullptr) {
      back_->transport()->write(d);
    } else {
      pending_.append(d);
    }
  }
  void readConnectionLost() override {
    clientDone_ = true;
    if (back_ != nullptr) back_->transport()->loseWriteConnection();
  }
  void connectionLost(const Failure&) override {
    if (back_ != nullptr) {
      back_->detach();
      back_->transport()->loseConnection();
    } else if (connector_ && connector_->state() == IConnector::State::Connecting) {
      connector_->stopConnecting();
    }
  }
  void legMade(RelayBackendLeg* leg) {
    back_ = leg;
    leg->transport()->write(pending_);
    if (clientDone_) leg->transport()->loseWriteConnection();
  }
  void legLost() {
    back_ = nullptr;
    transport()->loseConnection();
  }

 private:
  class LegFactory : public ClientFactory {
   public:
    explicit LegFactory(Relay* front) : front_(front) {}
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
      return std::make_unique<RelayBackendLeg>(front_);
    }

   private:
    Relay* front_;
  };
  uint16_t backendPort_;
  Reactor* reactor_;
  std::shared_ptr<IConnector> connector_;
  RelayBackendLeg* back_ = nullptr;
  std::string pending_;
  bool clientDone_ = false;
};

void RelayBackendLeg::connectionMade() { front_->legMade(this); }
void RelayBackendLeg::dataReceived(std::string_view d) {
  if (front_ != nullptr) front_->transport()->write(d);
}
void RelayBackendLeg::connectionLost(const Failure&) {
  if (front_ != nullptr) front_->legLost();
}

// Runs a shell command, returns what it printed on stdout.
std::string run(const std::string& command) {
  std::string out;
  if (std::FILE* p = ::popen(command.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

TEST(HalfClose, ARelayPassesTheClientsFinThroughAndTheReplyBack) {
  Reactor r(quietOptions());
  auto backend = r.listenTCP(0, Factory::forProtocol<Backend>(), {.interface = "127.0.0.1"});
  auto relay =
      r.listenTCP(0, Factory::forProtocol<Relay>(portOf(backend), &r), {.interface = "127.0.0.1"});
  std::string got;
  ClientThread client([&] {
    got = run("printf 'GET r\\n' | timeout 20 nc -N 127.0.0.1 " + std::to_string(portOf(relay)));
  });
  ASSERT_TRUE(runUntil(
      r, [&] { return client.done(); }, 30));
  EXPECT_EQ(got, "reply to GET r\n");
}

// ---- write buffer limits ----

TEST(WriteBufferLimits, AnEchoClientThatNeverReadsIsStoppedNotBuffered) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  size_t mostBuffered = 0;
  f->hooks.data = [&](Protocol& p, std::string_view d) {
    p.transport()->write(d);
    mostBuffered = std::max(mostBuffered, p.transport()->bufferedSize());
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  constexpr size_t kFlood = 256 << 20;
  size_t sent = 0;
  std::string echoed;
  ClientThread client([&] {
    int fd = connectTo(portOf(port));
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    const std::string block(1 << 16, 'f');
    while (sent < kFlood) {
      // Stuck for a second: the server stopped reading (the kernel buffers are full).
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 1000) != 1) break;
      ssize_t n = ::send(fd, block.data(), std::min(block.size(), kFlood - sent), MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    ::shutdown(fd, SHUT_WR);
    echoed = recvUntilEof(fd, nullptr, 60);  // now read: everything comes back
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(
      r, [&] { return client.done() && f->lostCount() == 1; }, 120));
  EXPECT_LT(sent, kFlood) << "the server kept reading a client that never read";
  const WriteBufferLimits limits;
  EXPECT_LE(mostBuffered, limits.highWater + Reactor::kReadBufferSize);
  EXPECT_EQ(echoed.size(), sent) << "nothing is lost: the server only paused";
  EXPECT_TRUE(f->conns[0]->reason.check<ConnectionDone>()) << f->conns[0]->reason.toString();
}

TEST(WriteBufferLimits, ACapAbortsAConnectionWhosePeerDoesNotRead) {
  LogCaptureScope logs;
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  constexpr size_t kCap = 512 * 1024;
  size_t mostBuffered = 0;
  // Pushed by the server on a timer (as a chat room broadcasts), not in answer to reads: only
  // the cap can stop it.
  std::function<void(Protocol*)> push = [&](Protocol* p) {
    if (p->transport() == nullptr || p->transport()->disconnecting()) return;
    p->transport()->write(std::string(32 * 1024, 'b'));
    mostBuffered = std::max(mostBuffered, p->transport()->bufferedSize());
    r.callLater(0, [&push, p] { push(p); });
  };
  f->hooks.made = [&](Protocol& p) {
    p.transport()->setWriteBufferLimits({.hardCap = kCap});
    push(&p);
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 1; }));
  ::close(fd);
  const Failure& reason = f->conns[0]->reason;
  ASSERT_TRUE(reason.check<WriteBufferFullError>()) << reason.toString();
  EXPECT_TRUE(reason.check<ConnectionLost>());
  EXPECT_EQ(reason.get<WriteBufferFullError>()->cap(), kCap);
  EXPECT_LE(mostBuffered, kCap);
  EXPECT_EQ(logs->count(f->conns[0]->peer.toString()), 1);
}

TEST(WriteBufferLimits, LimitsAreValidatedAndCanBeLifted) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  bool rejected = false;
  WriteBufferLimits seen;
  f->hooks.made = [&](Protocol& p) {
    try {
      p.transport()->setWriteBufferLimits({.highWater = 10, .lowWater = 20});
    } catch (const std::invalid_argument&) {
      rejected = true;
    }
    p.transport()->setWriteBufferLimits({.highWater = WriteBufferLimits::kNoLimit,
                                         .lowWater = 1024,
                                         .hardCap = WriteBufferLimits::kNoLimit});
    seen = p.transport()->writeBufferLimits();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1; }));
  ::close(fd);
  EXPECT_TRUE(rejected);
  EXPECT_EQ(seen.highWater, WriteBufferLimits::kNoLimit);
  EXPECT_EQ(seen.lowWater, 1024u);
}

// ---- producers ----

TEST(Producers, ATransportIsTheProducerOfAnotherConnection) {
  // Twisted's relay idiom: `out->registerProducer(in, true)`. While the reader of `out` does not
  // read, `in` stops reading; when `in` ends, `out` forgets it.
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  Protocol* in = nullptr;
  Protocol* out = nullptr;
  f->hooks.made = [&](Protocol& p) {
    if (in == nullptr) {
      in = &p;
    } else {
      out = &p;
      out->transport()->registerProducer(in->transport(), true);
    }
  };
  f->hooks.data = [&](Protocol& p, std::string_view d) {
    if (&p == in && out != nullptr) out->transport()->write(d);
  };
  f->hooks.lost = [&](Protocol& p, const Failure&) {
    if (&p == in) in = nullptr;
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int writer = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return in != nullptr; }));
  int reader = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return out != nullptr; }));
  ASSERT_EQ(out->transport()->producer(), static_cast<IProducer*>(in->transport()));

  constexpr size_t kTotal = 32 << 20;
  const std::string data = pattern(kTotal, 5);
  size_t accepted = 0;
  std::atomic<bool> stuck{false};
  ClientThread writing([&] {
    ::fcntl(writer, F_SETFL, ::fcntl(writer, F_GETFL) | O_NONBLOCK);
    while (accepted < kTotal) {
      pollfd p{writer, POLLOUT, 0};
      if (::poll(&p, 1, stuck ? 20000 : 1000) != 1) {
        if (stuck) break;
        stuck = true;  // the relay stopped reading us: the reader has not read yet
        continue;
      }
      ssize_t n = ::send(writer, data.data() + accepted,
                         std::min<size_t>(1 << 16, kTotal - accepted), MSG_NOSIGNAL);
      if (n > 0) accepted += static_cast<size_t>(n);
    }
    ::close(writer);
  });
  ASSERT_TRUE(runUntil(
      r, [&] { return stuck.load(); }, 60));
  EXPECT_LE(out->transport()->bufferedSize(), 2 * WriteBufferLimits{}.highWater);
  std::string got;
  ClientThread reading([&] { got = recvAtMost(reader, kTotal, 60); });
  ASSERT_TRUE(runUntil(
      r, [&] { return writing.done() && reading.done() && in == nullptr; }, 120));
  EXPECT_EQ(accepted, kTotal);
  EXPECT_TRUE(got == data);
  // `in` ended: `out` no longer holds it.
  EXPECT_EQ(out->transport()->producer(), nullptr);
  out->transport()->write(std::string(256 * 1024, 'x'));  // would pause a dangling producer
  ::close(reader);
  ASSERT_TRUE(runUntil(r, [&] { return f->lostCount() == 2; }));
}

// A protocol that feeds another connection and is destroyed without unregistering.
class Feeder : public Protocol, public IProducer {
 public:
  explicit Feeder(ITransport** target) : target_(target) {}
  void connectionMade() override { (*target_)->registerProducer(this, true); }
  void resumeProducing() override {}
  void pauseProducing() override {}

 private:
  ITransport** target_;
};

TEST(Producers, AProducerIsUnregisteredWhenItIsDestroyed) {
  Reactor r(quietOptions());
  ITransport* target = nullptr;
  auto sink = std::make_shared<ScriptedFactory>();
  sink->hooks.made = [&](Protocol& p) { target = p.transport(); };
  auto sinkPort = r.listenTCP(0, sink, {.interface = "127.0.0.1"});
  auto feederPort =
      r.listenTCP(0, Factory::forProtocol<Feeder>(&target), {.interface = "127.0.0.1"});
  int sinkClient = connectTo(portOf(sinkPort));
  ASSERT_TRUE(runUntil(r, [&] { return target != nullptr; }));
  int feederClient = connectTo(portOf(feederPort));
  ASSERT_TRUE(runUntil(r, [&] { return target->producer() != nullptr; }));
  ::close(feederClient);  // the Feeder's connection ends and the Feeder is destroyed
  ASSERT_TRUE(runUntil(r, [&] { return target->producer() == nullptr; }));
  // Over the high mark: a dangling producer would be paused here (a use after free).
  target->write(std::string(1 << 20, 'x'));
  ::close(sinkClient);
  ASSERT_TRUE(runUntil(r, [&] { return sink->lostCount() == 1; }));
}

// ---- write coalescing ----

// Answers each line with "<line>!" in three writes (so many small writes per read).
class Chatty : public Protocol {
 public:
  void connectionMade() override {
    gCountFd = static_cast<tcp::Connection*>(transport())->fileno();
  }
  void dataReceived(std::string_view data) override {
    for (size_t pos = 0; pos < data.size();) {
      size_t nl = data.find('\n', pos);
      if (nl == std::string_view::npos) break;
      transport()->write(data.substr(pos, nl - pos));  // a view into the read buffer
      transport()->write(std::string("!"));            // a temporary
      std::string_view parts[] = {"\n"};
      transport()->writeSequence(parts);
      pos = nl + 1;
    }
  }
};

TEST(WriteCoalescing, WritesMadeDuringOneCallbackGoOutInOneSystemCall) {
  Reactor r(quietOptions());
  auto port = r.listenTCP(0, Factory::forProtocol<Chatty>(), {.interface = "127.0.0.1"});
  std::string request, expected;
  for (int i = 0; i < 1000; ++i) {
    request += "line " + std::to_string(i) + "\n";
    expected += "line " + std::to_string(i) + "!\n";
  }
  std::string got;
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return gCountFd.load() >= 0; }));
  gSends = 0;
  ClientThread client([&] {
    sendAll(fd, request);  // 12 KB: one read on the server, 3000 writes
    got = recvAtMost(fd, expected.size());
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
  ::close(fd);
  gCountFd = -1;
  EXPECT_EQ(got, expected);
  // One read of the request is one system call to answer it (two if the request arrived in two
  // reads); it was 3000.
  EXPECT_LE(gSends.load(), 4) << "system calls to send 3000 writes";
}

TEST(WriteCoalescing, WritesFromOutsideTheConnectionsCallbacksAreCoalescedToo) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  ITransport* t = nullptr;
  f->hooks.made = [&](Protocol& p) {
    t = p.transport();
    gCountFd = static_cast<tcp::Connection*>(t)->fileno();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return t != nullptr; }));
  gSends = 0;
  r.callLater(0, [&] {
    for (int i = 0; i < 100; ++i) t->write("x");  // a timer writes, not the protocol's callback
    EXPECT_EQ(gSends.load(), 0) << "held back until the timer returns";
    EXPECT_EQ(t->bufferedSize(), 100u);
  });
  std::string got;
  ClientThread client([&] { got = recvAtMost(fd, 100); });
  ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
  gCountFd = -1;
  EXPECT_EQ(got, std::string(100, 'x'));
  EXPECT_EQ(gSends.load(), 1);
  ::close(fd);
}

// 16 KiB or more written in a callback goes out at once, without waiting for the callback's end
// (the peer starts on it: a TLS layer writing four records of a 64 KiB echo); small writes
// still wait, and those written behind a large one go with it.
TEST(WriteCoalescing, LargeWritesGoAtOnceSmallOnesWaitForTheCallbacksEnd) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  int fd = -1;
  std::vector<std::string> seen;  // what the peer could read at each step of the callback
  auto peerHas = [&] {
    std::string got(1 << 20, '\0');
    ssize_t n = ::recv(fd, got.data(), got.size(), MSG_DONTWAIT);
    return n > 0 ? std::to_string(n) : "0";
  };
  f->hooks.data = [&](Protocol& p, std::string_view) {
    gSends = 0;
    p.transport()->write(std::string(100, 'a'));
    seen.push_back(peerHas());  // 0: held back
    p.transport()->write(std::string(20000, 'b'));
    seen.push_back(peerHas());  // the 100 bytes and the 20,000 behind them: sent
    p.transport()->write(std::string(20000, 'c'));
    seen.push_back(peerHas());  // nothing before it: sent from where it is
    p.transport()->write(std::string(10, 'd'));
    seen.push_back(peerHas());  // 0: held back
  };
  f->hooks.made = [&](Protocol& p) {
    gCountFd = static_cast<tcp::Connection*>(p.transport())->fileno();
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return gCountFd.load() >= 0; }));
  sendAll(fd, "go");
  ASSERT_TRUE(runUntil(r, [&] { return seen.size() == 4; }));
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "20100", "20000", "0"}));
  std::string rest;
  ASSERT_TRUE(runUntil(r, [&] {
    rest = peerHas();
    return rest != "0";
  }));
  EXPECT_EQ(rest, "10");
  EXPECT_EQ(gSends.load(), 3);
  gCountFd = -1;
  ::close(fd);
}

// ---- keepalive ----

TEST(KeepAlive, TimesAreSetOnTheSocket) {
  Reactor r(quietOptions());
  auto f = std::make_shared<ScriptedFactory>();
  int idle = 0, interval = 0, probes = 0;
  bool on = false, rejected = false;
  f->hooks.made = [&](Protocol& p) {
    p.transport()->setTcpKeepAliveTimes(30, 5, 3);
    on = p.transport()->getTcpKeepAlive();
    int fd = static_cast<tcp::Connection*>(p.transport())->fileno();
    socklen_t len = sizeof(int);
    ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len);
    ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, &len);
    ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, &len);
    try {
      p.transport()->setTcpKeepAliveTimes(-1, 0, 0);
    } catch (const std::invalid_argument&) {
      rejected = true;
    }
  };
  auto port = r.listenTCP(0, f, {.interface = "127.0.0.1"});
  int fd = connectTo(portOf(port));
  ASSERT_TRUE(runUntil(r, [&] { return f->conns.size() == 1; }));
  ::close(fd);
  EXPECT_TRUE(on);
  EXPECT_EQ(idle, 30);
  EXPECT_EQ(interval, 5);
  EXPECT_EQ(probes, 3);
  EXPECT_TRUE(rejected);
}

}  // namespace
}  // namespace twist
