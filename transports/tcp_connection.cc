#include "transports/tcp_connection.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <stdexcept>

#include "reactor/errors.h"
#include "reactor/log.h"
#include "reactor/reactor.h"

namespace twist {
namespace {

bool wouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

constexpr int kMaxIov = 64;

}  // namespace

Connection::Connection(Reactor& reactor, int fd, std::unique_ptr<Protocol> protocol, Address host,
                       Address peer, const char* logSystem)
    : reactor_(reactor),
      protocol_(std::move(protocol)),
      fd_(fd),
      host_(std::move(host)),
      peer_(std::move(peer)),
      logSystem_(logSystem) {
  event_base* base = reactor_.eventBase();
  readEvent_ = event_new(base, fd_, EV_READ | EV_PERSIST, &Connection::onReadable, this);
  writeEvent_ = event_new(base, fd_, EV_WRITE | EV_PERSIST, &Connection::onWritable, this);
  closeEvent_ = event_new(base, -1, 0, &Connection::onCloseEvent, this);
  output_ = evbuffer_new();
}

Connection::~Connection() {
  event_free(readEvent_);
  event_free(writeEvent_);
  event_free(closeEvent_);
  evbuffer_free(output_);
  if (fd_ >= 0) ::close(fd_);
}

void Connection::start() {
  startReading();
  try {
    protocol_->makeConnection(this);
  } catch (...) {
    failFromCallback("connectionMade");
  }
}

void Connection::logError(const std::string& message) const {
  log::error(logSystem_, message + " (peer " + peer_.hostPort() + ")");
}

void Connection::failFromCallback(const char* where) {
  Failure f = Failure::current();
  logError(std::string("Unhandled exception in ") + where + ": " + f.toString() +
           "; aborting the connection");
  if (state_ == State::Closing || state_ == State::Closed) return;
  evbuffer_drain(output_, evbuffer_get_length(output_));
  closeLater(std::move(f));
}

// ---- reading ----

void Connection::onReadable(int, short, void* arg) { static_cast<Connection*>(arg)->handleRead(); }

void Connection::handleRead() {
  if (!reading_) return;
  // One read of up to 64 KiB into the reactor's shared buffer, handed to the protocol as a view.
  // libevent's evbuffer_read stops at 4096 bytes per call, and an evbuffer drained after every
  // delivery frees and reallocates its chain on each read; bench/ measures the difference.
  char* buf = reactor_.readBuffer();
  ssize_t n = ::read(fd_, buf, Reactor::kReadBufferSize);
  if (n > 0) {
    try {
      protocol_->dataReceived(std::string_view(buf, static_cast<size_t>(n)));
    } catch (...) {
      failFromCallback("dataReceived");
    }
    return;
  }
  if (n < 0 && wouldBlock(errno)) return;
  stopReading();
  if (n < 0) {
    int err = errno;
    closeNow(Failure::of(ConnectionLost(err)));
    return;
  }
  // The peer closed its side. Send what is still buffered, then close cleanly.
  if (state_ == State::Connected && evbuffer_get_length(output_) > 0 && !writeShutdown_) {
    state_ = State::Disconnecting;
    pendingReason_ = Failure::of(ConnectionDone());
    return;
  }
  if (state_ == State::Connected || state_ == State::Disconnecting) {
    closeNow(Failure::of(ConnectionDone()));
  }
}

void Connection::startReading() {
  if (reading_ || paused_) return;
  reading_ = true;
  event_add(readEvent_, nullptr);
}

void Connection::stopReading() {
  if (!reading_) return;
  reading_ = false;
  event_del(readEvent_);
}

void Connection::pauseProducing() {
  paused_ = true;
  stopReading();
}

void Connection::resumeProducing() {
  paused_ = false;
  if (state_ == State::Connected) startReading();
}

// ---- writing ----

void Connection::write(std::string_view data) {
  if (state_ != State::Connected || writeShutdown_ || data.empty()) return;
  assert(writing_ == (evbuffer_get_length(output_) > 0));
  if (!writing_) {
    // Nothing queued: hand the bytes straight to the kernel and keep only what it leaves.
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(data.size())) return;
    if (n < 0) {
      if (!wouldBlock(errno)) {
        closeLater(Failure::of(ConnectionLost(errno)));
        return;
      }
      n = 0;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  evbuffer_add(output_, data.data(), data.size());
  afterBuffering();
}

void Connection::writeSequence(std::span<const std::string_view> data) {
  if (state_ != State::Connected || writeShutdown_) return;
  assert(writing_ == (evbuffer_get_length(output_) > 0));
  size_t first = 0;
  size_t skip = 0;  // bytes of data[first] already sent
  if (!writing_ && data.size() <= kMaxIov) {
    iovec iov[kMaxIov];
    size_t total = 0;
    for (size_t i = 0; i < data.size(); ++i) {
      iov[i].iov_base = const_cast<char*>(data[i].data());
      iov[i].iov_len = data[i].size();
      total += data[i].size();
    }
    if (total == 0) return;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = data.size();
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(total)) return;
    if (n < 0) {
      if (!wouldBlock(errno)) {
        closeLater(Failure::of(ConnectionLost(errno)));
        return;
      }
      n = 0;
    }
    size_t sent = static_cast<size_t>(n);
    while (first < data.size() && sent >= data[first].size()) sent -= data[first++].size();
    skip = sent;
  }
  for (size_t i = first; i < data.size(); ++i) {
    std::string_view piece = data[i].substr(i == first ? skip : 0);
    if (!piece.empty()) evbuffer_add(output_, piece.data(), piece.size());
  }
  if (evbuffer_get_length(output_) > 0) afterBuffering();
}

Connection::Flush Connection::flush() {
  // evbuffer_write would use writev, which raises SIGPIPE on a closed peer; sendmsg with
  // MSG_NOSIGNAL sends the same chunks without touching the process's signal handling.
  while (evbuffer_get_length(output_) > 0) {
    iovec iov[kMaxIov];
    int chunks = evbuffer_peek(output_, -1, nullptr, iov, kMaxIov);
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(std::min(chunks, kMaxIov));
    size_t asked = 0;
    for (size_t i = 0; i < msg.msg_iovlen; ++i) asked += iov[i].iov_len;
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return wouldBlock(errno) ? Flush::Pending : Flush::Failed;
    }
    evbuffer_drain(output_, static_cast<size_t>(n));
    if (static_cast<size_t>(n) < asked) return Flush::Pending;  // the socket buffer is full
  }
  return Flush::Done;
}

