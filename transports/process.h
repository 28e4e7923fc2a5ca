// Public for transport writers; users call Reactor::spawnProcess. process::Process: one child
// process (Twisted's process.Process): forks and execs it with its descriptors in place, reads
// and writes its pipes from the reactor's loop, and reaps it when its pidfd says it exited.
// Owned by the reactor until processEnded; the handle stays safe after that.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "twist/reactor/process.h"
#include "twist/reactor/selectable.h"

struct event;
struct evbuffer;

namespace twist {
class ReactorBase;
}  // namespace twist

namespace twist::process {

class Process : public Selectable,
                public IProcessTransport,
                public std::enable_shared_from_this<Process> {
 public:
  // See IReactorProcess::spawnProcess.
  static std::shared_ptr<Process> spawn(ReactorBase& reactor,
                                        std::shared_ptr<ProcessProtocol> protocol,
                                        const std::string& executable,
                                        std::vector<std::string> args, const SpawnOptions& options);
  ~Process() override;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // IProcessTransport
  pid_t pid() const override { return exited_ ? 0 : pid_; }
  void write(std::string_view data) override { writeToChild(0, data); }
  void writeToChild(int childFD, std::string_view data) override;
  void closeStdin() override { closeChildFD(0); }
  void closeStdout() override { closeChildFD(1); }
  void closeStderr() override { closeChildFD(2); }
  void closeChildFD(int childFD) override;
  void loseConnection() override;
  void signalProcess(int signal) override;
  void signalProcess(std::string_view name) override;
  void pauseProducing() override;
  void resumeProducing() override;
  size_t bufferedSize(int childFD) const override;

  // The reactor goes away with the child still running: our pipes close, and the child is
  // reaped by a thread of ours once it exits (never a zombie).
  void reactorShutdown() override;

  // For tests: watch exits with SIGCHLD (as on kernels without pidfd_open) instead of pidfds.
  static void useSignalsForTesting(bool enabled);

 private:
  struct Pipe {
    int childFD;
    int fd;
    bool toChild;
    event* ev = nullptr;
    evbuffer* out = nullptr;  // toChild: what the pipe has not taken yet
    bool closeWhenFlushed = false;
  };

  Process(ReactorBase& reactor, std::shared_ptr<ProcessProtocol> protocol, size_t maxWriteBuffer);
  static void onPipe(int fd, short what, void* arg);
  static void onExit(int fd, short what, void* arg);
  void readable(Pipe& pipe);
  void writable(Pipe& pipe);
  Pipe* find(int childFD);
  // Closes our end of the pipe now and tells the protocol.
  void closePipe(int childFD);
  // The child may have exited: reap it (WNOHANG).
  void reap();
  void exited(int status);
  void maybeEnd();
  void updateReading();
  // Runs on every process of this reactor when SIGCHLD arrives (no pidfd).
  static void onSigchld(int, short, void* arg);
  template <class F>
  void call(const char* what, F&& fn);

  ReactorBase* reactor_;
  std::shared_ptr<ProcessProtocol> protocol_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  event* exitEvent_ = nullptr;
  bool exited_ = false;
  bool ended_ = false;
  bool paused_ = false;
  Failure reason_;
  size_t maxWriteBuffer_;
  std::vector<Pipe> pipes_;
};

}  // namespace twist::process
