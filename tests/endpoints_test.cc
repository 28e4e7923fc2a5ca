// Endpoint strings: parsing, every server and client type over real sockets, the errors a typo
// gets, and the examples taking --listen.
#include "twist/transports/endpoints.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/subprocess.h"
#include "tests/test_util.h"
#include "tests/tls/tls_util.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor.h"

namespace twist {
namespace {

using endpoints::clientFromString;
using endpoints::parse;
using endpoints::serverFromString;
using testing::quietOptions;
using testing::runUntil;

std::string shortTempDir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/twist-ep-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    return std::string(tmpl);
  }();
  return dir;
}

class Collect : public Protocol {
 public:
  void connectionMade() override { transport()->write("ping"); }
  void dataReceived(std::string_view d) override { data.append(d); }
  std::string data;
};

// Connects through `client` with a Collect and waits for the echo of "ping".
void expectEcho(Reactor& reactor, const std::string& client) {
  std::shared_ptr<Protocol> got;
  std::optional<Failure> failed;
  clientFromString(reactor, client)
      ->connect(ClientFactory::forProtocol<Collect>())
      .addCallbacks(
          [&](std::shared_ptr<Protocol> p) {
            got = p;
            return p;
          },
          [&](const Failure& f) -> std::shared_ptr<Protocol> {
            failed = f;
            return nullptr;
          });
  ASSERT_TRUE(runUntil(reactor, [&] {
    return failed || (got && static_cast<Collect&>(*got).data == "ping");
  })) << client;
  ASSERT_FALSE(failed) << client << ": " << failed->toString();
  got->transport()->loseConnection();
}

TEST(EndpointParse, PositionalKeywordsAndEscapes) {
  auto d = parse("tcp6:8000:interface=\\:\\:1:backlog=5");
  EXPECT_EQ(d.type, "tcp6");
  EXPECT_EQ(d.positional, std::vector<std::string>{"8000"});
  EXPECT_EQ(d.keywords.at("interface"), "::1");
  EXPECT_EQ(d.keywords.at("backlog"), "5");
  auto u = parse("unix:/a\\\\b=c");  // a backslash, then '=' inside the positional path
  EXPECT_EQ(u.keywords.size(), 1u);  // "=" unescaped makes it a keyword: /a\b = c
  EXPECT_EQ(parse("unix:/a\\=b").positional, std::vector<std::string>{"/a=b"});
  EXPECT_THROW(parse("tcp:80\\"), std::invalid_argument);
  EXPECT_THROW(parse(":80"), std::invalid_argument);
  EXPECT_THROW(parse("tcp:port=1:port=2"), std::invalid_argument);
}