void Connection::onWritable(int, short, void* arg) { static_cast<Connection*>(arg)->handleWrite(); }

void Connection::handleWrite() {
  if (state_ == State::Closing || state_ == State::Closed) return;
  Flush r = flush();
  if (r == Flush::Failed) {
    int err = errno;
    stopReading();
    closeNow(Failure::of(ConnectionLost(err)));
    return;
  }
  if (r == Flush::Pending) return;
  stopWriting();
  if (state_ == State::Disconnecting) {
    closeNow(pendingReason_);
    return;
  }
  if (writeShutdown_) {
    ::shutdown(fd_, SHUT_WR);
  } else if (producer_ != nullptr) {
    askProducer();
  }
  updateWriteEvent();
}

void Connection::askProducer() {
  // The output buffer is empty: a pull producer writes more; a paused push producer resumes.
  if (streamingProducer_ && !producerPaused_) return;
  producerPaused_ = false;
  try {
    producer_->resumeProducing();
  } catch (...) {
    failFromCallback("resumeProducing");
  }
}

void Connection::afterBuffering() {
  startWriting();
  if (producer_ != nullptr && streamingProducer_ && !producerPaused_ &&
      evbuffer_get_length(output_) > kHighWater) {
    producerPaused_ = true;
    try {
      producer_->pauseProducing();
    } catch (...) {
      failFromCallback("pauseProducing");
    }
  }
}

void Connection::startWriting() {
  if (writing_) return;
  writing_ = true;
  updateWriteEvent();
}

void Connection::stopWriting() {
  if (!writing_) return;
  writing_ = false;
  updateWriteEvent();
}

