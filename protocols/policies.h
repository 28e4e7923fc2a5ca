// Public. Policies for protocols (twisted.protocols.policies): an idle timeout, ProtocolWrapper
// and WrappingFactory (what sits between a protocol and its transport), connection limits and
// throttling.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "twist/reactor/delayed_call.h"
#include "twist/reactor/interfaces.h"
#include "twist/reactor/task.h"

namespace twist {

// Idle timeout (Twisted's TimeoutMixin). Mix it into a Protocol: setTimeout(seconds) starts the
// countdown, resetTimeout() (call it when data arrives) starts it again, and timeoutConnection()
// runs when it expires: by default it calls loseConnection() on the protocol's transport.
// Works on the Reactor and on a task::Clock. The pending call is cancelled when the mixin is
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

// Sits between a protocol and its transport (Twisted's ProtocolWrapper): to the transport it is
// the protocol, to the wrapped protocol it is the transport. Every call passes through unchanged
// unless a subclass overrides it, so anything can sit in between: counting or throttling bytes,
// logging, recording, and later TLS over any transport. Half-closeable exactly when the wrapped
// protocol is. Made by a WrappingFactory, or by hand (in tests, over a StringTransport).
class WrappingFactory;

class ProtocolWrapper : public Protocol,
                        public ITransport,
                        public IHalfCloseableProtocol,
                        public IUNIXTransport {
 public:
  // `factory` (may be null) hears of the connection (registerProtocol/unregisterProtocol); the
  // factory that made the wrapper passes itself.
  explicit ProtocolWrapper(std::shared_ptr<Protocol> wrapped, WrappingFactory* factory = nullptr);

  Protocol& wrapped() const { return *wrapped_; }

  // ---- the protocol side, called by the real transport ----
  void connectionMade() override;
  void dataReceived(std::string_view data) override { wrapped_->dataReceived(data); }
  void connectionLost(const Failure& reason) override;
  IHalfCloseableProtocol* halfCloseable() override {
    return wrapped_->halfCloseable() != nullptr ? this : nullptr;
  }
  void readConnectionLost() override { wrapped_->halfCloseable()->readConnectionLost(); }
  void writeConnectionLost() override { wrapped_->halfCloseable()->writeConnectionLost(); }
  // Descriptors passed over a UNIX socket go straight to the wrapped protocol.
  IFileDescriptorReceiver* fileDescriptorReceiver() override {
    return wrapped_->fileDescriptorReceiver();
  }

  // ---- the transport side, called by the wrapped protocol: forwarded to transport() ----
  void write(std::string_view data) override { transport()->write(data); }
  void writeSequence(std::span<const std::string_view> data) override {
    transport()->writeSequence(data);
  }
  void loseConnection() override { transport()->loseConnection(); }
  void abortConnection() override { transport()->abortConnection(); }
  void loseWriteConnection() override { transport()->loseWriteConnection(); }
  void pauseProducing() override { transport()->pauseProducing(); }
  void resumeProducing() override { transport()->resumeProducing(); }
  void stopProducing() override { transport()->stopProducing(); }
  void registerProducer(IProducer* producer, bool streaming) override {
    transport()->registerProducer(producer, streaming);
  }
  void unregisterProducer() override { transport()->unregisterProducer(); }
  IProducer* producer() const override { return transport()->producer(); }
  Address getPeer() const override { return transport()->getPeer(); }
  Address getHost() const override { return transport()->getHost(); }
  void setTcpNoDelay(bool on) override { transport()->setTcpNoDelay(on); }
  bool getTcpNoDelay() const override { return transport()->getTcpNoDelay(); }
  void setTcpKeepAlive(bool on) override { transport()->setTcpKeepAlive(on); }
  bool getTcpKeepAlive() const override { return transport()->getTcpKeepAlive(); }
  void setTcpKeepAliveTimes(int idle, int interval, int probes) override {
    transport()->setTcpKeepAliveTimes(idle, interval, probes);
  }
  void setWriteBufferLimits(const WriteBufferLimits& limits) override {
    transport()->setWriteBufferLimits(limits);
  }
  WriteBufferLimits writeBufferLimits() const override { return transport()->writeBufferLimits(); }
  bool disconnecting() const override { return transport()->disconnecting(); }
  size_t bufferedSize() const override { return transport()->bufferedSize(); }
  // Forwarded to a UNIX socket's transport; std::logic_error over anything else.
  void sendFileDescriptor(int fd) override;
  // The layer goes between this wrapper and the wrapped protocol.
  void insertLayer(const LayerMaker& makeLayer) override;

 private:
  std::shared_ptr<Protocol> wrapped_;
  // Outlives this wrapper when it made it: the framework makes it the wrapper's factory(),
  // which the wrapper holds.
  WrappingFactory* factory_;
};

// A factory whose protocols are ProtocolWrappers around the protocols of another factory
// (Twisted's WrappingFactory). Starting and stopping it starts and stops the wrapped factory;
// as a ClientFactory it passes the connector's news on to the wrapped one when that is a
// ClientFactory. Subclasses choose the wrapper (wrap()) and hear of every connection
// (registerProtocol / unregisterProtocol). Works for listenTCP and connectTCP alike.
class WrappingFactory : public ClientFactory {
 public:
  explicit WrappingFactory(std::shared_ptr<Factory> wrapped);

