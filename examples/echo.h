// The echo protocols of the examples, shared by the plain and the TLS programs:
//   IdleEcho      the server side: echoes, closes a connection silent for idleTimeout seconds
//                 (TimeoutMixin), and turns on TCP keepalive, which finds clients that vanished
//                 without a FIN or a reset (a crashed host, a dropped NAT entry)
//   EchoClientFactory  sends a payload, prints what comes back, closes once all of it has, and
//                 stops the reactor with an exit code (0: all came back; 1: a message on stderr)
#pragma once

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "twist/protocols/policies.h"
#include "twist/reactor/interfaces.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor_base.h"

namespace twist::examples {

class IdleEcho : public Protocol, public TimeoutMixin {
 public:
  IdleEcho(IReactorTime* clock, double idleTimeout)
      : TimeoutMixin(*clock), idleTimeout_(idleTimeout) {}
  void connectionMade() override {
    // Probes after 60 s of silence, every 10 s; 6 unanswered ones end the connection.
    transport()->setTcpKeepAliveTimes(60, 10, 6);
    if (idleTimeout_ > 0) setTimeout(idleTimeout_);
  }
  void dataReceived(std::string_view data) override {
    resetTimeout();
    transport()->write(data);
  }
  void connectionLost(const Failure&) override { setTimeout(std::nullopt); }

 private:
  double idleTimeout_;
};

class EchoClient : public Protocol {
 public:
  EchoClient(std::string payload, bool* complete)
      : payload_(std::move(payload)), complete_(complete) {}
  void connectionMade() override { transport()->write(payload_); }
  void dataReceived(std::string_view data) override {
    std::cout << data << std::flush;
    received_ += data.size();
    if (received_ >= payload_.size()) {
      *complete_ = true;
      transport()->loseConnection();  // over TLS: close_notify first
    }
  }

 private:
  std::string payload_;
  bool* complete_;
  size_t received_ = 0;
};

class EchoClientFactory : public ClientFactory {
 public:
  // `program` prefixes the messages ("echo_client: cannot connect to ...").
  EchoClientFactory(ReactorBase& reactor, std::string payload, std::string program)
      : reactor_(reactor), payload_(std::move(payload)), program_(std::move(program)) {}
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    return std::make_unique<EchoClient>(payload_, &complete_);
  }
  void clientConnectionFailed(IConnector& c, const Failure& reason) override {
    finish("cannot connect to " + c.getDestination().toString() + ": " + reason.getErrorMessage());
  }
  void clientConnectionLost(IConnector&, const Failure& reason) override {
    finish(complete_ ? "" : "the connection ended early: " + reason.getErrorMessage());
  }
  int exitCode = 1;

 private:
  void finish(const std::string& error) {
    if (!error.empty()) std::cerr << program_ << ": " << error << std::endl;
    exitCode = error.empty() ? 0 : 1;
    reactor_.stop();
  }
  ReactorBase& reactor_;
  std::string payload_;
  std::string program_;
  bool complete_ = false;
};

}  // namespace twist::examples
