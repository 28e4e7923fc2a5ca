// Public for transport writers; protocols only see ITransport. tcp::Connection: one TCP
// connection (Twisted's tcp.Connection); tcp::Server is the kind a tcp::Port accepts. Owned by the
// reactor; not thread safe: used on the reactor's thread only.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "twist/reactor/failure.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/selectable.h"
#include "twist/reactor/transport.h"

struct event;
struct evbuffer;

namespace twist {
class ReactorBase;
}  // namespace twist

namespace twist::tcp {

class Connection : public ITransport, public Selectable {
 public:
  // Takes ownership of the connected, non-blocking socket `fd` and shares `protocol` (which
  // holds the factory that built it, so that lives on whatever happens to the port or
  // connector that made it).
  Connection(ReactorBase& reactor, int fd, std::shared_ptr<Protocol> protocol, Address host,
             Address peer, const char* logSystem);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Calls protocol->makeConnection(this) and starts reading.
  void start();
  // UNIX sockets: IUNIXTransport::sendFileDescriptor, for the unix:: connections that offer it.
  // std::logic_error on a TCP connection.
  void sendDescriptor(int fd);
  Protocol* protocol() const { return protocol_.get(); }
  int fileno() const { return fd_; }

  // ITransport
  void write(std::string_view data) override;
  void writeSequence(std::span<const std::string_view> data) override;
  void loseConnection() override;
  void abortConnection() override;
  void loseWriteConnection() override;
  void pauseProducing() override;
  void resumeProducing() override;
  void registerProducer(IProducer* producer, bool streaming) override;
  void unregisterProducer() override;
  IProducer* producer() const override { return producer_; }
  Address getPeer() const override { return peer_; }
  Address getHost() const override { return host_; }
  void setTcpNoDelay(bool enabled) override;
  bool getTcpNoDelay() const override;
  void setTcpKeepAlive(bool enabled) override;
  bool getTcpKeepAlive() const override;
  void setTcpKeepAliveTimes(int idleSeconds, int intervalSeconds, int probes) override;
  void setWriteBufferLimits(const WriteBufferLimits& limits) override;
  WriteBufferLimits writeBufferLimits() const override { return limits_; }
  bool disconnecting() const override { return state_ != State::Connected; }
  size_t bufferedSize() const override;
  void insertLayer(const LayerMaker& makeLayer) override;

  // Selectable
  void reactorShutdown() override;

 protected:
  // Called once, after the protocol's connectionLost returned (a Client tells its Connector).
  virtual void connectionEnded(const Failure& reason) {}

 private:
  enum class State {
    Connected,      // reading and writing (reading may have ended: a half-closeable protocol)
    Disconnecting,  // loseConnection (or the peer's EOF): flushing, then close cleanly
    Closing,        // connectionLost is scheduled on the loop
    Closed,         // connectionLost delivered
  };
  enum class Flush { Done, Pending, Failed };

