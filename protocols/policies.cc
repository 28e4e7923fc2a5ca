#include "twist/protocols/policies.h"

#include <optional>
#include <stdexcept>

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

// ---- ProtocolWrapper, WrappingFactory ----

ProtocolWrapper::ProtocolWrapper(std::shared_ptr<Protocol> wrapped, WrappingFactory* factory)
    : wrapped_(std::move(wrapped)), factory_(factory) {
  if (!wrapped_) throw std::invalid_argument("ProtocolWrapper: nothing to wrap");
}

void ProtocolWrapper::connectionMade() {
  if (factory_ != nullptr) factory_->registerProtocol(this);
  wrapped_->makeConnection(this);
}

void ProtocolWrapper::connectionLost(const Failure& reason) {
  if (factory_ != nullptr) factory_->unregisterProtocol(this);
  wrapped_->notifyConnectionLost(reason);
}

void ProtocolWrapper::sendFileDescriptor(int fd) {
  auto* local = dynamic_cast<IUNIXTransport*>(transport());
  if (local == nullptr) throw std::logic_error("sendFileDescriptor: not a UNIX socket connection");
  local->sendFileDescriptor(fd);
}

void ProtocolWrapper::insertLayer(const LayerMaker& makeLayer) {
  if (disconnecting()) return;
  std::shared_ptr<Protocol> layer = makeLayer(wrapped_);
  if (!layer) throw std::invalid_argument("insertLayer: no layer");
  wrapped_ = std::move(layer);
  wrapped_->makeConnection(this);
}

WrappingFactory::WrappingFactory(std::shared_ptr<Factory> wrapped) : wrapped_(std::move(wrapped)) {
  if (!wrapped_) throw std::invalid_argument("WrappingFactory: nothing to wrap");
}

std::shared_ptr<Protocol> WrappingFactory::buildProtocol(const Address& addr) {
  std::shared_ptr<Protocol> inner = wrapped_->buildProtocol(addr);
  if (!inner) return nullptr;
  if (inner->factory() == nullptr) inner->setFactory(wrapped_);
  return wrap(std::move(inner), addr);
}

std::shared_ptr<ProtocolWrapper> WrappingFactory::wrap(std::shared_ptr<Protocol> wrapped,
                                                       const Address&) {
  return std::make_shared<ProtocolWrapper>(std::move(wrapped), this);
}

void WrappingFactory::startedConnecting(IConnector& connector) {
  if (auto* c = dynamic_cast<ClientFactory*>(wrapped_.get())) c->startedConnecting(connector);
}

void WrappingFactory::clientConnectionFailed(IConnector& connector, const Failure& reason) {
  if (auto* c = dynamic_cast<ClientFactory*>(wrapped_.get())) {
    c->clientConnectionFailed(connector, reason);
  }
}

void WrappingFactory::clientConnectionLost(IConnector& connector, const Failure& reason) {
  if (auto* c = dynamic_cast<ClientFactory*>(wrapped_.get())) {
    c->clientConnectionLost(connector, reason);
  }
}

// ---- ConnectionLimiter ----

// A counted connection: gives its slot back when it ends (or, if it never started, when it is
// destroyed).
class ConnectionLimiter::Counted : public ProtocolWrapper {
 public:
  Counted(std::shared_ptr<Protocol> wrapped, ConnectionLimiter& limiter, std::string host)
      : ProtocolWrapper(std::move(wrapped), &limiter), limiter_(limiter), host_(std::move(host)) {}
  ~Counted() override { release(); }
  void connectionLost(const Failure& reason) override {
    release();
    ProtocolWrapper::connectionLost(reason);
  }