void Connection::updateWriteEvent() {
  bool want = writing_ || (producer_ != nullptr && !streamingProducer_ &&
                           state_ == State::Connected && !writeShutdown_);
  if (want == writeArmed_) return;
  writeArmed_ = want;
  if (want) {
    event_add(writeEvent_, nullptr);
  } else {
    event_del(writeEvent_);
  }
}

void Connection::registerProducer(IProducer* producer, bool streaming) {
  if (producer_ != nullptr)
    throw std::logic_error("registerProducer: a producer is already registered");
  if (state_ != State::Connected) {
    producer->stopProducing();
    return;
  }
  producer_ = producer;
  streamingProducer_ = streaming;
  producerPaused_ = false;
  updateWriteEvent();  // a pull producer is asked once the socket can take data
}

void Connection::unregisterProducer() {
  producer_ = nullptr;
  producerPaused_ = false;
  updateWriteEvent();
}

size_t Connection::bufferedSize() const { return evbuffer_get_length(output_); }

// ---- closing ----

void Connection::loseConnection() {
  if (state_ != State::Connected) return;
  stopReading();
  if (evbuffer_get_length(output_) == 0) {
    closeLater(Failure::of(ConnectionDone()));
    return;
  }
  state_ = State::Disconnecting;
  pendingReason_ = Failure::of(ConnectionDone());
  startWriting();
}

void Connection::loseWriteConnection() {
  if (state_ != State::Connected || writeShutdown_) return;
  writeShutdown_ = true;
  if (evbuffer_get_length(output_) == 0) ::shutdown(fd_, SHUT_WR);
  updateWriteEvent();  // no more asking a pull producer
}

void Connection::abortConnection() {
  if (state_ == State::Closing || state_ == State::Closed) return;
  evbuffer_drain(output_, evbuffer_get_length(output_));
  closeLater(Failure::of(ConnectionAborted()));
}

void Connection::closeLater(Failure reason) {
  stopReading();
  state_ = State::Closing;  // first: no producer keeps the write event armed now
  writing_ = false;
  updateWriteEvent();
  pendingReason_ = std::move(reason);
  event_active(closeEvent_, 0, 0);
}

void Connection::onCloseEvent(int, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  self->closeNow(self->pendingReason_);
}

void Connection::closeNow(const Failure& reason) {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  Failure why = reason;  // `reason` may be pendingReason_, which we are about to clear
  pendingReason_ = Failure();
  reading_ = writing_ = writeArmed_ = false;
  event_del(readEvent_);
  event_del(writeEvent_);
  event_del(closeEvent_);
  ::close(fd_);
  fd_ = -1;
  if (IProducer* producer = producer_) {
    producer_ = nullptr;
    try {
      producer->stopProducing();
    } catch (...) {
      logError("Unhandled exception in stopProducing: " + Failure::current().toString());
    }
  }
  try {
    protocol_->notifyConnectionLost(why);
  } catch (...) {
    logError("Unhandled exception in connectionLost: " + Failure::current().toString());
  }
  connectionEnded(why);
  reactor_.removeSelectable(this);  // last: may free this object once the callback returns
}

void Connection::reactorShutdown() {
  if (state_ == State::Closing) {
    closeNow(pendingReason_);
  } else {
    closeNow(Failure::of(ConnectionLost(0, "the reactor shut down")));
  }
}

// ---- socket options ----

namespace {
void setIntOption(int fd, int level, int name, bool on) {
  int v = on ? 1 : 0;
  ::setsockopt(fd, level, name, &v, sizeof v);
}
bool getIntOption(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, level, name, &v, &len) != 0) return false;
  return v != 0;
}
}  // namespace

void Connection::setTcpNoDelay(bool on) {
  if (fd_ >= 0) setIntOption(fd_, IPPROTO_TCP, TCP_NODELAY, on);
}
bool Connection::getTcpNoDelay() const {
  return fd_ >= 0 && getIntOption(fd_, IPPROTO_TCP, TCP_NODELAY);
}
void Connection::setTcpKeepAlive(bool on) {
  if (fd_ >= 0) setIntOption(fd_, SOL_SOCKET, SO_KEEPALIVE, on);
}
bool Connection::getTcpKeepAlive() const {
  return fd_ >= 0 && getIntOption(fd_, SOL_SOCKET, SO_KEEPALIVE);
}

}  // namespace twist
