// Public, part of //reactor:interfaces. ITransport: what a protocol sees of its connection
// (Twisted's ITransport and ITCPTransport), with IProducer and IConsumer. Implemented by the TCP
// connections, by ProtocolWrapper (for what sits between a protocol and its socket) and, for
// tests, by StringTransport. All methods run on the reactor's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

#include "twist/reactor/address.h"

namespace twist {

class IConsumer;
class Protocol;

// Produces data for a consumer such as a transport (Twisted's IPushProducer / IPullProducer).
// A producer registered with a consumer is unregistered from it automatically when the producer
// is destroyed (and, for a transport used as a producer, when its connection ends), so a
// consumer never holds a dangling producer.
class IProducer {
 public:
  IProducer() = default;
  IProducer(const IProducer&) = delete;
  IProducer& operator=(const IProducer&) = delete;
  virtual ~IProducer();
  // Push producer: produce again. Pull producer: write some more now.
  virtual void resumeProducing() = 0;
  // Push producer: the consumer's buffer is full; stop until resumeProducing.
  virtual void pauseProducing() {}
  // The consumer is gone (the connection ended): stop for good.
  virtual void stopProducing() {}

  // The consumer this producer is registered with, or nullptr.
  IConsumer* consumer() const { return consumer_; }

 protected:
  // Unregisters from the consumer, if any.
  void detachFromConsumer();

 private:
  friend class IConsumer;
  IConsumer* consumer_ = nullptr;
};

// Takes data and a producer that feeds it (Twisted's IConsumer): a transport.
class IConsumer {
 public:
  virtual ~IConsumer() = default;
  virtual void write(std::string_view data) = 0;
  // One producer at a time (std::logic_error otherwise, or when the producer is registered with
  // another consumer). streaming: a push producer, paused and resumed by the consumer; otherwise
  // a pull producer, asked for more with resumeProducing each time the consumer can take it.
  virtual void registerProducer(IProducer* producer, bool streaming) = 0;
  // Forgets the producer (without calling it). Idempotent.
  virtual void unregisterProducer() = 0;
  // The registered producer, or nullptr.
  virtual IProducer* producer() const = 0;

 protected:
  // For implementations: records that `producer` is registered with `consumer` (nullptr: with
  // none), so that the producer can unregister itself when it goes away. Throws
  // std::logic_error when it is already registered with another consumer.
  static void linkProducer(IProducer& producer, IConsumer* consumer);
};

// How much a transport buffers for a peer that does not read (per connection; the defaults
// keep a server's memory bounded whatever its clients do). Twisted has only the producer half of
// this; the cap is Tornado's max_write_buffer_size, the marks muduo's and libevent's.
struct WriteBufferLimits {
  static constexpr size_t kNoLimit = SIZE_MAX;
  // Above this many bytes waiting to be sent, a registered streaming producer is paused; with no
  // producer, the transport stops reading its own input (no dataReceived) until the buffer has
  // drained to lowWater, so a request/response protocol gets back-pressure for free.
  // kNoLimit: never pause.
  size_t highWater = 64 * 1024;
  // At or below this, the paused producer is resumed and reading goes on.
  size_t lowWater = 16 * 1024;
  // A write that would leave more than this many bytes waiting aborts the connection instead:
  // connectionLost(WriteBufferFullError), with a log line naming the peer. kNoLimit: no cap.
  size_t hardCap = 4 * 1024 * 1024;
};

// What a protocol sees of its connection (Twisted's ITransport and ITCPTransport). A transport
// is also a push producer of its input (pauseProducing stops dataReceived), so one connection
// can be registered as the producer of another: `other->registerProducer(transport(), true)`
// (Twisted's relay idiom). All methods run on the reactor's thread.
class ITransport : public IProducer, public IConsumer {
 public:
  // Queues `data` to be sent; takes a copy only of what the kernel does not accept at once.
  // Ignored (no error) after loseConnection(), abortConnection(), loseWriteConnection(), or
  // once the connection ended. See WriteBufferLimits for what happens when the peer does not
  // read.
  void write(std::string_view data) override = 0;
  // Same as writing each piece in turn, in one system call where possible.
  virtual void writeSequence(std::span<const std::string_view> data) = 0;

  // Stops reading, sends everything written so far, then closes: connectionLost(ConnectionDone)
  // follows from the loop. Idempotent.
  virtual void loseConnection() = 0;
  // Closes now and drops unsent data: connectionLost(ConnectionAborted) follows from the loop,
  // never inside this call. Idempotent.
  virtual void abortConnection() = 0;
  // Half-close: sends what is buffered, then shuts down the write side; reading goes on. An
  // IHalfCloseableProtocol hears writeConnectionLost() once that is done (from the loop).
  virtual void loseWriteConnection() = 0;

