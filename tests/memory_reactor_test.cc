// MemoryReactor: wiring code written against IReactorTCP and IReactorTime, tested without
// sockets, then run unchanged on the real reactor.
#include "twist/protocols/testing/memory_reactor.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "twist/protocols/reconnecting.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/reactor.h"

namespace twist {
namespace {

// The code under test: an echo service, plus a connection to a peer that retries with backoff.
struct Service {
  std::shared_ptr<IListeningPort> port;
  std::shared_ptr<IConnector> peer;
};

class PeerFactory : public ReconnectingClientFactory {
 public:
  using ReconnectingClientFactory::ReconnectingClientFactory;
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    return std::make_unique<Protocol>();
  }
};

Service startService(IReactorTCP& tcp, IReactorTime& clock, uint16_t port) {
  Service s;
  s.port = tcp.listenTCP(port, Factory::forProtocol<wire::Echo>(),
                         {.interface = "127.0.0.1", .backlog = 100});
  auto peers = std::make_shared<PeerFactory>(clock);
  peers->initialDelay = 1;
  peers->factor = 2;
  peers->jitter = 0;
  s.peer = tcp.connectTCP("127.0.0.1", 9, peers, {.timeout = 5});
  return s;
}

TEST(MemoryReactor, RecordsListenAndConnect) {
  MemoryReactor reactor;
  Service s = startService(reactor, reactor, 8000);
  ASSERT_EQ(reactor.tcpServers.size(), 1u);
  EXPECT_EQ(reactor.tcpServers[0].port, 8000);
  EXPECT_EQ(reactor.tcpServers[0].options.backlog, 100);
  EXPECT_EQ(reactor.tcpServers[0].options.interface, "127.0.0.1");
  EXPECT_EQ(reactor.tcpServers[0].factory->numPorts(), 1);
  EXPECT_EQ(s.port->getHost().toString(), "127.0.0.1:8000");
  ASSERT_EQ(reactor.tcpClients.size(), 1u);
  EXPECT_EQ(reactor.tcpClients[0].host, "127.0.0.1");
  EXPECT_EQ(reactor.tcpClients[0].port, 9);
  EXPECT_EQ(reactor.tcpClients[0].options.timeout, 5);
  EXPECT_EQ(s.peer->state(), IConnector::State::Connecting);
  s.port->stopListening();
  EXPECT_FALSE(s.port->listening());
  EXPECT_EQ(reactor.tcpServers[0].factory->numPorts(), 0);
}

// Wiring code that takes a UNIX socket path, written against IReactorUNIX&.
std::shared_ptr<IListeningPort> startLocalService(IReactorUNIX& unix, const std::string& path) {
  unix.connectUNIX(path + ".upstream", ClientFactory::forProtocol<wire::Echo>(), {.timeout = 2});
  return unix.listenUNIX(path, Factory::forProtocol<wire::Echo>(), {.mode = 0600, .wantPID = true});
}

TEST(MemoryReactor, RecordsUNIXSockets) {
  MemoryReactor reactor;
  auto port = startLocalService(reactor, "/run/svc.sock");
  ASSERT_EQ(reactor.unixServers.size(), 1u);
  EXPECT_EQ(reactor.unixServers[0].path, "/run/svc.sock");
  EXPECT_EQ(reactor.unixServers[0].options.mode, 0600u);
  EXPECT_TRUE(reactor.unixServers[0].options.wantPID);
  EXPECT_EQ(port->getHost(), Address(UNIXAddress{"/run/svc.sock"}));
  ASSERT_EQ(reactor.unixClients.size(), 1u);
  EXPECT_EQ(reactor.unixClients[0].options.timeout, 2);
  EXPECT_EQ(reactor.connectors[0]->getDestination(),
            Address(UNIXAddress{"/run/svc.sock.upstream"}));
  port->stopListening();
  EXPECT_EQ(reactor.unixServers[0].factory->numPorts(), 0);
}

// A DatagramProtocol under test: answers "ping" with "pong", ignores the rest.
class Pong : public DatagramProtocol {
 public:
  void startProtocol() override { transport()->joinGroup("239.1.2.3", ""); }
  void datagramReceived(std::string_view d, const Address& from) override {
    if (d == "ping") transport()->write("pong", from);
  }
};

TEST(MemoryReactor, RecordsUDPAndFakesItsTransport) {
  MemoryReactor reactor;
  reactor.listenUDP(5353, std::make_shared<Pong>(), {.interface = "127.0.0.1"});
  ASSERT_EQ(reactor.udpPorts.size(), 1u);
  auto& port = reactor.udpPorts[0];
  EXPECT_EQ(port.port, 5353);
  EXPECT_EQ(port.transport->getHost(), Address(IPv4Address{"127.0.0.1", 5353}));
  EXPECT_EQ(port.transport->groups.count("239.1.2.3%"), 1u);  // startProtocol ran
  port.protocol->datagramReceived("ping", IPv4Address{"192.0.2.7", 40000});
  port.protocol->datagramReceived("noise", IPv4Address{"192.0.2.8", 40000});
  ASSERT_EQ(port.transport->written.size(), 1u);
  EXPECT_EQ(port.transport->written[0].data, "pong");
  EXPECT_EQ(port.transport->written[0].to, Address(IPv4Address{"192.0.2.7", 40000}));

  // The checks a real port makes.
  FakeDatagramTransport t;
  EXPECT_THROW(t.write("x"), std::logic_error);
  EXPECT_THROW(t.write(std::string(70000, 'x'), IPv4Address{"192.0.2.1", 1}), MessageLengthError);
  t.connect("192.0.2.1", 53);
  t.write("query");
  EXPECT_EQ(t.written.back().to, Address(IPv4Address{"192.0.2.1", 53}));
  EXPECT_THROW(t.write("x", IPv4Address{"192.0.2.9", 53}), std::logic_error);
}

TEST(MemoryReactor, DrivesRetriesOnTheFakeClock) {
  MemoryReactor reactor;
  Service s = startService(reactor, reactor, 8000);
  auto& connector = *reactor.connectors[0];
  connector.fail(Failure::of(ConnectionRefusedError()));
  EXPECT_EQ(connector.state(), IConnector::State::Disconnected);
  reactor.advance(1.9);
  EXPECT_EQ(connector.attempts, 1);
  reactor.advance(0.1);  // initialDelay 1 x factor 2
  EXPECT_EQ(connector.attempts, 2);
  EXPECT_EQ(connector.state(), IConnector::State::Connecting);
}

TEST(MemoryReactor, TheSameCodeRunsOnTheRealReactor) {
  Reactor reactor(testing::quietOptions());
  Service s = startService(reactor, reactor, 0);
  EXPECT_TRUE(s.port->listening());
  EXPECT_NE(s.port->getHost().port(), 0);
  s.peer->disconnect();  // port 9 (discard) is most likely closed: stop trying either way
}

}  // namespace
}  // namespace twist
