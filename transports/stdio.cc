#include "twist/transports/stdio.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "twist/reactor/errors.h"
#include "twist/reactor/guard.h"
#include "twist/reactor/log.h"
#include "twist/reactor/reactor_base.h"

namespace twist {
namespace {

// Pipes, sockets and terminals are watched in the loop; regular files and devices such as
// /dev/null cannot be (epoll refuses them: they are always ready).
bool pollable(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return false;
  if (S_ISCHR(st.st_mode)) return ::isatty(fd) == 1;
  return true;
}

// Makes fd non-blocking; returns its flags before.
int makeNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK) == 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  return flags;
}

// Points fd at /dev/null: whoever reads the other end of a pipe sees EOF (if nobody else holds
// it), and the descriptor number stays taken.
void retire(int fd, int flags) {
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags);
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, fd);
    ::close(null);
  }
}

}  // namespace

StandardIO::StandardIO(ReactorBase& reactor, std::shared_ptr<Protocol> protocol, int in, int out)
    : reactor_(reactor), protocol_(std::move(protocol)), in_(in), out_(out) {}

std::shared_ptr<StandardIO> StandardIO::start(ReactorBase& reactor,
                                              std::shared_ptr<Protocol> protocol, int stdinFd,
                                              int stdoutFd) {
  if (!protocol) throw std::invalid_argument("StandardIO needs a protocol");
  if (::fcntl(stdinFd, F_GETFD) < 0 || ::fcntl(stdoutFd, F_GETFD) < 0) {
    throw std::invalid_argument("StandardIO: stdin or stdout is not open");
  }
  detail::ignoreSigpipeIfDefault();  // a reader of stdout that went away is EPIPE, not death
  std::shared_ptr<StandardIO> io(new StandardIO(reactor, std::move(protocol), stdinFd, stdoutFd));
  event_base* base = reactor.eventBase();
  io->inPollable_ = pollable(stdinFd);
  io->outPollable_ = pollable(stdoutFd);
  if (io->inPollable_) {
    io->inFlags_ = makeNonBlocking(stdinFd);
    io->readEvent_ =
        event_new(base, stdinFd, EV_READ | EV_PERSIST, &StandardIO::onReadable, io.get());
  }
  if (io->outPollable_) {
    io->outFlags_ = makeNonBlocking(stdoutFd);
    io->writeEvent_ =
        event_new(base, stdoutFd, EV_WRITE | EV_PERSIST, &StandardIO::onWritable, io.get());
  }
  io->laterEvent_ = event_new(base, -1, 0, &StandardIO::onLater, io.get());
  io->output_ = evbuffer_new();
  io->halfCloseable_ = io->protocol_->halfCloseable();
  reactor.addSelectable(io);
  io->updateReading();
  io->guarded("connectionMade", [&] { io->protocol_->makeConnection(io.get()); });
  return io;
}

StandardIO::~StandardIO() {
  if (readEvent_ != nullptr) event_free(readEvent_);
  if (writeEvent_ != nullptr) event_free(writeEvent_);
  if (laterEvent_ != nullptr) event_free(laterEvent_);
  if (output_ != nullptr) evbuffer_free(output_);
}

template <class F>
void StandardIO::guarded(const char* what, F&& fn) {
  try {
    fn();
  } catch (...) {
    log::error("stdio", std::string("Unhandled exception in ") + what + ": " +
                            Failure::current().toString() + "; closing standard I/O");
    if (!closing_ && !closed_) {
      evbuffer_drain(output_, evbuffer_get_length(output_));
      closeLater(Failure::current());
    }
  }
}

// ---- reading ----

void StandardIO::updateReading() {
  bool want = !closing_ && !closed_ && !disconnecting_ && !paused_ && !outputFull_ && !inputEnded_;
  if (inPollable_) {
    if (want) {
      event_add(readEvent_, nullptr);
    } else {
      event_del(readEvent_);
    }
  } else if (want) {
    event_active(laterEvent_, 0, 0);  // the next chunk of a regular file, from the loop
  }
}

void StandardIO::onReadable(int, short, void* arg) {
  auto* self = static_cast<StandardIO*>(arg);
  detail::guardCallback("stdio", "reading stdin", [self] { self->handleRead(); });
}

