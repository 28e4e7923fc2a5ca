// examples/tls_echo_server, tls_echo_client and starttls_server as a user runs them: separate
// processes, real sockets, real peers (openssl s_client, Python's ssl), exit codes checked.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "tests/subprocess.h"
#include "tests/test_util.h"
#include "tests/tls/tls_util.h"
#include "twist/protocols/basic.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tls.h"

namespace twist {
namespace {

using testing::certFile;
using testing::portFrom;
using testing::python;
using testing::shell;
using testing::Subprocess;

struct TLSServer {
  explicit TLSServer(const std::string& cert = "server", const std::string& idleTimeout = "0")
      : process({"examples/tls_echo_server", "--port", "0", "--cert", certFile(cert + ".pem"),
                 "--key", certFile(cert + ".key"), "--idle-timeout", idleTimeout}) {
    port = portFrom(process.readLine());
  }
  Subprocess process;
  std::string port;
};

TEST(TLSEchoExamples, ClientAndServer) {
  TLSServer server;
  int status = -1;
  std::string out = shell("examples/tls_echo_client --host localhost --port " + server.port +
                              " --ca-file " + certFile("ca.pem") + " hello world",
                          &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "hello\nworld\n");
  // The server says who connected and how.
  std::string line = server.process.readLine();
  EXPECT_NE(line.find("TLSv1.3"), std::string::npos) << line;
}

TEST(TLSEchoExamples, OpenSSLSClientAgainstTheServer) {
  // s_client -quiet keeps going after stdin's EOF, until the server closes: here its idle
  // timeout, a second after the echo, ends the connection with a close_notify.
  TLSServer server("server", "1");
  int status = -1;
  std::string out = shell(
      "printf 'via s_client\\n' | /usr/bin/openssl s_client -quiet "
      "-verify_return_error -CAfile " +
          certFile("ca.pem") + " -connect 127.0.0.1:" + server.port + " 2>/dev/null",
      &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "via s_client\n");
}

TEST(TLSEchoExamples, TLSOverAUNIXSocketWithOpenSSL) {
  char dir[] = "/tmp/twist-tls-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/tls.sock";
  Subprocess server({"examples/tls_echo_server", "--listen", "unix:" + path, "--cert",
                     certFile("server.pem"), "--key", certFile("server.key"), "--idle-timeout",
                     "1"});
  EXPECT_EQ(server.readLine(30), "listening on " + path + "\n");
  int status = -1;
  std::string out = shell(
      "printf 'over unix\\n' | /usr/bin/openssl s_client -quiet "
      "-verify_return_error -CAfile " +
          certFile("ca.pem") + " -unix " + path + " 2>/dev/null",
      &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "over unix\n");
  server.signalAndWait(SIGTERM);
  ::rmdir(dir);
}

TEST(TLSEchoExamples, TheClientRefusesBadCertificatesWithAClearMessage) {
  for (auto [cert, needle] : {std::pair{"self", "self-signed"}, std::pair{"expired", "expired"},
                              std::pair{"other", "mismatch"}}) {
    SCOPED_TRACE(cert);
    TLSServer server(cert);
    int status = -1;
    std::string out = shell("examples/tls_echo_client --host localhost --port " + server.port +
                                " --ca-file " + certFile("ca.pem") + " hello 2>&1",
                            &status);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1) << out;
    EXPECT_NE(out.find("certificate refused"), std::string::npos) << out;
    EXPECT_NE(out.find(needle), std::string::npos) << out;
  }
}

TEST(TLSEchoExamples, ThePlainTextClientIsRefused) {
  TLSServer server;
  int status = -1;
  // A plain client: the server closes without a word (OpenSSL sends no alert for a record
  // that is not TLS at all, as s_server does not); nothing is echoed, and the close is clean.
  std::string out = python(
      "import socket\n"
      "s = socket.create_connection(('127.0.0.1', " +
          server.port +
          "))\n"
          "s.sendall(b'hello\\n')\n"
          "got = b''\n"
          "while (chunk := s.recv(4096)): got += chunk\n"
          "print(got.hex())\n",
      &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "\n");
}

TEST(STARTTLSExample, PythonClientUpgrades) {
  Subprocess server({"examples/starttls_server", "--port", "0", "--cert", certFile("server.pem"),
                     "--key", certFile("server.key")});
  std::string port = portFrom(server.readLine());
  std::string script =
      "import socket, ssl\n"
      "s = socket.create_connection(('127.0.0.1', " +
      port +
      "))\n"
      "f = s.makefile('rb')\n"
      "s.sendall(b'before\\r\\nSTARTTLS\\r\\n')\n"
      "print(f.readline().decode().strip())\n"
      "print(f.readline().decode().strip())\n"
      "t = ssl.create_default_context(cafile='" +
      certFile("ca.pem") +
      "').wrap_socket(s, "
      "server_hostname='localhost')\n"
      "t.sendall(b'after\\r\\n')\n"
      "print(t.recv(100).decode().strip())\n"
      "t.sendall(b'STARTTLS\\r\\n')\n"
      "print(t.recv(100).decode().strip())\n";
  int status = -1;
  std::string out = python(script, &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "plain: before\nOK begin TLS\ntls: after\nERR already TLS\n");
  EXPECT_NE(server.readLine().find("upgraded to TLS"), std::string::npos);
}

// STARTTLS command injection (CVE-2011-0411): a man in the middle appends a command to the
// client's STARTTLS in the clear; the server must not run it as if it had come through TLS.
TEST(STARTTLSExample, PlaintextAfterSTARTTLSIsDroppedNotRunAsTLS) {
  Subprocess server({"examples/starttls_server", "--port", "0", "--cert", certFile("server.pem"),
                     "--key", certFile("server.key")});
  std::string port = portFrom(server.readLine());
  std::string script =
      "import socket, ssl\n"
      "s = socket.create_connection(('127.0.0.1', " +
      port +
      "))\n"
      "f = s.makefile('rb')\n"
      "s.sendall(b'STARTTLS\\r\\ninjected\\r\\n')\n"
      "print(f.readline().decode().strip())\n"
      "t = ssl.create_default_context(cafile='" +
      certFile("ca.pem") +
      "').wrap_socket(s, server_hostname='localhost')\n"
      "t.sendall(b'after\\r\\n')\n"
      "print(t.recv(100).decode().strip())\n";
  int status = -1;
  std::string out = python(script, &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "OK begin TLS\ntls: after\n");
  EXPECT_NE(server.readLine().find("dropped 10 bytes"), std::string::npos);
  EXPECT_NE(server.readLine().find("upgraded to TLS"), std::string::npos);
}

// A twist client doing STARTTLS against the example server.
class UpgradingClient : public LineReceiver {
 public:
  explicit UpgradingClient(Reactor* r) : reactor_(r) {}
  void connectionMade() override { sendLine("STARTTLS"); }
  void lineReceived(std::string_view line) override {
    lines.emplace_back(line);
    if (line == "OK begin TLS") {
      tls::startTLS(*this, testing::clientContext(), "localhost", reactor_).addCallback([this] {
        upgraded = true;
        sendLine("secret");
      });
    } else if (line == "tls: secret") {
      transport()->loseConnection();
    }
  }
  void connectionLost(const Failure& r) override { reason = r; }
  Reactor* reactor_;
  std::vector<std::string> lines;
  bool upgraded = false;
  std::optional<Failure> reason;
};

TEST(STARTTLSExample, TwistClientUpgrades) {
  Subprocess server({"examples/starttls_server", "--port", "0", "--cert", certFile("server.pem"),
                     "--key", certFile("server.key")});
  auto port = static_cast<uint16_t>(std::stoi(portFrom(server.readLine())));
  Reactor reactor(testing::quietOptions());
  auto client = std::make_shared<UpgradingClient>(&reactor);
  struct F : ClientFactory {
    std::shared_ptr<UpgradingClient> c;
    std::shared_ptr<Protocol> buildProtocol(const Address&) override { return c; }
  };
  auto f = std::make_shared<F>();
  f->c = client;
  reactor.connectTCP("127.0.0.1", port, f);
  ASSERT_TRUE(testing::runUntil(reactor, [&] { return client->reason.has_value(); }));
  f->c.reset();
  EXPECT_TRUE(client->upgraded);
  EXPECT_EQ(client->lines, (std::vector<std::string>{"OK begin TLS", "tls: secret"}));
  EXPECT_TRUE(client->reason->check<ConnectionDone>()) << client->reason->toString();
}

}  // namespace
}  // namespace twist
