// Public, for tests. MemoryReactor: an IReactorTCP that records listenTCP/connectTCP calls
// instead of opening sockets, and a fake Clock for callLater (Twisted's MemoryReactorClock).
// Wiring code written against IReactorTCP& (and IReactorTime&) is tested without a network:
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

#include "protocols/protocol.h"
#include "reactor/clock.h"
#include "reactor/errors.h"
#include "reactor/interfaces.h"
#include "transports/transport.h"

namespace twist {

class MemoryReactor : public Clock, public IReactorTCP {
 public:
  struct TCPServer {
    uint16_t port;
    std::shared_ptr<ServerFactory> factory;
    int backlog;
    std::string interface;
  };
  struct TCPClient {
    std::string host;
    uint16_t port;
    std::shared_ptr<ClientFactory> factory;
    double timeout;
    std::optional<std::pair<std::string, uint16_t>> bindAddress;
  };

  // A port that only remembers whether it listens. Starts and stops its factory like a real one.
  class FakePort : public IListeningPort {
   public:
    FakePort(Address host, std::shared_ptr<ServerFactory> factory)
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
    std::shared_ptr<ServerFactory> factory_;
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

  std::shared_ptr<IListeningPort> listenTCP(uint16_t port, std::shared_ptr<ServerFactory> factory,
                                            int backlog = kDefaultBacklog,
                                            std::string_view interface = "") override {
    tcpServers.push_back({port, factory, backlog, std::string(interface)});
    std::string host = interface.empty() ? "0.0.0.0" : std::string(interface);
    auto family =
        host.find(':') != std::string::npos ? Address::Family::IPv6 : Address::Family::IPv4;
    auto p = std::make_shared<FakePort>(Address(family, host, port), std::move(factory));
    ports.push_back(p);
    return p;
  }

  std::shared_ptr<IConnector> connectTCP(
      std::string_view host, uint16_t port, std::shared_ptr<ClientFactory> factory,
      double timeout = 30,
      std::optional<std::pair<std::string, uint16_t>> bindAddress = std::nullopt) override {
    tcpClients.push_back({std::string(host), port, factory, timeout, bindAddress});
    auto c = std::make_shared<FakeConnector>(
        Address(Address::Family::IPv4, std::string(host), port), std::move(factory));
    connectors.push_back(c);
    c->connect();
    return c;
  }

  std::vector<TCPServer> tcpServers;
  std::vector<TCPClient> tcpClients;
  std::vector<std::shared_ptr<FakePort>> ports;
  std::vector<std::shared_ptr<FakeConnector>> connectors;
};

}  // namespace twist
