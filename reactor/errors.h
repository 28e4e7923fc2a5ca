// Public. The error types twist raises or hands to callbacks, named after Twisted's
// (twisted.internet.error, twisted.internet.defer) so a Twisted user recognises them.
//
// Every error has one constructor taking what it needs, in the order it reads ("why", then the
// OS error as a std::error_code), and named constructors for the common cases
// (ConnectionLost::fromErrno(ECONNRESET)). The reasons a connection ends with most often are
// prebuilt Failures (ConnectionDone::failure(), ConnectionAborted::failure()): closing a
// connection allocates nothing for its reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace twist {

class Failure;

// Base of every error twist defines. code() is the OS error behind it ({} when there is none).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, std::error_code code = {})
      : std::runtime_error(message), code_(code) {}
  const std::error_code& code() const { return code_; }
  // The errno of code() (0 when there is none).
  int osError() const { return code_.value(); }

 private:
  std::error_code code_;
};

// An errno as a std::error_code (system category).
inline std::error_code osErrorCode(int err) { return {err, std::system_category()}; }

// A DelayedCall was used after it ran (cancel, reset, delay). Twisted's error.AlreadyCalled.
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

// listenTCP could not bind or listen. Carries the address asked for and the OS error.
class CannotListenError : public Error {
 public:
  CannotListenError(std::string interface, uint16_t port, const std::string& why,
                    std::error_code code = {});
  // "Couldn't listen on 127.0.0.1:8000: Address already in use."
  static CannotListenError fromErrno(std::string interface, uint16_t port, int err);
  // For a UNIX socket: "Couldn't listen on /run/x.sock: Address already in use." (interface() is
  // the path, port() 0).
  static CannotListenError forPath(const std::string& path, const std::string& why,
                                   std::error_code code = {});
  const std::string& interface() const { return interface_; }
  uint16_t port() const { return port_; }

 private:
  std::string interface_;
  uint16_t port_;

  struct PathTag {};
  CannotListenError(PathTag, const std::string& path, const std::string& why, std::error_code code);
};

// A datagram larger than UDP can carry (Twisted's MessageLengthError).
class MessageLengthError : public Error {
 public:
  using Error::Error;
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
  // A prebuilt Failure holding a ConnectionDone (shared, immutable; safe from any thread).
  static const Failure& failure();

 protected:
  explicit ConnectionDone(const std::string& message) : ConnectionClosed(message) {}
};

// The connection was lost in a non-clean fashion; code() is the OS error if there was one.
class ConnectionLost : public ConnectionClosed {
 public:
  explicit ConnectionLost(
      const std::string& message = "Connection to the other side was lost in a non-clean fashion.",
      std::error_code code = {})
      : ConnectionClosed(message, code) {}
  // "...lost in a non-clean fashion: Connection reset by peer."
  static ConnectionLost fromErrno(int err);
  // The reactor shut down with the connection open.
  static ConnectionLost reactorShutdown();
};

// abortConnection() was called: the connection closed at once, dropping unsent data.
class ConnectionAborted : public ConnectionLost {
 public:
  ConnectionAborted() : ConnectionLost("Connection was aborted locally.") {}
  static const Failure& failure();
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

// ---- child processes (IReactorProcess::spawnProcess) ----

// A child process exited with status 0 (Twisted's ProcessDone).
class ProcessDone : public ConnectionDone {
 public:
  ProcessDone() : ConnectionDone("A process has ended without apparent errors: exit code 0.") {}
  int exitCode() const { return 0; }
};

// A child process exited with another status, or was killed by a signal (Twisted's
// ProcessTerminated): exactly one of exitCode() and signal() is set.
class ProcessTerminated : public ConnectionLost {
 public:
  ProcessTerminated(std::optional<int> exitCode, std::optional<int> signal);
  std::optional<int> exitCode() const { return exitCode_; }
  std::optional<int> signal() const { return signal_; }

 private:
  std::optional<int> exitCode_;
  std::optional<int> signal_;
};

// signalProcess on a process that has already exited (Twisted's ProcessExitedAlready).
class ProcessExitedAlready : public Error {
 public:
  ProcessExitedAlready() : Error("The process has already exited.") {}
};

// ---- connecting (IReactorTCP::connectTCP) ----

// An outgoing connection attempt failed; code() is the OS error if there was one.
class ConnectError : public Error {
 public:
  explicit ConnectError(const std::string& message, std::error_code code = {})
      : Error(message, code) {}
  // "An error occurred while connecting: socket(): Too many open files."
  static ConnectError fromErrno(int err, std::string_view during);
};

// The local address given to connectTCP (bindAddress) could not be bound: in use, not an IP
// address, or of another family than the destination.
class ConnectBindError : public ConnectError {
 public:
  ConnectBindError(const std::string& address, const std::string& why, std::error_code code = {});
};

// The peer refused the connection (ECONNREFUSED: nothing listens there).
class ConnectionRefusedError : public ConnectError {
 public:
  ConnectionRefusedError();
};

// The attempt took longer than its timeout, or the OS gave up (code() is ETIMEDOUT then).
// Twisted's error.TimeoutError. (A Deferred that times out fails with DeferredTimeoutError.)
class TimeoutError : public ConnectError {
 public:
  TimeoutError() : ConnectError("User timeout caused connection failure.") {}
  static TimeoutError fromErrno(int err);

 private:
  using ConnectError::ConnectError;
};

// The host name did not resolve.
class DNSLookupError : public ConnectError {
 public:
  DNSLookupError(const std::string& host, const std::string& why);
};

// The attempt was stopped by Connector::stopConnecting (or the reactor shut down).
class UserError : public ConnectError {
 public:
  explicit UserError(const std::string& why = "User aborted connection.") : ConnectError(why) {}
};

// The client factory's buildProtocol returned nullptr.
class NoProtocol : public ConnectError {
 public:
  NoProtocol() : ConnectError("The factory's buildProtocol returned no protocol.") {}
};

// ---- Deferreds ----

// addTimeout's Deferred had no result in time (Twisted's defer.TimeoutError; not a
// ConnectError: nothing was connecting).
class DeferredTimeoutError : public Error {
 public:
  explicit DeferredTimeoutError(double seconds);
  double seconds() const { return seconds_; }

 private:
  double seconds_;
};

}  // namespace twist
