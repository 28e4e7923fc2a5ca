// ReactorPool: N reactors on N threads, with real clients on the test's thread (the reactors run
// on their own). Each connection lives on one thread; both ways of spreading connections reach
// every reactor; factories are never shared by accident; stop() ends everything once.
#include "twist/reactor/reactor_pool.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/subprocess.h"
#include "tests/test_util.h"
#include "tests/tls/tls_util.h"
#include "twist/reactor/errors.h"
#include "twist/transports/tls.h"

namespace twist {
namespace {

using testing::connectTo;
using testing::recvAtMost;
using testing::recvUntilEof;
using testing::sendAll;

// What the pool's connections did, from every thread.
struct Journal {
  std::mutex mutex;
  std::map<std::thread::id, int> connectionsPerThread;
  int made = 0, lost = 0;
  bool crossedThreads = false;  // a connection's callbacks ran on two threads
};

class Recorder : public Protocol {
 public:
  explicit Recorder(Journal* j) : journal_(j) {}
  void connectionMade() override {
    thread_ = std::this_thread::get_id();
    std::lock_guard<std::mutex> lock(journal_->mutex);
    ++journal_->made;
    ++journal_->connectionsPerThread[thread_];
  }
  void dataReceived(std::string_view d) override {
    check();
    transport()->write(d);
  }
  void connectionLost(const Failure&) override {
    check();
    std::lock_guard<std::mutex> lock(journal_->mutex);
    ++journal_->lost;
  }