  static void onReadable(int fd, short what, void* arg);
  static void onWritable(int fd, short what, void* arg);
  static void onCloseEvent(int fd, short what, void* arg);
  static void onFlushEvent(int fd, short what, void* arg);
  // Runs a protocol callback; what it writes goes out in one system call once it returns.
  template <class F>
  void dispatch(const char* what, F&& fn);
  // Sends what was written since the socket was last asked (corked output).
  void flushCorked();
  // Starts corking: the first write while nothing waits for the socket.
  void cork();
  // Sends corked output at once when there is much of it (kSendEarly).
  void sendEarly();
  // Moves the uncopied first write into the output buffer (before anything is added behind it).
  void materializeView();
  // Drops everything not yet sent: the output buffer and the uncopied first write.
  void discardOutput();
  size_t pendingBytes() const;
  void handleRead();
  void handleWrite();
  void readEnded();
  Flush flush();
  // Descriptors wait to be sent (UNIX sockets): output then takes the ordered path, never the
  // uncopied view or the early send.
  bool descriptorsPending() const;
  // flush() while descriptors wait to be sent: each leaves with the byte it was queued before.
  Flush flushWithDescriptors();
  // recvmsg for a UNIX socket: descriptors that came with the bytes go to the protocol first.
  ssize_t receiveWithDescriptors(char* buf);
  void deliverDescriptor(int fd);
  // Reads while connected, not paused by the user or by a full output buffer, and the peer has
  // not ended its side.
  void updateReading();
  void startWriting();
  void stopWriting();
  // Arms the write event while there is output, a pull producer to ask for more, or a pending
  // shutdown of the write side.
  void updateWriteEvent();
  // After output was queued for the socket: arms the write event, applies the limits.
  void afterBuffering();
  // Pauses the producer, or reading, when more than the high mark waits.
  void applyHighWater();
  // The output buffer drained to `buffered` bytes.
  void afterDraining(size_t buffered);
  // Would queuing `more` bytes pass the hard cap? Then aborts and returns true.
  bool overCap(size_t more);
  void shutdownWrite();
  void askProducer();
  void failFromCallback(const char* where);
  // Delivers connectionLost on the next pass of the loop, never inside the current call.
  void closeLater(Failure reason);
  // Closes the socket, delivers connectionLost, hands this object back to the reactor.
  void closeNow(const Failure& reason);
  void logError(const std::string& message) const;
  // Runs an event handler: an exception that escapes it is logged and aborts the connection.
  template <class F>
  void guarded(const char* what, F&& fn) noexcept;

  // Hot fields first: one cache line serves a read-echo-write pass, which matters with
  // thousands of connections whose objects are cold.
  ReactorBase& reactor_;
  std::shared_ptr<Protocol> protocol_;
  int fd_;
  State state_ = State::Connected;
  bool reading_ = false;
  // The write event is armed. While Connected this is exactly "output_ is not empty", so write()
  // tests it instead of touching the evbuffer.
  bool writing_ = false;
  bool paused_ = false;         // pauseProducing() by the user (or a consumer)
  bool outputFull_ = false;     // no producer and output above highWater: reading is paused
  bool readEnded_ = false;      // the peer's EOF arrived
  bool writeShutdown_ = false;  // loseWriteConnection asked for it
  bool writeShutDone_ = false;  // ... and the write side is shut down
  bool writeArmed_ = false;     // the write event is added
  // Output written while nothing waited for the socket is held back until the callback that
  // wrote it returns, then sent in one system call (write coalescing): a protocol answering a
  // pipelined read with many writes makes one sendmsg, not one per write.
  bool corked_ = false;
  bool inDispatch_ = false;        // one of this connection's protocol callbacks is running
  bool sendEarlyBlocked_ = false;  // corked, and sendEarly found the socket full (or failed)
  size_t corkedBytes_ = 0;         // added to output_ since the cork or sendEarly's last send
  // The first corked write when it lies in the reactor's read buffer (an echo): sent from there
  // without a copy, unless something is written behind it.
  std::string_view pendingView_;
  bool streamingProducer_ = false;
  bool producerPaused_ = false;
  IProducer* producer_ = nullptr;
  evbuffer* output_ = nullptr;  // what the kernel has not taken yet
  WriteBufferLimits limits_;
  event* readEvent_ = nullptr;
  event* writeEvent_ = nullptr;
  event* closeEvent_ = nullptr;
  event* flushEvent_ = nullptr;  // flushes corked output written from outside our callbacks
  IHalfCloseableProtocol* halfCloseable_ = nullptr;
  Failure pendingReason_;
  Address host_;
  Address peer_;
  const char* logSystem_;
  // UNIX sockets only (nullptr for TCP): descriptors waiting to be sent (see flushWithDescriptors).
  struct Descriptors;
  std::unique_ptr<Descriptors> fds_;
};

// A connection accepted by a Port.
class Server : public Connection {
 public:
  Server(ReactorBase& reactor, int fd, std::shared_ptr<Protocol> protocol, Address host,
         Address peer, const char* logSystem = "tcp.Server")
      : Connection(reactor, fd, std::move(protocol), std::move(host), std::move(peer), logSystem) {}
};

}  // namespace twist::tcp