void StandardIO::onLater(int, short, void* arg) {
  auto* self = static_cast<StandardIO*>(arg);
  detail::guardCallback("stdio", "standard I/O", [self] {
    if (self->closing_) {
      self->closeNow();
      return;
    }
    // A half-close or a pull producer waiting for an empty buffer.
    if (evbuffer_get_length(self->output_) == 0) self->flushed();
    if (!self->inPollable_ && !self->closing_) {
      self->handleRead();  // a regular file: the next chunk
      self->updateReading();
    }
  });
}

void StandardIO::handleRead() {
  if (closing_ || closed_ || disconnecting_ || paused_ || outputFull_ || inputEnded_) return;
  char* buf = reactor_.readBuffer();
  ssize_t n = ::read(in_, buf, ReactorBase::kReadBufferSize);
  if (n > 0) {
    guarded("dataReceived",
            [&] { protocol_->dataReceived(std::string_view(buf, static_cast<size_t>(n))); });
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  inputEnded();  // EOF, or an error reading: no more input either way
}

void StandardIO::inputEnded() {
  inputEnded_ = true;
  updateReading();
  if (halfCloseable_ != nullptr) {
    guarded("readConnectionLost", [&] { halfCloseable_->readConnectionLost(); });
    if (!closing_ && !closed_ && outClosed_) closeLater(ConnectionDone::failure());
    return;
  }
  loseConnection();
}

void StandardIO::pauseProducing() {
  paused_ = true;
  updateReading();
}

void StandardIO::resumeProducing() {
  paused_ = false;
  updateReading();
}

// ---- writing ----

void StandardIO::write(std::string_view data) {
  if (disconnecting_ || closing_ || closed_ || writeShutdown_ || outClosed_ || data.empty()) {
    return;
  }
  if (evbuffer_get_length(output_) == 0) {
    ssize_t n = ::write(out_, data.data(), data.size());
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      int err = errno;
      outClosed_ = true;
      closeLater(Failure::of(ConnectionLost::fromErrno(err)));
      return;
    }
    data.remove_prefix(static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (data.empty()) return;
  }
  size_t buffered = evbuffer_get_length(output_);
  if (limits_.hardCap != WriteBufferLimits::kNoLimit &&
      (buffered > limits_.hardCap || data.size() > limits_.hardCap - buffered)) {
    WriteBufferFullError error(buffered + data.size(), limits_.hardCap);
    log::warn("stdio", std::string(error.what()) + " (stdout is not being read)");
    evbuffer_drain(output_, buffered);
    closeLater(Failure::of(std::move(error)));
    return;
  }
  evbuffer_add(output_, data.data(), data.size());
  afterWrite();
}

void StandardIO::writeSequence(std::span<const std::string_view> data) {
  for (auto piece : data) write(piece);
}

void StandardIO::afterWrite() {
  if (!outPollable_) {
    handleWrite();  // a regular file takes it all now
    return;
  }
  event_add(writeEvent_, nullptr);
  if (evbuffer_get_length(output_) <= limits_.highWater) return;
  if (producer_ != nullptr && streaming_ && !producerPaused_) {
    producerPaused_ = true;
    guarded("pauseProducing", [&] { producer_->pauseProducing(); });
  } else if (producer_ == nullptr && !outputFull_) {
    outputFull_ = true;  // stop reading requests until the answers have gone
    updateReading();
  }
}

void StandardIO::onWritable(int, short, void* arg) {
  auto* self = static_cast<StandardIO*>(arg);
  detail::guardCallback("stdio", "writing stdout", [self] { self->handleWrite(); });
}

void StandardIO::handleWrite() {
  while (evbuffer_get_length(output_) > 0) {
    int n = evbuffer_write(output_, out_);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      int err = errno;
      outClosed_ = true;
      evbuffer_drain(output_, evbuffer_get_length(output_));
      if (!closing_ && !closed_) closeLater(Failure::of(ConnectionLost::fromErrno(err)));
      return;
    }
  }
  if (writeEvent_ != nullptr) event_del(writeEvent_);
  flushed();
}

