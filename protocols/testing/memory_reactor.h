// Public, for tests. MemoryReactor: an IReactorTCP, IReactorUNIX and IReactorUDP that records
// listenTCP/connectTCP/listenUNIX/connectUNIX/listenUDP calls instead of opening sockets, and a
// fake Clock for callLater (Twisted's MemoryReactorClock). Wiring code written against IReactorTCP&
// (and IReactorTime&) is tested without a network:
//
//   twist::MemoryReactor reactor;
//   startMyService(reactor);
//   ASSERT_EQ(reactor.tcpServers.size(), 1u);
//   EXPECT_EQ(reactor.tcpServers[0].port, 8000);
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "twist/protocols/testing/datagram_transport.h"
#include "twist/reactor/clock.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/interfaces.h"

namespace twist {

class MemoryReactor : public task::Clock,
                      public IReactorTCP,
                      public IReactorUNIX,
                      public IReactorUDP {
 public:
  struct UDPPort {
    uint16_t port;
    std::shared_ptr<DatagramProtocol> protocol;
    ListenUDPOptions options;
    std::shared_ptr<FakeDatagramTransport> transport;  // what the protocol wrote, and so on
  };
  struct UNIXServer {
    std::string path;
    std::shared_ptr<Factory> factory;
    ListenUNIXOptions options;
  };
  struct UNIXClient {
    std::string path;
    std::shared_ptr<ClientFactory> factory;
    ConnectUNIXOptions options;
  };
  struct TCPServer {
    uint16_t port;
    std::shared_ptr<Factory> factory;
    ListenTCPOptions options;
  };
  struct TCPClient {
    std::string host;
    uint16_t port;
    std::shared_ptr<ClientFactory> factory;
    ConnectTCPOptions options;
  };

  // A port that only remembers whether it listens. Starts and stops its factory like a real one.
  class FakePort : public IListeningPort {
   public:
    FakePort(Address host, std::shared_ptr<Factory> factory)
        : host_(std::move(host)), factory_(std::move(factory)) {
      factory_->doStart();
    }
    Address getHost() const override { return host_; }
    Deferred<void> stopListening() override {
      if (listening_) {
        listening_ = false;
        factory_->doStop();
      }
      return succeed();
    }
    bool listening() const override { return listening_; }

   private:
    Address host_;
    std::shared_ptr<Factory> factory_;
    bool listening_ = true;
  };

  // A connector that stays connecting until the test says how it ends (or stops it).
  class FakeConnector : public IConnector {
   public:
    FakeConnector(Address destination, std::shared_ptr<ClientFactory> factory)
        : destination_(std::move(destination)), factory_(std::move(factory)) {}
    void connect() override {
      if (state_ != State::Disconnected) throw std::logic_error("FakeConnector: not disconnected");
      state_ = State::Connecting;
      ++attempts;
      factory_->startedConnecting(*this);
    }
    void stopConnecting() override {
      if (state_ != State::Connecting) throw std::logic_error("FakeConnector: not connecting");
      fail(Failure::of(UserError()));
    }
    void disconnect() override {
      if (state_ == State::Connecting) stopConnecting();
    }
    Address getDestination() const override { return destination_; }
    State state() const override { return state_; }
    ITransport* transport() const override { return nullptr; }
    // Ends the attempt with `reason`: clientConnectionFailed, as a real connector would.
    void fail(const Failure& reason) {
      state_ = State::Disconnected;
      factory_->clientConnectionFailed(*this, reason);
    }
    int attempts = 0;

   private:
    Address destination_;
    std::shared_ptr<ClientFactory> factory_;
    State state_ = State::Disconnected;
  };

  std::vector<TCPServer> tcpServers;
  std::vector<TCPClient> tcpClients;
  std::vector<UNIXServer> unixServers;
  std::vector<UNIXClient> unixClients;
  std::vector<UDPPort> udpPorts;

  // Records the port and connects the protocol to a FakeDatagramTransport (startProtocol runs):
  // the test then calls the protocol's datagramReceived and reads the transport's `written`.
  std::shared_ptr<IUDPTransport> listenUDP(uint16_t port,
                                           std::shared_ptr<DatagramProtocol> protocol,
                                           const ListenUDPOptions& options = {}) override {
    std::string host = options.interface.empty() ? "0.0.0.0" : options.interface;
    Address address = host.find(':') != std::string::npos ? Address(IPv6Address{host, port})
                                                          : Address(IPv4Address{host, port});
    auto t = std::make_shared<FakeDatagramTransport>(address, options.maxPacketSize);
    udpPorts.push_back({port, protocol, options, t});
    protocol->makeConnection(t.get());
    return t;
  }
  std::vector<std::shared_ptr<FakePort>> ports;
  std::vector<std::shared_ptr<FakeConnector>> connectors;

  std::shared_ptr<IListeningPort> listenUNIX(std::string_view path,
                                             std::shared_ptr<Factory> factory,
                                             const ListenUNIXOptions& options = {}) override {
    unixServers.push_back({std::string(path), factory, options});
    auto p = std::make_shared<FakePort>(UNIXAddress{std::string(path)}, std::move(factory));
    ports.push_back(p);
    return p;
  }
  std::shared_ptr<IConnector> connectUNIX(std::string_view path,
                                          std::shared_ptr<ClientFactory> factory,
                                          const ConnectUNIXOptions& options = {}) override {
    unixClients.push_back({std::string(path), factory, options});
    auto c = std::make_shared<FakeConnector>(UNIXAddress{std::string(path)}, std::move(factory));
    connectors.push_back(c);
    c->connect();
    return c;
  }

 protected:
  std::shared_ptr<IListeningPort> doListenTCP(uint16_t port, std::shared_ptr<Factory> factory,
                                              const ListenTCPOptions& options) override {
    tcpServers.push_back({port, factory, options});
    std::string host = options.interface.empty() ? "0.0.0.0" : options.interface;
    Address address = host.find(':') != std::string::npos ? Address(IPv6Address{host, port})
                                                          : Address(IPv4Address{host, port});
    auto p = std::make_shared<FakePort>(address, std::move(factory));
    ports.push_back(p);
    return p;
  }

  std::shared_ptr<IConnector> doConnectTCP(std::string_view host, uint16_t port,
                                           std::shared_ptr<ClientFactory> factory,
                                           const ConnectTCPOptions& options) override {
    tcpClients.push_back({std::string(host), port, factory, options});
    auto c =
        std::make_shared<FakeConnector>(IPv4Address{std::string(host), port}, std::move(factory));
    connectors.push_back(c);
    c->connect();
    return c;
  }
};

}  // namespace twist
