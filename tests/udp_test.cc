// UDP: listenUDP and DatagramProtocol over real sockets on loopback: echo (IPv4, IPv6, IPv4
// peers of a dual-stack port), batches, truncation, misuse, connected UDP and ICMP refusals,
// exceptions and stopping from inside a callback, multicast, and the example server.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/subprocess.h"
#include "tests/test_util.h"
#include "twist/reactor/datagram.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor.h"

namespace twist {
namespace {

using testing::LogCaptureScope;
using testing::quietOptions;
using testing::runUntil;

class Echo : public DatagramProtocol {
 public:
  void startProtocol() override { ++started; }
  void stopProtocol() override { ++stopped; }
  void datagramReceived(std::string_view d, const Address& from) override {
    received.emplace_back(d);
    senders.push_back(from);
    if (echo) transport()->write(d, from);
  }
  void datagramTruncated(size_t size, const Address& from) override {
    truncated.push_back(size);
    DatagramProtocol::datagramTruncated(size, from);
  }
  void connectionRefused() override { ++refusals; }
  bool echo = true;
  int started = 0, stopped = 0, refusals = 0;
  std::vector<std::string> received;
  std::vector<Address> senders;
  std::vector<size_t> truncated;
};

// A raw UDP socket on 127.0.0.1 (or ::1), for the other side.
struct RawUDP {
  int fd;
  explicit RawUDP(int family = AF_INET) {
    fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss;
    socklen_t len;
    parseIPAddress(family == AF_INET ? "127.0.0.1" : "::1", 0, &ss, &len);
    ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len);
  }
  ~RawUDP() { ::close(fd); }
  uint16_t port() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len).port();
  }
  void sendTo(std::string_view data, const std::string& host, uint16_t port) const {
    sockaddr_storage ss;
    socklen_t len;
    ASSERT_TRUE(parseIPAddress(host, port, &ss, &len));
    ASSERT_EQ(::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss), len),
              static_cast<ssize_t>(data.size()));
  }
  // One datagram, or "" when none came while `reactor` ran for up to a few seconds.
  std::string receive(Reactor& reactor) const {
    std::string got;
    bool done = runUntil(reactor, [&] {
      char buf[70000];
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n >= 0) got.assign(buf, static_cast<size_t>(n));
      return n >= 0;
    });
    return done ? got : "";
  }
};

TEST(UDP, EchoesAndNamesTheSender) {
  Reactor reactor(quietOptions());
  auto echo = std::make_shared<Echo>();
  auto port = reactor.listenUDP(0, echo, {.interface = "127.0.0.1"});
  EXPECT_EQ(echo->started, 1);
  ASSERT_TRUE(port->getHost().is<IPv4Address>());
  EXPECT_NE(port->getHost().port(), 0);
  RawUDP client;
  client.sendTo("hello", "127.0.0.1", port->getHost().port());
  EXPECT_EQ(client.receive(reactor), "hello");
  ASSERT_EQ(echo->senders.size(), 1u);
  EXPECT_EQ(echo->senders[0], Address(IPv4Address{"127.0.0.1", client.port()}));
  // An empty datagram is a datagram.
  client.sendTo("", "127.0.0.1", port->getHost().port());
  ASSERT_TRUE(runUntil(reactor, [&] { return echo->received.size() == 2; }));
  EXPECT_EQ(echo->received[1], "");
  port->stopListening();
  EXPECT_EQ(echo->stopped, 1);
  EXPECT_FALSE(port->listening());
  // The protocol's transport is inert now.
  echo->transport()->write("late", IPv4Address{"127.0.0.1", client.port()});
}

TEST(UDP, ABurstIsDeliveredInOrderAndAnsweredInBatches) {
  Reactor reactor(quietOptions());
  auto echo = std::make_shared<Echo>();
  auto port = reactor.listenUDP(0, echo, {.interface = "127.0.0.1", .maxPacketSize = 2048});
  RawUDP client;
  int rcvbuf = 4 << 20;
  ::setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  for (int i = 0; i < 200; ++i) {
    client.sendTo("msg" + std::to_string(i), "127.0.0.1", port->getHost().port());
  }
  ASSERT_TRUE(runUntil(reactor, [&] { return echo->received.size() == 200; }));
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(echo->received[static_cast<size_t>(i)], "msg" + std::to_string(i));
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(client.receive(reactor), "msg" + std::to_string(i));
  }
  EXPECT_EQ(port->droppedWrites(), 0u);
}

