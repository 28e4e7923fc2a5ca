#include "twist/reactor/guard.h"

#include <string>

#include "twist/reactor/failure.h"
#include "twist/reactor/log.h"

namespace twist::detail {

void logUnhandledException(const char* system, const char* what) noexcept {
  try {
    log::error(system, std::string("Unhandled exception in ") + what + ": " +
                           Failure::current().toString());
  } catch (...) {
  }
}

}  // namespace twist::detail
