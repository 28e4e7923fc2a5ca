#include "twist/transports/process.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "twist/reactor/errors.h"
#include "twist/reactor/guard.h"
#include "twist/reactor/log.h"
#include "twist/reactor/reactor_base.h"

extern char** environ;

namespace twist::process {
namespace {

std::atomic<bool> gUseSignals{false};

int openPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  if (gUseSignals.load()) return -1;
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
#else
  return -1;
#endif
}

// What the child reports through the exec-error pipe when it cannot run the program.
struct ChildError {
  int err;
  int stage;  // index into kStages
};
constexpr const char* kStages[] = {"exec",   "chdir", "setgroups", "setgid",
                                   "setuid", "dup",   "terminal"};

// Everything the child needs, made before fork(): after it, only async-signal-safe calls.
struct Plan {
  std::vector<std::string> candidates;  // executable paths to try in turn
  std::vector<std::string> argStrings, envStrings;
  std::vector<char*> argv, envp;
  bool inheritEnv = true;
  std::vector<std::pair<int, int>> moves;  // (source descriptor, child descriptor)
  std::vector<int> closeBelow;             // descriptors under `floor` that no target names
  int highest = 2;
  int floor = 3;  // above every target: where sources are lifted to before they are placed
  std::string path;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  int controllingTerminal = -1;  // usePTY: the child descriptor that becomes its terminal
};

[[noreturn]] void childFail(int errorPipe, int stage) {
  ChildError e{errno, stage};
  ssize_t ignored = ::write(errorPipe, &e, sizeof e);
  (void)ignored;
  ::_exit(127);
}

// In the child: put the descriptors in place, switch directory and user, exec.
[[noreturn]] void runChild(const Plan& plan, int errorPipe) {
  // A terminal of its own needs a session of its own.
  if (plan.controllingTerminal >= 0 && ::setsid() < 0) childFail(errorPipe, 6);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Handlers are reset by exec, ignored signals are not: the parent's SIG_IGN for SIGPIPE must
  // not become the program's.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
  // Move every source above every target first, so that no dup2 overwrites a source still
  // needed (the error pipe goes up there too).
  const int floor = plan.floor;
  int err = ::fcntl(errorPipe, F_DUPFD_CLOEXEC, floor + static_cast<int>(plan.moves.size()));
  if (err < 0) childFail(errorPipe, 5);
  errorPipe = err;
  int lifted[64];
  for (size_t i = 0; i < plan.moves.size(); ++i) {
    lifted[i] = ::fcntl(plan.moves[i].first, F_DUPFD_CLOEXEC, floor);
    if (lifted[i] < 0) childFail(errorPipe, 5);
  }
  for (size_t i = 0; i < plan.moves.size(); ++i) {
    if (::dup2(lifted[i], plan.moves[i].second) < 0) childFail(errorPipe, 5);  // not CLOEXEC
  }
  for (int fd : plan.closeBelow) ::close(fd);
  if (plan.controllingTerminal >= 0 && ::ioctl(plan.controllingTerminal, TIOCSCTTY, 0) != 0) {
    childFail(errorPipe, 6);
  }
  // Everything else goes: ours are close-on-exec already, but a library's may not be.
  if (::syscall(SYS_close_range, floor, errorPipe - 1, 0) != 0) {
    for (int fd = floor; fd < errorPipe; ++fd) ::close(fd);
  }
  if (::syscall(SYS_close_range, errorPipe + 1, ~0U, 0) != 0) {
    long max = ::sysconf(_SC_OPEN_MAX);
    for (long fd = errorPipe + 1; fd < std::min(max, 65536L); ++fd) ::close(static_cast<int>(fd));
  }
  if (!plan.path.empty() && ::chdir(plan.path.c_str()) != 0) childFail(errorPipe, 1);
  if (plan.gid) {
    gid_t g = *plan.gid;
    if (::setgroups(1, &g) != 0 && errno != EPERM) childFail(errorPipe, 2);
    if (::setgid(g) != 0) childFail(errorPipe, 3);
  }
  if (plan.uid && ::setuid(*plan.uid) != 0) childFail(errorPipe, 4);
  char* const* envp = plan.inheritEnv ? environ : plan.envp.data();
  int firstErr = ENOENT;
  for (const std::string& c : plan.candidates) {
    ::execve(c.c_str(), plan.argv.data(), envp);
    // Keep the most telling error: "permission denied" over "not found" in another directory.
    if (errno != ENOENT && errno != ENOTDIR) firstErr = errno;
  }
  errno = firstErr;
  childFail(errorPipe, 0);
}

// The paths to try for `executable`: itself when it has a '/', else each PATH entry's.
std::vector<std::string> candidatesFor(const std::string& executable, const SpawnOptions& o) {
  if (executable.find('/') != std::string::npos) return {executable};
  std::string path;
  if (o.env) {
    if (auto it = o.env->find("PATH"); it != o.env->end()) path = it->second;
  }
  if (path.empty()) {
    const char* p = std::getenv("PATH");
    path = p != nullptr ? p : "/usr/local/bin:/usr/bin:/bin";
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    out.push_back((dir.empty() ? "." : dir) + "/" + executable);
    start = end + 1;
  }
  return out;
}

void closeQuietly(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

void Process::useSignalsForTesting(bool enabled) { gUseSignals = enabled; }

Process::Process(ReactorBase& reactor, std::shared_ptr<ProcessProtocol> protocol,
                 size_t maxWriteBuffer)
    : reactor_(&reactor), protocol_(std::move(protocol)), maxWriteBuffer_(maxWriteBuffer) {}

std::shared_ptr<Process> Process::spawn(ReactorBase& reactor,
                                        std::shared_ptr<ProcessProtocol> protocol,
                                        const std::string& executable,
                                        std::vector<std::string> args,
                                        const SpawnOptions& options) {
  if (!protocol) throw std::invalid_argument("spawnProcess needs a protocol");
  if (executable.empty() || executable.find('\0') != std::string::npos) {
    throw std::invalid_argument("spawnProcess: no executable, or one with a NUL byte in it");
  }
  if (options.childFDs.size() > 64) throw std::invalid_argument("spawnProcess: over 64 childFDs");
  detail::ignoreSigpipeIfDefault();  // writes to a child that exited fail with EPIPE
  Plan plan;
  plan.candidates = candidatesFor(executable, options);
  plan.argStrings = args.empty() ? std::vector<std::string>{executable} : std::move(args);
  for (auto& a : plan.argStrings) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  if (options.env) {
    plan.inheritEnv = false;
    for (const auto& [k, v] : *options.env) plan.envStrings.push_back(k + "=" + v);
    for (auto& e : plan.envStrings) plan.envp.push_back(e.data());
    plan.envp.push_back(nullptr);
  }
  plan.path = options.path;
  plan.uid = options.uid;
  plan.gid = options.gid;

  std::shared_ptr<Process> p(new Process(reactor, std::move(protocol), options.maxWriteBuffer));
  // Our ends of the pipes, and the child's (closed here once it has them).
  std::vector<int> childEnds;
  auto cleanUp = [&] {
    for (int fd : childEnds) ::close(fd);
    for (Pipe& pipe : p->pipes_) closeQuietly(pipe.fd);
  };
  // usePTY: one pseudo-terminal in place of the pipes; we read and write its master (through
  // two duplicates, one for each direction), the child gets the terminal.
  int master = -1;
  auto openTerminal = [&] {
    master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char name[128];
    int slave = -1;
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0 ||
        ::ptsname_r(master, name, sizeof name) != 0 ||
        (slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
      int err = errno;
      closeQuietly(master);
      cleanUp();
      throw std::system_error(err, std::generic_category(), "spawnProcess: pseudo-terminal");
    }
    childEnds.push_back(slave);
    ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);
    return slave;
  };
  int slave = -1;
  bool ptyReader = false, ptyWriter = false;
  for (const auto& [target, what] : options.childFDs) {
    if (target < 0) {
      cleanUp();
      throw std::invalid_argument("spawnProcess: a negative child descriptor");
    }
    plan.highest = std::max(plan.highest, target);
    if (options.usePTY && what.kind != ChildFD::Kind::Inherit) {
      if (slave < 0) slave = openTerminal();
      plan.moves.emplace_back(slave, target);
      if (plan.controllingTerminal < 0) plan.controllingTerminal = target;
      bool toChild = what.kind == ChildFD::Kind::ToChild;
      bool& done = toChild ? ptyWriter : ptyReader;
      if (!done) {
        done = true;
        int ours = ::fcntl(master, F_DUPFD_CLOEXEC, 0);
        if (ours < 0) {
          int err = errno;
          closeQuietly(master);
          cleanUp();
          throw std::system_error(err, std::generic_category(), "spawnProcess: dup");
        }
        p->pipes_.push_back(Pipe{target, ours, toChild});
      }
      continue;
    }
    if (what.kind == ChildFD::Kind::Inherit) {
      if (::fcntl(what.parentFd, F_GETFD) < 0) {
        cleanUp();
        throw std::invalid_argument("spawnProcess: descriptor " + std::to_string(what.parentFd) +
                                    " (for the child's " + std::to_string(target) +
                                    ") is not open");
      }
      plan.moves.emplace_back(what.parentFd, target);
      continue;
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      int err = errno;
      cleanUp();
      throw std::system_error(err, std::generic_category(), "spawnProcess: pipe");
    }
    bool toChild = what.kind == ChildFD::Kind::ToChild;
    int ours = toChild ? fds[1] : fds[0];
    int theirs = toChild ? fds[0] : fds[1];
    ::fcntl(ours, F_SETFL, ::fcntl(ours, F_GETFL) | O_NONBLOCK);
    childEnds.push_back(theirs);
    plan.moves.emplace_back(theirs, target);
    p->pipes_.push_back(Pipe{target, ours, toChild});
  }
  closeQuietly(master);  // the duplicates in pipes_ keep it
  plan.floor = std::max(plan.highest + 1, 3);
  for (int fd = 0; fd < plan.floor; ++fd) {
    if (options.childFDs.count(fd) == 0) plan.closeBelow.push_back(fd);
  }
  for (Pipe& pipe : p->pipes_) {
    if (!reactor.canWatch(pipe.fd)) {
      std::string why = reactor.cannotWatch(pipe.fd);
      cleanUp();
      throw std::system_error(EMFILE, std::generic_category(), "spawnProcess: " + why);
    }
  }
  int errorPipe[2];
  if (::pipe2(errorPipe, O_CLOEXEC) != 0) {
    int err = errno;
    cleanUp();
    throw std::system_error(err, std::generic_category(), "spawnProcess: pipe");
  }

  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(errorPipe[0]);
    runChild(plan, errorPipe[1]);
  }
  int forkErr = errno;
  ::close(errorPipe[1]);
  for (int fd : childEnds) ::close(fd);
  childEnds.clear();
  if (pid < 0) {
    ::close(errorPipe[0]);
    cleanUp();
    throw std::system_error(forkErr, std::generic_category(), "spawnProcess: fork");
  }
  // The pipe closes at exec (close-on-exec) or carries why it failed.
  ChildError childError{};
  ssize_t n;
  do {
    n = ::read(errorPipe[0], &childError, sizeof childError);
  } while (n < 0 && errno == EINTR);
  ::close(errorPipe[0]);
  if (n == static_cast<ssize_t>(sizeof childError)) {
    int status;
    ::waitpid(pid, &status, 0);  // it has _exit()ed or is about to: no zombie
    cleanUp();
    std::string what = std::string("spawnProcess: ") + kStages[childError.stage] + " " +
                       (childError.stage == 1 ? "'" + plan.path + "'" : "'" + executable + "'");
    throw std::system_error(childError.err, std::generic_category(), what);
  }

