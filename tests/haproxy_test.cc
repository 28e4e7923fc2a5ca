// Past one machine: three examples/echo_server instances behind HAProxy with
// deploy/haproxy/haproxy.cfg as it is in the repository. Clients keep connecting through
// HAProxy while one instance is killed: they keep being served, no connection is refused, and
// on every connection, even one cut by the kill, what came back is exactly a prefix of what
// was sent (nothing the instance echoed is lost or garbled on the way).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
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

constexpr const char* kHAProxy = "/usr/sbin/haproxy";

// A port nobody listens on now, for HAProxy's front end (which cannot say what it bound).
uint16_t freePort() {
  uint16_t port = 0;
  ::close(twist::testing::bindLoopback(SOCK_STREAM, &port));
  return port;
}

// One conversation through HAProxy: 20 blocks of 1 KiB, each echoed before the next is sent.
enum class Outcome { Served, Cut, Refused, Garbled };

Outcome converse(uint16_t port, unsigned seed) {
  int fd = -1;
  try {
    fd = connectTo(port);
  } catch (const std::runtime_error&) {
    return Outcome::Refused;
  }
  std::string sent, got;
  for (int i = 0; i < 20; ++i) {
    std::string block(1024, '\0');
    for (size_t k = 0; k < block.size(); ++k) {
      block[k] = static_cast<char>('a' + (seed * 31 + i * 7 + k) % 26);
    }
    if (!sendAll(fd, block)) break;
    sent += block;
    std::string back = recvAtMost(fd, block.size(), 10);
    got += back;
    if (back.size() < block.size()) break;  // cut
  }
  ::close(fd);
  if (sent.compare(0, got.size(), got) != 0) return Outcome::Garbled;
  if (got.empty() && sent.empty()) return Outcome::Refused;
  return got.size() == 20 * 1024 ? Outcome::Served : Outcome::Cut;
}

TEST(HAProxy, ClientsKeepBeingServedWhenAnInstanceDies) {
  ASSERT_EQ(::access(kHAProxy, X_OK), 0) << kHAProxy << " is missing: run tools/setup";
  std::vector<std::unique_ptr<Subprocess>> instances;
  std::vector<std::string> ports;
  for (int i = 0; i < 3; ++i) {
    instances.push_back(std::make_unique<Subprocess>(
        std::vector<std::string>{"examples/echo_server", "--port", "0"}));
    ports.push_back(portFrom(instances.back()->readLine()));
  }
  uint16_t front = freePort();
  Subprocess haproxy({"/usr/bin/env", "FRONT_PORT=" + std::to_string(front), "PORT1=" + ports[0],
                      "PORT2=" + ports[1], "PORT3=" + ports[2], kHAProxy, "-f",
                      "deploy/haproxy/haproxy.cfg", "-db"});
  ASSERT_TRUE(eventually([&] { return converse(front, 0) == Outcome::Served; }))
      << "HAProxy never served";

  std::atomic<bool> done{false};
  std::atomic<int> served{0}, cut{0}, refused{0}, garbled{0};
  std::vector<std::thread> clients;
  for (unsigned t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      for (unsigned n = 0; !done; ++n) {
        switch (converse(front, t * 100000 + n)) {
          case Outcome::Served:
            ++served;
            break;
          case Outcome::Cut:
            ++cut;
            break;
          case Outcome::Refused:
            ++refused;
            break;
          case Outcome::Garbled:
            ++garbled;
            break;
        }
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return served.load() >= 100; }));
  // Kill one instance mid-traffic: no goodbye, its connections cut.
  int atKill = served.load();
  ASSERT_EQ(::kill(instances[1]->pid(), SIGKILL), 0);
  instances[1]->waitExit();
  bool goesOn = eventually([&] { return served.load() >= atKill + 300; });
  done = true;
  for (auto& c : clients) c.join();
  EXPECT_TRUE(goesOn) << "served " << served.load() - atKill << " after the kill";
  EXPECT_EQ(refused.load(), 0);
  EXPECT_EQ(garbled.load(), 0);
  // Only the conversations the dead instance was in the middle of were cut (8 clients: 8 at
  // most, usually 2 or 3).
  EXPECT_LE(cut.load(), 8);
  std::printf("served %d (%d after the kill), cut %d\n", served.load(), served.load() - atKill,
              cut.load());
  for (auto* p : {&haproxy, instances[0].get(), instances[2].get()}) p->signalAndWait(SIGTERM);
}

}  // namespace
