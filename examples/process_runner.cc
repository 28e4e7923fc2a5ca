// Runs a program as a child process and reports what it does, line by line:
//   bazel run //examples:process_runner -- sh -c 'echo hi; echo oops >&2; exit 3'
//   [out] hi
//   [err] oops
//   exited with code 3
// Its stdin is this program's (each line you type is passed on; Ctrl-D closes it), --timeout S
// sends SIGTERM after S seconds. The exit code is the child's (128+N for signal N).
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "twist/reactor/errors.h"
#include "twist/reactor/process.h"
#include "twist/reactor/reactor.h"

namespace {

class Reporter : public twist::ProcessProtocol {
 public:
  explicit Reporter(twist::Reactor& reactor) : reactor_(reactor) {}
  void outReceived(std::string_view d) override { lines(out_, d, "[out] "); }
  void errReceived(std::string_view d) override { lines(err_, d, "[err] "); }
  void processEnded(const twist::Failure& reason) override {
    flush(out_, "[out] ");
    flush(err_, "[err] ");
    if (auto* t = reason.get<twist::ProcessTerminated>()) {
      if (t->signal()) {
        std::cout << "killed by signal " << *t->signal() << std::endl;
        code = 128 + *t->signal();
      } else {
        std::cout << "exited with code " << t->exitCode().value_or(1) << std::endl;
        code = t->exitCode().value_or(1);
      }
    } else {
      std::cout << "exited with code 0" << std::endl;
      code = 0;
    }
    reactor_.stop();
  }
  int code = 1;

 private:
  static void lines(std::string& pending, std::string_view d, const char* tag) {
    pending.append(d);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::cout << tag << std::string_view(pending).substr(start, nl - start) << '\n';
    }
    pending.erase(0, start);
    std::cout.flush();
  }
  static void flush(std::string& pending, const char* tag) {
    if (!pending.empty()) std::cout << tag << pending << std::endl;
    pending.clear();
  }
  twist::Reactor& reactor_;
  std::string out_, err_;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  double timeout = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (args.empty() && a == "--timeout" && i + 1 < argc) {
      timeout = std::strtod(argv[++i], nullptr);
    } else if (args.empty() && a == "--") {
      continue;
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) {
    std::cerr << "usage: process_runner [--timeout SECONDS] [--] PROGRAM [ARG...]" << std::endl;
    return 2;
  }
  twist::Reactor reactor;
  auto reporter = std::make_shared<Reporter>(reactor);
  twist::SpawnOptions options;
  options.childFDs[0] = twist::ChildFD::inherit(STDIN_FILENO);  // the child reads our stdin
  std::shared_ptr<twist::IProcessTransport> child;
  try {
    child = reactor.spawnProcess(reporter, args[0], args, options);
  } catch (const std::exception& e) {
    std::cerr << e.what() << std::endl;
    return 127;
  }
  if (timeout > 0) {
    reactor.callLater(timeout, [child] {
      try {
        child->signalProcess(SIGTERM);
      } catch (const twist::ProcessExitedAlready&) {
      }
    });
  }
  reactor.run();
  return reporter->code;
}