  p->pid_ = pid;
  event_base* base = reactor.eventBase();
  for (Pipe& pipe : p->pipes_) {
    pipe.ev = event_new(base, pipe.fd, (pipe.toChild ? EV_WRITE : EV_READ) | EV_PERSIST,
                        &Process::onPipe, p.get());
    if (pipe.toChild) pipe.out = evbuffer_new();
  }
  p->pidfd_ = openPidfd(pid);
  if (p->pidfd_ >= 0) {
    p->exitEvent_ = event_new(base, p->pidfd_, EV_READ | EV_PERSIST, &Process::onExit, p.get());
  } else {
    p->exitEvent_ = evsignal_new(base, SIGCHLD, &Process::onSigchld, p.get());
  }
  event_add(p->exitEvent_, nullptr);
  reactor.addSelectable(p);
  p->updateReading();
  p->call("connectionMade", [&] { p->protocol_->makeConnection(p.get()); });
  if (p->pidfd_ < 0) p->reap();  // it may have exited before SIGCHLD was watched
  return p;
}

Process::~Process() {
  for (Pipe& pipe : pipes_) {
    if (pipe.ev != nullptr) event_free(pipe.ev);
    if (pipe.out != nullptr) evbuffer_free(pipe.out);
    closeQuietly(pipe.fd);
  }
  if (exitEvent_ != nullptr) event_free(exitEvent_);
  closeQuietly(pidfd_);
}

