#include "protocols/policies.h"

#include "protocols/protocol.h"

namespace twist {

TimeoutMixin::~TimeoutMixin() {
  if (call_.active()) call_.cancel();
}

std::optional<double> TimeoutMixin::setTimeout(std::optional<double> seconds) {
  std::optional<double> previous = period_;
  period_ = seconds;
  if (call_.active()) call_.cancel();
  if (period_) {
    call_ = clock_.callLater(*period_, [this] {
      period_.reset();  // fired: no timeout until set again (as Twisted)
      timeoutConnection();
    });
  }
  return previous;
}

void TimeoutMixin::resetTimeout() {
  if (period_ && call_.active()) call_.reset(*period_);
}

void TimeoutMixin::timeoutConnection() {
  auto* protocol = dynamic_cast<Protocol*>(this);
  if (protocol != nullptr && protocol->transport() != nullptr) {
    protocol->transport()->loseConnection();
  }
}

// A counted connection: gives its slot back when it ends.
class ConnectionLimiter::Counted : public ProtocolWrapper {
 public:
  Counted(std::unique_ptr<Protocol> wrapped, std::shared_ptr<ConnectionLimiter> limiter,
          std::string host)
      : ProtocolWrapper(std::move(wrapped)), limiter_(std::move(limiter)), host_(std::move(host)) {}
  void connectionLost(const Failure& reason) override {
    limiter_->release(host_);
    ProtocolWrapper::connectionLost(reason);
  }

 private:
  std::shared_ptr<ConnectionLimiter> limiter_;  // outlives its port while connections live
  std::string host_;
};

namespace {
// Sends the refusal message, then closes.
class Refusal : public Protocol {
 public:
  explicit Refusal(std::string message) : message_(std::move(message)) {}
  void connectionMade() override {
    transport()->write(message_);
    transport()->loseConnection();
  }

 private:
  std::string message_;
};
}  // namespace

ConnectionLimiter::ConnectionLimiter(std::shared_ptr<ServerFactory> wrapped, size_t maxTotal,
                                     size_t maxPerPeer, std::string refusalMessage)
    : wrapped_(std::move(wrapped)),
      maxTotal_(maxTotal),
      maxPerPeer_(maxPerPeer),
      refusalMessage_(std::move(refusalMessage)) {}

std::unique_ptr<Protocol> ConnectionLimiter::buildProtocol(const Address& addr) {
  if (active_ >= maxTotal_ || (maxPerPeer_ != 0 && activeFrom(addr.host()) >= maxPerPeer_)) {
    ++refused_;
    if (refusalMessage_.empty()) return nullptr;
    return std::make_unique<Refusal>(refusalMessage_);
  }
  std::unique_ptr<Protocol> inner = wrapped_->buildProtocol(addr);
  if (!inner) return nullptr;
  if (inner->factory() == nullptr) inner->setFactory(wrapped_.get());
  ++active_;
  ++perPeer_[addr.host()];
  return std::make_unique<Counted>(std::move(inner), shared_from_this(), addr.host());
}

size_t ConnectionLimiter::activeFrom(const std::string& host) const {
  auto it = perPeer_.find(host);
  return it == perPeer_.end() ? 0 : it->second;
}

void ConnectionLimiter::release(const std::string& host) {
  --active_;
  auto it = perPeer_.find(host);
  if (it != perPeer_.end() && --it->second == 0) perPeer_.erase(it);
}

}  // namespace twist
