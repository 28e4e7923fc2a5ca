#include "twist/reactor/process.h"

#include <csignal>
#include <stdexcept>

#include "twist/reactor/errors.h"

namespace twist {
namespace {

// What a protocol's transport() is after processEnded: every call is ignored.
class EndedProcess : public IProcessTransport {
 public:
  pid_t pid() const override { return 0; }
  void write(std::string_view) override {}
  void writeToChild(int, std::string_view) override {}
  void closeStdin() override {}
  void closeStdout() override {}
  void closeStderr() override {}
  void closeChildFD(int) override {}
  void loseConnection() override {}
  void signalProcess(int) override { throw ProcessExitedAlready(); }
  void signalProcess(std::string_view) override { throw ProcessExitedAlready(); }
  void pauseProducing() override {}
  void resumeProducing() override {}
  size_t bufferedSize(int) const override { return 0; }
};

}  // namespace

void ProcessProtocol::childDataReceived(int childFD, std::string_view data) {
  if (childFD == 1) {
    outReceived(data);
  } else if (childFD == 2) {
    errReceived(data);
  }
}

void ProcessProtocol::childConnectionLost(int childFD) {
  if (childFD == 0) {
    inConnectionLost();
  } else if (childFD == 1) {
    outConnectionLost();
  } else if (childFD == 2) {
    errConnectionLost();
  }
}

void ProcessProtocol::makeConnection(IProcessTransport* transport) {
  transport_ = transport;
  connectionMade();
}

void ProcessProtocol::connectionEnded() {
  static EndedProcess ended;  // stateless: shared by every thread
  transport_ = &ended;
}

namespace {

class Collector : public ProcessProtocol {
 public:
  Collector(Deferred<ProcessResult> d, size_t maxOutput) : d_(std::move(d)), max_(maxOutput) {}
  void connectionMade() override { transport()->closeStdin(); }
  void outReceived(std::string_view data) override { add(result_.out, data); }
  void errReceived(std::string_view data) override { add(result_.err, data); }
  void processEnded(const Failure& reason) override {
    if (d_.called()) return;
    if (overflowed_) {
      d_.errback(
          Failure::of(std::length_error("getProcessOutputAndValue: the process wrote more than " +
                                        std::to_string(max_) + " bytes; it was killed")));
      return;
    }
    if (auto* t = reason.get<ProcessTerminated>()) {
      result_.exitCode = t->exitCode();
      result_.signal = t->signal();
    } else {
      result_.exitCode = 0;
    }
    d_.callback(std::move(result_));
  }

 private:
  void add(std::string& to, std::string_view data) {
    if (overflowed_) return;
    if (result_.out.size() + result_.err.size() + data.size() > max_) {
      overflowed_ = true;
      transport()->loseConnection();
      try {
        transport()->signalProcess(SIGKILL);
      } catch (const ProcessExitedAlready&) {
      }
      return;
    }
    to.append(data);
  }

  Deferred<ProcessResult> d_;
  size_t max_;
  ProcessResult result_;
  bool overflowed_ = false;
};

}  // namespace

Deferred<ProcessResult> getProcessOutputAndValue(IReactorProcess& reactor,
                                                 const std::string& executable,
                                                 std::vector<std::string> args,
                                                 SpawnOptions options, size_t maxOutput) {
  auto process = std::make_shared<std::weak_ptr<IProcessTransport>>();
  Deferred<ProcessResult> d([process](Deferred<ProcessResult>&) {
    if (auto p = process->lock()) {
      try {
        p->signalProcess(SIGKILL);
      } catch (const ProcessExitedAlready&) {
      }
    }
  });
  options.childFDs = {
      {0, ChildFD::toChild()}, {1, ChildFD::fromChild()}, {2, ChildFD::fromChild()}};
  try {
    *process = reactor.spawnProcess(std::make_shared<Collector>(d, maxOutput), executable,
                                    std::move(args), options);
  } catch (...) {
    if (!d.called()) d.errback(Failure::current());
  }
  return d;
}

}  // namespace twist