template <class F>
void Process::call(const char* what, F&& fn) {
  try {
    fn();
  } catch (...) {
    log::error("process", std::string("Unhandled exception in ") + what + " (pid " +
                              std::to_string(pid_) + "): " + Failure::current().toString());
  }
}

Process::Pipe* Process::find(int childFD) {
  for (Pipe& pipe : pipes_) {
    if (pipe.childFD == childFD && pipe.fd >= 0) return &pipe;
  }
  return nullptr;
}

// ---- the pipes ----

void Process::onPipe(int fd, short, void* arg) {
  auto* self = static_cast<Process*>(arg);
  detail::guardCallback("process", "a pipe to a child", [&] {
    for (Pipe& pipe : self->pipes_) {
      if (pipe.fd != fd) continue;
      if (pipe.toChild) {
        self->writable(pipe);
      } else {
        self->readable(pipe);
      }
      return;
    }
  });
}

void Process::readable(Pipe& pipe) {
  char* buf = reactor_->readBuffer();
  ssize_t n = ::read(pipe.fd, buf, ReactorBase::kReadBufferSize);
  if (n > 0) {
    int childFD = pipe.childFD;  // `pipe` may move if the protocol closes pipes
    try {
      protocol_->childDataReceived(childFD, std::string_view(buf, static_cast<size_t>(n)));
    } catch (...) {
      log::error("process", "Unhandled exception in childDataReceived (pid " +
                                std::to_string(pid_) + "): " + Failure::current().toString() +
                                "; closing the child's descriptor " + std::to_string(childFD));
      closePipe(childFD);
    }
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  closePipe(pipe.childFD);  // EOF: the child closed it (or exited)
}

void Process::writeToChild(int childFD, std::string_view data) {
  Pipe* pipe = find(childFD);
  if (pipe == nullptr || !pipe->toChild || pipe->closeWhenFlushed || data.empty()) return;
  if (evbuffer_get_length(pipe->out) == 0) {
    ssize_t n = ::write(pipe->fd, data.data(), data.size());
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      closePipe(childFD);  // EPIPE: the child closed its end
      return;
    }
    data.remove_prefix(static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (data.empty()) return;
  }
  if (evbuffer_get_length(pipe->out) + data.size() > maxWriteBuffer_) {
    log::warn("process", "pid " + std::to_string(pid_) + " does not read its descriptor " +
                             std::to_string(childFD) + ": over " + std::to_string(maxWriteBuffer_) +
                             " bytes wait for it (SpawnOptions::maxWriteBuffer); closing it");
    closePipe(childFD);
    return;
  }
  evbuffer_add(pipe->out, data.data(), data.size());
  event_add(pipe->ev, nullptr);
}

void Process::writable(Pipe& pipe) {
  while (evbuffer_get_length(pipe.out) > 0) {
    int n = evbuffer_write(pipe.out, pipe.fd);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      closePipe(pipe.childFD);
      return;
    }
  }
  event_del(pipe.ev);
  if (pipe.closeWhenFlushed) closePipe(pipe.childFD);
}