 private:
  void check() {
    if (std::this_thread::get_id() != thread_) {
      std::lock_guard<std::mutex> lock(journal_->mutex);
      journal_->crossedThreads = true;
    }
  }
  Journal* journal_;
  std::thread::id thread_;
};

ReactorPool::Options twoReactors() {
  ReactorPool::Options o;
  o.reactors = 2;
  o.reactor = testing::quietOptions();
  return o;
}

// `n` clients one after the other, each echoing a line; true if every echo came back.
bool echoes(uint16_t port, int n) {
  for (int i = 0; i < n; ++i) {
    int fd = connectTo(port);
    std::string line = "client " + std::to_string(i) + "\n";
    bool ok = sendAll(fd, line) && recvAtMost(fd, line.size()) == line;
    ::close(fd);
    if (!ok) return false;
  }
  return true;
}

void serveAndCheck(ListenPoolOptions::Balance balance) {
  Journal journal;
  {
    ReactorPool pool(twoReactors());
    ASSERT_EQ(pool.size(), 2u);
    std::mutex makersMutex;
    std::set<std::thread::id> makers;
    Address bound =
        pool.listenTCP(0,
                       [&](Reactor& r) {
                         EXPECT_TRUE(r.isInReactorThread());  // called on each reactor's own thread
                         std::lock_guard<std::mutex> lock(makersMutex);
                         makers.insert(std::this_thread::get_id());
                         return Factory::forProtocol<Recorder>(&journal);
                       },
                       {.interface = "127.0.0.1", .balance = balance});
    EXPECT_EQ(makers.size(), 2u);
    ASSERT_TRUE(echoes(bound.port(), 200));
  }  // the destructor stops both reactors and joins them
  EXPECT_EQ(journal.made, 200);
  EXPECT_EQ(journal.lost, 200);
  EXPECT_FALSE(journal.crossedThreads);
  ASSERT_EQ(journal.connectionsPerThread.size(), 2u) << "one reactor served nothing";
  if (balance == ListenPoolOptions::Balance::Handoff) {
    for (auto& [thread, count] : journal.connectionsPerThread) EXPECT_EQ(count, 100);
  }
}

TEST(ReactorPool, ReusePortSpreadsConnectionsOverEveryReactor) {
  serveAndCheck(ListenPoolOptions::Balance::ReusePort);
}

TEST(ReactorPool, HandoffDealsConnectionsOutInTurn) {
  serveAndCheck(ListenPoolOptions::Balance::Handoff);
}

TEST(ReactorPool, AUNIXSocketIsDealtOutInTurn) {
  char dir[] = "/tmp/twist-pool-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/pool.sock";
  Journal journal;
  {
    ReactorPool pool(twoReactors());
    Address bound =
        pool.listenUNIX(path, [&](Reactor&) { return Factory::forProtocol<Recorder>(&journal); },
                        {.mode = 0600, .wantPID = true});
    EXPECT_EQ(bound, Address(UNIXAddress{path}));
    for (int i = 0; i < 100; ++i) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_storage ss;
      socklen_t len;
      ASSERT_TRUE(makeUNIXSockaddr(path, &ss, &len));
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
      ASSERT_TRUE(sendAll(fd, "x\n"));
      ASSERT_EQ(recvAtMost(fd, 2), "x\n");
      ::close(fd);
    }
    // One factory for both reactors is refused here too.
    auto plain = Factory::forProtocol<Recorder>(&journal);
    EXPECT_THROW(pool.listenUNIX(path + "2", [&](Reactor&) { return plain; }), std::logic_error);
  }
  EXPECT_EQ(journal.made, 100);
  EXPECT_FALSE(journal.crossedThreads);
  ASSERT_EQ(journal.connectionsPerThread.size(), 2u);
  for (auto& [thread, count] : journal.connectionsPerThread) EXPECT_EQ(count, 50);
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file outlived the pool";
  ::unlink((path + ".lock").c_str());
  ::rmdir(dir);
}

TEST(ReactorPool, UDPOnEveryReactor) {
  struct Echo : DatagramProtocol {
    explicit Echo(Journal* j) : journal(j) {}
    void datagramReceived(std::string_view d, const Address& from) override {
      {
        std::lock_guard<std::mutex> lock(journal->mutex);
        ++journal->connectionsPerThread[std::this_thread::get_id()];
      }
      transport()->write(d, from);
    }
    Journal* journal;
  };
  Journal journal;
  {
    ReactorPool pool(twoReactors());
    Address bound = pool.listenUDP(0, [&](Reactor&) { return std::make_shared<Echo>(&journal); },
                                   {.interface = "127.0.0.1"});
    ASSERT_NE(bound.port(), 0);
    // 64 senders (64 source ports): the hash spreads them over both sockets.
    for (int i = 0; i < 64; ++i) {
      int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_storage ss;
      socklen_t len;
      ASSERT_TRUE(parseIPAddress("127.0.0.1", bound.port(), &ss, &len));
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ASSERT_EQ(::send(fd, "ping", 4, 0), 4);
      char buf[8];
      ASSERT_EQ(::recv(fd, buf, sizeof buf, 0), 4) << "sender " << i << " got no answer";
      ::close(fd);
    }
    auto same = std::make_shared<Echo>(&journal);
    EXPECT_THROW(pool.listenUDP(0, [&](Reactor&) { return same; }), std::logic_error);
  }
  ASSERT_EQ(journal.connectionsPerThread.size(), 2u) << "one reactor received nothing";
  int total = 0;
  for (auto& [thread, count] : journal.connectionsPerThread) total += count;
  EXPECT_EQ(total, 64);
}

TEST(ReactorPool, OneFactoryForTwoReactorsMustBeThreadSafe) {
  ReactorPool pool(twoReactors());
  Journal journal;
  auto plain = Factory::forProtocol<Recorder>(&journal);
  EXPECT_THROW(pool.listenTCP(0, [&](Reactor&) { return plain; }, {.interface = "127.0.0.1"}),
               std::logic_error);
  EXPECT_THROW(pool.listenTCP(0, [](Reactor&) { return std::shared_ptr<Factory>(); },
                              {.interface = "127.0.0.1"}),
               std::logic_error);
  // The same factory from the maker is fine when it is thread-safe.
  auto threadSafe = ThreadSafeFactory::forProtocol<Recorder>(&journal);
  Address sharedPort =
      pool.listenTCP(0, [&](Reactor&) { return threadSafe; }, {.interface = "127.0.0.1"});
  EXPECT_TRUE(echoes(sharedPort.port(), 10));

  struct Counting : ThreadSafeFactory {
    std::atomic<int> starts{0}, stops{0}, built{0};
    Journal* journal = nullptr;
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
      ++built;
      return std::make_shared<Recorder>(journal);
    }
    void startFactory() override { ++starts; }
    void stopFactory() override { ++stops; }
  };
  auto shared = std::make_shared<Counting>();
  shared->journal = &journal;
  {
    ReactorPool other(twoReactors());
    for (auto balance :
         {ListenPoolOptions::Balance::ReusePort, ListenPoolOptions::Balance::Handoff}) {
      Address bound = other.listenTCP(0, shared, {.interface = "127.0.0.1", .balance = balance});
      ASSERT_TRUE(echoes(bound.port(), 20));
    }
    EXPECT_EQ(shared->starts.load(), 1);  // once for the pool, not per port or thread
    EXPECT_EQ(shared->stops.load(), 0);
  }
  EXPECT_EQ(shared->stops.load(), 1);
  EXPECT_EQ(shared->built.load(), 40);
  EXPECT_EQ(journal.made, 50);  // and the 10 of the ThreadSafeFactory::forProtocol one
  EXPECT_FALSE(journal.crossedThreads);
}

