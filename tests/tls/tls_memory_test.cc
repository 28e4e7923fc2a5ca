// TLSProtocol without sockets: two layers over StringTransports, bytes moved between them by
// hand, time from a task::Clock. What the layer puts on the wire (records, alerts) is checked
// byte for byte.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/tls/tls_util.h"
#include "twist/protocols/policies.h"
#include "twist/protocols/testing/string_transport.h"
#include "twist/reactor/clock.h"
#include "twist/transports/tls.h"

namespace twist {
namespace {

using testing::clientContext;
using testing::serverContext;
using testing::TLSRecorder;

// The records in `wire`: (content type, length) each. 0x17 application data, 0x15 alert.
std::vector<std::pair<int, size_t>> records(std::string_view wire) {
  std::vector<std::pair<int, size_t>> out;
  while (wire.size() >= 5) {
    size_t len = (static_cast<uint8_t>(wire[3]) << 8) | static_cast<uint8_t>(wire[4]);
    out.emplace_back(static_cast<uint8_t>(wire[0]), len);
    wire.remove_prefix(std::min(wire.size(), 5 + len));
  }
  return out;
}

size_t count(const std::vector<std::pair<int, size_t>>& rs, int type) {
  size_t n = 0;
  for (auto& r : rs) n += r.first == type ? 1 : 0;
  return n;
}

class HalfCloser : public TLSRecorder, public IHalfCloseableProtocol {
 public:
  void readConnectionLost() override {
    readLost = true;
    transport()->write("bye");
    transport()->loseConnection();
  }
  void writeConnectionLost() override { writeLost = true; }
  bool readLost = false, writeLost = false;
};

// A server layer and a client layer joined through two StringTransports.
struct Pair {
  explicit Pair(task::Clock* clock = nullptr, std::shared_ptr<TLSRecorder> s = nullptr,
                std::shared_ptr<TLSRecorder> c = nullptr)
      : server(s ? s : std::make_shared<TLSRecorder>()),
        client(c ? c : std::make_shared<TLSRecorder>()) {
    serverLayer = std::make_shared<tls::TLSProtocol>(serverContext(), server,
                                                     tls::LayerOptions{.clock = clock});
    clientLayer = std::make_shared<tls::TLSProtocol>(
        clientContext(), client, tls::LayerOptions{.clock = clock, .serverName = "localhost"});
    serverLayer->makeConnection(&serverWire);
    clientLayer->makeConnection(&clientWire);
  }
  // Moves bytes both ways until neither side has anything to say.
  void pump() {
    for (int i = 0; i < 100; ++i) {
      std::string toServer = clientWire.value(), toClient = serverWire.value();
      if (toServer.empty() && toClient.empty()) return;
      clientWire.clear();
      serverWire.clear();
      if (!toServer.empty()) serverLayer->dataReceived(toServer);
      if (!toClient.empty()) clientLayer->dataReceived(toClient);
    }
  }
  std::shared_ptr<TLSRecorder> server, client;
  StringTransport serverWire, clientWire;
  std::shared_ptr<tls::TLSProtocol> serverLayer, clientLayer;
};

TEST(TLSMemory, HandshakeAndDataWithoutSockets) {
  Pair p;
  EXPECT_FALSE(p.server->made);
  p.pump();
  ASSERT_TRUE(p.server->made);
  ASSERT_TRUE(p.client->made);
  EXPECT_TRUE(p.clientLayer->handshakeDone());
  EXPECT_EQ(p.client->peerCN, "localhost");
  p.client->transport()->write("ping");
  p.pump();
  EXPECT_EQ(p.server->data, "ping");
}

// One callback's small writes make one record (Twisted #6899 made one per write).
TEST(TLSMemory, SmallWritesInACallbackAreOneRecord) {
  struct Chatty : TLSRecorder {
    void dataReceived(std::string_view) override {
      for (int i = 0; i < 100; ++i) transport()->write("0123456789");
    }
  };
  auto chatty = std::make_shared<Chatty>();
  Pair p(nullptr, chatty);
  p.pump();
  p.client->transport()->write("go");
  std::string toServer = p.clientWire.value();
  p.clientWire.clear();
  p.serverWire.clear();
  p.serverLayer->dataReceived(toServer);
  auto rs = records(p.serverWire.value());
  EXPECT_EQ(count(rs, 0x17), 1u);
  p.pump();
  EXPECT_EQ(p.client->data.size(), 1000u);
}

TEST(TLSMemory, WritesOutsideCallbacksAreCoalescedUntilTheLoopsTurnEnds) {
  task::Clock clock;
  Pair p(&clock);
  p.pump();
  p.serverWire.clear();
  for (int i = 0; i < 50; ++i) p.server->transport()->write("abc");
  EXPECT_EQ(p.serverWire.value(), "");  // nothing yet
  EXPECT_EQ(p.server->transport()->bufferedSize(), 150u);
  clock.advance(0);
  EXPECT_EQ(count(records(p.serverWire.value()), 0x17), 1u);
  p.pump();
  EXPECT_EQ(p.client->data.size(), 150u);
}

TEST(TLSMemory, WithoutAClockEachOutsideWriteIsARecord) {
  Pair p;
  p.pump();
  p.serverWire.clear();
  for (int i = 0; i < 3; ++i) p.server->transport()->write("abc");
  EXPECT_EQ(count(records(p.serverWire.value()), 0x17), 3u);
}

TEST(TLSMemory, BigWritesAreCutIntoFullRecords) {
  Pair p;
  p.pump();
  p.serverWire.clear();
  std::string big(100000, 'b');
  p.server->transport()->write(big);
  auto rs = records(p.serverWire.value());
  EXPECT_EQ(count(rs, 0x17), 7u);  // 6 of 16 KiB and the rest
  for (auto& r : rs) EXPECT_LE(r.second, 16384u + 256);
  p.pump();
  EXPECT_EQ(p.client->data, big);
}

// A full record cannot grow: it leaves at once, inside a callback too, so the peer starts on
// it while the callback goes on; the last, partial one waits for the callback's end (or, with
// a clock, for the loop's turn to end) in case more joins it.
TEST(TLSMemory, FullRecordsLeaveAtOnceThePartialOneAtTheEnd) {
  struct Writer : TLSRecorder {
    void dataReceived(std::string_view) override {
      transport()->write(std::string(10000, 'x'));
      seen.push_back(records(wire->value()).size());  // 0: 10,000 bytes may still grow
      transport()->write(std::string(30000, 'y'));
      seen.push_back(records(wire->value()).size());  // 2 full records (32 KiB) gone
      for (int i = 0; i < 100; ++i) transport()->write("z");
      seen.push_back(records(wire->value()).size());  // still 2: 7,716 bytes wait
    }
    StringTransport* wire = nullptr;
    std::vector<size_t> seen;
  };
  task::Clock clock;
  auto writer = std::make_shared<Writer>();
  Pair p(&clock, writer);
  writer->wire = &p.serverWire;
  p.pump();
  p.serverWire.clear();
  p.client->transport()->write("go");
  clock.advance(0);
  std::string toServer = p.clientWire.value();
  p.clientWire.clear();
  p.serverLayer->dataReceived(toServer);
  EXPECT_EQ(writer->seen, (std::vector<size_t>{0, 2, 2}));
  auto rs = records(p.serverWire.value());
  ASSERT_EQ(rs.size(), 3u);  // and the rest, at the callback's end
  EXPECT_EQ(rs[0].second, rs[1].second);
  EXPECT_LT(rs[2].second, rs[0].second);
  p.pump();
  EXPECT_EQ(p.client->data.size(), 40100u);

  // Outside callbacks, with a clock: the same, the tail at the end of the loop's turn.
  p.server->transport()->write(std::string(20000, 'w'));
  EXPECT_EQ(records(p.serverWire.value()).size(), 1u);
  clock.advance(0);
  EXPECT_EQ(records(p.serverWire.value()).size(), 2u);
  p.pump();
  EXPECT_EQ(p.client->data.size(), 40100u + 20000u);
}

TEST(TLSMemory, LoseConnectionSendsWhatWasWrittenThenCloseNotify) {
  Pair p;
  p.pump();
  p.serverWire.clear();
  p.server->transport()->write("last words");
  p.server->transport()->loseConnection();
  p.server->transport()->write("ignored");
  EXPECT_TRUE(p.serverWire.loseConnectionCalled());
  auto rs = records(p.serverWire.value());
  // The data, then close_notify (an alert; TLS 1.3 hides record types: both say 0x17).
  ASSERT_EQ(rs.size(), 2u);
  p.pump();
  EXPECT_EQ(p.client->data, "last words");
  // The client answers close_notify by closing too.
  EXPECT_TRUE(p.clientWire.loseConnectionCalled());
  p.clientLayer->connectionLost(ConnectionDone::failure());
  ASSERT_TRUE(p.client->reason);
  EXPECT_TRUE(p.client->reason->check<ConnectionDone>()) << p.client->reason->toString();
  p.serverLayer->connectionLost(ConnectionDone::failure());
  EXPECT_TRUE(p.server->reason->check<ConnectionDone>()) << p.server->reason->toString();
}

TEST(TLSMemory, AnEOFWithoutCloseNotifyIsATruncation) {
  Pair p;
  p.pump();
  p.serverLayer->connectionLost(ConnectionDone::failure());
  ASSERT_TRUE(p.server->reason);
  EXPECT_TRUE(p.server->reason->check<tls::TruncatedError>());
}

TEST(TLSMemory, HalfCloseThroughCloseNotify) {
  auto server = std::make_shared<HalfCloser>();
  auto client = std::make_shared<HalfCloser>();
  Pair p(nullptr, server, client);
  p.pump();
  p.client->transport()->write("question");
  p.client->transport()->loseWriteConnection();
  EXPECT_TRUE(p.clientWire.loseWriteConnectionCalled());
  p.pump();
  EXPECT_EQ(server->data, "question");
  EXPECT_TRUE(server->readLost);  // the client's close_notify
  // The server answered after it and closed; the client reads the answer.
  EXPECT_EQ(client->data, "bye");
  EXPECT_TRUE(client->readLost);
}

TEST(TLSMemory, PauseProducingStopsDeliveryUntilResumed) {
  task::Clock clock;
  struct Pauser : TLSRecorder {
    void dataReceived(std::string_view d) override {
      TLSRecorder::dataReceived(d);
      transport()->pauseProducing();
    }
  };
  auto server = std::make_shared<Pauser>();
  Pair p(&clock, server);
  p.pump();
  p.client->transport()->write("one");
  clock.advance(0);
  p.client->transport()->write("two");
  clock.advance(0);
  p.pump();
  EXPECT_EQ(server->data, "one");
  EXPECT_TRUE(p.serverWire.paused());
  server->transport()->resumeProducing();
  EXPECT_FALSE(p.serverWire.paused());
  EXPECT_EQ(server->data, "one");  // not from inside resumeProducing
  clock.advance(0);
  EXPECT_EQ(server->data, "onetwo");
}

TEST(TLSMemory, GarbageNeverReachesTheProtocol) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    auto inner = std::make_shared<TLSRecorder>();
    StringTransport wire;
    auto layer = std::make_shared<tls::TLSProtocol>(serverContext(), inner);
    layer->makeConnection(&wire);
    std::string garbage(1 + rng() % 3000, '\0');
    for (auto& c : garbage) c = static_cast<char>(rng());
    if (round % 2 == 0) garbage[0] = 0x16;  // looks like a handshake record
    layer->dataReceived(garbage);
    layer->dataReceived(garbage);
    EXPECT_FALSE(inner->made);
    layer->connectionLost(ConnectionDone::failure());
    EXPECT_FALSE(inner->reason);  // never connected: no connectionLost either
  }
}

