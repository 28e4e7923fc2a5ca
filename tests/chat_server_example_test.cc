// examples/chat_server end to end: several real clients (blocking sockets in this process; the
// server is its own process), names, broadcast, /who, a taken name, an over-long line, and a
// client that leaves in the middle of a line.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>

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

}  // namespace
