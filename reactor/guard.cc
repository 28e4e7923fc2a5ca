#include "reactor/guard.h"

#include <string>

#include "reactor/failure.h"
#include "reactor/log.h"

namespace twist::detail {

void logUnhandledException(const char* system, const char* what) noexcept {
  try {
    log::error(system, std::string("Unhandled exception in ") + what + ": " +
                           Failure::current().toString());
  } catch (...) {
  }
}

}  // namespace twist::detail