TEST(ReactorPool, AFailedListenLeavesNothingListening) {
  ReactorPool pool(twoReactors());
  uint16_t taken = 0;
  int blocker = testing::bindLoopback(SOCK_STREAM, &taken, 8);  // listening, no SO_REUSEPORT
  Journal journal;
  for (auto balance :
       {ListenPoolOptions::Balance::ReusePort, ListenPoolOptions::Balance::Handoff}) {
    EXPECT_THROW(
        pool.listenTCP(taken, [&](Reactor&) { return Factory::forProtocol<Recorder>(&journal); },
                       {.interface = "127.0.0.1", .balance = balance}),
        CannotListenError);
  }
  ::close(blocker);
  // The port is free again: nothing of the pool holds it.
  Address bound =
      pool.listenTCP(taken, [&](Reactor&) { return Factory::forProtocol<Recorder>(&journal); },
                     {.interface = "127.0.0.1"});
  EXPECT_EQ(bound.port(), taken);
  EXPECT_TRUE(echoes(taken, 4));
}

// A client that says "stop" stops the whole pool from inside a reactor's callback; run()
// returns, and every connection, on every reactor, is lost once.
TEST(ReactorPool, StopFromInsideACallbackEndsRunAndEveryConnection) {
  ReactorPool pool(twoReactors());
  Journal journal;
  struct Stopper : Recorder {
    Stopper(Journal* j, ReactorPool* p) : Recorder(j), pool(p) {}
    void dataReceived(std::string_view d) override {
      if (d.find("stop") != std::string_view::npos) pool->stop();
      Recorder::dataReceived(d);
    }
    ReactorPool* pool;
  };
  Address bound =
      pool.listenTCP(0, [&](Reactor&) { return Factory::forProtocol<Stopper>(&journal, &pool); },
                     {.interface = "127.0.0.1", .balance = ListenPoolOptions::Balance::Handoff});
  std::vector<int> idle;
  for (int i = 0; i < 6; ++i) {
    idle.push_back(connectTo(bound.port()));
    ASSERT_TRUE(sendAll(idle.back(), "x"));
    ASSERT_EQ(recvAtMost(idle.back(), 1), "x");  // connected and served
  }
  std::thread stopper([&] {
    int fd = connectTo(bound.port());
    sendAll(fd, "stop");
    recvUntilEof(fd);
    ::close(fd);
  });
  pool.run();  // returns once stop() has stopped every reactor
  stopper.join();
  for (int fd : idle) {
    bool eof = false;
    recvUntilEof(fd, &eof);
    EXPECT_TRUE(eof);
    ::close(fd);
  }
  EXPECT_EQ(journal.made, 7);
  EXPECT_EQ(journal.lost, 7);
  EXPECT_THROW(pool.onEach([](Reactor&) {}), std::logic_error);  // the pool has stopped
}

// A socket made elsewhere (systemd's, a parent's): every reactor accepts from it.
TEST(ReactorPool, AdoptedSocketIsServedByEveryReactor) {
  uint16_t port = 0;
  int fd = testing::bindLoopback(SOCK_STREAM, &port, 64);
  Journal journal;
  {
    ReactorPool pool(twoReactors());
    Address bound = pool.adoptStreamPort(
        fd, [&](Reactor&) { return Factory::forProtocol<Recorder>(&journal); });
    EXPECT_EQ(bound.port(), port);
    // Concurrent clients, so that both reactors get woken for some.
    std::vector<std::thread> clients;
    std::atomic<int> ok{0};
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&] { ok += echoes(port, 50) ? 1 : 0; });
    }
    for (auto& c : clients) c.join();
    EXPECT_EQ(ok.load(), 4);
    EXPECT_THROW(pool.adoptStreamPort(
                     -1, [&](Reactor&) { return Factory::forProtocol<Recorder>(&journal); }),
                 std::invalid_argument);
  }
  EXPECT_EQ(journal.made, 200);
  EXPECT_EQ(journal.lost, 200);
  EXPECT_FALSE(journal.crossedThreads);
  // The caller's descriptor is still open and listening.
  EXPECT_TRUE(testing::isListening(fd));
  ::close(fd);
}

