#include "twist/reactor/prefork.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <thread>

#include "twist/reactor/log.h"
#include "twist/transports/tcp_port.h"

namespace twist::prefork {

int bindTCP(uint16_t port, const ListenTCPOptions& options) {
  return tcp::bindListeningSocket(port, options);
}

Address localAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    throw std::system_error(errno, std::generic_category(), "getsockname");
  }
  return Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

std::vector<int> listenFds() {
  // Read once (the variables are removed): later calls, from endpoints for example, get the same.
  static const std::vector<int> cached = [] {
    std::vector<int> fds;
    const char* pid = std::getenv("LISTEN_PID");
    const char* count = std::getenv("LISTEN_FDS");
    if (pid != nullptr && count != nullptr && std::atol(pid) == static_cast<long>(::getpid())) {
      long n = std::atol(count);
      for (long i = 0; i < n && i < 1024; ++i) {
        int fd = 3 + static_cast<int>(i);  // SD_LISTEN_FDS_START
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        fds.push_back(fd);
      }
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    return fds;
  }();
  return cached;
}

namespace {

using Clock = std::chrono::steady_clock;

// Fires `done` once the reactor has nothing left to serve (polled every 20 ms).
void whenIdle(ReactorBase& reactor, Deferred<void> done) {
  if (reactor.selectableCount() == 0) {
    done.callback();
    return;
  }
  reactor.callLater(0.02, [&reactor, done]() mutable { whenIdle(reactor, std::move(done)); });
}

std::string signalName(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    case SIGKILL:
      return "SIGKILL";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    default:
      return "signal " + std::to_string(sig);
  }
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by " + signalName(WTERMSIG(status));
  return "ended";
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

class Supervisor {
 public:
  Supervisor(const std::function<int(size_t)>& worker, const Options& options, sigset_t original)
      : worker_(worker), options_(options), original_(original) {
    count_ = options.workers != 0 ? options.workers : std::thread::hardware_concurrency();
    if (count_ == 0) count_ = 1;
    delay_.assign(count_, options.restartDelay);
  }

  int run(const sigset_t& watched) {
    for (size_t i = 0; i < count_; ++i) {
      if (spawn(i) < 0) {
        int err = errno;
        stopAll();
        throw std::system_error(err, std::generic_category(), "prefork: fork");
      }
    }
    log::info("prefork", "started " + std::to_string(count_) + " workers");
    while (!(stopping_ && workers_.empty())) {
      waitForSignal(watched);
      reap();
      if (!stopping_) {
        restartDue();
        rollOn();
      } else if (Clock::now() >= killAt_ && !killed_) {
        killed_ = true;
        for (auto& [pid, w] : workers_) {
          log::warn("prefork", "worker " + std::to_string(w.index) + " (pid " +
                                   std::to_string(pid) + ") did not stop in time: SIGKILL");
          ::kill(pid, SIGKILL);
        }
      }
    }
    log::info("prefork", "every worker has stopped");
    return 0;
  }

 private:
  struct Worker {
    size_t index;
    Clock::time_point started;
  };

  pid_t spawn(size_t index) {
    pid_t pid = ::fork();
    if (pid < 0) return pid;
    if (pid == 0) {
      // The worker: the signals the parent waits for are its own again.
      for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_DFL);
      ::sigprocmask(SIG_SETMASK, &original_, nullptr);
      int code = 1;
      try {
        code = worker_(index);
      } catch (const std::exception& e) {
        log::error("prefork", std::string("worker ") + std::to_string(index) + ": " + e.what());
      } catch (...) {
        log::error("prefork", "worker " + std::to_string(index) + ": an unknown exception");
      }
      std::fflush(nullptr);
      ::_exit(code);
    }
    workers_[pid] = Worker{index, Clock::now()};
    return pid;
  }

  // Waits for a signal, or until the next thing due (a restart, a kill).
  void waitForSignal(const sigset_t& watched) {
    auto now = Clock::now();
    auto until = now + std::chrono::seconds(1);
    for (auto& [at, index] : restarts_) until = std::min(until, at);
    if (stopping_ && !killed_) until = std::min(until, killAt_);
    if (rolling_) until = std::min(until, rolling_->deadline);
    auto wait = std::max(Clock::duration::zero(), until - now);
    timespec ts{};
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    int sig = ::sigtimedwait(&watched, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      if (!stopping_) {
        log::info("prefork", "received " + signalName(sig) + ": stopping the workers");
        stopAll();
      }
    } else if (sig == SIGHUP && !stopping_) {
      log::info("prefork", "received SIGHUP: restarting the workers one at a time");
      rollQueue_.clear();
      for (auto& [pid, w] : workers_) rollQueue_.push_back(pid);
    }
  }

  void stopAll() {
    stopping_ = true;
    restarts_.clear();
    rollQueue_.clear();
    rolling_.reset();
    killAt_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(options_.stopTimeout));
    for (auto& [pid, w] : workers_) ::kill(pid, SIGTERM);
  }

  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto it = workers_.find(pid);
      if (it == workers_.end()) continue;
      Worker w = it->second;
      workers_.erase(it);
      if (stopping_) continue;
      if (rolling_ && rolling_->oldPid == pid) {
        rolling_.reset();  // replaced already
        continue;
      }
      rollQueue_.erase(std::remove(rollQueue_.begin(), rollQueue_.end(), pid), rollQueue_.end());
      // Died on its own: start another after a delay, longer while it keeps dying young.
      bool young = Clock::now() - w.started < std::chrono::seconds(1);
      double& d = delay_[w.index];
      d = young ? std::min(30.0, std::max(d * 2, options_.restartDelay)) : options_.restartDelay;
      log::warn("prefork", "worker " + std::to_string(w.index) + " (pid " + std::to_string(pid) +
                               ") " + describe(status) + "; starting another in " + seconds(d));
      restarts_.emplace_back(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(d)),
                             w.index);
    }
  }

  void restartDue() {
    auto now = Clock::now();
    for (auto it = restarts_.begin(); it != restarts_.end();) {
      if (it->first <= now) {
        if (spawn(it->second) < 0) {
          log::error("prefork", std::string("fork: ") + std::strerror(errno) + "; trying again");
          it->first = now + std::chrono::seconds(1);
          ++it;
          continue;
        }
        it = restarts_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // SIGHUP: start the replacement of the next old worker, then stop the old one; the next
  // follows once it has gone (or after stopTimeout, with SIGKILL).
  void rollOn() {
    if (rolling_) {
      if (Clock::now() < rolling_->deadline) return;
      ::kill(rolling_->oldPid, SIGKILL);
      rolling_->deadline = Clock::now() + std::chrono::seconds(5);
      return;
    }
    while (!rollQueue_.empty()) {
      pid_t old = rollQueue_.front();
      rollQueue_.pop_front();
      auto it = workers_.find(old);
      if (it == workers_.end()) continue;  // gone meanwhile
      if (spawn(it->second.index) < 0) {
        log::error("prefork",
                   std::string("fork: ") + std::strerror(errno) + "; the restart stops here");
        rollQueue_.clear();
        return;
      }
      ::kill(old, SIGTERM);
      rolling_ =
          Rolling{old, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(options_.stopTimeout))};
      return;
    }
  }

  struct Rolling {
    pid_t oldPid;
    Clock::time_point deadline;
  };

  const std::function<int(size_t)>& worker_;
  Options options_;
  sigset_t original_;
  size_t count_ = 1;
  std::map<pid_t, Worker> workers_;
  std::vector<double> delay_;
  std::vector<std::pair<Clock::time_point, size_t>> restarts_;
  std::deque<pid_t> rollQueue_;
  std::optional<Rolling> rolling_;
  bool stopping_ = false;
  bool killed_ = false;
  Clock::time_point killAt_;
};

}  // namespace

void drainOnShutdown(ReactorBase& reactor, std::shared_ptr<IListeningPort> port) {
  reactor.addSystemEventTrigger("before", "shutdown", [&reactor, port]() -> Deferred<void> {
    (void)port->stopListening();
    Deferred<void> done;
    whenIdle(reactor, done);
    return done;
  });
}

int run(const std::function<int(size_t worker)>& worker, const Options& options) {
  // The parent takes its signals with sigtimedwait: blocked, so none is lost between waits.
  sigset_t watched, original;
  sigemptyset(&watched);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&watched, sig);
  ::sigprocmask(SIG_BLOCK, &watched, &original);
  int code;
  try {
    if (options.whenReady) options.whenReady();
    Supervisor supervisor(worker, options, original);
    code = supervisor.run(watched);
  } catch (...) {
    ::sigprocmask(SIG_SETMASK, &original, nullptr);
    throw;
  }
  ::sigprocmask(SIG_SETMASK, &original, nullptr);
  return code;
}

}  // namespace twist::prefork