void StandardIO::flushed() {
  if (outputFull_ && evbuffer_get_length(output_) <= limits_.lowWater) {
    outputFull_ = false;
    updateReading();
  }
  if (producer_ != nullptr && streaming_ && producerPaused_) {
    producerPaused_ = false;
    guarded("resumeProducing", [&] { producer_->resumeProducing(); });
  }
  if (disconnecting_ && !closing_ && !closed_) {
    closeLater(ConnectionDone::failure());
    return;
  }
  if (writeShutdown_ && !outClosed_) {
    outClosed_ = true;
    retire(out_, outFlags_);
    outFlags_ = -1;
    if (halfCloseable_ != nullptr) {
      guarded("writeConnectionLost", [&] { halfCloseable_->writeConnectionLost(); });
    }
    if (inputEnded_ && !closing_ && !closed_) closeLater(ConnectionDone::failure());
    return;
  }
  if (producer_ != nullptr && !streaming_ && !closing_ && !closed_) {
    guarded("resumeProducing", [&] { producer_->resumeProducing(); });
  }
}

size_t StandardIO::bufferedSize() const { return evbuffer_get_length(output_); }

void StandardIO::setWriteBufferLimits(const WriteBufferLimits& limits) {
  if (limits.lowWater > limits.highWater) {
    throw std::invalid_argument("setWriteBufferLimits: lowWater is above highWater");
  }
  limits_ = limits;
}

void StandardIO::registerProducer(IProducer* producer, bool streaming) {
  if (producer == nullptr) throw std::invalid_argument("registerProducer: null producer");
  if (producer_ != nullptr) {
    throw std::logic_error("registerProducer: a producer is already registered");
  }
  if (disconnecting()) {
    producer->stopProducing();
    return;
  }
  linkProducer(*producer, this);
  producer_ = producer;
  streaming_ = streaming;
  producerPaused_ = false;
  if (!streaming && evbuffer_get_length(output_) == 0) {
    event_active(laterEvent_, 0, 0);  // asked from the loop
  }
}

void StandardIO::unregisterProducer() {
  if (producer_ != nullptr) linkProducer(*producer_, nullptr);
  producer_ = nullptr;
}

// ---- closing ----

void StandardIO::loseConnection() {
  if (disconnecting_ || closing_ || closed_) return;
  disconnecting_ = true;
  updateReading();
  if (evbuffer_get_length(output_) == 0 || outClosed_) closeLater(ConnectionDone::failure());
}

void StandardIO::loseWriteConnection() {
  if (writeShutdown_ || closing_ || closed_) return;
  writeShutdown_ = true;
  if (evbuffer_get_length(output_) == 0) event_active(laterEvent_, 0, 0);
}

void StandardIO::abortConnection() {
  if (closing_ || closed_) return;
  evbuffer_drain(output_, evbuffer_get_length(output_));
  closeLater(ConnectionAborted::failure());
}

void StandardIO::closeLater(Failure reason) {
  closing_ = true;
  reason_ = std::move(reason);
  updateReading();
  if (writeEvent_ != nullptr) event_del(writeEvent_);
  event_active(laterEvent_, 0, 0);
}

void StandardIO::closeNow() {
  if (closed_) return;
  closed_ = true;
  if (readEvent_ != nullptr) event_del(readEvent_);
  if (writeEvent_ != nullptr) event_del(writeEvent_);
  event_del(laterEvent_);
  // stdout first: on a terminal both are one open file, and stdin's saved flags are the ones
  // from before either was made non-blocking.
  if (!outClosed_ || outFlags_ >= 0) retire(out_, outFlags_);
  retire(in_, inFlags_);
  detachFromConsumer();
  if (IProducer* p = producer_) {
    producer_ = nullptr;
    linkProducer(*p, nullptr);
    guarded("stopProducing", [&] { p->stopProducing(); });
  }
  Failure why = reason_;
  try {
    protocol_->notifyConnectionLost(why);
  } catch (...) {
    log::error("stdio", "Unhandled exception in connectionLost: " + Failure::current().toString());
  }
  reactor_.removeSelectable(this);  // last: may free this object once the callback returns
}

void StandardIO::reactorShutdown() {
  if (closed_) return;
  if (!closing_) reason_ = Failure::of(ConnectionLost::reactorShutdown());
  closing_ = true;
  closeNow();
}

}  // namespace twist
