// examples/chat_server end to end: several real clients (blocking sockets in this process; the
// server is its own process), names, broadcast, /who, a taken name, an over-long line, and a
// client that leaves in the middle of a line.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/subprocess.h"
#include "tests/test_util.h"

namespace {

using twist::testing::portFrom;
using twist::testing::Subprocess;

class ChatClient {
 public:
  explicit ChatClient(uint16_t port) : fd_(twist::testing::connectTo(port)) {}
  ~ChatClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  void send(const std::string& line) { twist::testing::sendAll(fd_, line); }
  void sendLine(const std::string& line) { send(line + "\r\n"); }
  // The next line, without "\n" ("" on EOF or after the timeout).
  std::string readLine(double timeout = 10) {
    for (;;) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(timeout * 1000)) <= 0) return "";
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }
  // True if the server closed the connection (after whatever is still buffered).
  bool closedByServer() {
    bool eof = false;
    buffer_ += twist::testing::recvUntilEof(fd_, &eof, 10);
    return eof;
  }
  void close() {
    ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
  std::string buffer_;
};

class ChatServerExample : public ::testing::Test {
 protected:
  ChatServerExample() : server_({"examples/chat_server", "--port", "0"}) {
    port_ = static_cast<uint16_t>(std::stoi(portFrom(server_.readLine())));
  }
  Subprocess server_;
  uint16_t port_;
};

TEST_F(ChatServerExample, NamesBroadcastWhoAndDuplicates) {
  ChatClient alice(port_), bob(port_);
  alice.sendLine("alice");
  EXPECT_EQ(alice.readLine(), "welcome, alice");
  bob.send("bob\n");  // nc-style line ending
  EXPECT_EQ(bob.readLine(), "welcome, bob");

  alice.sendLine("hello everyone");
  EXPECT_EQ(bob.readLine(), "alice: hello everyone");
  bob.sendLine("hi alice");
  EXPECT_EQ(alice.readLine(), "bob: hi alice");  // alice never got her own line first

  ChatClient impostor(port_);
  impostor.sendLine("alice");
  EXPECT_EQ(impostor.readLine(), "error: the name alice is taken, choose another");
  impostor.sendLine("carol");
  EXPECT_EQ(impostor.readLine(), "welcome, carol");

  alice.sendLine("/who");
  EXPECT_EQ(alice.readLine(), "users: alice, bob, carol");
}

TEST_F(ChatServerExample, OverLongLineGetsAnErrorAndIsClosed) {
  ChatClient bob(port_), alice(port_);
  bob.sendLine("bob");
  EXPECT_EQ(bob.readLine(), "welcome, bob");
  alice.sendLine("alice");
  EXPECT_EQ(alice.readLine(), "welcome, alice");
  bob.sendLine(std::string(5000, 'x'));
  EXPECT_EQ(bob.readLine(), "error: line too long (the limit is 1024 bytes)");
  EXPECT_TRUE(bob.closedByServer());
  alice.sendLine("/who");
  EXPECT_EQ(alice.readLine(), "users: alice");
}

