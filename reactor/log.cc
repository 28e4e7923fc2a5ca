#include "twist/reactor/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace twist::log {
namespace {

class StderrObserver : public Observer {
 public:
  void emit(const Event& e) override {
    std::string line;
    line.reserve(e.system.size() + e.message.size() + 16);
    line.append("[").append(e.system).append("] ").append(levelName(e.level));
    line.append(": ").append(e.message).append("\n");
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
};

std::mutex gMutex;
std::shared_ptr<Observer> gObserver;  // guarded by gMutex; null means the stderr default
std::atomic<int> gMinimum{static_cast<int>(Level::Info)};

std::shared_ptr<Observer> current() {
  std::lock_guard<std::mutex> lock(gMutex);
  if (!gObserver) gObserver = std::make_shared<StderrObserver>();
  return gObserver;
}

}  // namespace

void setObserver(std::shared_ptr<Observer> observer) {
  std::lock_guard<std::mutex> lock(gMutex);
  gObserver = std::move(observer);
}

void setMinimumLevel(Level level) { gMinimum.store(static_cast<int>(level)); }

const char* levelName(Level level) {
  switch (level) {
    case Level::Debug:
      return "debug";
    case Level::Info:
      return "info";
    case Level::Warn:
      return "warn";
    case Level::Error:
      return "error";
  }
  return "?";
}

void emit(Level level, std::string_view system, std::string_view message) {
  if (static_cast<int>(level) < gMinimum.load(std::memory_order_relaxed)) return;
  std::shared_ptr<Observer> observer = current();
  try {
    observer->emit(Event{level, system, message});
  } catch (...) {
    // A broken observer must not turn a log line into a crash; the line goes to stderr.
    std::string line = "[" + std::string(system) + "] " + levelName(level) + ": " +
                       std::string(message) + " (the log observer threw)\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
}

}  // namespace twist::log