  // Stop / resume delivering dataReceived (the transport as a push producer).
  void pauseProducing() override = 0;
  void resumeProducing() override = 0;
  // As a producer: the consumer is gone. Closes this connection (loseConnection).
  void stopProducing() override { loseConnection(); }

  virtual Address getPeer() const = 0;
  virtual Address getHost() const = 0;

  // Socket options; transports that are not TCP ignore them.
  virtual void setTcpNoDelay(bool enabled) = 0;
  virtual bool getTcpNoDelay() const = 0;
  virtual void setTcpKeepAlive(bool enabled) = 0;
  virtual bool getTcpKeepAlive() const = 0;
  // Turns TCP keepalive on with these timings: the first probe after `idleSeconds` without
  // traffic, then one every `intervalSeconds`; after `probes` unanswered ones the connection is
  // lost (ConnectionLost, ETIMEDOUT). A 0 keeps the system's value (on Linux 7200 s, 75 s, 9).
  // This is how a server finds peers that vanished without a FIN or a reset (a crashed host, a
  // dropped NAT entry): without traffic nothing else would ever tell.
  virtual void setTcpKeepAliveTimes(int idleSeconds, int intervalSeconds, int probes) = 0;

  // Flow control (IConsumer): a streaming (push) producer is paused when more than
  // writeBufferLimits().highWater bytes wait in the output buffer and resumed once it has
  // drained to lowWater; a pull producer's resumeProducing is called each time the output buffer
  // is empty and the socket can take more (it must write something each time, or unregister).
  // The producer gets stopProducing when the connection ends. After loseConnection nobody is
  // asked for more.
  static constexpr size_t kHighWater = WriteBufferLimits{}.highWater;
  virtual void setWriteBufferLimits(const WriteBufferLimits& limits) = 0;
  virtual WriteBufferLimits writeBufferLimits() const = 0;

  // Puts a layer between this transport and its protocol on a live connection, from now on (how
  // tls::startTLS upgrades a connection; Twisted's ITLSTransport.startTLS). `makeLayer` gets the
  // protocol and returns the layer (a Protocol that is also the protocol's transport, such as a
  // ProtocolWrapper); the transport then delivers to the layer and calls its makeConnection(this)
  // at once; the layer takes the protocol over with Protocol::rebindTransport, without a second
  // connectionMade. What was written before goes out first, as it was. Throws std::logic_error
  // when the transport cannot (the default: StringTransport has no protocol to hand over); a
  // no-op once the connection is disconnecting.
  using LayerMaker = std::function<std::shared_ptr<Protocol>(std::shared_ptr<Protocol>)>;
  virtual void insertLayer(const LayerMaker& makeLayer);

  // True once loseConnection()/abortConnection() was called or the connection ended.
  virtual bool disconnecting() const = 0;
  // Bytes written but not yet accepted by the kernel.
  virtual size_t bufferedSize() const = 0;
};

// What a connection over a UNIX socket adds (Twisted's IUNIXTransport): passing open file
// descriptors to the peer process. Reach it with dynamic_cast<IUNIXTransport*>(transport());
// TCP connections (and layers such as TLS) are not one; a ProtocolWrapper is, and forwards (it
// throws std::logic_error when what it wraps is not).
class IUNIXTransport {
 public:
  static constexpr size_t kMaxPendingDescriptors = 1024;
  virtual ~IUNIXTransport() = default;
  // Sends a duplicate of `fd` (the caller keeps fd) along with the next byte written after this
  // call: the peer's IFileDescriptorReceiver::fileDescriptorReceived comes before the
  // dataReceived holding that byte (the kernel may put bytes written before it in the same
  // read, so a protocol matches descriptors to the messages that announce them by queueing
  // them, as in Twisted). Write at least one byte after it: a descriptor cannot travel alone.
  // Ignored once the connection is disconnecting. Throws std::system_error when fd cannot be
  // duplicated, std::length_error when kMaxPendingDescriptors already wait.
  virtual void sendFileDescriptor(int fd) = 0;
};

namespace detail {
// The transport a protocol sees after its connectionLost: every call is a no-op (writes are
// ignored, disconnecting() is true, a producer registered with it is stopped at once).
ITransport& closedTransport();
}  // namespace detail

}  // namespace twist
