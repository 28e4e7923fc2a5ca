// For twist's own transports and reactor, not for protocols. libevent calls twist from C code,
// which an exception must never unwind through (it would abort the process or leave libevent's
// state half-updated), so every function libevent calls runs inside guardCallback.
#pragma once

#include <utility>

namespace twist::detail {

// Logs the exception being handled as "Unhandled exception in <what>: <failure>" under
// `system`. Never throws (a failing log observer is ignored). Call inside a catch block.
void logUnhandledException(const char* system, const char* what) noexcept;

// Runs fn(); an exception escaping it is logged and stops there.
template <class F>
void guardCallback(const char* system, const char* what, F&& fn) noexcept {
  try {
    std::forward<F>(fn)();
  } catch (...) {
    logUnhandledException(system, what);
  }
}

// For transports that write to pipes (which have no MSG_NOSIGNAL): sets SIGPIPE to be ignored
// if its action is still the default, once per process, so that writing to a reader that went
// away fails with EPIPE instead of killing the process (as Python does at startup). A handler
// or SIG_IGN the program installed is left alone.
void ignoreSigpipeIfDefault() noexcept;

}  // namespace twist::detail