TEST(TLSMemory, TheHandshakeTimesOut) {
  task::Clock clock;
  auto inner = std::make_shared<TLSRecorder>();
  StringTransport wire;
  auto layer = std::make_shared<tls::TLSProtocol>(serverContext(), inner,
                                                  tls::LayerOptions{.clock = &clock});
  layer->makeConnection(&wire);
  Failure why;
  layer->whenHandshakeDone().addErrback([&](const Failure& f) { why = f; });
  clock.advance(29);
  EXPECT_FALSE(wire.abortConnectionCalled());
  clock.advance(1);
  EXPECT_TRUE(wire.abortConnectionCalled());
  layer->connectionLost(ConnectionAborted::failure());
  const auto* e = why.get<tls::HandshakeError>();
  ASSERT_NE(e, nullptr) << why.toString();
  EXPECT_EQ(e->kind(), tls::HandshakeError::Kind::Timeout);
}

TEST(TLSMemory, WritesWaitingForTheHandshakeAreCapped) {
  auto inner = std::make_shared<TLSRecorder>();
  StringTransport wire;
  wire.setWriteBufferLimits({.highWater = 1000, .lowWater = 100, .hardCap = 10000});
  auto layer = std::make_shared<tls::TLSProtocol>(
      clientContext(), inner,
      tls::LayerOptions{.serverName = "localhost", .alreadyConnected = true});
  layer->makeConnection(&wire);
  inner->rebindTransport(layer.get());
  std::string chunk(4000, 'w');
  layer->write(chunk);
  layer->write(chunk);
  EXPECT_FALSE(wire.abortConnectionCalled());
  layer->write(chunk);
  EXPECT_TRUE(wire.abortConnectionCalled());
  layer->connectionLost(ConnectionAborted::failure());
  ASSERT_TRUE(inner->reason);
  EXPECT_TRUE(inner->reason->check<WriteBufferFullError>()) << inner->reason->toString();
}

