#include "reactor/errors.h"

#include <cerrno>
#include <cstring>
#include <utility>

namespace twist {

CannotListenError::CannotListenError(std::string interface, uint16_t port, int osError,
                                     const std::string& why)
    : Error("Couldn't listen on " + (interface.empty() ? std::string("any") : interface) + ":" +
            std::to_string(port) + ": " + why + "."),
      interface_(std::move(interface)),
      port_(port),
      osError_(osError) {}

namespace {
std::string lostMessage(int osError, const std::string& detail) {
  std::string m = "Connection to the other side was lost in a non-clean fashion";
  if (osError != 0) m += std::string(": ") + std::strerror(osError);
  if (!detail.empty()) m += (osError != 0 ? " (" + detail + ")" : ": " + detail);
  return m + ".";
}
}  // namespace

ConnectionLost::ConnectionLost(int osError, const std::string& detail)
    : ConnectionClosed(lostMessage(osError, detail)), osError_(osError) {}

WriteBufferFullError::WriteBufferFullError(size_t wouldBuffer, size_t cap)
    : ConnectionLost("Connection aborted: the peer is not reading; " + std::to_string(wouldBuffer) +
                         " bytes would wait to be sent, over the "
                         "write buffer cap of " +
                         std::to_string(cap) + " bytes.",
                     0),
      cap_(cap) {}

ConnectError::ConnectError(const std::string& why, int osError)
    : Error("An error occurred while connecting: " +
            (osError != 0 ? std::to_string(osError) + ": " + std::strerror(osError) + ". " : "") +
            why),
      osError_(osError) {}

ConnectBindError::ConnectBindError(const std::string& address, int osError, const std::string& why)
    : ConnectError(osError, "Couldn't bind to " + address + ": " + why + ".") {}

ConnectionRefusedError::ConnectionRefusedError()
    : ConnectError(ECONNREFUSED, "Connection was refused by other side: " +
                                     std::to_string(ECONNREFUSED) + ": Connection refused.") {}

TimeoutError::TimeoutError(int osError)
    : ConnectError(osError, osError != 0 ? std::string("Connection timed out: ") +
                                               std::strerror(osError) + "."
                                         : std::string("User timeout caused connection failure.")) {
}

TimeoutError TimeoutError::after(double seconds) {
  std::string s = std::to_string(seconds);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return TimeoutError(0, "Deferred timed out after " + s + " seconds.");
}

DNSLookupError::DNSLookupError(const std::string& host, const std::string& why)
    : ConnectError(0, "DNS lookup failed: address '" + host + "' not found: " + why + ".") {}

UserError::UserError(const std::string& why) : ConnectError(0, why) {}

NoProtocol::NoProtocol() : ConnectError(0, "The factory's buildProtocol returned no protocol.") {}

}  // namespace twist
