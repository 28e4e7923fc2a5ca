#include "protocols/policies.h"

#include <optional>

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

// The transport the throttled protocol writes through: counts bytes and remembers its producer.
class ThrottlingFactory::CountingTransport : public ITransport {
 public:
  CountingTransport(ITransport& real, ThrottlingFactory& factory)
      : real_(real), factory_(factory) {}
  void write(std::string_view data) override {
    real_.write(data);
    factory_.registerWritten(data.size());
  }
  void writeSequence(std::span<const std::string_view> data) override {
    real_.writeSequence(data);
    size_t n = 0;
    for (auto d : data) n += d.size();
    factory_.registerWritten(n);
  }
  void loseConnection() override { real_.loseConnection(); }
  void abortConnection() override { real_.abortConnection(); }
  void loseWriteConnection() override { real_.loseWriteConnection(); }
  void pauseProducing() override { real_.pauseProducing(); }
  void resumeProducing() override { real_.resumeProducing(); }
  Address getPeer() const override { return real_.getPeer(); }
  Address getHost() const override { return real_.getHost(); }
  void setTcpNoDelay(bool on) override { real_.setTcpNoDelay(on); }
  bool getTcpNoDelay() const override { return real_.getTcpNoDelay(); }
  void setTcpKeepAlive(bool on) override { real_.setTcpKeepAlive(on); }
  bool getTcpKeepAlive() const override { return real_.getTcpKeepAlive(); }
  void setTcpKeepAliveTimes(int idle, int interval, int probes) override {
    real_.setTcpKeepAliveTimes(idle, interval, probes);
  }
  void setWriteBufferLimits(const WriteBufferLimits& limits) override {
    real_.setWriteBufferLimits(limits);
  }
  WriteBufferLimits writeBufferLimits() const override { return real_.writeBufferLimits(); }
  bool disconnecting() const override { return real_.disconnecting(); }
  size_t bufferedSize() const override { return real_.bufferedSize(); }
  void registerProducer(IProducer* producer, bool streaming) override {
    real_.registerProducer(producer, streaming);
  }
  void unregisterProducer() override { real_.unregisterProducer(); }
  // The real transport's: it forgets a producer that goes away.
  IProducer* producer() const override { return real_.producer(); }

 private:
  ITransport& real_;
  ThrottlingFactory& factory_;
};

class ThrottlingFactory::Throttled : public Protocol {
 public:
  Throttled(std::unique_ptr<Protocol> wrapped, std::shared_ptr<ThrottlingFactory> factory)
      : wrapped_(std::move(wrapped)), factory_(std::move(factory)) {}
  void connectionMade() override {
    counting_.emplace(*transport(), *factory_);
    factory_->live_.insert(this);
    if (factory_->readsThrottled_) transport()->pauseProducing();
    wrapped_->makeConnection(&*counting_);
  }
  void dataReceived(std::string_view data) override {
    wrapped_->dataReceived(data);
    factory_->registerRead(data.size());
  }
  void connectionLost(const Failure& reason) override {
    factory_->live_.erase(this);
    wrapped_->notifyConnectionLost(reason);
  }
  ~Throttled() override { factory_->live_.erase(this); }
  CountingTransport* counting() { return counting_ ? &*counting_ : nullptr; }

 private:
  std::unique_ptr<Protocol> wrapped_;
  std::shared_ptr<ThrottlingFactory> factory_;
  std::optional<CountingTransport> counting_;
};

ThrottlingFactory::ThrottlingFactory(std::shared_ptr<ServerFactory> wrapped, IReactorTime& clock,
                                     size_t readLimit, size_t writeLimit)
    : wrapped_(std::move(wrapped)),
      readLimit_(readLimit),
      writeLimit_(writeLimit),
      ticker_(clock, [this] { tick(); }) {}

ThrottlingFactory::~ThrottlingFactory() = default;

std::unique_ptr<Protocol> ThrottlingFactory::buildProtocol(const Address& addr) {
  std::unique_ptr<Protocol> inner = wrapped_->buildProtocol(addr);
  if (!inner) return nullptr;
  if (inner->factory() == nullptr) inner->setFactory(wrapped_.get());
  return std::make_unique<Throttled>(std::move(inner), shared_from_this());
}

void ThrottlingFactory::startFactory() {
  wrapped_->doStart();
  if (!ticker_.running()) ticker_.start(1.0, false);
}

void ThrottlingFactory::stopFactory() {
  if (ticker_.running()) ticker_.stop();
  wrapped_->doStop();
}

void ThrottlingFactory::registerRead(size_t n) {
  readThisSecond_ += n;
  if (readLimit_ == 0 || readsThrottled_ || readThisSecond_ <= readLimit_) return;
  readsThrottled_ = true;
  ++readThrottles_;
  for (Throttled* t : live_) t->transport()->pauseProducing();
}

void ThrottlingFactory::registerWritten(size_t n) {
  writtenThisSecond_ += n;
  if (writeLimit_ == 0 || writesThrottled_ || writtenThisSecond_ <= writeLimit_) return;
  writesThrottled_ = true;
  ++writeThrottles_;
  for (Throttled* t : live_) {
    if (auto* c = t->counting(); c != nullptr && c->producer() != nullptr) {
      c->producer()->pauseProducing();
    }
  }
}

void ThrottlingFactory::tick() {
  readThisSecond_ = 0;
  writtenThisSecond_ = 0;
  if (readsThrottled_) {
    readsThrottled_ = false;
    for (Throttled* t : live_) t->transport()->resumeProducing();
  }
  if (writesThrottled_) {
    writesThrottled_ = false;
    for (Throttled* t : live_) {
      if (auto* c = t->counting(); c != nullptr && c->producer() != nullptr) {
        c->producer()->resumeProducing();
      }
    }
  }
}

}  // namespace twist
