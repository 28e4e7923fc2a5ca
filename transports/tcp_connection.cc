#include "twist/transports/tcp_connection.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "twist/reactor/errors.h"
#include "twist/reactor/guard.h"
#include "twist/reactor/log.h"
#include "twist/reactor/reactor_base.h"

namespace twist::tcp {
namespace {

bool wouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

constexpr int kMaxIov = 64;
// Corked output this large is sent without waiting for the callback's end (sendEarly).
constexpr size_t kSendEarly = 16 * 1024;

// Adds or deletes `e` so that it is pending exactly when `want` is; `armed` tracks which.
void arm(event* e, bool& armed, bool want) {
  if (want == armed) return;
  armed = want;
  if (want) {
    event_add(e, nullptr);
  } else {
    event_del(e);
  }
}

// SCM_MAX_FD, the kernel's limit of descriptors in one message.
constexpr size_t kMaxDescriptorsPerMessage = 253;

}  // namespace

struct Connection::Descriptors {
  struct Pending {
    int fd;         // our duplicate, closed once sent or dropped
    size_t before;  // bytes of output_ that leave before it
  };
  std::vector<Pending> out;
  bool warnedUnwanted = false;

  void closeAll() {
    for (const Pending& p : out) ::close(p.fd);
    out.clear();
  }
};

Connection::Connection(ReactorBase& reactor, int fd, std::shared_ptr<Protocol> protocol,
                       Address host, Address peer, const char* logSystem)
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
  flushEvent_ = event_new(base, -1, 0, &Connection::onFlushEvent, this);
  output_ = evbuffer_new();
  if (peer_.is<UNIXAddress>()) fds_ = std::make_unique<Descriptors>();
}

Connection::~Connection() {
  if (fds_) fds_->closeAll();
  if (producer_ != nullptr) linkProducer(*producer_, nullptr);
  event_free(readEvent_);
  event_free(writeEvent_);
  event_free(closeEvent_);
  event_free(flushEvent_);
  evbuffer_free(output_);
  if (fd_ >= 0) ::close(fd_);
}

void Connection::start() {
  halfCloseable_ = protocol_->halfCloseable();
  updateReading();
  dispatch("connectionMade", [this] { protocol_->makeConnection(this); });
}

void Connection::insertLayer(const LayerMaker& makeLayer) {
  if (state_ != State::Connected) return;
  std::shared_ptr<Protocol> layer = makeLayer(protocol_);
  if (!layer) throw std::invalid_argument("insertLayer: no layer");
  // The protocol whose callback may be running is kept alive by the layer, which holds it.
  protocol_ = std::move(layer);
  halfCloseable_ = protocol_->halfCloseable();
  protocol_->makeConnection(this);
}

template <class F>
void Connection::dispatch(const char* what, F&& fn) {
  inDispatch_ = true;
  try {
    fn();
  } catch (...) {
    failFromCallback(what);
  }
  inDispatch_ = false;
  flushCorked();
}

void Connection::logError(const std::string& message) const {
  log::error(logSystem_, message + " (peer " + peer_.toString() + ")");
}

void Connection::failFromCallback(const char* where) {
  Failure f = Failure::current();
  logError(std::string("Unhandled exception in ") + where + ": " + f.toString() +
           "; aborting the connection");
  if (state_ == State::Closed) return;  // connectionLost already ran (or is running)
  if (state_ == State::Closing) {
    // Closing already (abortConnection or loseConnection came first): connectionLost still
    // gets the exception, as documented, not the reason of the earlier call.
    pendingReason_ = std::move(f);
    return;
  }
  discardOutput();
  closeLater(std::move(f));
}

// libevent calls these from C: nothing may escape (see reactor/guard.h). An exception that gets
// this far (the protocol's own ones are caught closer to the call) aborts the connection.
template <class F>
void Connection::guarded(const char* what, F&& fn) noexcept {
  try {
    fn();
  } catch (...) {
    detail::logUnhandledException(logSystem_, what);
    try {
      abortConnection();
    } catch (...) {
    }
  }
}

// ---- reading ----

void Connection::onReadable(int, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  self->guarded("reading", [self] { self->handleRead(); });
}

