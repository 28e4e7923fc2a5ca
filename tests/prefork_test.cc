// examples/echo_server --workers N (twist/reactor/prefork.h) as a user runs it: a parent that
// binds and forks supervised workers. A killed worker is replaced, SIGHUP replaces every worker
// while clients keep being served, SIGTERM stops them all and the parent exits 0; and a socket
// passed the systemd way (LISTEN_FDS) is served.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/subprocess.h"
#include "tests/test_util.h"

namespace {

using twist::testing::connectTo;
using twist::testing::eventually;
using twist::testing::portFrom;
using twist::testing::recvAtMost;
using twist::testing::sendAll;
using twist::testing::Subprocess;

// The children of `pid` (its workers).
std::set<pid_t> childrenOf(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::set<pid_t> out;
  for (pid_t c; f >> c;) out.insert(c);
  return out;
}

bool echoes(uint16_t port, const std::string& line) {
  int fd = -1;
  try {
    fd = connectTo(port);
  } catch (const std::runtime_error&) {
    return false;  // refused: counted as a failure, not an exception in a client thread
  }
  bool ok = sendAll(fd, line) && recvAtMost(fd, line.size(), 10) == line;
  ::close(fd);
  return ok;
}

struct Workers {
  explicit Workers(const std::string& n = "2", const std::string& drain = "10")
      : process({"examples/echo_server", "--port", "0", "--workers", n, "--drain-timeout", drain}) {
    port = static_cast<uint16_t>(std::stoi(portFrom(process.readLine())));
  }
  Subprocess process;
  uint16_t port = 0;
};

TEST(Prefork, WorkersServeAndAKilledOneIsReplaced) {
  Workers w;
  pid_t parent = w.process.pid();
  ASSERT_TRUE(eventually([&] { return childrenOf(parent).size() == 2; }));
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(echoes(w.port, "hello " + std::to_string(i)));
  std::set<pid_t> before = childrenOf(parent);
  pid_t victim = *before.begin();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] {
    auto now = childrenOf(parent);
    return now.size() == 2 && now.count(victim) == 0;
  }));
  EXPECT_TRUE(echoes(w.port, "still here"));
  int status = w.process.signalAndWait(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// SIGHUP: every worker replaced, one at a time; a client connecting all along is never refused
// and every echo comes back (the listening socket never closes).
TEST(Prefork, SighupReplacesEveryWorkerWithoutDroppingAClient) {
  Workers w;
  pid_t parent = w.process.pid();
  ASSERT_TRUE(eventually([&] { return childrenOf(parent).size() == 2; }));
  std::set<pid_t> before = childrenOf(parent);
  std::atomic<bool> done{false};
  std::atomic<int> served{0}, failed{0};
  std::thread client([&] {
    while (!done) (echoes(w.port, "during the restart\n") ? served : failed)++;
  });
  ASSERT_EQ(::kill(parent, SIGHUP), 0);
  bool replaced = eventually([&] {
    auto now = childrenOf(parent);
    if (now.size() != 2) return false;
    for (pid_t p : now) {
      if (before.count(p) != 0) return false;
    }
    return true;
  });
  int servedAtEnd = served.load();
  eventually([&] { return served.load() > servedAtEnd + 20; }, 10);  // and after it
  done = true;
  client.join();
  EXPECT_TRUE(replaced);
  EXPECT_GT(served.load(), 20);
  EXPECT_EQ(failed.load(), 0);
  int status = w.process.signalAndWait(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Prefork, SigtermStopsEveryWorkerAndTheParentExitsZero) {
  Workers w("3", "0.2");  // the idle connection below is closed 0.2 s after SIGTERM
  pid_t parent = w.process.pid();
  ASSERT_TRUE(eventually([&] { return childrenOf(parent).size() == 3; }));
  std::set<pid_t> workers = childrenOf(parent);
  int idle = connectTo(w.port);  // a connection open at the time
  ASSERT_TRUE(sendAll(idle, "x"));
  ASSERT_EQ(recvAtMost(idle, 1), "x");
  int status = w.process.signalAndWait(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (pid_t p : workers) EXPECT_NE(::kill(p, 0), 0) << "worker " << p << " outlived the parent";
  bool eof = false;
  twist::testing::recvUntilEof(idle, &eof, 10);
  EXPECT_TRUE(eof);
  ::close(idle);
}

// Workers that die at once: restarted with a delay that doubles (0.05 s, 0.1, 0.2, ...), so a
// crash loop costs a few forks a second, not a busy loop; SIGTERM still stops the parent at once.
TEST(Prefork, ACrashLoopIsSlowedDown) {
  Subprocess parent({"tests/prefork_worker", "crash"}, /*mergeStderr=*/true);
  ASSERT_EQ(parent.readLine(), "ready\n");
  int restarts = 0;
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500)) {
    std::string line = parent.readLine(5);
    if (line.find("exited with status 3") != std::string::npos) ++restarts;
  }
  // Two workers, delays 0.05 + 0.1 + 0.2 + 0.4 + 0.8 s: about 5 deaths each in 1.5 s (without
  // the backoff, 30 each).
  EXPECT_GE(restarts, 4);
  EXPECT_LE(restarts, 16);
  int status = parent.signalAndWait(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// Workers that ignore SIGTERM are killed once stopTimeout (0.3 s) has passed.
TEST(Prefork, WorkersThatIgnoreSigtermAreKilledAfterTheTimeout) {
  Subprocess parent({"tests/prefork_worker", "stubborn"}, /*mergeStderr=*/true);
  ASSERT_EQ(parent.readLine(), "ready\n");
  // Only once both ignore it: a SIGTERM before that would simply end a worker (seen under load).
  int ignoring = 0;
  for (std::string line; ignoring < 2 && (line = parent.readLine(10)) != "";) {
    if (line == "worker ignores SIGTERM\n") ++ignoring;
  }
  ASSERT_EQ(ignoring, 2);
  ASSERT_TRUE(eventually([&] { return childrenOf(parent.pid()).size() == 2; }));
  std::set<pid_t> workers = childrenOf(parent.pid());
  ::kill(parent.pid(), SIGTERM);
  std::string log;
  for (std::string line; (line = parent.readLine(10)) != "";) {
    log += line;
    if (line.find("every worker has stopped") != std::string::npos) break;
  }
  EXPECT_NE(log.find("did not stop in time: SIGKILL"), std::string::npos) << log;
  int status = parent.waitExit();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  for (pid_t p : workers) EXPECT_NE(::kill(p, 0), 0);
}

// systemd socket activation: the socket arrives as descriptor 3 with LISTEN_FDS=1 and
// LISTEN_PID; the server serves it (the port it was asked for is not bound): one reactor,
// workers, or threads.
TEST(Prefork, ASocketPassedTheSystemdWayIsServed) {
  for (std::string extra : {"", ", '--workers', '2'", ", '--threads', '2'"}) {
    SCOPED_TRACE(extra);
    std::string exec = "['examples/echo_server', '--port', '1'" + extra + "]";
    Subprocess server({"/usr/bin/python3", "-c",
                       "import os, socket\n"
                       "s = socket.socket()\n"
                       "s.bind(('127.0.0.1', 0))\n"
                       "s.listen(16)\n"
                       "os.dup2(s.fileno(), 3)\n"
                       "os.set_inheritable(3, True)\n"
                       "os.environ['LISTEN_FDS'] = '1'\n"
                       "os.environ['LISTEN_PID'] = str(os.getpid())\n"
                       "args = " +
                           exec +
                           "\n"
                           "os.execv(args[0], args)\n"});
    std::string line = server.readLine();
    uint16_t port = static_cast<uint16_t>(std::stoi(portFrom(line)));
    EXPECT_NE(port, 1) << line;
    EXPECT_TRUE(echoes(port, "activated"));
    int status = server.signalAndWait(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
}

}  // namespace
