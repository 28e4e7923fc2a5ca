#include "twist/reactor/errors.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "twist/reactor/failure.h"

namespace twist {

CannotListenError::CannotListenError(std::string interface, uint16_t port, const std::string& why,
                                     std::error_code code)
    : Error("Couldn't listen on " + (interface.empty() ? std::string("any") : interface) + ":" +
                std::to_string(port) + ": " + why + ".",
            code),
      interface_(std::move(interface)),
      port_(port) {}

CannotListenError CannotListenError::fromErrno(std::string interface, uint16_t port, int err) {
  return CannotListenError(std::move(interface), port, std::strerror(err), osErrorCode(err));
}

namespace {
// A UNIX socket path for a message: an abstract name's leading NUL as '@', any other NUL as
// "\0" (what() is a C string).
std::string shownPath(const std::string& path) {
  std::string shown;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '\0') {
      shown += path[i];
    } else {
      shown += i == 0 ? "@" : "\\0";
    }
  }
  return shown;
}
}  // namespace

CannotListenError::CannotListenError(PathTag, const std::string& path, const std::string& why,
                                     std::error_code code)
    : Error("Couldn't listen on " + shownPath(path) + ": " + why + ".", code),
      interface_(path),
      port_(0) {}

CannotListenError CannotListenError::forPath(const std::string& path, const std::string& why,
                                             std::error_code code) {
  return CannotListenError(PathTag{}, path, why, code);
}

ProcessTerminated::ProcessTerminated(std::optional<int> exitCode, std::optional<int> signal)
    : ConnectionLost(signal ? "A process has ended with a probable error condition: process "
                              "ended by signal " +
                                  std::to_string(*signal) + " (" + strsignal(*signal) + ")."
                            : "A process has ended with a probable error condition: process "
                              "ended with exit code " +
                                  std::to_string(exitCode.value_or(-1)) + "."),
      exitCode_(exitCode),
      signal_(signal) {}

const Failure& ConnectionDone::failure() {
  static const Failure f = Failure::of(ConnectionDone());
  return f;
}

ConnectionLost ConnectionLost::fromErrno(int err) {
  return ConnectionLost(std::string("Connection to the other side was lost in a non-clean "
                                    "fashion: ") +
                            std::strerror(err) + ".",
                        osErrorCode(err));
}

ConnectionLost ConnectionLost::reactorShutdown() {
  return ConnectionLost(
      "Connection to the other side was lost in a non-clean fashion: the reactor shut down.");
}

const Failure& ConnectionAborted::failure() {
  static const Failure f = Failure::of(ConnectionAborted());
  return f;
}

WriteBufferFullError::WriteBufferFullError(size_t wouldBuffer, size_t cap)
    : ConnectionLost("Connection aborted: the peer is not reading; " + std::to_string(wouldBuffer) +
                     " bytes would wait to be sent, over the write buffer cap of " +
                     std::to_string(cap) + " bytes."),
      cap_(cap) {}

ConnectError ConnectError::fromErrno(int err, std::string_view during) {
  return ConnectError("An error occurred while connecting: " + std::string(during) + ": " +
                          std::strerror(err) + ".",
                      osErrorCode(err));
}

ConnectBindError::ConnectBindError(const std::string& address, const std::string& why,
                                   std::error_code code)
    : ConnectError("Couldn't bind to " + address + ": " + why + ".", code) {}

ConnectionRefusedError::ConnectionRefusedError()
    : ConnectError("Connection was refused by other side: " + std::to_string(ECONNREFUSED) +
                       ": Connection refused.",
                   osErrorCode(ECONNREFUSED)) {}

TimeoutError TimeoutError::fromErrno(int err) {
  return TimeoutError(std::string("Connection timed out: ") + std::strerror(err) + ".",
                      osErrorCode(err));
}

DNSLookupError::DNSLookupError(const std::string& host, const std::string& why)
    : ConnectError("DNS lookup failed: address '" + host + "' not found: " + why + ".") {}

namespace {
std::string secondsText(double seconds) {
  std::string s = std::to_string(seconds);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

DeferredTimeoutError::DeferredTimeoutError(double seconds)
    : Error("Deferred timed out after " + secondsText(seconds) + " seconds."), seconds_(seconds) {}

}  // namespace twist
