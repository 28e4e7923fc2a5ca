// Public, part of //reactor:interfaces. Protocol and Factory: what users subclass
// (twisted.internet.protocol).
#pragma once

#include <memory>
#include <string_view>
#include <tuple>

#include "twist/reactor/address.h"
#include "twist/reactor/failure.h"
#include "twist/reactor/transport.h"

namespace twist {

class Factory;
class IConnector;
class IHalfCloseableProtocol;
class IFileDescriptorReceiver;

// One connection's behaviour. The transport calls, on the reactor's thread and never
// re-entrantly:
//   makeConnection(t)      once; sets transport() and calls connectionMade()
//   dataReceived(data)*    zero or more times, in order, between the two
//   connectionLost(reason) exactly once per connectionMade, after the last dataReceived
// Protocols are shared (std::shared_ptr): the connection holds one reference until
// connectionLost has returned, and whoever else holds one (a coroutine that connected with
// connectProtocol, a room of chat users) keeps the protocol alive as long as it needs it. After
// connectionLost, transport() is a closed transport: writes are ignored, disconnecting() is
// true, nothing dangles. Writing, loseConnection or abortConnection from inside any callback is
// safe. An exception escaping a callback is logged with the peer's address and the connection
// is aborted; connectionLost then receives that exception as its reason.
class Protocol {
 public:
  Protocol() = default;
  virtual ~Protocol() = default;
  Protocol(const Protocol&) = delete;
  Protocol& operator=(const Protocol&) = delete;

  // Binds the protocol to `transport` and calls connectionMade(). Tests call it with a
  // StringTransport.
  void makeConnection(ITransport* transport);

  // The connection is up; transport() may be used.
  virtual void connectionMade() {}
  // Bytes arrived. `data` points into the transport's read buffer and is valid only during the
  // call: copy what you keep. Message boundaries are not preserved (TCP is a stream).
  virtual void dataReceived(std::string_view data) {}
  // The connection is gone. reason.check<ConnectionDone>() for a clean close;
  // reason.check<ConnectionLost>() for a failure (ConnectionLost::osError() has the errno).
  virtual void connectionLost(const Failure& reason) {}

  // nullptr before makeConnection; the connection's transport until connectionLost; a closed
  // transport (every call a no-op) after it.
  ITransport* transport() const { return transport_; }
  // True between makeConnection and the end of connectionLost.
  bool connected() const { return connected_; }
  // The factory that built this protocol (set by the framework), or nullptr. The protocol holds
  // it (as Twisted's protocol.factory does): it lives at least as long as the protocol.
  Factory* factory() const { return factory_.get(); }
  void setFactory(std::shared_ptr<Factory> f) { factory_ = std::move(f); }

  // For layers inserted into a live connection (ITransport::insertLayer, startTLS): the
  // protocol writes through `transport` from now on. No callback runs.
  void rebindTransport(ITransport* transport) { transport_ = transport; }
  // For transports: delivers connectionLost(reason), then swaps the transport for a closed one.
  void notifyConnectionLost(const Failure& reason);
  // For transports: this protocol's half-close interface, or nullptr when it did not opt in
  // (by default: itself, if it derives from IHalfCloseableProtocol).
  virtual IHalfCloseableProtocol* halfCloseable();
  // For transports: where descriptors received over a UNIX socket go, or nullptr (by default:
  // itself, if it derives from IFileDescriptorReceiver).
  virtual IFileDescriptorReceiver* fileDescriptorReceiver();

