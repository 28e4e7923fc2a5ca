// Public. Policies for protocols (twisted.protocols.policies): an idle timeout.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "protocols/protocol.h"
#include "reactor/delayed_call.h"
#include "reactor/task.h"

namespace twist {

// Idle timeout (Twisted's TimeoutMixin). Mix it into a Protocol: setTimeout(seconds) starts the
// countdown, resetTimeout() (call it when data arrives) starts it again, and timeoutConnection()
// runs when it expires: by default it calls loseConnection() on the protocol's transport.
// Works on the Reactor and on a fake Clock. The pending call is cancelled when the mixin is
// destroyed (with its connection), so it never fires on a dead protocol.
class TimeoutMixin {
 public:
  explicit TimeoutMixin(IReactorTime& clock) : clock_(clock) {}
  virtual ~TimeoutMixin();

  // Sets the idle period (nullopt: no timeout) and restarts the countdown. Returns the previous
  // period.
  std::optional<double> setTimeout(std::optional<double> seconds);
  // Starts the countdown again (no effect without a timeout).
  void resetTimeout();
  std::optional<double> timeOut() const { return period_; }

 protected:
  // The period passed without a resetTimeout. Default: the transport's loseConnection().
  virtual void timeoutConnection();

 private:
  IReactorTime& clock_;
  std::optional<double> period_;
  DelayedCall call_;
};

// Forwards every call to the protocol it wraps (Twisted's ProtocolWrapper), which sees the real
// transport. Subclasses watch the connection's life. Half-closeable exactly when the wrapped
// protocol is.
class ProtocolWrapper : public Protocol, public IHalfCloseableProtocol {
 public:
  explicit ProtocolWrapper(std::unique_ptr<Protocol> wrapped) : wrapped_(std::move(wrapped)) {}
  void connectionMade() override { wrapped_->makeConnection(transport()); }
  void dataReceived(std::string_view data) override { wrapped_->dataReceived(data); }
  void connectionLost(const Failure& reason) override { wrapped_->notifyConnectionLost(reason); }
  IHalfCloseableProtocol* halfCloseable() override {
    return wrapped_->halfCloseable() != nullptr ? this : nullptr;
  }
  void readConnectionLost() override { wrapped_->halfCloseable()->readConnectionLost(); }
  void writeConnectionLost() override { wrapped_->halfCloseable()->writeConnectionLost(); }
  Protocol& wrapped() const { return *wrapped_; }

 private:
  std::unique_ptr<Protocol> wrapped_;
};

// Caps the connections a factory serves at once: in total, and from one peer address
// (Twisted's LimitTotalConnectionsFactory and LimitConnectionsByPeer). A connection over a limit
// is refused cleanly: closed at once, or, with a refusal message, sent that message and then
// closed; the wrapped factory never sees it. Make it with std::make_shared.
class ConnectionLimiter : public ServerFactory,
                          public std::enable_shared_from_this<ConnectionLimiter> {
 public:
  // maxPerPeer 0: no per-peer limit.
  ConnectionLimiter(std::shared_ptr<ServerFactory> wrapped, size_t maxTotal, size_t maxPerPeer = 0,
                    std::string refusalMessage = "");

  std::unique_ptr<Protocol> buildProtocol(const Address& addr) override;
  void startFactory() override { wrapped_->doStart(); }
  void stopFactory() override { wrapped_->doStop(); }

  size_t active() const { return active_; }
  size_t activeFrom(const std::string& host) const;
  size_t refused() const { return refused_; }

 private:
  class Counted;
  void release(const std::string& host);

  std::shared_ptr<ServerFactory> wrapped_;
  size_t maxTotal_;
  size_t maxPerPeer_;
  std::string refusalMessage_;
  size_t active_ = 0;
  size_t refused_ = 0;
  std::map<std::string, size_t> perPeer_;
};

// Limits how many bytes per second the connections of a factory read and write, together
// (Twisted's ThrottlingFactory). Counters reset every second. Once reads pass readLimit, every
// connection stops reading until the second is over; once writes pass writeLimit, the producers
// registered on the connections are paused until then (writes themselves are never dropped:
// a protocol that writes without a producer is only counted). 0 means no limit. The clock
// ticks while the factory is started (listenTCP starts it). Make it with std::make_shared.
class ThrottlingFactory : public ServerFactory,
                          public std::enable_shared_from_this<ThrottlingFactory> {
 public:
  ThrottlingFactory(std::shared_ptr<ServerFactory> wrapped, IReactorTime& clock, size_t readLimit,
                    size_t writeLimit);
  ~ThrottlingFactory() override;

  std::unique_ptr<Protocol> buildProtocol(const Address& addr) override;
  void startFactory() override;
  void stopFactory() override;

  size_t readThisSecond() const { return readThisSecond_; }
  size_t writtenThisSecond() const { return writtenThisSecond_; }
  bool readsThrottled() const { return readsThrottled_; }
  bool writesThrottled() const { return writesThrottled_; }
  // How many times reads / writes were throttled so far.
  int readThrottles() const { return readThrottles_; }
  int writeThrottles() const { return writeThrottles_; }

 private:
  class Throttled;
  class CountingTransport;
  void registerRead(size_t n);
  void registerWritten(size_t n);
  void tick();

  std::shared_ptr<ServerFactory> wrapped_;
  size_t readLimit_;
  size_t writeLimit_;
  LoopingCall ticker_;
  std::set<Throttled*> live_;
  size_t readThisSecond_ = 0;
  size_t writtenThisSecond_ = 0;
  bool readsThrottled_ = false;
  bool writesThrottled_ = false;
  int readThrottles_ = 0;
  int writeThrottles_ = 0;
};

}  // namespace twist
