// Public, part of //reactor:interfaces. Child processes (Twisted's IReactorProcess,
// ProcessProtocol, IProcessTransport): spawnProcess runs a program with pipes to its stdin,
// stdout and stderr (or any descriptors childFDs says), and a ProcessProtocol hears what it
// writes and how it ends.
//
//   class Grep : public twist::ProcessProtocol {
//     void connectionMade() override { transport()->write("a\nb\n"); transport()->closeStdin(); }
//     void outReceived(std::string_view d) override { out += d; }
//     void processEnded(const twist::Failure& why) override { ... }
//   };
//   reactor.spawnProcess(std::make_shared<Grep>(), "grep", {"grep", "a"});
//
// Every child is reaped (no zombies): its exit is watched through a pidfd in the reactor's loop
// (SIGCHLD on kernels without pidfd_open), and one still running when its reactor goes away is
// reaped by a thread of twist's when it exits. Descriptors other than the ones childFDs names
// never reach the child (everything twist opens is close-on-exec, and the child closes the rest
// before exec). The first spawnProcess ignores SIGPIPE if its action is the default (writing to
// a child that exited then fails, closing that pipe, instead of killing this process).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twist/reactor/deferred.h"
#include "twist/reactor/failure.h"

namespace twist {

class IProcessTransport;

// One child process's behaviour (Twisted's ProcessProtocol). Callbacks run on the reactor
// thread; an exception from one is logged and the process goes on (an exception from a
// data callback closes that pipe).
class ProcessProtocol {
 public:
  virtual ~ProcessProtocol() = default;

  // The child is running; transport() is set.
  virtual void connectionMade() {}
  // Bytes the child wrote to its descriptor `childFD`. The default sends 1 to outReceived and 2
  // to errReceived.
  virtual void childDataReceived(int childFD, std::string_view data);
  virtual void outReceived(std::string_view data) {}
  virtual void errReceived(std::string_view data) {}
  // The pipe of `childFD` closed (the child closed it or exited, or we closed it). The default
  // sends 0, 1 and 2 to inConnectionLost, outConnectionLost and errConnectionLost.
  virtual void childConnectionLost(int childFD);
  virtual void inConnectionLost() {}
  virtual void outConnectionLost() {}
  virtual void errConnectionLost() {}
  // The child exited: ProcessDone (status 0) or ProcessTerminated (another status, a signal).
  virtual void processExited(const Failure& reason) {}
  // The child exited and every pipe to it has closed: the last call. Same reason.
  virtual void processEnded(const Failure& reason) {}

  // The process; after processEnded, a transport that ignores everything.
  IProcessTransport* transport() const { return transport_; }
  // For transports.
  void makeConnection(IProcessTransport* transport);
  void connectionEnded();