TEST_F(ChatServerExample, ClientLeavingMidLineIsForgotten) {
  ChatClient alice(port_);
  alice.sendLine("alice");
  EXPECT_EQ(alice.readLine(), "welcome, alice");
  {
    ChatClient dave(port_);
    dave.sendLine("dave");
    EXPECT_EQ(dave.readLine(), "welcome, dave");
    dave.send("half a line without its end");
  }  // dave hangs up
  // Ask until dave is gone (the server hears of the close asynchronously).
  std::string who;
  for (int i = 0; i < 100 && who != "users: alice"; ++i) {
    alice.sendLine("/who");
    who = alice.readLine();
  }
  EXPECT_EQ(who, "users: alice");
  // And the half line was never broadcast: the next thing alice hears is her own query's answer.
  alice.sendLine("/who");
  EXPECT_EQ(alice.readLine(), "users: alice");
  int status = server_.signalAndWait(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---- peers that do not read ----

TEST_F(ChatServerExample, AWhoFloodThatIsNeverReadIsCutOffNotBuffered) {
  // 50 users with long names make each "/who" answer about 50 KiB; one client asks it again
  // and again and never reads. It used to grow the server by hundreds of MiB in a second.
  std::vector<std::unique_ptr<ChatClient>> users;
  for (int i = 0; i < 50; ++i) {
    users.push_back(std::make_unique<ChatClient>(port_));
    std::string name = "user" + std::to_string(i) + std::string(1000, 'n');
    users.back()->sendLine(name);
    ASSERT_EQ(users.back()->readLine(), "welcome, " + name);
  }
  long before = server_.statusKiB("VmHWM");
  ChatClient attacker(port_);
  attacker.sendLine("attacker");
  ASSERT_EQ(attacker.readLine(), "welcome, attacker");
  std::string who;
  for (int i = 0; i < 1000; ++i) who += "/who\r\n";
  int fd = attacker.fd();
  twist::testing::floodUntilStuck(fd, who, 64 << 20);
  long grown = server_.statusKiB("VmHWM") - before;
  std::printf("peak memory grew by %ld KiB\n", grown);
  if (!twist::testing::kSanitized) {
    EXPECT_LE(grown, 8 * 1024) << "the server's peak memory grew by " << grown << " KiB";
  }
  // The server is still there for everyone else.
  users[0]->sendLine("/who");
  EXPECT_EQ(users[0]->readLine(30).rfind("users: ", 0), 0u);
}

TEST_F(ChatServerExample, UsersWhoNeverReadAreDisconnectedAndTheRoomGoesOn) {
  constexpr int kSlow = 20;
  std::vector<std::unique_ptr<ChatClient>> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<ChatClient>(port_));
    slow.back()->sendLine("slow" + std::to_string(i));
    ASSERT_EQ(slow.back()->readLine(), "welcome, slow" + std::to_string(i));
  }
  ChatClient watcher(port_), talker(port_);
  watcher.sendLine("watcher");
  ASSERT_EQ(watcher.readLine(), "welcome, watcher");
  talker.sendLine("talker");
  ASSERT_EQ(talker.readLine(), "welcome, talker");
  long before = server_.statusKiB("VmHWM");

  // 32 MiB of lines: far more than the kernel buffers of a slow user hold, so each one's
  // output passes the transport's cap and it is disconnected.
  const std::string line(1000, 'L');
  constexpr int kLines = 32 * 1024, kBatch = 64;
  // The watcher reads as it should; the talker waits while it is more than 1 MiB behind (a
  // slow machine or a sanitizer may slow its reading thread), so only the users who never read
  // pass the cap.
  size_t heard = 0;
  bool listenerDone = false;
  std::mutex m;
  std::condition_variable progress;
  {
    twist::testing::ClientThread listening([&] {
      for (int i = 0; i < kLines; ++i) {
        bool ok = watcher.readLine(30) == "talker: " + line;
        std::lock_guard lock(m);
        if (ok) ++heard;
        if (!ok || heard % kBatch == 0) progress.notify_one();
        if (!ok) break;
      }
      std::lock_guard lock(m);
      listenerDone = true;
      progress.notify_one();
    });
    std::string batch;
    for (int i = 0; i < kBatch; ++i) batch += line + "\r\n";
    for (size_t sent = 0; sent < kLines; sent += kBatch) {
      std::unique_lock lock(m);
      progress.wait_for(lock, std::chrono::seconds(30),
                        [&] { return listenerDone || heard + 1024 >= sent; });
      if (listenerDone) break;
      lock.unlock();
      talker.send(batch);
    }
  }  // joins the listener
  long grown = server_.statusKiB("VmHWM") - before;
  std::printf("peak memory grew by %ld KiB\n", grown);
  EXPECT_EQ(heard, static_cast<size_t>(kLines)) << "the watcher missed lines";
  if (!twist::testing::kSanitized) {
    EXPECT_LE(grown, kSlow * 6 * 1024) << "the server's peak memory grew by " << grown << " KiB";
  }
  for (auto& s : slow) EXPECT_TRUE(s->closedByServer());
  watcher.sendLine("/who");
  EXPECT_EQ(watcher.readLine(), "users: talker, watcher");
}

}  // namespace
