// Runs an example binary as its own process for end-to-end tests: reads its stdout line by
// line with a deadline, signals it, waits for its exit status.
#pragma once

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace twist::testing {

class Subprocess {
 public:
  // args[0] is the binary's path relative to the test's runfiles ("examples/echo_server").
  // stderr is merged into stdout when mergeStderr is set.
  explicit Subprocess(std::vector<std::string> args, bool mergeStderr = false) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    if (mergeStderr) posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) throw std::runtime_error("posix_spawn " + args[0] + " failed");
    stdout_ = out[0];
  }
  ~Subprocess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stdout_);
  }
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // The next line of output, with its "\n" ("" at EOF or after `timeoutSeconds`).
  std::string readLine(double timeoutSeconds = 20) {
    std::string line;
    char c;
    while (line.empty() || line.back() != '\n') {
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(timeoutSeconds * 1000)) <= 0) break;
      if (::read(stdout_, &c, 1) != 1) break;
      line += c;
    }
    return line;
  }
  // Reads lines until one contains `needle`; returns it ("" if none came in time).
  std::string readUntil(const std::string& needle, double timeoutSeconds = 20) {
    for (;;) {
      std::string line = readLine(timeoutSeconds);
      if (line.empty() || line.find(needle) != std::string::npos) return line;
    }
  }
  pid_t pid() const { return pid_; }
  // A field of /proc/PID/status in KiB ("VmRSS", "VmHWM": the peak), or -1.
  long statusKiB(const std::string& field) const {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid_) + "/status").c_str(), "r");
    if (f == nullptr) return -1;
    char line[256];
    long value = -1;
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::string(line).rfind(field + ":", 0) == 0) {
        value = std::strtol(line + field.size() + 1, nullptr, 10);
        break;
      }
    }
    std::fclose(f);
    return value;
  }
  // Sends `sig` and waits for the exit; returns the wait status.
  int signalAndWait(int sig) {
    ::kill(pid_, sig);
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer catches signals itself and hands them to the program's handler at its next
    // intercepted call; one that lands just before a blocking call (an idle server's epoll_wait)
    // waits for that call to return, which for an idle server is never (seen here in about 1 of
    // 100 SIGTERMs to a TSan build of examples/echo_server; not in plain or ASan builds). Only
    // under TSan, the signal is sent again while the process has not exited.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    for (int i = 0; pidfd >= 0 && i < 30; ++i) {
      pollfd p{pidfd, POLLIN, 0};
      if (::poll(&p, 1, 2000) != 0) break;
      ::kill(pid_, sig);
    }
    if (pidfd >= 0) ::close(pidfd);
#endif
    return waitExit();
  }
  int waitExit() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
};

// The port in a "listening on HOST:PORT\n" line.
inline std::string portFrom(std::string line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line.substr(line.rfind(':') + 1);
}

// Runs a shell command; returns its stdout and sets *status to its wait status.
inline std::string shell(const std::string& command, int* status) {
  FILE* f = ::popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  *status = ::pclose(f);
  return out;
}

// Runs a Python script (python3 -c, through a quoted here-document: no escaping of the script
// for the shell); returns its stdout and sets *status to its wait status.
inline std::string python(const std::string& script, int* status) {
  return shell("/usr/bin/python3 -c \"$(cat <<'PY'\n" + script + "PY\n)\"", status);
}

// Polls `cond` every 5 ms until it holds or `seconds` pass: for what another process changes,
// which no reactor of the test's can be driven to see. True if it held.
template <class F>
bool eventually(F cond, double seconds = 20) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

}  // namespace twist::testing
