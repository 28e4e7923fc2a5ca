// Running out of file descriptors while connections arrive: the port must not spin, must log
// once per episode, and must serve again once descriptors are free. Its own binary, because it
// lowers RLIMIT_NOFILE for the whole process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include "tests/test_util.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_port.h"

namespace twist {
namespace {

using testing::LogCaptureScope;
using testing::quietOptions;
using testing::runFor;
using testing::runUntil;

double processCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int nonBlockingConnect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  return fd;
}

// True once the server has closed this client socket (EOF or reset).
bool closedByServer(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

TEST(TcpPort, RunningOutOfDescriptorsDoesNotSpinAndServingResumes) {
  LogCaptureScope logs;
  Reactor r(quietOptions());
  auto port = r.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
  uint16_t p = port->getHost().port();

  // Clients need descriptors too: make them first. Their connects complete in the backlog.
  std::vector<int> waiting;
  for (int i = 0; i < 3; ++i) waiting.push_back(nonBlockingConnect(p));

  // UBSan's vptr check reads module information the first time it sees a type, which it cannot
  // do once descriptors run out; let it see the log observer's type while it still can.
  log::info("test", "about to run out of file descriptors");

  // Lower the limit near what is in use, then use up the rest.
  rlimit old{};
  ::getrlimit(RLIMIT_NOFILE, &old);
  std::vector<int> hog;
  hog.push_back(::open("/dev/null", O_RDONLY));
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(hog.back() + 16);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  auto fillUp = [&hog] {
    for (;;) {
      int fd = ::open("/dev/null", O_RDONLY);
      if (fd < 0) return errno;
      hog.push_back(fd);
    }
  };
  ASSERT_EQ(fillUp(), EMFILE);

  // Every waiting client is accepted-and-closed (the port's spare descriptor), not left hanging.
  double cpu0 = processCpuSeconds();
  double wall0 = r.seconds();
  ASSERT_TRUE(runUntil(r, [&] {
    for (int fd : waiting)
      if (!closedByServer(fd)) return false;
    return true;
  }));
  for (int fd : waiting) ::close(fd);
  ASSERT_EQ(fillUp(), EMFILE);

  // A late client while still exhausted (it takes the one slot we free), then a quiet spell:
  // the loop must idle, not spin.
  ::close(hog.back());
  hog.pop_back();
  int late = nonBlockingConnect(p);
  ASSERT_GE(late, 0);
  ASSERT_TRUE(runUntil(r, [&] { return closedByServer(late); }));
  runFor(r, 0.5);
  double cpu = processCpuSeconds() - cpu0;
  double wall = r.seconds() - wall0;
  EXPECT_LT(cpu, 0.5 * wall) << "the loop spun: " << cpu << " s of CPU in " << wall << " s";
  ::close(late);

  // Free the descriptors: the same port serves again.
  for (int fd : hog) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_EQ(logs->count("Out of file descriptors"), 1) << "logged once per episode";
  std::string got;
  testing::ClientThread client([&] {
    int fd = testing::connectTo(p);
    testing::sendAll(fd, "alive");
    got = testing::recvAtMost(fd, 5);
    ::close(fd);
  });
  ASSERT_TRUE(runUntil(r, [&] { return client.done(); }));
  EXPECT_EQ(got, "alive");
  EXPECT_TRUE(port->listening());
  EXPECT_EQ(logs->count("Accepting connections again"), 1);
}

}  // namespace
}  // namespace twist