void Connection::handleRead() {
  if (!reading_) return;
  // One read of up to 64 KiB into the reactor's shared buffer, handed to the protocol as a view.
  // libevent's evbuffer_read stops at 4096 bytes per call, and an evbuffer drained after every
  // delivery frees and reallocates its chain on each read; bench/ measures the difference.
  char* buf = reactor_.readBuffer();
  ssize_t n = fds_ ? receiveWithDescriptors(buf) : ::read(fd_, buf, ReactorBase::kReadBufferSize);
  if (n > 0) {
    if (fds_ && (state_ == State::Closing || state_ == State::Closed)) return;
    dispatch("dataReceived",
             [&] { protocol_->dataReceived(std::string_view(buf, static_cast<size_t>(n))); });
    return;
  }
  if (n < 0 && wouldBlock(errno)) return;
  if (n < 0) {
    int err = errno;
    closeNow(Failure::of(ConnectionLost::fromErrno(err)));
    return;
  }
  readEnded();
}

ssize_t Connection::receiveWithDescriptors(char* buf) {
  iovec iov{buf, ReactorBase::kReadBufferSize};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDescriptorsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    // The kernel dropped descriptors it could not install (this process is out of them): the
    // bytes still come; the peer's descriptors are lost.
    log::warn(logSystem_, "descriptors from peer " + peer_.toString() +
                              " were dropped (MSG_CTRUNC): out of file descriptors?");
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      deliverDescriptor(fd);
    }
  }
  return n;
}

void Connection::deliverDescriptor(int fd) {
  IFileDescriptorReceiver* receiver =
      state_ == State::Connected ? protocol_->fileDescriptorReceiver() : nullptr;
  if (receiver == nullptr) {
    ::close(fd);
    if (state_ == State::Connected && !fds_->warnedUnwanted) {
      fds_->warnedUnwanted = true;
      log::warn(logSystem_, "peer " + peer_.toString() +
                                " sent file descriptors; the protocol is not an "
                                "IFileDescriptorReceiver, so they were closed");
    }
    return;
  }
  dispatch("fileDescriptorReceived", [&] { receiver->fileDescriptorReceived(fd); });
}

void Connection::readEnded() {
  readEnded_ = true;
  updateReading();
  if (state_ != State::Connected) return;
  if (halfCloseable_ != nullptr) {
    // The protocol keeps the connection open to write; it ends once our side is shut too.
    try {
      halfCloseable_->readConnectionLost();
    } catch (...) {
      failFromCallback("readConnectionLost");
      return;
    }
    if (state_ == State::Connected && writeShutDone_) closeNow(ConnectionDone::failure());
    return;
  }
  // The peer closed its side. Send what is still buffered (also after loseWriteConnection:
  // nothing written may be lost), then close cleanly.
  if (pendingBytes() > 0) {
    state_ = State::Disconnecting;
    pendingReason_ = ConnectionDone::failure();
    updateWriteEvent();
    return;
  }
  closeNow(ConnectionDone::failure());
}

void Connection::updateReading() {
  arm(readEvent_, reading_, state_ == State::Connected && !paused_ && !outputFull_ && !readEnded_);
}

void Connection::pauseProducing() {
  paused_ = true;
  updateReading();
}

void Connection::resumeProducing() {
  paused_ = false;
  updateReading();
}

// ---- writing ----

size_t Connection::pendingBytes() const {
  return pendingView_.size() + evbuffer_get_length(output_);
}

bool Connection::overCap(size_t more) {
  if (limits_.hardCap == WriteBufferLimits::kNoLimit) return false;
  size_t buffered = pendingBytes();
  if (buffered <= limits_.hardCap && more <= limits_.hardCap - buffered) return false;
  WriteBufferFullError error(buffered + more, limits_.hardCap);
  log::warn(logSystem_, std::string(error.what()) + " (peer " + peer_.toString() +
                            "; raise the cap with setWriteBufferLimits, or register a producer)");
  discardOutput();
  closeLater(Failure::of(std::move(error)));
  return true;
}

void Connection::cork() {
  corked_ = true;
  sendEarlyBlocked_ = false;
  corkedBytes_ = 0;
  // Inside one of our callbacks the flush follows when it returns (dispatch); otherwise (a
  // timer, another connection's callback) it follows from the loop, after the current callback.
  if (!inDispatch_) event_active(flushEvent_, 0, 0);
}

void Connection::discardOutput() {
  evbuffer_drain(output_, evbuffer_get_length(output_));
  pendingView_ = {};
  if (fds_) fds_->closeAll();
}

bool Connection::descriptorsPending() const { return fds_ && !fds_->out.empty(); }

void Connection::sendDescriptor(int fd) {
  if (!fds_) throw std::logic_error("sendFileDescriptor: not a UNIX socket connection");
  if (state_ != State::Connected || writeShutdown_) return;
  if (fds_->out.size() >= IUNIXTransport::kMaxPendingDescriptors) {
    throw std::length_error(
        "sendFileDescriptor: " + std::to_string(IUNIXTransport::kMaxPendingDescriptors) +
        " descriptors already wait to be sent");
  }
  int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) throw std::system_error(errno, std::generic_category(), "sendFileDescriptor");
  materializeView();  // what was written before goes before it
  fds_->out.push_back({own, evbuffer_get_length(output_)});
}