// TLS on every reactor: each gets its own TLSFactory (one shared ServerContext: OpenSSL's
// SSL_CTX is safe to share), and 40 Python TLS clients at once are all echoed.
TEST(ReactorPool, TLSOnEveryReactor) {
  ReactorPool pool(twoReactors());
  Journal journal;
  auto context = testing::serverContext();
  Address bound = pool.listenTCP(0,
                                 [&](Reactor& r) {
                                   return std::make_shared<tls::TLSFactory>(
                                       Factory::forProtocol<Recorder>(&journal), context,
                                       tls::LayerOptions{.clock = &r});
                                 },
                                 {.interface = "127.0.0.1"});
  std::string script =
      "import socket, ssl, threading\n"
      "ctx = ssl.create_default_context(cafile='" +
      testing::certFile("ca.pem") +
      "')\n"
      "ok = []\n"
      "def client(i):\n"
      "    with socket.create_connection(('127.0.0.1', " +
      std::to_string(bound.port()) +
      "), timeout=20) as raw:\n"
      "        with ctx.wrap_socket(raw, server_hostname='localhost') as s:\n"
      "            data = (b'client %d ' % i) * 500\n"
      "            s.sendall(data)\n"
      "            got = b''\n"
      "            while len(got) < len(data): got += s.recv(65536)\n"
      "            ok.append(got == data)\n"
      "ts = [threading.Thread(target=client, args=(i,)) for i in range(40)]\n"
      "[t.start() for t in ts]\n"
      "[t.join() for t in ts]\n"
      "print(sum(ok))\n";
  int status = -1;
  std::string out = testing::python(script, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "40\n");
  pool.stop();
  pool.run();
  EXPECT_EQ(journal.made, 40);
  EXPECT_EQ(journal.lost, 40);
  EXPECT_FALSE(journal.crossedThreads);
  ASSERT_EQ(journal.connectionsPerThread.size(), 2u);
}

TEST(ReactorPool, CallWhenRunningRunsOnRunsThreadOnceRunning) {
  ReactorPool pool(twoReactors());
  std::thread::id ranOn;
  int calls = 0;
  pool.callWhenRunning([&] {
    ++calls;
    ranOn = std::this_thread::get_id();
    pool.stop();  // run() is under way: this ends it
  });
  pool.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ranOn, std::this_thread::get_id());
}

TEST(ReactorPool, StopBeforeRunMakesRunReturnAtOnce) {
  ReactorPool pool(twoReactors());
  pool.stop();
  pool.run();
  pool.stop();  // idempotent
}

TEST(ReactorPool, CallsThatWouldWaitForThemselvesAreRefused) {
  ReactorPool pool(twoReactors());
  std::atomic<int> refused{0};
  pool.onEach([&](Reactor&) {
    try {
      pool.onEach([](Reactor&) {});
    } catch (const std::logic_error&) {
      ++refused;
    }
  });
  EXPECT_EQ(refused.load(), 2);
  // callFromThread reaches the reactor asked for.
  std::promise<std::thread::id> where;
  std::thread::id first;
  pool.onEach([&](Reactor& r) {
    if (&r == &pool.reactor(1)) first = std::this_thread::get_id();
  });
  pool.callFromThread(1, [&] { where.set_value(std::this_thread::get_id()); });
  EXPECT_EQ(where.get_future().get(), first);
}

TEST(ReactorPool, ABadBackendIsAClearError) {
  ReactorPool::Options o = twoReactors();
  o.reactor.backend = "no-such-backend";
  EXPECT_THROW(ReactorPool pool(o), std::invalid_argument);
}

}  // namespace
}  // namespace twist