 private:
  void release() {
    if (released_) return;
    released_ = true;
    limiter_.release(host_);
  }
  // The limiter outlives this wrapper (see ProtocolWrapper::factory_).
  ConnectionLimiter& limiter_;
  std::string host_;
  bool released_ = false;
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

ConnectionLimiter::ConnectionLimiter(std::shared_ptr<Factory> wrapped, size_t maxTotal,
                                     size_t maxPerPeer, std::string refusalMessage)
    : WrappingFactory(std::move(wrapped)),
      maxTotal_(maxTotal),
      maxPerPeer_(maxPerPeer),
      refusalMessage_(std::move(refusalMessage)) {}

std::shared_ptr<Protocol> ConnectionLimiter::buildProtocol(const Address& addr) {
  if (active_ >= maxTotal_ || (maxPerPeer_ != 0 && activeFrom(addr.host()) >= maxPerPeer_)) {
    ++refused_;
    if (refusalMessage_.empty()) return nullptr;
    return std::make_shared<Refusal>(refusalMessage_);
  }
  return WrappingFactory::buildProtocol(addr);
}

std::shared_ptr<ProtocolWrapper> ConnectionLimiter::wrap(std::shared_ptr<Protocol> wrapped,
                                                         const Address& addr) {
  auto counted = std::make_shared<Counted>(std::move(wrapped), *this, addr.host());
  ++active_;
  ++perPeer_[addr.host()];
  return counted;
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

// ---- ThrottlingFactory ----

// Counts what its connection reads and writes.
class ThrottlingFactory::Throttled : public ProtocolWrapper {
 public:
  Throttled(std::shared_ptr<Protocol> wrapped, ThrottlingFactory& factory)
      : ProtocolWrapper(std::move(wrapped), &factory), factory_(factory) {}
  void write(std::string_view data) override {
    ProtocolWrapper::write(data);
    factory_.registerWritten(data.size());
  }
  void writeSequence(std::span<const std::string_view> data) override {
    ProtocolWrapper::writeSequence(data);
    size_t n = 0;
    for (auto d : data) n += d.size();
    factory_.registerWritten(n);
  }
  void dataReceived(std::string_view data) override {
    ProtocolWrapper::dataReceived(data);
    factory_.registerRead(data.size());
  }

 private:
  ThrottlingFactory& factory_;  // outlives this wrapper (see ProtocolWrapper::factory_)
};

ThrottlingFactory::ThrottlingFactory(std::shared_ptr<Factory> wrapped, IReactorTime& clock,
                                     size_t readLimit, size_t writeLimit)
    : WrappingFactory(std::move(wrapped)),
      readLimit_(readLimit),
      writeLimit_(writeLimit),
      ticker_(clock, [this] { tick(); }) {}

ThrottlingFactory::~ThrottlingFactory() = default;

std::shared_ptr<ProtocolWrapper> ThrottlingFactory::wrap(std::shared_ptr<Protocol> wrapped,
                                                         const Address&) {
  return std::make_shared<Throttled>(std::move(wrapped), *this);
}

void ThrottlingFactory::registerProtocol(ProtocolWrapper* p) {
  WrappingFactory::registerProtocol(p);
  if (readsThrottled_) p->transport()->pauseProducing();
}

void ThrottlingFactory::startFactory() {
  WrappingFactory::startFactory();
  if (!ticker_.running()) ticker_.start(1.0, false);
}

void ThrottlingFactory::stopFactory() {
  if (ticker_.running()) ticker_.stop();
  WrappingFactory::stopFactory();
}

void ThrottlingFactory::registerRead(size_t n) {
  readThisSecond_ += n;
  if (readLimit_ == 0 || readsThrottled_ || readThisSecond_ <= readLimit_) return;
  readsThrottled_ = true;
  ++readThrottles_;
  for (ProtocolWrapper* p : protocols()) p->transport()->pauseProducing();
}

void ThrottlingFactory::registerWritten(size_t n) {
  writtenThisSecond_ += n;
  if (writeLimit_ == 0 || writesThrottled_ || writtenThisSecond_ <= writeLimit_) return;
  writesThrottled_ = true;
  ++writeThrottles_;
  for (ProtocolWrapper* p : protocols()) {
    if (IProducer* producer = p->producer()) producer->pauseProducing();
  }
}

void ThrottlingFactory::tick() {
  readThisSecond_ = 0;
  writtenThisSecond_ = 0;
  if (readsThrottled_) {
    readsThrottled_ = false;
    for (ProtocolWrapper* p : protocols()) p->transport()->resumeProducing();
  }
  if (writesThrottled_) {
    writesThrottled_ = false;
    for (ProtocolWrapper* p : protocols()) {
      if (IProducer* producer = p->producer()) producer->resumeProducing();
    }
  }
}

}  // namespace twist
