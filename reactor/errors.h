// Public. The error types twist raises or hands to callbacks, named after Twisted's
// twisted.internet.error so a Twisted user recognises them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace twist {

// Base of every error twist defines.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A DelayedCall was used after it ran (cancel, reset, delay).
class AlreadyCalled : public Error {
 public:
  AlreadyCalled() : Error("AlreadyCalled: the delayed call has already run") {}
};

// A DelayedCall was used after it was cancelled (or its reactor was destroyed).
class AlreadyCancelled : public Error {
 public:
  AlreadyCancelled() : Error("AlreadyCancelled: the delayed call was already cancelled") {}
};

// stop() on a reactor that is not running (or is already stopping).
class ReactorNotRunning : public Error {
 public:
  ReactorNotRunning() : Error("ReactorNotRunning: can't stop a reactor that isn't running") {}
};

// run() or iterate() on a reactor whose loop is already running.
class ReactorAlreadyRunning : public Error {
 public:
  ReactorAlreadyRunning() : Error("ReactorAlreadyRunning: the reactor's loop is already running") {}
};

// run() on a reactor that has already run and stopped: create a new Reactor instead.
class ReactorNotRestartable : public Error {
 public:
  ReactorNotRestartable() : Error("ReactorNotRestartable: a stopped reactor can't run again") {}
};

// The reactor shut down before it could complete a call made from another thread
// (blockingCallFromThread): the waiting thread gets this instead of blocking forever.
class ReactorShutdownError : public Error {
 public:
  ReactorShutdownError()
      : Error("ReactorShutdownError: the reactor shut down before the call could complete") {}
};

// listenTCP could not bind or listen. Carries the address asked for and the OS error (0 if none).
class CannotListenError : public Error {
 public:
  CannotListenError(std::string interface, uint16_t port, int osError, const std::string& why);
  const std::string& interface() const { return interface_; }
  uint16_t port() const { return port_; }
  int osError() const { return osError_; }

 private:
  std::string interface_;
  uint16_t port_;
  int osError_;
};

// Base of the reasons handed to Protocol::connectionLost.
class ConnectionClosed : public Error {
 public:
  using Error::Error;
};

// The connection was closed cleanly: loseConnection() finished, or the peer closed (EOF).
class ConnectionDone : public ConnectionClosed {
 public:
  ConnectionDone() : ConnectionClosed("Connection was closed cleanly.") {}
};

// The connection was lost in a non-clean fashion. osError() is the errno (0 if there was none,
// for example when the reactor shut down).
class ConnectionLost : public ConnectionClosed {
 public:
  explicit ConnectionLost(int osError, const std::string& detail = "");
  int osError() const { return osError_; }

 protected:
  ConnectionLost(const std::string& message, int osError)
      : ConnectionClosed(message), osError_(osError) {}

 private:
  int osError_;
};

// abortConnection() was called: the connection closed at once, dropping unsent data.
class ConnectionAborted : public ConnectionLost {
 public:
  ConnectionAborted() : ConnectionLost("Connection was aborted locally.", 0) {}
};

// The peer did not read: a write would have left more than the transport's cap
// (WriteBufferLimits::hardCap) waiting to be sent, so the connection was aborted instead of
// letting the process grow without bound.
class WriteBufferFullError : public ConnectionLost {
 public:
  WriteBufferFullError(size_t wouldBuffer, size_t cap);
  size_t cap() const { return cap_; }

 private:
  size_t cap_;
};

// ---- connecting (Reactor::connectTCP) ----

// An outgoing connection attempt failed. osError() is the errno (0 if none).
class ConnectError : public Error {
 public:
  explicit ConnectError(const std::string& why, int osError = 0);
  int osError() const { return osError_; }

 protected:
  ConnectError(int osError, const std::string& message) : Error(message), osError_(osError) {}

 private:
  int osError_;
};

// The local address given to connectTCP (bindAddress) could not be bound: in use, not an IP
// address, or of another family than the destination. osError() is the errno (0 if none).
class ConnectBindError : public ConnectError {
 public:
  ConnectBindError(const std::string& address, int osError, const std::string& why);
};

// The peer refused the connection (ECONNREFUSED: nothing listens there).
class ConnectionRefusedError : public ConnectError {
 public:
  ConnectionRefusedError();
};

// The attempt took longer than its timeout (or the OS gave up: osError() is ETIMEDOUT). Also
// what addTimeout fails a Deferred with (made by TimeoutError::after).
class TimeoutError : public ConnectError {
 public:
  explicit TimeoutError(int osError = 0);
  static TimeoutError after(double seconds);

 private:
  TimeoutError(int osError, const std::string& message) : ConnectError(osError, message) {}
};

// The host name did not resolve.
class DNSLookupError : public ConnectError {
 public:
  DNSLookupError(const std::string& host, const std::string& why);
};

// The attempt was stopped by Connector::stopConnecting (or the reactor shut down).
class UserError : public ConnectError {
 public:
  explicit UserError(const std::string& why = "User aborted connection.");
};

// The client factory's buildProtocol returned nullptr.
class NoProtocol : public ConnectError {
 public:
  NoProtocol();
};

}  // namespace twist