// startTLS on a transport that is a ProtocolWrapper: the layer goes under the protocol.
TEST(TLSMemory, StartTLSUnderAProtocolWrapper) {
  struct Upgrader : TLSRecorder {
    void dataReceived(std::string_view d) override {
      if (!upgraded && d == "STARTTLS") {
        transport()->write("OK");
        upgraded = true;
        tls::startTLS(*this, serverContext()).addCallback([this] { done = true; });
        return;
      }
      TLSRecorder::dataReceived(d);
    }
    bool upgraded = false, done = false;
  };
  auto server = std::make_shared<Upgrader>();
  auto wrapper = std::make_shared<ProtocolWrapper>(server);
  StringTransport serverWire;
  wrapper->makeConnection(&serverWire);
  wrapper->dataReceived("STARTTLS");
  EXPECT_EQ(serverWire.value(), "OK");  // in the clear, before the layer
  serverWire.clear();
  auto client = std::make_shared<TLSRecorder>();
  StringTransport clientWire;
  auto clientLayer = std::make_shared<tls::TLSProtocol>(
      clientContext(), client, tls::LayerOptions{.serverName = "localhost"});
  clientLayer->makeConnection(&clientWire);
  for (int i = 0; i < 10; ++i) {
    std::string a = clientWire.value(), b = serverWire.value();
    clientWire.clear();
    serverWire.clear();
    if (!a.empty()) wrapper->dataReceived(a);
    if (!b.empty()) clientLayer->dataReceived(b);
  }
  EXPECT_TRUE(server->done);
  ASSERT_TRUE(client->made);
  client->transport()->write("secret");
  wrapper->dataReceived(clientWire.value());
  EXPECT_EQ(server->data, "secret");
  EXPECT_NE(tls::tlsTransport(*server), nullptr);
}

TEST(TLSMemory, StartTLSOnAStringTransportIsRefused) {
  TLSRecorder p;
  StringTransport t;
  p.makeConnection(&t);
  EXPECT_THROW(tls::startTLS(p, serverContext()), std::logic_error);
}

}  // namespace
}  // namespace twist
