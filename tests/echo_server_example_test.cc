// examples/echo_server as a user runs it: a separate process, real clients (nc and Python's
// socket module), the "listening on HOST:PORT" line, and SIGTERM -> exit 0.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/subprocess.h"

namespace {

using twist::testing::portFrom;
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
  std::string out = shell("python3 -c \"$(cat <<'PYEOF'\n" + py + "PYEOF\n)\"", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "ok\n");

  status = server.signalAndWait(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
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
