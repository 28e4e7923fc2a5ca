// examples/echo_server as a user runs it: a separate process, real clients (nc and Python's
// socket module), the "listening on HOST:PORT" line, and SIGTERM -> exit 0.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/subprocess.h"
#include "tests/test_util.h"

namespace {

using twist::testing::portFrom;
using twist::testing::python;
using twist::testing::shell;

// The echo server binary, with `args`.
class EchoServerProcess : public twist::testing::Subprocess {
 public:
  explicit EchoServerProcess(std::vector<std::string> args)
      : Subprocess(withBinary(std::move(args))) {}

 private:
  static std::vector<std::string> withBinary(std::vector<std::string> args) {
    args.insert(args.begin(), "examples/echo_server");
    return args;
  }
};

// --threads 2, both ways of spreading connections, and each backend: 50 concurrent Python
// clients all echoed, SIGTERM -> every reactor stops, exit 0.
TEST(EchoServerExample, ThreadsServeConcurrentClientsThenExitZeroOnSigterm) {
  for (std::vector<std::string> extra : {std::vector<std::string>{"--balance", "reuseport"},
                                         {"--balance", "handoff"},
                                         {"--backend", "poll"},
                                         {"--backend", "select"}}) {
    SCOPED_TRACE(extra[1]);
    std::vector<std::string> args = {"--port", "0", "--threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    EchoServerProcess server(args);
    std::string port = portFrom(server.readLine());
    EXPECT_EQ(server.readLine().find("2 reactors on 2 threads"), 0u);
    const std::string py =
        "import socket, threading\n"
        "ok = []\n"
        "def client(i):\n"
        "    s = socket.create_connection(('127.0.0.1', " +
        port +
        "), timeout=20)\n"
        "    data = (b'client %d ' % i) * 1000\n"
        "    s.sendall(data)\n"
        "    s.shutdown(socket.SHUT_WR)\n"
        "    got = bytearray()\n"
        "    while (chunk := s.recv(65536)): got += chunk\n"
        "    ok.append(bytes(got) == data)\n"
        "ts = [threading.Thread(target=client, args=(i,)) for i in range(50)]\n"
        "[t.start() for t in ts]\n"
        "[t.join() for t in ts]\n"
        "print(sum(ok))\n";
    int status = -1;
    std::string out = python(py, &status);
    EXPECT_EQ(status, 0);
    EXPECT_EQ(out, "50\n");
    status = server.signalAndWait(SIGTERM);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
}

TEST(EchoServerExample, ServesNcAndPythonThenExitsZeroOnSigterm) {
  EchoServerProcess server({"--port", "0"});
  std::string line = server.readLine();
  ASSERT_EQ(line.rfind("listening on 127.0.0.1:", 0), 0u) << line;
  std::string port = portFrom(line);
  ASSERT_GT(std::stoi(port), 0);

  int status = -1;
  std::string nc = shell("printf 'hello twist\\n' | nc -N -w 10 127.0.0.1 " + port, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(nc, "hello twist\n");

  const std::string py =
      "import socket, sys\n"
      "data = bytes(range(256)) * 4096\n"  // 1 MiB
      "s = socket.create_connection(('127.0.0.1', " +
      port +
      "), timeout=20)\n"
      "s.sendall(data)\n"
      "s.shutdown(socket.SHUT_WR)\n"
      "got = bytearray()\n"
      "while True:\n"
      "    chunk = s.recv(65536)\n"
      "    if not chunk: break\n"
      "    got += chunk\n"
      "print('ok' if bytes(got) == data else 'mismatch %d' % len(got))\n";
  std::string out = python(py, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "ok\n");

  status = server.signalAndWait(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(EchoServerExample, AClientThatSendsWithoutReadingDoesNotGrowTheServer) {
  EchoServerProcess server({"--port", "0"});
  uint16_t port = static_cast<uint16_t>(std::stoi(portFrom(server.readLine())));
  long before = server.statusKiB("VmHWM");
  ASSERT_GT(before, 0);
  int fd = twist::testing::connectTo(port);
  constexpr size_t kFlood = 256 << 20;
  // The echo server reads only while its replies drain: once the kernel's buffers are full on
  // both sides, it stops reading and the flood stalls.
  size_t sent = twist::testing::floodUntilStuck(fd, std::string(1 << 16, 'f'), kFlood);
  long grown = server.statusKiB("VmHWM") - before;
  std::printf("peak memory grew by %ld KiB\n", grown);
  EXPECT_LT(sent, kFlood);
  if (!twist::testing::kSanitized) {
    EXPECT_LE(grown, 8 * 1024) << "the server's peak memory grew by " << grown << " KiB";
  }
  // Reading now brings everything back.
  ::shutdown(fd, SHUT_WR);
  std::string back = twist::testing::recvUntilEof(fd, nullptr, 60);
  EXPECT_EQ(back.size(), sent);
  ::close(fd);
}

TEST(EchoServerExample, IdleConnectionsAreClosed) {
  EchoServerProcess server({"--port", "0", "--idle-timeout", "0.2"});
  uint16_t port = static_cast<uint16_t>(std::stoi(portFrom(server.readLine())));
  int fd = twist::testing::connectTo(port);
  twist::testing::sendAll(fd, "ping");
  EXPECT_EQ(twist::testing::recvAtMost(fd, 4), "ping");
  bool eof = false;
  twist::testing::recvUntilEof(fd, &eof, 20);  // then silence: the server hangs up
  EXPECT_TRUE(eof);
  ::close(fd);
}

TEST(EchoServerExample, SigintAlsoExitsZero) {
  EchoServerProcess server({"--port=0", "--interface=127.0.0.1"});
  ASSERT_EQ(server.readLine().rfind("listening on 127.0.0.1:", 0), 0u);
  int status = server.signalAndWait(SIGINT);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(EchoServerExample, PortInUseExitsOneWithAMessage) {
  EchoServerProcess first({"--port", "0"});
  std::string line = first.readLine();
  std::string port = portFrom(line);
  EchoServerProcess second({"--port", port});
  int status = second.waitExit();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
}

TEST(EchoServerExample, BadFlagExitsTwo) {
  EchoServerProcess server({"--port", "not-a-number"});
  int status = server.waitExit();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
