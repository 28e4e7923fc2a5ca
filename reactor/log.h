// Public. Logging through one small observer interface (the idea of twisted.logger): twist emits
// events; one process-wide observer receives them. The default observer writes to stderr.
#pragma once

#include <memory>
#include <string_view>

#include "twist/reactor/cxx20.h"

namespace twist::log {

enum class Level { Debug, Info, Warn, Error };

// What an observer receives. The views are valid only during emit().
struct Event {
  Level level;
  std::string_view system;  // where it came from: "reactor", "tcp.Port", "tcp.Server", ...
  std::string_view message;
};

// Receives every event at or above the minimum level. emit() may be called from any thread that
// runs a reactor; implementations must be thread safe if several reactors run on several threads.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void emit(const Event& event) = 0;
};

// Replaces the process-wide observer; nullptr restores the stderr default. Thread safe.
void setObserver(std::shared_ptr<Observer> observer);

// Events below this level are dropped before reaching the observer (default: Info). Thread safe.
void setMinimumLevel(Level level);

const char* levelName(Level level);

// Sends one event to the current observer. Thread safe; never throws (when the observer throws,
// the line goes to stderr).
void emit(Level level, std::string_view system, std::string_view message);

inline void debug(std::string_view system, std::string_view message) {
  emit(Level::Debug, system, message);
}
inline void info(std::string_view system, std::string_view message) {
  emit(Level::Info, system, message);
}
inline void warn(std::string_view system, std::string_view message) {
  emit(Level::Warn, system, message);
}
inline void error(std::string_view system, std::string_view message) {
  emit(Level::Error, system, message);
}

}  // namespace twist::log