TEST(EndpointParse, MistakesAreClearErrors) {
  Reactor reactor(quietOptions());
  auto message = [&](const std::string& text) {
    try {
      serverFromString(reactor, text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message("tcpp:80").find("unknown type 'tcpp'"), std::string::npos);
  EXPECT_NE(message("tcp:80:interfce=::1").find("unknown argument 'interfce'"), std::string::npos);
  EXPECT_NE(message("tcp:80:interfce=::1").find("tcp takes: port, interface, backlog"),
            std::string::npos);
  EXPECT_NE(message("tcp:99999").find("port=99999 is not a number from 0 to 65535"),
            std::string::npos);
  EXPECT_NE(message("tcp:http").find("port=http"), std::string::npos);
  EXPECT_NE(message("tcp").find("no port given"), std::string::npos);
  EXPECT_NE(message("tcp:80:127.0.0.1:5:6").find("too many positional"), std::string::npos);
  EXPECT_NE(message("tcp:80:port=81").find("port given twice"), std::string::npos);
  EXPECT_NE(message("unix:/x.sock:mode=999").find("mode=999"), std::string::npos);
  EXPECT_NE(message("unix:/x.sock:lockfile=maybe").find("lockfile=maybe"), std::string::npos);
  EXPECT_NE(message("unix").find("no address given"), std::string::npos);
  EXPECT_NE(message("systemd:domain=IPX:index=0").find("domain=IPX"), std::string::npos);
  EXPECT_NE(message("systemd:domain=INET").find("no index"), std::string::npos);
  EXPECT_NE(message("ssl:443").find("no privateKey"), std::string::npos);
  EXPECT_THROW(clientFromString(reactor, "tcp:localhost"), std::invalid_argument);
  EXPECT_THROW(clientFromString(reactor, "tcp:localhost:80:timeout=-1"), std::invalid_argument);
  EXPECT_THROW(clientFromString(reactor, "tcp:localhost:80:timeout=nan"), std::invalid_argument);
  EXPECT_THROW(clientFromString(reactor, "udp:localhost:80"), std::invalid_argument);
  // A key file that does not exist fails when the endpoint is made, not at the first client.
  EXPECT_THROW(serverFromString(reactor, "ssl:0:privateKey=/nonexistent.pem"), std::exception);
}

TEST(Endpoints, TCP) {
  Reactor reactor(quietOptions());
  auto ep = serverFromString(reactor, "tcp:0:interface=127.0.0.1");
  EXPECT_EQ(ep->describe(), "tcp:0:interface=127.0.0.1");
  auto port = ep->listen(Factory::forProtocol<wire::Echo>());
  ASSERT_TRUE(port->getHost().is<IPv4Address>());
  uint16_t n = port->getHost().port();
  expectEcho(reactor, "tcp:127.0.0.1:" + std::to_string(n));
  expectEcho(reactor, "tcp:host=127.0.0.1:port=" + std::to_string(n) + ":timeout=5");
  expectEcho(reactor, "tcp:localhost:" + std::to_string(n));  // resolved
  // A bare number is a TCP port (on every interface).
  auto any = serverFromString(reactor, "0")->listen(Factory::forProtocol<wire::Echo>());
  EXPECT_EQ(any->getHost().host(), "0.0.0.0");
  any->stopListening();
  port->stopListening();
}

TEST(Endpoints, TCP6) {
  Reactor reactor(quietOptions());
  std::shared_ptr<IListeningPort> port;
  try {
    port = serverFromString(reactor, "tcp6:0:interface=\\:\\:1")
               ->listen(Factory::forProtocol<wire::Echo>());
  } catch (const CannotListenError& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  ASSERT_TRUE(port->getHost().is<IPv6Address>());
  expectEcho(reactor, "tcp:\\:\\:1:" + std::to_string(port->getHost().port()));
  port->stopListening();
}

TEST(Endpoints, UNIX) {
  Reactor reactor(quietOptions());
  std::string path = shortTempDir() + "/ep.sock";
  auto port = serverFromString(reactor, "unix:" + path + ":mode=640:lockfile=1")
                  ->listen(Factory::forProtocol<wire::Echo>());
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(::access((path + ".lock").c_str(), F_OK), 0);
  expectEcho(reactor, "unix:" + path);
  expectEcho(reactor, "unix:path=" + path + ":checkPID=1:timeout=5");
  port->stopListening();

  auto abstract = serverFromString(reactor, "unix:@twist-ep-" + std::to_string(::getpid()))
                      ->listen(Factory::forProtocol<wire::Echo>());
  expectEcho(reactor, "unix:@twist-ep-" + std::to_string(::getpid()));
  abstract->stopListening();
}

TEST(Endpoints, SSL) {
  Reactor reactor(quietOptions());
  auto port = serverFromString(reactor, "ssl:0:privateKey=" + testing::certFile("server.key") +
                                            ":certKey=" + testing::certFile("server.pem") +
                                            ":interface=127.0.0.1")
                  ->listen(Factory::forProtocol<wire::Echo>());
  std::string n = std::to_string(port->getHost().port());
  expectEcho(reactor, "ssl:127.0.0.1:" + n + ":caFile=" + testing::certFile("ca.pem") +
                          ":hostname=localhost");
  expectEcho(reactor, "tls:host=localhost:port=" + n + ":caFile=" + testing::certFile("ca.pem"));
  // An unverifiable server fails the Deferred with the certificate error.
  std::optional<Failure> failed;
  clientFromString(reactor, "ssl:127.0.0.1:" + n + ":hostname=localhost")  // system CAs
      ->connect(ClientFactory::forProtocol<Collect>())
      .addErrback([&](const Failure& f) -> std::shared_ptr<Protocol> {
        failed = f;
        return nullptr;
      });
  ASSERT_TRUE(runUntil(reactor, [&] { return failed.has_value(); }));
  EXPECT_NE(failed->toString().find("certificate"), std::string::npos) << failed->toString();
  port->stopListening();
}

TEST(Endpoints, ClientFailuresAndCancelling) {
  Reactor reactor(quietOptions());
  uint16_t closed;
  ::close(testing::bindLoopback(SOCK_STREAM, &closed));
  std::optional<Failure> failed;
  clientFromString(reactor, "tcp:127.0.0.1:" + std::to_string(closed))
      ->connect(ClientFactory::forProtocol<Collect>())
      .addErrback([&](const Failure& f) -> std::shared_ptr<Protocol> {
        failed = f;
        return nullptr;
      });
  ASSERT_TRUE(runUntil(reactor, [&] { return failed.has_value(); }));
  EXPECT_TRUE(failed->check<ConnectionRefusedError>());

  // Cancelled before it connects: the attempt stops, the Deferred fails with CancelledError.
  auto d = clientFromString(reactor, "tcp:10.255.255.1:9:timeout=30")
               ->connect(ClientFactory::forProtocol<Collect>());
  std::optional<Failure> cancelled;
  d.addErrback([&](const Failure& f) -> std::shared_ptr<Protocol> {
    cancelled = f;
    return nullptr;
  });
  d.cancel();
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_TRUE(cancelled->check<CancelledError>()) << cancelled->toString();
  testing::runFor(reactor, 0.05);
  EXPECT_EQ(reactor.selectableCount(), 0u) << "the connector was left running";
}

TEST(Endpoints, SystemdWithoutSocketsSaysSo) {
  Reactor reactor(quietOptions());
  auto ep = serverFromString(reactor, "systemd:domain=INET:index=0");
  try {
    ep->listen(Factory::forProtocol<wire::Echo>());
    FAIL() << "listened without a socket from systemd";
  } catch (const CannotListenError& e) {
    EXPECT_NE(std::string(e.what()).find("systemd passed 0 socket(s)"), std::string::npos)
        << e.what();
  }
}

// ---- the examples take --listen ----

TEST(EndpointExamples, EchoServerOnAUNIXSocket) {
  std::string path = shortTempDir() + "/echo.sock";
  testing::Subprocess server({"examples/echo_server", "--listen", "unix:" + path + ":mode=600"});
  std::string line = server.readLine(30);
  EXPECT_EQ(line, "listening on " + path + "\n");
  Reactor reactor(quietOptions());
  expectEcho(reactor, "unix:" + path);
  // The example client too, through its --connect endpoint.
  int status = -1;
  std::string out =
      testing::shell("examples/echo_client --connect unix:" + path + " hello unix", &status);
  EXPECT_EQ(out, "hello\nunix\n");
  EXPECT_EQ(status, 0);
  server.signalAndWait(SIGTERM);
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file was left behind";
}

TEST(EndpointExamples, ChatServerOnTCPWithAnEndpoint) {
  testing::Subprocess server({"examples/chat_server", "--listen", "tcp:0:interface=127.0.0.1"});
  std::string line = server.readLine(30);
  std::string port = testing::portFrom(line);
  ASSERT_FALSE(port.empty()) << line;
  int status = -1;
  std::string out = testing::python(
      "import socket\n"
      "s = socket.create_connection(('127.0.0.1', " +
          port +
          "))\n"
          "print('connected')\n",
      &status);
  EXPECT_EQ(status, 0) << out;
  server.signalAndWait(SIGTERM);
}

TEST(EndpointExamples, EchoServerFromASystemdSocket) {
  // What systemd does: bind, then start the server with the socket as descriptor 3.
  int status = -1;
  std::string out = testing::python(
      "import os, socket, subprocess, sys\n"
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
      "s.bind('" +
          shortTempDir() +
          "/sd.sock')\n"
          "s.listen(16)\n"
          "os.dup2(s.fileno(), 3)\n"
          "os.set_inheritable(3, True)\n"
          "env = dict(os.environ)\n"
          "p = subprocess.Popen(['/bin/sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "
          "examples/echo_server --listen systemd:domain=UNIX:index=0'], pass_fds=[3],\n"
          "                     stdout=subprocess.PIPE, env=env)\n"
          "print(p.stdout.readline().decode().strip())\n"
          "c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
          "c.connect('" +
          shortTempDir() +
          "/sd.sock')\n"
          "c.sendall(b'via systemd')\n"
          "print(c.recv(100).decode())\n"
          "p.terminate()\n"
          "print('exit', p.wait())\n",
      &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("listening on " + shortTempDir() + "/sd.sock"), std::string::npos) << out;
  EXPECT_NE(out.find("via systemd"), std::string::npos) << out;
  EXPECT_NE(out.find("exit 0"), std::string::npos) << out;
}

}  // namespace
}  // namespace twist
