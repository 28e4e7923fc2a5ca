// Helpers for twist's own tests: the public ones of //protocols/testing:reactor_testing
// (runUntil, ClientThread, socket helpers), and a log observer that records what twist logs.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "twist/protocols/testing/reactor_testing.h"
#include "twist/reactor/log.h"
#include "twist/reactor/reactor.h"

namespace twist::testing {

// True in sanitizer builds, whose shadow memory and quarantine of freed blocks make a process's
// memory figures meaningless: tests that measure memory check only the behaviour there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// True if fd is an open socket that is listening (SO_ACCEPTCONN).
inline bool isListening(int fd) {
  int listening = 0;
  socklen_t len = sizeof listening;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening == 1;
}

// Records every log event while it is installed; restores the default on destruction.
class LogCapture : public log::Observer {
 public:
  static std::shared_ptr<LogCapture> install() {
    auto c = std::make_shared<LogCapture>();
    log::setObserver(c);
    return c;
  }
  ~LogCapture() override = default;
  void emit(const log::Event& e) override {
    std::lock_guard<std::mutex> lock(mutex_);
    lines_.push_back(std::string(log::levelName(e.level)) + " [" + std::string(e.system) + "] " +
                     std::string(e.message));
  }
  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }
  // How many lines contain `needle`.
  int count(std::string_view needle) const {
    int n = 0;
    for (const auto& l : lines()) n += l.find(needle) != std::string::npos;
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

// Uninstalls a LogCapture at scope exit.
struct LogCaptureScope {
  std::shared_ptr<LogCapture> capture = LogCapture::install();
  ~LogCaptureScope() { log::setObserver(nullptr); }
  LogCapture* operator->() const { return capture.get(); }
};

}  // namespace twist::testing
