// Public. connectProtocol: connect and get the protocol back as a Deferred (Twisted's
// twisted.internet.endpoints.connectProtocol), for any IReactorTCP.
#pragma once

#include <memory>
#include <string_view>
#include <tuple>
#include <utility>

#include "twist/reactor/deferred.h"
#include "twist/reactor/interfaces.h"

namespace twist {

namespace detail {
template <class P, class... Args>
class ConnectProtocolFactory : public ClientFactory {
 public:
  // P, telling the factory once its connectionMade has run.
  class Made : public P {
   public:
    using P::P;
    void connectionMade() override {
      P::connectionMade();
      auto* f = static_cast<ConnectProtocolFactory*>(this->factory());
      f->made(std::static_pointer_cast<P>(f->self_.lock()));
    }
  };

  ConnectProtocolFactory(Deferred<std::shared_ptr<P>> d, Args... args)
      : d_(std::move(d)), args_(std::move(args)...) {}
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    auto p = std::apply([](const Args&... a) { return std::make_shared<Made>(a...); }, args_);
    self_ = p;
    return p;
  }
  void clientConnectionFailed(IConnector&, const Failure& reason) override {
    if (!d_.called()) d_.errback(reason);
  }
  void made(std::shared_ptr<P> p) {
    if (!d_.called()) d_.callback(std::move(p));
  }

 private:
  Deferred<std::shared_ptr<P>> d_;
  std::tuple<Args...> args_;
  std::weak_ptr<Protocol> self_;  // the protocol being made (one per factory)
};
}  // namespace detail

// Connects to host:port and fires with a P(args...) once its connectionMade has run, or fails
// with the connect error. The caller shares the protocol with its connection: it stays valid
// (and its transport() safe to call: a closed transport ignores everything) for as long as the
// caller keeps it, even after the peer hung up. Cancelling the Deferred stops the attempt.
template <class P, class... Args>
Deferred<std::shared_ptr<P>> connectProtocol(IReactorTCP& reactor, std::string_view host,
                                             uint16_t port, const ConnectTCPOptions& options,
                                             Args... args) {
  auto connector = std::make_shared<std::weak_ptr<IConnector>>();
  Deferred<std::shared_ptr<P>> d([connector](Deferred<std::shared_ptr<P>>&) {
    if (auto c = connector->lock(); c && c->state() == IConnector::State::Connecting) {
      c->stopConnecting();
    }
  });
  auto factory =
      std::make_shared<detail::ConnectProtocolFactory<P, Args...>>(d, std::move(args)...);
  *connector = reactor.connectTCP(host, port, std::move(factory), options);
  return d;
}

}  // namespace twist
