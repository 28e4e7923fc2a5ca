#include "twist/reactor/guard.h"

#include <csignal>
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

void ignoreSigpipeIfDefault() noexcept {
  static const bool done = [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGPIPE, &ignore, nullptr);
    }
    return true;
  }();
  (void)done;
}

}  // namespace twist::detail
