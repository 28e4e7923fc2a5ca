// Public. ITransport: what a protocol sees of its connection (Twisted's ITransport and
// ITCPTransport). Implemented by the TCP Server/Client connections and, for tests, by
// StringTransport. All methods run on the reactor's thread.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "reactor/deferred.h"
#include "transports/address.h"

namespace twist {

// Produces data for a consumer such as a transport (Twisted's IPushProducer / IPullProducer).
class IProducer {
 public:
  virtual ~IProducer() = default;
  // Push producer: produce again. Pull producer: write some more now.
  virtual void resumeProducing() = 0;
  // Push producer: the consumer's buffer is full; stop until resumeProducing.
  virtual void pauseProducing() {}
  // The consumer is gone (the connection ended): stop for good.
  virtual void stopProducing() {}
};

class ITransport {
 public:
  virtual ~ITransport() = default;

  // Queues `data` to be sent; takes a copy only of what the kernel does not accept at once.
  // Ignored (no error) after loseConnection(), abortConnection(), or once the connection ended.
  virtual void write(std::string_view data) = 0;
  // Same as writing each piece in turn, in one system call where possible.
  virtual void writeSequence(std::span<const std::string_view> data) = 0;

  // Stops reading, sends everything written so far, then closes: connectionLost(ConnectionDone)
  // follows from the loop. Idempotent.
  virtual void loseConnection() = 0;
  // Closes now and drops unsent data: connectionLost(ConnectionAborted) follows from the loop,
  // never inside this call. Idempotent.
  virtual void abortConnection() = 0;
  // Half-close: sends what is buffered, then shuts down the write side; reading goes on.
  virtual void loseWriteConnection() = 0;

  // Stop / resume delivering dataReceived (the transport as a push producer).
  virtual void pauseProducing() = 0;
  virtual void resumeProducing() = 0;

  virtual Address getPeer() const = 0;
  virtual Address getHost() const = 0;

  // Socket options; transports that are not TCP ignore them.
  virtual void setTcpNoDelay(bool enabled) = 0;
  virtual bool getTcpNoDelay() const = 0;
  virtual void setTcpKeepAlive(bool enabled) = 0;
  virtual bool getTcpKeepAlive() const = 0;

  // Flow control (Twisted's IConsumer): one producer at a time (std::logic_error otherwise).
  // A streaming (push) producer is paused when more than kHighWater bytes wait in the output
  // buffer and resumed once it has drained; a pull producer's resumeProducing is called each time
  // the socket can take more (it must write something each time, or unregister). The producer
  // gets stopProducing when the connection ends. After loseConnection nobody is asked for more.
  static constexpr size_t kHighWater = 64 * 1024;
  virtual void registerProducer(IProducer* producer, bool streaming) = 0;
  virtual void unregisterProducer() = 0;

  // True once loseConnection()/abortConnection() was called or the connection ended.
  virtual bool disconnecting() const = 0;
  // Bytes written but not yet accepted by the kernel.
  virtual size_t bufferedSize() const = 0;
};

// A listening port as user code sees it (Twisted's IListeningPort): the TCP Port, or the fake
// one of MemoryReactor.
class IListeningPort {
 public:
  virtual ~IListeningPort() = default;
  // The address bound (the real port when 0 was asked).
  virtual Address getHost() const = 0;
  // Stops accepting; idempotent. Fires once the port is closed.
  virtual Deferred<void> stopListening() = 0;
  virtual bool listening() const = 0;
};

// An outgoing connection as user code sees it (Twisted's IConnector): the TCP Connector, or the
// fake one of MemoryReactor. ClientFactory callbacks receive it; keep shared_from_this() to
// connect() again later.
class IConnector : public std::enable_shared_from_this<IConnector> {
 public:
  enum class State { Disconnected, Connecting, Connected };
  virtual ~IConnector() = default;
  // Starts another attempt; only while disconnected (std::logic_error otherwise).
  virtual void connect() = 0;
  // Abandons the attempt in progress (clientConnectionFailed with UserError follows at once);
  // std::logic_error when not connecting.
  virtual void stopConnecting() = 0;
  // Stops connecting, or closes the connection if connected.
  virtual void disconnect() = 0;
  virtual Address getDestination() const = 0;
  virtual State state() const = 0;
  // The connection's transport while connected, else nullptr.
  virtual ITransport* transport() const = 0;
};

}  // namespace twist