void Connection::materializeView() {
  if (pendingView_.empty()) return;
  evbuffer_add(output_, pendingView_.data(), pendingView_.size());
  corkedBytes_ += pendingView_.size();
  pendingView_ = {};
}

void Connection::write(std::string_view data) {
  if (state_ != State::Connected || writeShutdown_ || data.empty()) return;
  assert(!(writing_ && corked_));
  if (overCap(data.size())) return;
  if (!writing_ && !corked_) {
    cork();
    // An echo writes (part of) what it was just given: keep a view into the reactor's read
    // buffer, which stays put until this callback returns, and send from it then.
    const char* readBuffer = reactor_.readBuffer();
    if (inDispatch_ && !descriptorsPending() && data.data() >= readBuffer &&
        data.data() + data.size() <= readBuffer + ReactorBase::kReadBufferSize) {
      pendingView_ = data;
      applyHighWater();
      return;
    }
  } else {
    materializeView();
  }
  if (corked_ && data.size() >= kSendEarly && !sendEarlyBlocked_ &&
      evbuffer_get_length(output_) == 0 && !descriptorsPending()) {
    // Large, and nothing before it: straight to the kernel, without the copy into output_
    // (a TLS layer's full records take this way); see sendEarly.
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) n = 0;  // a full socket, or an error flushCorked meets again
    if (static_cast<size_t>(n) < data.size()) sendEarlyBlocked_ = true;
    data.remove_prefix(static_cast<size_t>(n));
    if (data.empty()) return;
  }
  evbuffer_add(output_, data.data(), data.size());
  corkedBytes_ += data.size();
  sendEarly();
  applyHighWater();
}

void Connection::writeSequence(std::span<const std::string_view> data) {
  if (state_ != State::Connected || writeShutdown_) return;
  assert(!(writing_ && corked_));
  size_t total = 0;
  for (auto piece : data) total += piece.size();
  if (total == 0 || overCap(total)) return;
  if (!writing_ && !corked_) {
    cork();
  } else {
    materializeView();
  }
  for (auto piece : data) {
    if (!piece.empty()) evbuffer_add(output_, piece.data(), piece.size());
  }
  corkedBytes_ += total;
  sendEarly();
  applyHighWater();
}

void Connection::sendEarly() {
  // Corked output of kSendEarly or more goes now: one system call per 16 KiB costs little,
  // and the peer starts on it while the callback goes on (a TLS echo of 64 KiB writes four
  // records; sent one by one, the first leaves before the last is encrypted). Only the send:
  // a full socket or an error is dealt with when the callback returns (flushCorked).
  if (!corked_ || sendEarlyBlocked_ || corkedBytes_ < kSendEarly) return;
  corkedBytes_ = 0;
  if (flush() != Flush::Done) sendEarlyBlocked_ = true;
}

void Connection::onFlushEvent(int, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  self->guarded("flushing", [self] { self->flushCorked(); });
}

void Connection::flushCorked() {
  if (!corked_) return;
  corked_ = false;
  if (state_ == State::Closing || state_ == State::Closed) {
    pendingView_ = {};
    return;
  }
  if (!pendingView_.empty()) {
    // Only the one write: straight from where it is to the kernel; copy only what it leaves.
    ssize_t n = ::send(fd_, pendingView_.data(), pendingView_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (!wouldBlock(errno)) {
        int err = errno;
        pendingView_ = {};
        closeNow(Failure::of(ConnectionLost::fromErrno(err)));
        return;
      }
      n = 0;
    }
    std::string_view rest = pendingView_.substr(static_cast<size_t>(n));
    pendingView_ = {};
    if (!rest.empty()) evbuffer_add(output_, rest.data(), rest.size());
  } else if (flush() == Flush::Failed) {
    int err = errno;
    closeNow(Failure::of(ConnectionLost::fromErrno(err)));
    return;
  }
  if (evbuffer_get_length(output_) > 0) {
    afterBuffering();  // the rest waits for the socket
    return;
  }
  if (state_ == State::Disconnecting) {
    closeNow(pendingReason_);
    return;
  }
  afterDraining(0);
}