void Process::closeChildFD(int childFD) {
  Pipe* pipe = find(childFD);
  if (pipe == nullptr) return;
  if (pipe->toChild && evbuffer_get_length(pipe->out) > 0) {
    pipe->closeWhenFlushed = true;  // after what was written
    return;
  }
  closePipe(childFD);
}

void Process::closePipe(int childFD) {
  Pipe* pipe = find(childFD);
  if (pipe == nullptr) return;
  event_del(pipe->ev);
  closeQuietly(pipe->fd);
  if (pipe->out != nullptr) evbuffer_drain(pipe->out, evbuffer_get_length(pipe->out));
  call("childConnectionLost", [&] { protocol_->childConnectionLost(childFD); });
  maybeEnd();
}

void Process::loseConnection() {
  closeStdin();
  closeStdout();
  closeStderr();
}

void Process::updateReading() {
  for (Pipe& pipe : pipes_) {
    if (pipe.toChild || pipe.fd < 0) continue;
    if (paused_) {
      event_del(pipe.ev);
    } else {
      event_add(pipe.ev, nullptr);
    }
  }
}

void Process::pauseProducing() {
  paused_ = true;
  updateReading();
}

void Process::resumeProducing() {
  paused_ = false;
  updateReading();
}

size_t Process::bufferedSize(int childFD) const {
  for (const Pipe& pipe : pipes_) {
    if (pipe.childFD == childFD && pipe.fd >= 0 && pipe.out != nullptr) {
      return evbuffer_get_length(pipe.out);
    }
  }
  return 0;
}

