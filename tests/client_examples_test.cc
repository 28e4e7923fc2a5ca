// examples/echo_client, coroutine_client and reconnecting_client as a user runs them, against
// examples/echo_server: separate processes, real sockets, exit codes and output checked.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/subprocess.h"

namespace {

using twist::testing::portFrom;
using twist::testing::shell;
using twist::testing::Subprocess;

struct Server {
  explicit Server(const std::string& port = "0")
      : process({"examples/echo_server", "--port", port}) {
    this->port = portFrom(process.readLine());
  }
  Subprocess process;
  std::string port;
};

// A port nothing listens on: an echo server's, after it exited.
std::string deadPort() {
  Server s;
  s.process.signalAndWait(SIGTERM);
  return s.port;
}

TEST(EchoClientExample, EchoesArgumentsAndStdin) {
  Server server;
  int status = -1;
  std::string out = shell("examples/echo_client --port " + server.port + " hello world", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "hello\nworld\n");
  out = shell("printf 'from\\nstdin\\n' | examples/echo_client --port " + server.port, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "from\nstdin\n");
}

TEST(EchoClientExample, RefusedExitsOneWithAMessage) {
  int status = -1;
  std::string out = shell("examples/echo_client --port " + deadPort() + " x 2>&1", &status);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(out.find("refused"), std::string::npos) << out;
}

TEST(CoroutineClientExample, AwaitsEachReply) {
  Server server;
  int status = -1;
  std::string out = shell(
      "examples/coroutine_client --port " + server.port + " --timeout 5 one two three", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "one\ntwo\nthree\n");
  out = shell("examples/coroutine_client --port " + deadPort() + " x 2>&1", &status);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(out.find("refused"), std::string::npos) << out;
}

TEST(ReconnectingClientExample, ReconnectsWhenTheServerComesBack) {
  auto server = std::make_unique<Server>();
  std::string port = server->port;
  Subprocess client({"examples/reconnecting_client", "--port", port, "--initial-delay", "0.05"});
  EXPECT_NE(client.readUntil("connected to"), "");
  EXPECT_EQ(client.readLine(), "echo: hello\n");
  server->process.signalAndWait(SIGTERM);  // the server goes away...
  EXPECT_NE(client.readUntil("connection lost"), "");
  EXPECT_NE(client.readUntil("retrying in"), "");
  server = std::make_unique<Server>(port);  // ...and comes back on the same port
  EXPECT_NE(client.readUntil("connected to"), "");
  EXPECT_EQ(client.readLine(), "echo: hello\n");
  int status = client.signalAndWait(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ReconnectingClientExample, GivesUpAfterMaxRetries) {
  int status = -1;
  std::string out = shell(
      "examples/reconnecting_client --port " + deadPort() + " --initial-delay 0.01 --max-retries 2",
      &status);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(out.find("giving up after 2 retries"), std::string::npos) << out;
}

TEST(WireServerExample, ServesEachProtocol) {
  Subprocess server({"examples/wire_server", "--port", "0"});
  std::map<std::string, std::string> ports;
  for (int i = 0; i < 6; ++i) {
    std::string line = server.readLine();
    ASSERT_EQ(line.rfind("listening on 127.0.0.1:", 0), 0u) << line;
    auto space = line.rfind(' ');
    std::string name = line.substr(space + 1, line.size() - space - 2);
    ports[name] = portFrom(line.substr(0, space));
  }
  int status = -1;
  auto python = [&](const std::string& port, const std::string& code) {
    return shell("python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', " + port +
                     "), timeout=10); " + code + "\"",
                 &status);
  };
  EXPECT_EQ(python(ports["echo"], "s.sendall(b'hi'); print(s.recv(2).decode())"), "hi\n");
  EXPECT_EQ(python(ports["qotd"], "print(s.recv(100).decode().strip())"),
            "An apple a day keeps the doctor away.\n");
  EXPECT_EQ(python(ports["time"], "print(len(s.recv(4)))"), "4\n");
  EXPECT_NE(python(ports["daytime"], "print(s.recv(100).decode())").find(":"), std::string::npos);
  EXPECT_EQ(python(ports["chargen"],
                   "data = b''\nwhile len(data) < 100000: data += s.recv(65536)\n"
                   "print(data[:3].decode(), len(set(data[:74].split(b'\\\\r\\\\n')[0])))"),
            " !\" 72\n");
  EXPECT_EQ(python(ports["discard"],
                   "s.sendall(b'x' * 100000); s.shutdown(socket.SHUT_WR); "
                   "print(len(s.recv(10)))"),
            "0\n");
  status = server.signalAndWait(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