 private:
  IProcessTransport* transport_ = nullptr;
};

// A running child as its protocol sees it (Twisted's IProcessTransport). Methods run on the
// reactor thread.
class IProcessTransport {
 public:
  virtual ~IProcessTransport() = default;
  // The child's pid; 0 once it has been reaped.
  virtual pid_t pid() const = 0;
  // Writes to the child's stdin (descriptor 0) / to its descriptor `childFD`. What the pipe does
  // not take at once is buffered, up to SpawnOptions::maxWriteBuffer: a child that does not read
  // more than that has the pipe closed on it (logged) instead of growing this process. Ignored
  // once that pipe is closed.
  virtual void write(std::string_view data) = 0;
  virtual void writeToChild(int childFD, std::string_view data) = 0;
  // Closes the child's stdin once what was written has gone (the child reads EOF).
  virtual void closeStdin() = 0;
  virtual void closeStdout() = 0;
  virtual void closeStderr() = 0;
  // Closes our end of `childFD` (after flushing, for a pipe we write to).
  virtual void closeChildFD(int childFD) = 0;
  // closeStdin, closeStdout, closeStderr.
  virtual void loseConnection() = 0;
  // Sends `signal` (SIGTERM, SIGKILL, ...). ProcessExitedAlready once the child has exited.
  virtual void signalProcess(int signal) = 0;
  // "TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2" (Twisted's names); std::invalid_argument
  // for another.
  virtual void signalProcess(std::string_view name) = 0;
  // Stops / resumes reading the child's output: a child that writes more than we read then
  // blocks on its full pipe (back-pressure, nothing buffered here).
  virtual void pauseProducing() = 0;
  virtual void resumeProducing() = 0;
  // Bytes written to `childFD` and not yet taken by the pipe.
  virtual size_t bufferedSize(int childFD = 0) const = 0;
};

// What one of the child's descriptors is connected to (Twisted's childFDs values).
struct ChildFD {
  enum class Kind {
    ToChild,    // a pipe we write to (Twisted's "w"): the child's stdin
    FromChild,  // a pipe we read from ("r"): childDataReceived
    Inherit,    // our descriptor `parentFd`, given to the child as is (an int in Twisted)
  };
  Kind kind;
  int parentFd = -1;
  static ChildFD toChild() { return {Kind::ToChild}; }
  static ChildFD fromChild() { return {Kind::FromChild}; }
  static ChildFD inherit(int fd) { return {Kind::Inherit, fd}; }
};

struct SpawnOptions {
  // The child's environment; nullopt: this process's. (Twisted's default is an empty one.)
  std::optional<std::map<std::string, std::string>> env{};
  // The child's working directory; "": ours.
  std::string path{};
  // Run as this user and group (needs the privilege to switch).
  std::optional<uid_t> uid{};
  std::optional<gid_t> gid{};
  // The child's descriptors; any other is closed in the child. Default: pipes for 0, 1 and 2.
  std::map<int, ChildFD> childFDs{
      {0, ChildFD::toChild()}, {1, ChildFD::fromChild()}, {2, ChildFD::fromChild()}};
  // Bytes written to one pipe that may wait for the child to read them (see write()).
  size_t maxWriteBuffer = 4 * 1024 * 1024;
  // Twisted's usePTY: the child's pipe descriptors (not inherited ones) are one pseudo-terminal
  // instead, which is also its controlling terminal (in a session of its own): for programs
  // that behave differently on a terminal (line buffering, prompts, passwords). Everything it
  // writes comes as childDataReceived(1, ...), with the terminal's line discipline applied
  // ("\n" becomes "\r\n", what we write is echoed). closeStdin() does not give it EOF (the
  // terminal stays open): write "\x04" (Ctrl-D) for that; loseConnection() hangs it up.
  bool usePTY = false;
};

// What code that runs programs needs of a reactor (Twisted's IReactorProcess).
class IReactorProcess {
 public:
  virtual ~IReactorProcess() = default;
  // Starts `executable` (a path, or a name looked up in PATH: the child's, else ours) with
  // `args` (args[0] is the name the program sees; empty: the executable). The protocol's
  // connectionMade runs before this returns. Throws std::system_error when the program cannot
  // be started (not found, not executable, a bad working directory or user), with the reason
  // from the child; std::invalid_argument for a bad childFDs.
  virtual std::shared_ptr<IProcessTransport> spawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                          const std::string& executable,
                                                          std::vector<std::string> args,
                                                          const SpawnOptions& options = {}) = 0;
};

// What getProcessOutputAndValue collects.
struct ProcessResult {
  std::string out, err;
  std::optional<int> exitCode;  // set when the process exited
  std::optional<int> signal;    // set when a signal killed it
};

// Runs a program and fires with everything it wrote to stdout and stderr and how it ended
// (Twisted's getProcessOutputAndValue; a signal does not fail it: see ProcessResult). Its stdin
// is closed at once. Output beyond `maxOutput` bytes kills it (SIGKILL) and fails the Deferred
// with std::length_error; a program that cannot start fails it with the std::system_error.
// Cancelling kills the process.
Deferred<ProcessResult> getProcessOutputAndValue(IReactorProcess& reactor,
                                                 const std::string& executable,
                                                 std::vector<std::string> args,
                                                 SpawnOptions options = {},
                                                 size_t maxOutput = 64 * 1024 * 1024);

}  // namespace twist