  std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;
  void startFactory() override { wrapped_->doStart(); }
  void stopFactory() override { wrapped_->doStop(); }
  void startedConnecting(IConnector& connector) override;
  void clientConnectionFailed(IConnector& connector, const Failure& reason) override;
  void clientConnectionLost(IConnector& connector, const Failure& reason) override;

  Factory& wrappedFactory() const { return *wrapped_; }
  // The wrappers whose connection is up (between connectionMade and connectionLost).
  const std::set<ProtocolWrapper*>& protocols() const { return protocols_; }

  // Called by the wrappers this factory made.
  virtual void registerProtocol(ProtocolWrapper* p) { protocols_.insert(p); }
  virtual void unregisterProtocol(ProtocolWrapper* p) { protocols_.erase(p); }

 protected:
  // The wrapper for a protocol the wrapped factory built for `addr`. Default: ProtocolWrapper.
  virtual std::shared_ptr<ProtocolWrapper> wrap(std::shared_ptr<Protocol> wrapped,
                                                const Address& addr);

 private:
  std::shared_ptr<Factory> wrapped_;
  std::set<ProtocolWrapper*> protocols_;
};

// Caps the connections a factory serves at once: in total, and from one peer address
// (Twisted's LimitTotalConnectionsFactory and LimitConnectionsByPeer). A connection over a limit
// is refused cleanly: closed at once, or, with a refusal message, sent that message and then
// closed; the wrapped factory never sees it.
class ConnectionLimiter : public WrappingFactory {
 public:
  // maxPerPeer 0: no per-peer limit.
  ConnectionLimiter(std::shared_ptr<Factory> wrapped, size_t maxTotal, size_t maxPerPeer = 0,
                    std::string refusalMessage = "");

  std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;

  size_t active() const { return active_; }
  size_t activeFrom(const std::string& host) const;
  size_t refused() const { return refused_; }

 protected:
  std::shared_ptr<ProtocolWrapper> wrap(std::shared_ptr<Protocol> wrapped,
                                        const Address& addr) override;

 private:
  class Counted;
  void release(const std::string& host);

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
// ticks while the factory is started (listenTCP starts it).
class ThrottlingFactory : public WrappingFactory {
 public:
  ThrottlingFactory(std::shared_ptr<Factory> wrapped, IReactorTime& clock, size_t readLimit,
                    size_t writeLimit);
  ~ThrottlingFactory() override;

  void startFactory() override;
  void stopFactory() override;
  void registerProtocol(ProtocolWrapper* p) override;

  size_t readThisSecond() const { return readThisSecond_; }
  size_t writtenThisSecond() const { return writtenThisSecond_; }
  bool readsThrottled() const { return readsThrottled_; }
  bool writesThrottled() const { return writesThrottled_; }
  // How many times reads / writes were throttled so far.
  int readThrottles() const { return readThrottles_; }
  int writeThrottles() const { return writeThrottles_; }

 protected:
  std::shared_ptr<ProtocolWrapper> wrap(std::shared_ptr<Protocol> wrapped,
                                        const Address& addr) override;

 private:
  class Throttled;
  void registerRead(size_t n);
  void registerWritten(size_t n);
  void tick();

  size_t readLimit_;
  size_t writeLimit_;
  task::LoopingCall ticker_;
  size_t readThisSecond_ = 0;
  size_t writtenThisSecond_ = 0;
  bool readsThrottled_ = false;
  bool writesThrottled_ = false;
  int readThrottles_ = 0;
  int writeThrottles_ = 0;
};

}  // namespace twist