 private:
  ITransport* transport_ = nullptr;
  std::shared_ptr<Factory> factory_;
  bool connected_ = false;
};

// Opt-in half-close (Twisted's IHalfCloseableProtocol): derive from it beside Protocol.
//  - readConnectionLost(): the peer shut down its write side (EOF). No dataReceived follows; the
//    connection stays open for writing until the protocol calls loseConnection() (or
//    loseWriteConnection(): with both halves closed the connection ends).
//  - writeConnectionLost(): our loseWriteConnection() has finished: everything written was
//    sent and the write side is shut down. Reading goes on.
// Once both halves are closed the connection ends with connectionLost(ConnectionDone).
// A protocol that does not opt in: the peer's EOF ends the connection once everything written
// so far has been sent (connectionLost(ConnectionDone)).
// Both are called from the loop, never inside a call the protocol is making.
class IHalfCloseableProtocol {
 public:
  virtual ~IHalfCloseableProtocol() = default;
  virtual void readConnectionLost() {}
  virtual void writeConnectionLost() {}
};

// Opt-in receiving of file descriptors over a UNIX socket (Twisted's IFileDescriptorReceiver):
// derive from it beside Protocol. fileDescriptorReceived(fd) comes before the dataReceived of the
// byte the descriptor was sent with (IUNIXTransport::sendFileDescriptor; that dataReceived may
// also hold bytes sent before it: queue descriptors, and take one when the message that
// announces it is parsed); the descriptor is the
// protocol's from then on (close-on-exec; close it when done). A protocol that does not opt in
// never sees one: the transport closes what arrives and logs it.
class IFileDescriptorReceiver {
 public:
  virtual ~IFileDescriptorReceiver() = default;
  virtual void fileDescriptorReceived(int fd) = 0;
};

class ServerFactory;

// Makes protocols. A factory may be shared by several ports; startFactory() runs when the first
// of them starts listening and stopFactory() when the last one stops.
class Factory {
 public:
  virtual ~Factory() = default;

  // A protocol for a new connection from `addr`; returning nullptr refuses it (closed at once).
  virtual std::shared_ptr<Protocol> buildProtocol(const Address& addr) = 0;
  virtual void startFactory() {}
  virtual void stopFactory() {}

  // A ServerFactory whose buildProtocol makes P(args...) (args are copied for each protocol).
  template <class P, class... Args>
  static std::shared_ptr<ServerFactory> forProtocol(Args... args);

  // For ports: count users, calling startFactory on the first and stopFactory after the last.
  // doStart lets startFactory's exception through (nothing is counted then); doStop logs
  // stopFactory's and carries on.
  void doStart();
  void doStop();
  int numPorts() const { return numPorts_; }

 private:
  int numPorts_ = 0;
};

// A factory for listening ports (Twisted's ServerFactory). listenTCP takes any Factory; derive
// from this one to say what a factory is for.
class ServerFactory : public Factory {};

class ClientFactory;

// A factory for connectTCP. Besides building the protocol it hears how each attempt goes; all
// calls come on the reactor thread. `connector` can retry with connector.connect() (keep
// connector.shared_from_this() to do it later).
class ClientFactory : public Factory {
 public:
  // An attempt is starting (connectTCP, or Connector::connect).
  virtual void startedConnecting(IConnector& connector) {}
  // The attempt failed: reason is a ConnectionRefusedError, TimeoutError, DNSLookupError,
  // ConnectBindError, UserError (stopConnecting), NoProtocol or another ConnectError. Always
  // from the loop, never inside connectTCP or connect().
  virtual void clientConnectionFailed(IConnector& connector, const Failure& reason) {}
  // An established connection ended (after its protocol's connectionLost), with the same reason.
  virtual void clientConnectionLost(IConnector& connector, const Failure& reason) {}

  // A ClientFactory whose buildProtocol makes P(args...).
  template <class P, class... Args>
  static std::shared_ptr<ClientFactory> forProtocol(Args... args);
};

namespace detail {
template <class P, class Base, class... Args>
class ProtocolFactory : public Base {
 public:
  explicit ProtocolFactory(Args... args) : args_(std::move(args)...) {}
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    return std::apply([](const Args&... a) { return std::make_shared<P>(a...); }, args_);
  }

 private:
  std::tuple<Args...> args_;
};
}  // namespace detail

template <class P, class... Args>
std::shared_ptr<ServerFactory> Factory::forProtocol(Args... args) {
  return std::make_shared<detail::ProtocolFactory<P, ServerFactory, Args...>>(std::move(args)...);
}

template <class P, class... Args>
std::shared_ptr<ClientFactory> ClientFactory::forProtocol(Args... args) {
  return std::make_shared<detail::ProtocolFactory<P, ClientFactory, Args...>>(std::move(args)...);
}

}  // namespace twist
