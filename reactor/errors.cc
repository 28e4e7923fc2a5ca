#include "reactor/errors.h"

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

}  // namespace twist
