// Public for transport writers; protocols only see ITransport. Connection: one TCP connection
// (Twisted's tcp.Connection); Server is the kind a Port accepts. Owned by the reactor; not thread
// safe: used on the reactor's thread only.
#pragma once

#include <memory>
#include <string>

#include "protocols/protocol.h"
#include "reactor/failure.h"
#include "reactor/selectable.h"
#include "transports/transport.h"

struct event;
struct evbuffer;

namespace twist {

class Reactor;

class Connection : public ITransport, public Selectable {
 public:
  // Takes ownership of the connected, non-blocking socket `fd` and of `protocol`.
  Connection(Reactor& reactor, int fd, std::unique_ptr<Protocol> protocol, Address host,
             Address peer, const char* logSystem);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Calls protocol->makeConnection(this) and starts reading.
  void start();
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
  Address getPeer() const override { return peer_; }
  Address getHost() const override { return host_; }
  void setTcpNoDelay(bool enabled) override;
  bool getTcpNoDelay() const override;
  void setTcpKeepAlive(bool enabled) override;
  bool getTcpKeepAlive() const override;
  bool disconnecting() const override { return state_ != State::Connected; }
  size_t bufferedSize() const override;

  // Selectable
  void reactorShutdown() override;

 protected:
  // Called once, after the protocol's connectionLost returned (a Client tells its Connector).
  virtual void connectionEnded(const Failure& reason) {}

 private:
  enum class State {
    Connected,      // reading and writing
    Disconnecting,  // loseConnection (or the peer's EOF): flushing, then close cleanly
    Closing,        // connectionLost is scheduled on the loop
    Closed,         // connectionLost delivered
  };
  enum class Flush { Done, Pending, Failed };

  static void onReadable(int fd, short what, void* arg);
  static void onWritable(int fd, short what, void* arg);
  static void onCloseEvent(int fd, short what, void* arg);
  void handleRead();
  void handleWrite();
  Flush flush();
  void startReading();
  void stopReading();
  void startWriting();
  void stopWriting();
  // Arms the write event while there is output or a pull producer to ask for more.
  void updateWriteEvent();
  void afterBuffering();
  void askProducer();
  void failFromCallback(const char* where);
  // Delivers connectionLost on the next pass of the loop, never inside the current call.
  void closeLater(Failure reason);
  // Closes the socket, delivers connectionLost, hands this object back to the reactor.
  void closeNow(const Failure& reason);
  void logError(const std::string& message) const;

  // Hot fields first: one cache line serves a read-echo-write pass, which matters with
  // thousands of connections whose objects are cold.
  Reactor& reactor_;
  std::unique_ptr<Protocol> protocol_;
  int fd_;
  State state_ = State::Connected;
  bool reading_ = false;
  // The write event is armed. While Connected this is exactly "output_ is not empty", so write()
  // tests it instead of touching the evbuffer.
  bool writing_ = false;
  bool paused_ = false;
  bool writeShutdown_ = false;  // loseWriteConnection asked for it
  bool writeArmed_ = false;     // the write event is added
  bool streamingProducer_ = false;
  bool producerPaused_ = false;
  IProducer* producer_ = nullptr;
  evbuffer* output_ = nullptr;  // what the kernel has not taken yet
  event* readEvent_ = nullptr;
  event* writeEvent_ = nullptr;
  event* closeEvent_ = nullptr;
  Failure pendingReason_;
  Address host_;
  Address peer_;
  const char* logSystem_;
};

// A connection accepted by a Port.
class Server : public Connection {
 public:
  Server(Reactor& reactor, int fd, std::unique_ptr<Protocol> protocol, Address host, Address peer)
      : Connection(reactor, fd, std::move(protocol), std::move(host), std::move(peer),
                   "tcp.Server") {}
};

}  // namespace twist