Connection::Flush Connection::flush() {
  if (descriptorsPending()) return flushWithDescriptors();
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

Connection::Flush Connection::flushWithDescriptors() {
  auto& out = fds_->out;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDescriptorsPerMessage)];
  while (evbuffer_get_length(output_) > 0) {
    // Descriptors queued before the next byte go with it, and the message ends before the
    // byte the next descriptor was queued before, so each arrives with its own byte.
    size_t limit = evbuffer_get_length(output_);
    size_t attach = 0;
    while (attach < out.size() && attach < kMaxDescriptorsPerMessage && out[attach].before == 0) {
      ++attach;
    }
    if (attach < out.size()) limit = std::min(limit, std::max<size_t>(out[attach].before, 1));
    iovec iov[kMaxIov];
    int chunks = evbuffer_peek(output_, static_cast<ev_ssize_t>(limit), nullptr, iov, kMaxIov);
    size_t count = 0, asked = 0;
    for (; count < static_cast<size_t>(std::min(chunks, kMaxIov)) && asked < limit; ++count) {
      iov[count].iov_len = std::min(iov[count].iov_len, limit - asked);
      asked += iov[count].iov_len;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    if (attach > 0) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * attach);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * attach);
      for (size_t i = 0; i < attach; ++i) {
        std::memcpy(CMSG_DATA(c) + i * sizeof(int), &out[i].fd, sizeof(int));
      }
    }
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return wouldBlock(errno) ? Flush::Pending : Flush::Failed;
    }
    evbuffer_drain(output_, static_cast<size_t>(n));
    for (size_t i = 0; i < attach; ++i) ::close(out[i].fd);  // the peer has its own now
    out.erase(out.begin(), out.begin() + static_cast<ptrdiff_t>(attach));
    for (auto& p : out) p.before -= std::min(p.before, static_cast<size_t>(n));
    if (static_cast<size_t>(n) < asked) return Flush::Pending;
    if (out.empty()) return flush();
  }
  return Flush::Done;
}

void Connection::onWritable(int, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  self->guarded("writing", [self] { self->handleWrite(); });
}

void Connection::handleWrite() {
  if (state_ == State::Closing || state_ == State::Closed) return;
  if (corked_) {  // the socket is asked now: what was corked goes with the rest
    corked_ = false;
    materializeView();
  }
  if (flush() == Flush::Failed) {
    int err = errno;
    closeNow(Failure::of(ConnectionLost::fromErrno(err)));
    return;
  }
  if (evbuffer_get_length(output_) == 0) stopWriting();  // before any callback writes again
  if (state_ == State::Connected) afterDraining(evbuffer_get_length(output_));
  if (evbuffer_get_length(output_) > 0) return;  // more to send: the write event stays armed
  if (state_ == State::Disconnecting) {
    closeNow(pendingReason_);
    return;
  }
  if (state_ != State::Connected) return;
  if (writeShutdown_ && !writeShutDone_) {
    shutdownWrite();
    return;
  }
  if (producer_ != nullptr && !streamingProducer_) askProducer();
  updateWriteEvent();
}

void Connection::shutdownWrite() {
  writeShutDone_ = true;
  ::shutdown(fd_, SHUT_WR);
  updateWriteEvent();
  if (halfCloseable_ != nullptr) {
    try {
      halfCloseable_->writeConnectionLost();
    } catch (...) {
      failFromCallback("writeConnectionLost");
      return;
    }
  }
  // Both halves are closed now: the connection is over.
  if (state_ == State::Connected && readEnded_) closeNow(ConnectionDone::failure());
}

void Connection::askProducer() {
  // A pull producer writes more each time the output buffer is empty.
  try {
    producer_->resumeProducing();
  } catch (...) {
    failFromCallback("resumeProducing");
  }
}

void Connection::afterBuffering() {
  startWriting();
  applyHighWater();
}

void Connection::applyHighWater() {
  size_t buffered = pendingBytes();
  if (buffered <= limits_.highWater) return;
  if (producer_ != nullptr) {
    if (streamingProducer_ && !producerPaused_) {
      producerPaused_ = true;
      try {
        producer_->pauseProducing();
      } catch (...) {
        failFromCallback("pauseProducing");
      }
    }
  } else if (!outputFull_) {
    // Nobody to pause but the peer that keeps asking: stop reading its requests until it reads
    // what it was sent.
    outputFull_ = true;
    updateReading();
  }
}

void Connection::afterDraining(size_t buffered) {
  if (buffered > limits_.lowWater) return;
  if (outputFull_) {
    outputFull_ = false;
    updateReading();
  }
  if (producer_ != nullptr && streamingProducer_ && producerPaused_) {
    producerPaused_ = false;
    try {
      producer_->resumeProducing();
    } catch (...) {
      failFromCallback("resumeProducing");
    }
  }
}

