// Child processes: spawnProcess with real programs (sh, cat, yes, python3): output, exit codes
// and signals, environment and working directory, descriptor mapping, no descriptor leaks, no
// zombies (pidfd and SIGCHLD), bounded buffers both ways, misuse, and getProcessOutputAndValue.
#include "twist/reactor/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <string>
#include <vector>

#include "tests/subprocess.h"
#include "tests/test_util.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/process.h"

namespace twist {
namespace {

using testing::LogCaptureScope;
using testing::quietOptions;
using testing::runUntil;

// Records everything, in order.
class Recorder : public ProcessProtocol {
 public:
  void connectionMade() override {
    events += "made|";
    pid = transport()->pid();
    if (!input.empty()) transport()->write(input);
    if (closeStdinAtOnce) transport()->closeStdin();
  }
  void childDataReceived(int fd, std::string_view d) override {
    data[fd].append(d);
    ProcessProtocol::childDataReceived(fd, d);
  }
  void childConnectionLost(int fd) override { events += "lost" + std::to_string(fd) + "|"; }
  void processExited(const Failure& r) override {
    events += "exited|";
    exitReason = r;
  }
  void processEnded(const Failure& r) override {
    events += "ended|";
    endReason = r;
  }
  std::string input;
  bool closeStdinAtOnce = true;
  std::map<int, std::string> data;
  std::string events;
  pid_t pid = 0;
  std::optional<Failure> exitReason, endReason;
};

std::shared_ptr<Recorder> run(Reactor& reactor, std::vector<std::string> args,
                              SpawnOptions options = {}, std::string input = "") {
  auto r = std::make_shared<Recorder>();
  r->input = std::move(input);
  reactor.spawnProcess(r, args[0], args, options);
  EXPECT_TRUE(runUntil(
      reactor, [&] { return r->endReason.has_value(); }, 30));
  return r;
}

bool reaped(pid_t pid) {
  return ::kill(pid, 0) != 0 && errno == ESRCH;  // gone entirely: not even a zombie
}

TEST(Process, CatEchoesStdinAndEndsCleanly) {
  Reactor reactor(quietOptions());
  auto r = run(reactor, {"cat"}, {}, "hello\nworld\n");
  EXPECT_EQ(r->data[1], "hello\nworld\n");
  EXPECT_TRUE(r->exitReason->check<ProcessDone>());
  EXPECT_TRUE(r->endReason->check<ProcessDone>());
  // stdin closed by us first; processEnded last, once every pipe has closed.
  EXPECT_EQ(r->events.substr(0, 11), "made|lost0|");
  EXPECT_EQ(r->events.substr(r->events.size() - 6), "ended|");
  EXPECT_NE(r->events.find("lost1|"), std::string::npos);
  EXPECT_NE(r->events.find("lost2|"), std::string::npos);
  EXPECT_EQ(reactor.selectableCount(), 0u);
}

TEST(Process, ExitCodesSignalsAndStderr) {
  Reactor reactor(quietOptions());
  auto r = run(reactor, {"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r->data[1], "out\n");
  EXPECT_EQ(r->data[2], "err\n");
  auto* t = r->endReason->get<ProcessTerminated>();
  ASSERT_NE(t, nullptr) << r->endReason->toString();
  EXPECT_EQ(t->exitCode(), 3);
  EXPECT_FALSE(t->signal().has_value());

  auto sleeper = std::make_shared<Recorder>();
  auto p = reactor.spawnProcess(sleeper, "sleep", {"sleep", "100"});
  EXPECT_GT(p->pid(), 0);
  p->signalProcess("TERM");
  ASSERT_TRUE(runUntil(reactor, [&] { return sleeper->endReason.has_value(); }));
  auto* killed = sleeper->endReason->get<ProcessTerminated>();
  ASSERT_NE(killed, nullptr);
  EXPECT_EQ(killed->signal(), SIGTERM);
  EXPECT_NE(sleeper->endReason->toString().find("signal 15"), std::string::npos);
  EXPECT_EQ(p->pid(), 0);
  EXPECT_THROW(p->signalProcess(SIGKILL), ProcessExitedAlready);
  EXPECT_THROW(sleeper->transport()->signalProcess("KILL"), ProcessExitedAlready);
  sleeper->transport()->write("ignored after the end");
}

TEST(Process, EnvironmentAndWorkingDirectory) {
  Reactor reactor(quietOptions());
  SpawnOptions o;
  o.env = std::map<std::string, std::string>{{"GREETING", "bonjour"}};
  auto r = run(reactor, {"/bin/sh", "-c", "echo $GREETING; echo ${HOME:-nohome}"}, o);
  EXPECT_EQ(r->data[1], "bonjour\nnohome\n");  // only what was given

  ::setenv("TWIST_PROCESS_TEST", "inherited", 1);
  auto inherited = run(reactor, {"sh", "-c", "echo $TWIST_PROCESS_TEST"});
  EXPECT_EQ(inherited->data[1], "inherited\n");

  SpawnOptions in;
  in.path = "/usr";
  auto pwd = run(reactor, {"sh", "-c", "pwd"}, in);
  EXPECT_EQ(pwd->data[1], "/usr\n");
}

TEST(Process, RunsAsAnotherUserAndGroup) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  Reactor reactor(quietOptions());
  SpawnOptions o;
  o.uid = 65534;  // nobody
  o.gid = 65534;
  o.path = "/";
  auto r = run(reactor, {"sh", "-c", "id -u; id -g; id -G"}, o);
  EXPECT_EQ(r->data[1], "65534\n65534\n65534\n");  // no supplementary groups of ours left
}

TEST(Process, APseudoTerminalWhenAsked) {
  Reactor reactor(quietOptions());
  auto piped = run(reactor, {"sh", "-c", "test -t 0 || test -t 1 || echo pipes"});
  EXPECT_EQ(piped->data[1], "pipes\n");

  SpawnOptions o;
  o.usePTY = true;
  auto r =
      run(reactor, {"sh", "-c", "test -t 0 && test -t 1 && test -t 2 && echo terminal; tty"}, o);
  EXPECT_EQ(r->data[1].rfind("terminal\r\n/dev/pts/", 0), 0u) << r->data[1];
  EXPECT_TRUE(r->endReason->check<ProcessDone>()) << r->endReason->toString();

  // A prompt answered as a person would.
  class Person : public ProcessProtocol {
   public:
    void outReceived(std::string_view d) override {
      out.append(d);
      if (!answered && out.find("name? ") != std::string::npos) {
        answered = true;
        transport()->write("bob\n");
      }
    }
    void processEnded(const Failure& r) override { reason = r; }
    std::string out;
    bool answered = false;
    std::optional<Failure> reason;
  };
  auto person = std::make_shared<Person>();
  reactor.spawnProcess(person, "python3",
                       {"python3", "-c", "import sys; print(input('name? ').upper())"}, o);
  ASSERT_TRUE(runUntil(reactor, [&] { return person->reason.has_value(); }));
  EXPECT_NE(person->out.find("BOB\r\n"), std::string::npos) << person->out;
  EXPECT_TRUE(person->reason->check<ProcessDone>()) << person->reason->toString();
}

TEST(Process, WhatCannotStartIsAClearError) {
  Reactor reactor(quietOptions());
  auto r = std::make_shared<Recorder>();
  try {
    reactor.spawnProcess(r, "no-such-program-twist", {"no-such-program-twist"});
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("no-such-program-twist"), std::string::npos) << e.what();
  }
  try {
    reactor.spawnProcess(r, "/etc/passwd", {"passwd"});
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EACCES) << e.what();
  }
  SpawnOptions bad;
  bad.path = "/nonexistent-directory";
  try {
    reactor.spawnProcess(r, "true", {"true"}, bad);
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("chdir '/nonexistent-directory'"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(r->events, "") << "nothing was started, nothing is reported";
  EXPECT_THROW(reactor.spawnProcess(nullptr, "true", {}), std::invalid_argument);
  EXPECT_THROW(reactor.spawnProcess(r, "", {}), std::invalid_argument);
  SpawnOptions closedFd;
  closedFd.childFDs = {{0, ChildFD::inherit(987)}};
  EXPECT_THROW(reactor.spawnProcess(r, "true", {}, closedFd), std::invalid_argument);
  EXPECT_EQ(reactor.selectableCount(), 0u);
}

TEST(Process, OnlyTheNamedDescriptorsReachTheChild) {
  Reactor reactor(quietOptions());
  // A descriptor somebody opened without close-on-exec.
  int leaky = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 0);
  // Look from outside at what the running program has (a shell listing its own would also see
  // the pipes it is building its pipeline with). Just after exec the dynamic loader briefly
  // holds a library open, so wait for the program to settle; a leaked descriptor never goes.
  auto sleeper = std::make_shared<Recorder>();
  auto child = reactor.spawnProcess(sleeper, "sleep", {"sleep", "30"});  // exec'd when this returns
  std::string dir = "/proc/" + std::to_string(child->pid()) + "/fd";
  auto childFds = [&] {
    std::vector<int> fds;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') fds.push_back(std::atoi(e->d_name));
      }
      ::closedir(d);
    }
    std::sort(fds.begin(), fds.end());
    return fds;
  };
  EXPECT_TRUE(testing::eventually(
      [&] {
        return childFds() == std::vector<int>{0, 1, 2};
      },
      10))
      << "the child holds descriptors it was not given";
  char target[256] = {0};
  std::string leakedAs = dir + "/" + std::to_string(leaky);
  ssize_t n = ::readlink(leakedAs.c_str(), target, sizeof target - 1);
  EXPECT_TRUE(n < 0 || std::string(target, static_cast<size_t>(n)) != "/dev/null")
      << "our descriptor " << leaky << " reached the child";
  child->signalProcess(SIGKILL);
  ASSERT_TRUE(runUntil(reactor, [&] { return sleeper->endReason.has_value(); }));
  ::close(leaky);

