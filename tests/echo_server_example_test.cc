// examples/echo_server as a user runs it: a separate process, real clients (nc and Python's
// socket module), the "listening on HOST:PORT" line, and SIGTERM -> exit 0.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

extern char** environ;

namespace {

class EchoServerProcess {
 public:
  explicit EchoServerProcess(std::vector<std::string> args) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    args.insert(args.begin(), "examples/echo_server");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) throw std::runtime_error("posix_spawn failed");
    stdout_ = out[0];
  }
  ~EchoServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stdout_);
  }

  // The first line the server prints (waits up to 20 s for it).
  std::string readLine() {
    std::string line;
    char c;
    while (line.empty() || line.back() != '\n') {
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, 20000) <= 0 || ::read(stdout_, &c, 1) != 1) break;
      line += c;
    }
    return line;
  }

  // Sends `sig` and waits for the exit; returns the wait status.
  int signalAndWait(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  int waitExit() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
};

// Runs a shell command; returns its stdout and sets *status to its exit status.
std::string shell(const std::string& command, int* status) {
  FILE* f = ::popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  *status = ::pclose(f);
  return out;
}

std::string portFrom(const std::string& line) {
  return line.substr(line.rfind(':') + 1, std::string::npos);
}

TEST(EchoServerExample, ServesNcAndPythonThenExitsZeroOnSigterm) {
  EchoServerProcess server({"--port", "0"});
  std::string line = server.readLine();
  ASSERT_EQ(line.rfind("listening on 127.0.0.1:", 0), 0u) << line;
  std::string port = portFrom(line);
  port.pop_back();  // newline
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
  port.pop_back();
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