void Connection::setWriteBufferLimits(const WriteBufferLimits& limits) {
  if (limits.lowWater > limits.highWater) {
    throw std::invalid_argument("setWriteBufferLimits: lowWater is above highWater");
  }
  limits_ = limits;
  if (state_ != State::Connected) return;
  size_t buffered = pendingBytes();
  if (buffered > limits_.highWater) {
    applyHighWater();
  } else {
    afterDraining(buffered);
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
  bool connected = state_ == State::Connected;
  arm(writeEvent_, writeArmed_,
      writing_ || (connected && producer_ != nullptr && !streamingProducer_ && !writeShutdown_) ||
          (connected && writeShutdown_ && !writeShutDone_));
}

void Connection::registerProducer(IProducer* producer, bool streaming) {
  if (producer == nullptr) throw std::invalid_argument("registerProducer: null producer");
  if (producer_ != nullptr)
    throw std::logic_error("registerProducer: a producer is already registered");
  if (state_ != State::Connected) {
    producer->stopProducing();
    return;
  }
  linkProducer(*producer, this);
  producer_ = producer;
  streamingProducer_ = streaming;
  producerPaused_ = false;
  updateWriteEvent();  // a pull producer is asked once the socket can take data
}

void Connection::unregisterProducer() {
  if (producer_ != nullptr) linkProducer(*producer_, nullptr);
  producer_ = nullptr;
  producerPaused_ = false;
  updateWriteEvent();
}

size_t Connection::bufferedSize() const { return pendingBytes(); }

// ---- closing ----

void Connection::loseConnection() {
  if (state_ != State::Connected) return;
  if (pendingBytes() == 0) {
    closeLater(ConnectionDone::failure());
    return;
  }
  state_ = State::Disconnecting;
  pendingReason_ = ConnectionDone::failure();
  updateReading();
  if (!corked_) startWriting();  // corked: flushCorked sends it, and closes once it has gone
  updateWriteEvent();
}

void Connection::loseWriteConnection() {
  if (state_ != State::Connected || writeShutdown_) return;
  writeShutdown_ = true;
  // The shutdown happens from the loop once the output has gone (handleWrite), never inside
  // this call; no more asking a pull producer.
  updateWriteEvent();
}

void Connection::abortConnection() {
  if (state_ == State::Closing || state_ == State::Closed) return;
  discardOutput();
  closeLater(ConnectionAborted::failure());
}

void Connection::closeLater(Failure reason) {
  state_ = State::Closing;  // first: no producer keeps the write event armed now
  writing_ = false;
  updateReading();
  updateWriteEvent();
  pendingReason_ = std::move(reason);
  event_active(closeEvent_, 0, 0);
}

void Connection::onCloseEvent(int, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  self->guarded("closing", [self] { self->closeNow(self->pendingReason_); });
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
  event_del(flushEvent_);
  corked_ = false;
  ::close(fd_);
  fd_ = -1;
  discardOutput();
  // As a producer for another connection, this one is done: its consumer forgets it.
  detachFromConsumer();
  if (IProducer* producer = producer_) {
    producer_ = nullptr;
    linkProducer(*producer, nullptr);
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
  try {
    connectionEnded(why);
  } catch (...) {
    logError("Unhandled exception after connectionLost: " + Failure::current().toString());
  }
  reactor_.removeSelectable(this);  // last: may free this object once the callback returns
}

void Connection::reactorShutdown() {
  if (state_ == State::Closing) {
    closeNow(pendingReason_);
  } else {
    closeNow(Failure::of(ConnectionLost::reactorShutdown()));
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
void Connection::setTcpKeepAliveTimes(int idleSeconds, int intervalSeconds, int probes) {
  if (idleSeconds < 0 || intervalSeconds < 0 || probes < 0) {
    throw std::invalid_argument("setTcpKeepAliveTimes: negative value");
  }
  if (fd_ < 0) return;
  setIntOption(fd_, SOL_SOCKET, SO_KEEPALIVE, true);
  for (auto [name, value] :
       {std::pair{TCP_KEEPIDLE, idleSeconds}, std::pair{TCP_KEEPINTVL, intervalSeconds},
        std::pair{TCP_KEEPCNT, probes}}) {
    if (value > 0) ::setsockopt(fd_, IPPROTO_TCP, name, &value, sizeof value);
  }
}
bool Connection::getTcpKeepAlive() const {
  return fd_ >= 0 && getIntOption(fd_, SOL_SOCKET, SO_KEEPALIVE);
}

}  // namespace twist::tcp