  // Extra pipes and inherited descriptors where childFDs says.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  SpawnOptions o;
  o.childFDs = {{0, ChildFD::toChild()},
                {1, ChildFD::inherit(p[1])},
                {2, ChildFD::fromChild()},
                {3, ChildFD::fromChild()}};
  auto mapped = run(reactor, {"sh", "-c", "echo to-our-pipe; echo three >&3"}, o);
  ::close(p[1]);
  EXPECT_EQ(mapped->data[3], "three\n");
  EXPECT_EQ(mapped->data.count(1), 0u);
  char buf[64] = {0};
  ASSERT_GT(::read(p[0], buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "to-our-pipe\n");
  ::close(p[0]);
  EXPECT_NE(mapped->events.find("lost3|"), std::string::npos);
}

TEST(Process, NoZombiesWithPidfdsOrSignals) {
  for (bool signals : {false, true}) {
    process::Process::useSignalsForTesting(signals);
    Reactor reactor(quietOptions());
    std::vector<pid_t> pids;
    std::vector<std::shared_ptr<Recorder>> all;
    for (int i = 0; i < 20; ++i) {
      auto r = std::make_shared<Recorder>();
      reactor.spawnProcess(r, "sh", {"sh", "-c", "exit " + std::to_string(i % 3)});
      pids.push_back(r->pid);
      all.push_back(r);
    }
    ASSERT_TRUE(runUntil(reactor, [&] {
      for (auto& r : all) {
        if (!r->endReason) return false;
      }
      return true;
    })) << (signals ? "SIGCHLD" : "pidfd");
    for (pid_t pid : pids) EXPECT_TRUE(reaped(pid)) << pid;
    EXPECT_TRUE(all[0]->endReason->check<ProcessDone>());
    EXPECT_EQ(all[1]->endReason->get<ProcessTerminated>()->exitCode(), 1);
  }
  process::Process::useSignalsForTesting(false);
}

TEST(Process, AChildOutlivingItsReactorIsReapedAnyway) {
  pid_t pid;
  auto r = std::make_shared<Recorder>();
  {
    Reactor reactor(quietOptions());
    pid = reactor.spawnProcess(r, "sleep", {"sleep", "0.3"})->pid();
  }
  EXPECT_TRUE(r->endReason.has_value());
  EXPECT_TRUE(r->endReason->check<ConnectionLost>());
  EXPECT_TRUE(testing::eventually([&] { return reaped(pid); }, 10)) << "left a zombie";
}

TEST(Process, AChildThatDoesNotReadIsCutOffNotBuffered) {
  LogCaptureScope logs;
  Reactor reactor(quietOptions());
  auto r = std::make_shared<Recorder>();
  r->closeStdinAtOnce = false;
  SpawnOptions o;
  o.maxWriteBuffer = 1 << 20;
  auto p = reactor.spawnProcess(r, "sleep", {"sleep", "30"}, o);
  std::string chunk(256 * 1024, 'x');
  for (int i = 0; i < 8 && r->events.find("lost0|") == std::string::npos; ++i) p->write(chunk);
  EXPECT_NE(r->events.find("lost0|"), std::string::npos);
  EXPECT_LE(p->bufferedSize(0), size_t{1} << 20);
  EXPECT_EQ(logs->count("does not read its descriptor 0"), 1);
  p->signalProcess(SIGKILL);
  ASSERT_TRUE(runUntil(reactor, [&] { return r->endReason.has_value(); }));
}

TEST(Process, PausingStopsReadingAndTheChildWaits) {
  Reactor reactor(quietOptions());
  class Pausing : public ProcessProtocol {
   public:
    void outReceived(std::string_view d) override {
      got += d.size();
      if (got > 100000 && !pausedOnce) {
        pausedOnce = true;
        transport()->pauseProducing();
      }
    }
    void processEnded(const Failure&) override { ended = true; }
    size_t got = 0;
    bool ended = false, pausedOnce = false;
  };
  auto proto = std::make_shared<Pausing>();
  auto p = reactor.spawnProcess(proto, "yes", {"yes"});
  ASSERT_TRUE(runUntil(reactor, [&] { return proto->got > 100000; }));
  size_t atPause = proto->got;
  testing::runFor(reactor, 0.2);
  EXPECT_EQ(proto->got, atPause) << "read while paused";
  p->resumeProducing();
  ASSERT_TRUE(runUntil(reactor, [&] { return proto->got > atPause; }));
  p->signalProcess(SIGKILL);
  ASSERT_TRUE(runUntil(reactor, [&] { return proto->ended; }));
}

TEST(Process, WritingToAChildThatExitedIsNotFatal) {
  Reactor reactor(quietOptions());
  auto r = std::make_shared<Recorder>();
  r->closeStdinAtOnce = false;
  auto p = reactor.spawnProcess(r, "true", {"true"});
  ASSERT_TRUE(runUntil(reactor, [&] { return r->exitReason.has_value(); }));
  for (int i = 0; i < 10; ++i) p->write(std::string(100000, 'z'));  // EPIPE, not SIGPIPE
  ASSERT_TRUE(runUntil(reactor, [&] { return r->endReason.has_value(); }));
  EXPECT_NE(r->events.find("lost0|"), std::string::npos);
}

TEST(Process, AnExceptionInAProtocolClosesThatPipeOnly) {
  LogCaptureScope logs;
  Reactor reactor(quietOptions());
  class Throws : public Recorder {
   public:
    void outReceived(std::string_view) override { throw std::runtime_error("protocol bug"); }
  };
  auto r = std::make_shared<Throws>();
  reactor.spawnProcess(r, "sh", {"sh", "-c", "echo a; sleep 0.1; echo b >&2"});
  ASSERT_TRUE(runUntil(reactor, [&] { return r->endReason.has_value(); }));
  EXPECT_EQ(r->data[2], "b\n");
  EXPECT_EQ(logs->count("protocol bug"), 1);
}

TEST(Process, GetProcessOutputAndValue) {
  Reactor reactor(quietOptions());
  std::optional<ProcessResult> result;
  getProcessOutputAndValue(reactor, "sh", {"sh", "-c", "echo a; echo b >&2; exit 4"})
      .addCallback([&](ProcessResult r) {
        result = r;
        return r;
      });
  ASSERT_TRUE(runUntil(reactor, [&] { return result.has_value(); }));
  EXPECT_EQ(result->out, "a\n");
  EXPECT_EQ(result->err, "b\n");
  EXPECT_EQ(result->exitCode, 4);
  EXPECT_FALSE(result->signal.has_value());

  std::optional<ProcessResult> killed;
  getProcessOutputAndValue(reactor, "sh", {"sh", "-c", "kill -9 $$"})
      .addCallback([&](ProcessResult r) {
        killed = r;
        return r;
      });
  ASSERT_TRUE(runUntil(reactor, [&] { return killed.has_value(); }));
  EXPECT_EQ(killed->signal, SIGKILL);

  // Too much output: killed, and the Deferred fails.
  std::optional<Failure> tooMuch;
  getProcessOutputAndValue(reactor, "yes", {"yes"}, {}, 1 << 20).addErrback([&](const Failure& f) {
    tooMuch = f;
    return ProcessResult{};
  });
  ASSERT_TRUE(runUntil(reactor, [&] { return tooMuch.has_value(); }));
  EXPECT_TRUE(tooMuch->check<std::length_error>()) << tooMuch->toString();

  std::optional<Failure> missing;
  getProcessOutputAndValue(reactor, "no-such-program-twist", {}).addErrback([&](const Failure& f) {
    missing = f;
    return ProcessResult{};
  });
  ASSERT_TRUE(missing.has_value());
  EXPECT_TRUE(missing->check<std::system_error>());

  // Cancelling kills it.
  auto d = getProcessOutputAndValue(reactor, "sleep", {"sleep", "100"});
  std::optional<Failure> cancelled;
  d.addErrback([&](const Failure& f) {
    cancelled = f;
    return ProcessResult{};
  });
  d.cancel();
  EXPECT_TRUE(cancelled.has_value());
  ASSERT_TRUE(runUntil(reactor, [&] { return reactor.selectableCount() == 0; }));
}

}  // namespace
}  // namespace twist

namespace twist {
namespace {

TEST(ProcessExample, ReportsOutputAndExitCode) {
  int status = -1;
  std::string out = testing::shell(
      "examples/process_runner sh -c 'echo hi; echo oops >&2; exit 3' </dev/null", &status);
  EXPECT_EQ(out, "[out] hi\n[err] oops\nexited with code 3\n");
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  out = testing::shell("echo typed | examples/process_runner --timeout 10 cat", &status);
  EXPECT_EQ(out, "[out] typed\nexited with code 0\n");
}

}  // namespace
}  // namespace twist