// ---- signals and exit ----

void Process::signalProcess(int signal) {
  if (exited_) throw ProcessExitedAlready();
  if (::kill(pid_, signal) != 0) {
    throw std::system_error(errno, std::generic_category(), "signalProcess");
  }
}

void Process::signalProcess(std::string_view name) {
  static const std::pair<std::string_view, int> kNames[] = {
      {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},  {"QUIT", SIGQUIT},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}};
  for (auto [n, sig] : kNames) {
    if (n == name) {
      signalProcess(sig);
      return;
    }
  }
  throw std::invalid_argument("signalProcess: unknown signal name '" + std::string(name) + "'");
}

void Process::onExit(int, short, void* arg) {
  auto* self = static_cast<Process*>(arg);
  detail::guardCallback("process", "a child's exit", [self] { self->reap(); });
}

void Process::onSigchld(int, short, void* arg) {
  auto* self = static_cast<Process*>(arg);
  detail::guardCallback("process", "SIGCHLD", [self] { self->reap(); });
}

void Process::reap() {
  if (exited_) return;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) exited(status);
}

void Process::exited(int status) {
  exited_ = true;
  event_del(exitEvent_);
  closeQuietly(pidfd_);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    reason_ = Failure::of(ProcessDone());
  } else if (WIFSIGNALED(status)) {
    reason_ = Failure::of(ProcessTerminated(std::nullopt, WTERMSIG(status)));
  } else {
    reason_ = Failure::of(ProcessTerminated(WEXITSTATUS(status), std::nullopt));
  }
  call("processExited", [&] { protocol_->processExited(reason_); });
  maybeEnd();
}

void Process::maybeEnd() {
  if (ended_ || !exited_) return;
  for (const Pipe& pipe : pipes_) {
    // A pipe we write to ends with the child (nobody reads it); output may still be coming
    // from a grandchild that holds the other end.
    if (pipe.fd >= 0 && !pipe.toChild) return;
  }
  ended_ = true;  // first: closing the last pipes comes back here
  for (Pipe& pipe : pipes_) {
    if (pipe.fd >= 0) closePipe(pipe.childFD);
  }
  call("processEnded", [&] { protocol_->processEnded(reason_); });
  protocol_->connectionEnded();
  ReactorBase* r = reactor_;
  reactor_ = nullptr;
  r->removeSelectable(this);  // last: may free this object once the callback returns
}

void Process::reactorShutdown() {
  if (ended_) return;
  reap();
  if (ended_) return;
  for (Pipe& pipe : pipes_) {
    if (pipe.ev != nullptr) event_del(pipe.ev);
    closeQuietly(pipe.fd);
  }
  if (!exited_) {
    // Still running: it outlives the reactor (as in Twisted), and is reaped when it exits.
    pid_t pid = pid_;
    std::thread([pid] {
      int status;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }).detach();
    exited_ = true;
    reason_ = Failure::of(ConnectionLost::reactorShutdown());
  }
  ended_ = true;
  call("processEnded", [&] { protocol_->processEnded(reason_); });
  protocol_->connectionEnded();
  if (exitEvent_ != nullptr) event_del(exitEvent_);
}

}  // namespace twist::process