TEST(UDP, IPv6AndIPv4PeersOfADualStackPort) {
  Reactor reactor(quietOptions());
  auto echo = std::make_shared<Echo>();
  std::shared_ptr<IUDPTransport> port;
  try {
    port = reactor.listenUDP(0, echo, {.interface = "::"});
  } catch (const CannotListenError& e) {
    GTEST_SKIP() << "no IPv6: " << e.what();
  }
  RawUDP v6(AF_INET6);
  v6.sendTo("six", "::1", port->getHost().port());
  EXPECT_EQ(v6.receive(reactor), "six");
  ASSERT_TRUE(echo->senders.back().is<IPv6Address>());
  EXPECT_EQ(echo->senders.back().host(), "::1");
  // An IPv4 client reaches the dual-stack port as ::ffff:127.0.0.1, and gets its answer.
  RawUDP v4;
  v4.sendTo("four", "127.0.0.1", port->getHost().port());
  EXPECT_EQ(v4.receive(reactor), "four");
  // Writing to a plain IPv4 address from the IPv6 port works too.
  port->write("mapped", IPv4Address{"127.0.0.1", v4.port()});
  EXPECT_EQ(v4.receive(reactor), "mapped");
}

TEST(UDP, TooLargeDatagramsAreReportedNotCutShort) {
  LogCaptureScope logs;
  Reactor reactor(quietOptions());
  auto echo = std::make_shared<Echo>();
  auto port = reactor.listenUDP(0, echo, {.interface = "127.0.0.1", .maxPacketSize = 100});
  RawUDP client;
  client.sendTo(std::string(200, 'x'), "127.0.0.1", port->getHost().port());
  client.sendTo(std::string(300, 'y'), "127.0.0.1", port->getHost().port());
  client.sendTo(std::string(100, 'z'), "127.0.0.1", port->getHost().port());
  ASSERT_TRUE(runUntil(reactor, [&] { return echo->received.size() == 1; }));
  EXPECT_EQ(echo->received[0], std::string(100, 'z'));
  EXPECT_EQ(echo->truncated, (std::vector<size_t>{200, 300}));
  EXPECT_EQ(logs->count("Dropped a datagram of 200 bytes"), 1);
  EXPECT_EQ(logs->count("Dropped a datagram"), 1) << "logged once per sender";

  // With the default limit, the largest datagram UDP carries arrives whole.
  auto big = std::make_shared<Echo>();
  big->echo = false;
  auto bigPort = reactor.listenUDP(0, big, {.interface = "127.0.0.1"});
  int sndbuf = 1 << 20;
  ::setsockopt(client.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  client.sendTo(std::string(65507, 'L'), "127.0.0.1", bigPort->getHost().port());
  ASSERT_TRUE(runUntil(reactor, [&] { return big->received.size() == 1; }));
  EXPECT_EQ(big->received[0].size(), 65507u);
}

TEST(UDP, MisuseIsAClearError) {
  Reactor reactor(quietOptions());
  auto echo = std::make_shared<Echo>();
  auto port = reactor.listenUDP(0, echo, {.interface = "127.0.0.1"});
  EXPECT_THROW(port->write(std::string(70000, 'x'), IPv4Address{"127.0.0.1", 9}),
               MessageLengthError);
  EXPECT_THROW(port->write("x", IPv4Address{"localhost", 9}), std::invalid_argument);
  EXPECT_THROW(port->write("x", UNIXAddress{"/tmp/x"}), std::invalid_argument);
  EXPECT_THROW(port->write("x", IPv6Address{"::1", 9}), std::invalid_argument);
  EXPECT_THROW(port->write("x"), std::logic_error);
  EXPECT_THROW(port->connect("localhost", 9), std::invalid_argument);
  EXPECT_THROW(port->joinGroup("127.0.0.1"), std::invalid_argument);
  EXPECT_THROW(port->joinGroup("garbage"), std::invalid_argument);
  EXPECT_THROW(port->setTTL(256), std::invalid_argument);
  EXPECT_THROW(port->setOutgoingInterface("eth-nonexistent"), std::invalid_argument);
  EXPECT_THROW(reactor.listenUDP(0, nullptr), std::invalid_argument);
  EXPECT_THROW(reactor.listenUDP(0, std::make_shared<Echo>(), {.maxPacketSize = 0}),
               std::invalid_argument);
  EXPECT_THROW(reactor.listenUDP(0, std::make_shared<Echo>(), {.interface = "nonsense"}),
               CannotListenError);
  // The same port twice, without listenMultiple.
  EXPECT_THROW(reactor.listenUDP(port->getHost().port(), std::make_shared<Echo>(),
                                 {.interface = "127.0.0.1"}),
               CannotListenError);
  port->setBroadcastAllowed(true);
  EXPECT_TRUE(port->getBroadcastAllowed());
}

TEST(UDP, ConnectedUDPHearsRefusals) {
  Reactor reactor(quietOptions());
  auto proto = std::make_shared<Echo>();
  auto port = reactor.listenUDP(0, proto, {.interface = "127.0.0.1"});
  uint16_t closed;
  {
    RawUDP gone;
    closed = gone.port();
  }
  port->connect("127.0.0.1", closed);
  EXPECT_EQ(port->getPeer(), Address(IPv4Address{"127.0.0.1", closed}));
  EXPECT_THROW(port->connect("127.0.0.1", closed), std::logic_error);
  EXPECT_THROW(port->write("x", IPv4Address{"127.0.0.1", 1}), std::logic_error);
  // Nothing listens there: the ICMP port unreachable comes back as connectionRefused.
  port->write("anyone?");
  ASSERT_TRUE(runUntil(reactor, [&] {
    if (proto->refusals == 0) port->write("anyone?");  // the error shows on a later call
    return proto->refusals > 0;
  }));

  // A connected port hears only its peer.
  auto p2 = std::make_shared<Echo>();
  p2->echo = false;
  auto port2 = reactor.listenUDP(0, p2, {.interface = "127.0.0.1"});
  RawUDP peer, stranger;
  port2->connect("127.0.0.1", peer.port());
  stranger.sendTo("not you", "127.0.0.1", port2->getHost().port());
  peer.sendTo("me", "127.0.0.1", port2->getHost().port());
  ASSERT_TRUE(runUntil(reactor, [&] { return !p2->received.empty(); }));
  testing::runFor(reactor, 0.05);
  EXPECT_EQ(p2->received, std::vector<std::string>{"me"});
  port2->write("reply");
  EXPECT_EQ(peer.receive(reactor), "reply");
}

class Throwing : public DatagramProtocol {
 public:
  void datagramReceived(std::string_view d, const Address& from) override {
    ++seen;
    if (d == "throw") throw std::runtime_error("protocol bug");
    if (d == "stop") {
      transport()->stopListening();
      transport()->write("after stop", from);  // ignored
    }
  }
  void stopProtocol() override { ++stopped; }
  int seen = 0, stopped = 0;
};

TEST(UDP, AnExceptionIsLoggedAndStoppingFromACallbackIsSafe) {
  LogCaptureScope logs;
  Reactor reactor(quietOptions());
  auto proto = std::make_shared<Throwing>();
  auto port = reactor.listenUDP(0, proto, {.interface = "127.0.0.1"});
  uint16_t n = port->getHost().port();
  port.reset();  // the reactor keeps it listening
  RawUDP client;
  client.sendTo("throw", "127.0.0.1", n);
  client.sendTo("fine", "127.0.0.1", n);
  client.sendTo("stop", "127.0.0.1", n);
  client.sendTo("never", "127.0.0.1", n);
  ASSERT_TRUE(runUntil(reactor, [&] { return proto->stopped == 1; }));
  testing::runFor(reactor, 0.05);
  EXPECT_EQ(proto->seen, 3);
  EXPECT_EQ(logs->count("protocol bug"), 1);
  EXPECT_EQ(reactor.selectableCount(), 0u);
}

TEST(UDP, MulticastReachesEveryMemberOnThisHost) {
  Reactor reactor(quietOptions());
  auto a = std::make_shared<Echo>();
  auto b = std::make_shared<Echo>();
  a->echo = b->echo = false;
  auto pa = reactor.listenMulticast(0, a, {.listenMultiple = true});
  uint16_t n = pa->getHost().port();
  auto pb = reactor.listenMulticast(n, b, {.listenMultiple = true});
  const char* group = "239.255.77.1";
  try {
    pa->joinGroup(group, "127.0.0.1");
    pb->joinGroup(group, "127.0.0.1");
  } catch (const std::system_error& e) {
    GTEST_SKIP() << "no multicast on loopback here: " << e.what();
  }
  auto sender = std::make_shared<Echo>();
  auto ps = reactor.listenUDP(0, sender, {.interface = "127.0.0.1"});
  ps->setOutgoingInterface("127.0.0.1");
  ps->setLoopbackMode(true);
  EXPECT_TRUE(ps->getLoopbackMode());
  ps->setTTL(1);
  EXPECT_EQ(ps->getTTL(), 1);
  ps->write("to the group", IPv4Address{group, n});
  if (!runUntil(
          reactor, [&] { return !a->received.empty() && !b->received.empty(); }, 3)) {
    GTEST_SKIP() << "multicast datagrams do not loop back on this host";
  }
  EXPECT_EQ(a->received[0], "to the group");
  EXPECT_EQ(b->received[0], "to the group");
  pa->leaveGroup(group, "127.0.0.1");
  EXPECT_THROW(pa->leaveGroup(group, "127.0.0.1"), std::system_error);  // not a member now
}

TEST(UDP, TheExampleServerEchoesForPython) {
  testing::Subprocess server({"examples/udp_echo_server", "--port", "0"});
  std::string line = server.readLine(30);
  std::string port = testing::portFrom(line);
  ASSERT_FALSE(port.empty()) << line;
  int status = -1;
  std::string out = testing::python(
      "import socket\n"
      "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
      "s.settimeout(10)\n"
      "for msg in [b'one', b'two', bytes(range(256)) * 100]:\n"
      "    s.sendto(msg, ('127.0.0.1', " +
          port +
          "))\n"
          "    got, addr = s.recvfrom(70000)\n"
          "    assert got == msg, (len(got), len(msg))\n"
          "print('ok')\n",
      &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "ok\n");
  EXPECT_EQ(server.signalAndWait(SIGTERM), 0);
}

}  // namespace
}  // namespace twist
