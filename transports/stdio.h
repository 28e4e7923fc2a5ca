// Public. StandardIO: this process's stdin and stdout as a transport for any Protocol
// (Twisted's twisted.internet.stdio.StandardIO), so a LineReceiver can be a command-line tool or
// a child process speaking over pipes:
//
//   twist::Reactor reactor;
//   auto io = twist::StandardIO::start(reactor, std::make_shared<MyLineProtocol>());
//   reactor.run();
//
// Input arrives as dataReceived. At EOF on stdin a protocol that is an IHalfCloseableProtocol
// hears readConnectionLost() and may go on writing; any other is disconnected once what it wrote
// has gone out (connectionLost(ConnectionDone)). stdout that closes (the reader went away: EPIPE)
// ends the connection with ConnectionLost (SIGPIPE is ignored when its action is the default).
// Pipes, sockets and terminals are watched in the loop (made non-blocking while in use; their flags
// are restored at the end); a regular file given as stdin is read a chunk per loop turn, and a
// regular file as stdout is written at once. Output waiting for a slow reader is bounded like a
// socket's (WriteBufferLimits: above the high mark reading stdin pauses; over the hard cap the
// connection aborts). When the connection ends the descriptors are pointed at /dev/null rather than
// closed, so that 0 and 1 never become some later socket; the reader of stdout sees EOF if nothing
// else holds it.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "twist/reactor/failure.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/selectable.h"
#include "twist/reactor/transport.h"

struct event;
struct evbuffer;

namespace twist {

class ReactorBase;

class StandardIO : public ITransport, public Selectable {
 public:
  // Connects `protocol` to `stdinFd` and `stdoutFd` (by default this process's) and calls its
  // makeConnection. The reactor keeps it until the connection ends.
  static std::shared_ptr<StandardIO> start(ReactorBase& reactor, std::shared_ptr<Protocol> protocol,
                                           int stdinFd = 0, int stdoutFd = 1);
  ~StandardIO() override;
  StandardIO(const StandardIO&) = delete;
  StandardIO& operator=(const StandardIO&) = delete;

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
  Address getPeer() const override { return {}; }
  Address getHost() const override { return {}; }
  void setTcpNoDelay(bool) override {}
  bool getTcpNoDelay() const override { return false; }
  void setTcpKeepAlive(bool) override {}
  bool getTcpKeepAlive() const override { return false; }
  void setTcpKeepAliveTimes(int, int, int) override {}
  void setWriteBufferLimits(const WriteBufferLimits& limits) override;
  WriteBufferLimits writeBufferLimits() const override { return limits_; }
  bool disconnecting() const override { return disconnecting_ || closed_; }
  size_t bufferedSize() const override;

  void reactorShutdown() override;

 private:
  StandardIO(ReactorBase& reactor, std::shared_ptr<Protocol> protocol, int in, int out);
  static void onReadable(int fd, short what, void* arg);
  static void onWritable(int fd, short what, void* arg);
  static void onLater(int fd, short what, void* arg);
  void handleRead();
  void handleWrite();
  void inputEnded();
  void updateReading();
  void afterWrite();
  void flushed();
  // Ends the connection: connectionLost(reason) from the loop, never inside the caller's call.
  void closeLater(Failure reason);
  void closeNow();
  template <class F>
  void guarded(const char* what, F&& fn);

  ReactorBase& reactor_;
  std::shared_ptr<Protocol> protocol_;
  int in_, out_;
  int inFlags_ = -1, outFlags_ = -1;  // their flags before we made them non-blocking
  bool inPollable_ = true, outPollable_ = true;
  event* readEvent_ = nullptr;
  event* writeEvent_ = nullptr;
  event* laterEvent_ = nullptr;  // a regular file's next chunk, or the close
  evbuffer* output_ = nullptr;
  WriteBufferLimits limits_;
  IHalfCloseableProtocol* halfCloseable_ = nullptr;
  IProducer* producer_ = nullptr;
  bool streaming_ = false;
  bool producerPaused_ = false;
  bool paused_ = false, outputFull_ = false, inputEnded_ = false;
  bool disconnecting_ = false, writeShutdown_ = false, outClosed_ = false;
  bool closing_ = false, closed_ = false;
  Failure reason_;
};

}  // namespace twist
