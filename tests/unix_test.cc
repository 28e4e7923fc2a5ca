// UNIX stream sockets: listenUNIX / connectUNIX over real sockets (files and abstract names),
// socket files and their locks, peer credentials, passing file descriptors, TLS over a UNIX
// socket, and real clients (Python's socket module).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/subprocess.h"
#include "tests/test_util.h"
#include "tests/tls/tls_util.h"
#include "twist/protocols/policies.h"
#include "twist/protocols/wire.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tls.h"

namespace twist {
namespace {

using testing::LogCaptureScope;
using testing::quietOptions;
using testing::runUntil;

// A fresh path in a directory of this test's own. Not TEST_TMPDIR: Bazel's is longer than the
// 107 bytes a UNIX socket path may have.
std::string socketPath(const std::string& name) {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/twist-unix-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    return std::string(tmpl);
  }();
  std::string path = dir + "/" + name + ".sock";
  ::unlink(path.c_str());
  return path;
}

// A factory that builds with `fn`.
class FunctionFactory : public ClientFactory {
 public:
  explicit FunctionFactory(std::function<std::shared_ptr<Protocol>(const Address&)> fn)
      : fn_(std::move(fn)) {}
  std::shared_ptr<Protocol> buildProtocol(const Address& a) override { return fn_(a); }

 private:
  std::function<std::shared_ptr<Protocol>(const Address&)> fn_;
};
template <class F>
std::shared_ptr<ClientFactory> factoryOf(F fn) {
  return std::make_shared<FunctionFactory>(std::move(fn));
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// What a server that died leaves behind: a socket file nobody listens on.
void leaveStaleSocketFile(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss;
  socklen_t len;
  ASSERT_TRUE(makeUNIXSockaddr(path, &ss, &len));
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
  ::close(fd);
}

// A raw client: connects to path (blocking), or -1.
int rawConnect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss;
  socklen_t len;
  if (!makeUNIXSockaddr(path, &ss, &len) ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends a greeting, keeps what comes back, remembers how it ended.
class Client : public Protocol {
 public:
  explicit Client(std::string greeting = "hello") : greeting_(std::move(greeting)) {}
  void connectionMade() override {
    peer = transport()->getPeer();
    host = transport()->getHost();
    if (!greeting_.empty()) transport()->write(greeting_);
  }
  void dataReceived(std::string_view d) override { data.append(d); }
  void connectionLost(const Failure& r) override { reason = r; }
  std::string data;
  Address peer, host;
  std::optional<Failure> reason;

 private:
  std::string greeting_;
};

class ClientFactory1 : public ClientFactory {
 public:
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    protocol = std::make_shared<Client>(greeting);
    return protocol;
  }
  void clientConnectionFailed(IConnector&, const Failure& r) override { failed = r; }
  std::string greeting = "hello";
  std::shared_ptr<Client> protocol;
  std::optional<Failure> failed;
};

// A ClientFactory1 for a test: the factory holds its protocol and the protocol its factory, so
// the handle breaks that cycle when the test ends.
struct ClientHandle {
  std::shared_ptr<ClientFactory1> f = std::make_shared<ClientFactory1>();
  ~ClientHandle() { f->protocol.reset(); }
  ClientFactory1* operator->() const { return f.get(); }
  operator std::shared_ptr<ClientFactory>() const { return f; }  // NOLINT: passed to connect
};

// Echo that records the addresses its transport showed.
class AddressEcho : public Protocol {
 public:
  void connectionMade() override {
    seenPeer = transport()->getPeer();
    seenHost = transport()->getHost();
  }
  void dataReceived(std::string_view d) override { transport()->write(d); }
  static inline Address seenPeer, seenHost;
};

TEST(UNIX, EchoOverASocketFileWithAddressesAndCredentials) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("echo");
  auto port = reactor.listenUNIX(path, Factory::forProtocol<AddressEcho>());
  EXPECT_EQ(port->getHost(), Address(UNIXAddress{path}));
  EXPECT_TRUE(exists(path));

  ClientHandle factory;
  auto connector = reactor.connectUNIX(path, factory);
  EXPECT_EQ(connector->getDestination(), Address(UNIXAddress{path}));
  ASSERT_TRUE(
      runUntil(reactor, [&] { return factory->protocol && factory->protocol->data == "hello"; }));

  // Both ends know who the other is: this very process.
  const auto* serverSeen = AddressEcho::seenPeer.get<UNIXAddress>();
  ASSERT_NE(serverSeen, nullptr);
  ASSERT_TRUE(serverSeen->credentials.has_value());
  EXPECT_EQ(serverSeen->credentials->pid, ::getpid());
  EXPECT_EQ(serverSeen->credentials->uid, ::getuid());
  EXPECT_EQ(serverSeen->credentials->gid, ::getgid());
  EXPECT_EQ(AddressEcho::seenHost, Address(UNIXAddress{path}));
  const auto* clientSeen = factory->protocol->peer.get<UNIXAddress>();
  ASSERT_NE(clientSeen, nullptr);
  EXPECT_EQ(clientSeen->path, path);
  ASSERT_TRUE(clientSeen->credentials.has_value());
  EXPECT_EQ(clientSeen->credentials->pid, ::getpid());
  EXPECT_NE(factory->protocol->peer.repr().find("pid="), std::string::npos);

  // No TCP options on a UNIX socket, and no crash asking for them.
  factory->protocol->transport()->setTcpNoDelay(true);
  EXPECT_FALSE(factory->protocol->transport()->getTcpNoDelay());

  port->stopListening();
  EXPECT_FALSE(exists(path)) << "the port removes its socket file";
  factory->protocol->transport()->loseConnection();
  ASSERT_TRUE(runUntil(reactor, [&] { return factory->protocol->reason.has_value(); }));
  EXPECT_TRUE(factory->protocol->reason->check<ConnectionDone>());
}

TEST(UNIX, ModeIsSetBeforeAnyoneCanConnect) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("mode");
  auto port = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>(), {.mode = 0600});
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  port->stopListening();
}

TEST(UNIX, AbstractNamesHaveNoFile) {
  Reactor reactor(quietOptions());
  std::string name = "@twist-unix-test-" + std::to_string(::getpid());
  auto port = reactor.listenUNIX(name, Factory::forProtocol<wire::Echo>());
  std::string raw = name;
  raw[0] = '\0';
  EXPECT_EQ(port->getHost(), Address(UNIXAddress{raw}));
  EXPECT_EQ(port->getHost().toString(), name);
  EXPECT_FALSE(exists(name));

  // '@' and a leading NUL name the same socket.
  for (const std::string& target : {name, raw}) {
    ClientHandle factory;
    reactor.connectUNIX(target, factory);
    ASSERT_TRUE(
        runUntil(reactor, [&] { return factory->protocol && factory->protocol->data == "hello"; }));
    factory->protocol->transport()->loseConnection();
  }
  // A second port on the same name is refused; after stopping, the name is free again.
  EXPECT_THROW(reactor.listenUNIX(name, Factory::forProtocol<wire::Echo>()), CannotListenError);
  port->stopListening();
  auto again = reactor.listenUNIX(name, Factory::forProtocol<wire::Echo>());
  again->stopListening();
}

TEST(UNIX, AnExistingSocketFileIsNeverRemovedWithoutTheLock) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("stale");
  leaveStaleSocketFile(path);
  ASSERT_TRUE(exists(path));
  try {
    reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>());
    FAIL() << "listened over an existing socket file";
  } catch (const CannotListenError& e) {
    EXPECT_NE(std::string(e.what()).find("Address already in use"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("wantPID"), std::string::npos) << e.what();
    EXPECT_EQ(e.interface(), path);
  }
  EXPECT_TRUE(exists(path));

  // With the lock, nobody else can be serving there: the stale file is replaced.
  auto port = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>(), {.wantPID = true});
  int fd = rawConnect(path);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::sendAll(fd, "ping"));
  std::string got;
  ASSERT_TRUE(runUntil(reactor, [&] {
    char buf[16];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    return got == "ping";
  }));
  ::close(fd);
  // The lock file says who holds it.
  int lock = ::open((path + ".lock").c_str(), O_RDONLY);
  ASSERT_GE(lock, 0);
  char pid[32] = {0};
  ASSERT_GT(::read(lock, pid, sizeof pid - 1), 0);
  ::close(lock);
  EXPECT_EQ(std::atoi(pid), ::getpid());
  port->stopListening();
  EXPECT_FALSE(exists(path));
}

TEST(UNIX, ALiveServersSocketIsNeverTakenOver) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("live");
  auto first = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>(), {.wantPID = true});
  // Another process tries the same path with the lock: refused, and the first still serves.
  int status = -1;
  std::string out = testing::python(
      "import fcntl, struct, os\n"
      "f = os.open('" +
          path +
          ".lock', os.O_RDWR)\n"
          "lk = struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0)\n"
          "try:\n"
          "    fcntl.fcntl(f, 37, lk)\n"  // F_OFD_SETLK
          "    print('locked')\n"
          "except OSError as e:\n"
          "    print('busy', e.errno)\n",
      &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("busy"), std::string::npos) << out;
  try {
    reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>(), {.wantPID = true});
    FAIL() << "a second port took a live server's path";
  } catch (const CannotListenError& e) {
    EXPECT_NE(std::string(e.what()).find("a server is running there"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>()), CannotListenError);
  EXPECT_TRUE(exists(path));
  int fd = rawConnect(path);
  EXPECT_GE(fd, 0);
  ::close(fd);
  first->stopListening();
  // Once it stopped, the path can be had again.
  auto second = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>(), {.wantPID = true});
  second->stopListening();
}

TEST(UNIX, StoppingNeverRemovesAnotherServersSocketFile) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("replaced");
  auto first = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>());
  ::unlink(path.c_str());  // an operator removed it, and a new server took the path
  auto second = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>());
  first->stopListening();
  EXPECT_TRUE(exists(path)) << "the first port removed the second's socket file";
  int fd = rawConnect(path);
  EXPECT_GE(fd, 0);
  ::close(fd);
  second->stopListening();
  EXPECT_FALSE(exists(path));
}

TEST(UNIX, AFileThatIsNotASocketIsLeftAlone) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("regular");
  int f = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(f, 0);
  ASSERT_EQ(::write(f, "keep", 4), 4);
  ::close(f);
  EXPECT_THROW(reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>(), {.wantPID = true}),
               CannotListenError);
  EXPECT_THROW(reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>()), CannotListenError);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 4);
  ::unlink(path.c_str());
}

TEST(UNIX, BadPathsAreClearErrors) {
  Reactor reactor(quietOptions());
  std::string tooLong = "/tmp/" + std::string(200, 'x');
  try {
    reactor.listenUNIX(tooLong, Factory::forProtocol<wire::Echo>());
    FAIL();
  } catch (const CannotListenError& e) {
    EXPECT_NE(std::string(e.what()).find("longer than"), std::string::npos) << e.what();
  }
  try {
    reactor.listenUNIX(std::string("/tmp/a\0b", 8), Factory::forProtocol<wire::Echo>());
    FAIL();
  } catch (const CannotListenError& e) {
    EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reactor.listenUNIX("", Factory::forProtocol<wire::Echo>()), CannotListenError);
  EXPECT_THROW(reactor.listenUNIX("/nonexistent-dir/x.sock", Factory::forProtocol<wire::Echo>()),
               CannotListenError);
  EXPECT_THROW(reactor.listenUNIX(socketPath("nofactory"), nullptr), std::invalid_argument);
  ClientHandle factory;
  EXPECT_THROW(reactor.connectUNIX(tooLong, factory), std::invalid_argument);
  EXPECT_THROW(reactor.connectUNIX("", factory), std::invalid_argument);
  EXPECT_THROW(reactor.connectUNIX(std::string("/tmp/a\0b", 8), factory), std::invalid_argument);
}

TEST(UNIX, ConnectFailuresAreReported) {
  Reactor reactor(quietOptions());
  // Nothing at the path.
  ClientHandle missing;
  reactor.connectUNIX(socketPath("missing"), missing);
  ASSERT_TRUE(runUntil(reactor, [&] { return missing->failed.has_value(); }));
  EXPECT_TRUE(missing->failed->check<ConnectError>());
  EXPECT_NE(missing->failed->toString().find("No such file"), std::string::npos)
      << missing->failed->toString();

  // A stale socket file: refused.
  std::string path = socketPath("refused");
  leaveStaleSocketFile(path);
  ClientHandle refused;
  reactor.connectUNIX(path, refused);
  ASSERT_TRUE(runUntil(reactor, [&] { return refused->failed.has_value(); }));
  EXPECT_TRUE(refused->failed->check<ConnectionRefusedError>()) << refused->failed->toString();

  // checkPID: no server holds the lock, so the stale file is not even tried.
  ClientHandle checked;
  reactor.connectUNIX(path, checked, {.checkPID = true});
  ASSERT_TRUE(runUntil(reactor, [&] { return checked->failed.has_value(); }));
  EXPECT_NE(checked->failed->toString().find(".lock"), std::string::npos);
  ::unlink(path.c_str());

  // With a locked server, checkPID connects.
  auto port = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>(), {.wantPID = true});
  ClientHandle ok;
  reactor.connectUNIX(path, ok, {.checkPID = true});
  ASSERT_TRUE(runUntil(reactor, [&] { return ok->protocol && ok->protocol->data == "hello"; }));
  ok->protocol->transport()->loseConnection();
  port->stopListening();
}

TEST(UNIX, AFullBacklogIsRetriedUntilTheTimeout) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("backlog");
  // A server that does not accept, with the smallest backlog: filled by two raw clients.
  int server = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_storage ss;
  socklen_t len;
  ASSERT_TRUE(makeUNIXSockaddr(path, &ss, &len));
  ASSERT_EQ(::bind(server, reinterpret_cast<sockaddr*>(&ss), len), 0);
  ASSERT_EQ(::listen(server, 0), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 8; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      ASSERT_EQ(errno, EAGAIN);
      ::close(fd);
      break;
    }
    fillers.push_back(fd);
  }
  ClientHandle late;
  reactor.connectUNIX(path, late, {.timeout = 0.3});
  ASSERT_TRUE(runUntil(reactor, [&] { return late->failed.has_value(); }));
  EXPECT_TRUE(late->failed->check<TimeoutError>()) << late->failed->toString();

  // Room comes while it retries: it connects.
  ClientHandle patient;
  patient->greeting = "";
  reactor.connectUNIX(path, patient, {.timeout = 10});
  reactor.callLater(0.05, [&] {
    for (int i = 0; i < 8; ++i) {
      int fd = ::accept4(server, nullptr, nullptr, SOCK_NONBLOCK);
      if (fd >= 0) ::close(fd);
    }
  });
  ASSERT_TRUE(runUntil(reactor, [&] { return patient->protocol != nullptr; }));
  EXPECT_FALSE(patient->failed.has_value());
  for (int fd : fillers) ::close(fd);
  ::close(server);
  ::unlink(path.c_str());
}

// ---- passing descriptors ----

// Records, in order, what came: "d:<bytes>" and "f" for each descriptor (kept in fds).
class FdRecorder : public Protocol, public IFileDescriptorReceiver {
 public:
  void fileDescriptorReceived(int fd) override {
    events += "f|";
    fds.push_back(fd);
  }
  void dataReceived(std::string_view d) override {
    for (char c : d) events += std::string("d:") + c + "|";
    data.append(d);
  }
  // How many descriptors had come before the first byte `c`.
  int descriptorsBefore(char c) const {
    size_t at = events.find(std::string("d:") + c);
    int n = 0;
    for (size_t i = events.find("f|"); i < at; i = events.find("f|", i + 1)) ++n;
    return n;
  }
  ~FdRecorder() override {
    for (int fd : fds) ::close(fd);
  }
  std::string events, data;
  std::vector<int> fds;
};

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) == 0) {
      r = p[0];
      w = p[1];
    }
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
};

// A server with one FdRecorder, and a client connected to it.
struct FdPair {
  Reactor reactor{quietOptions()};
  std::string path = socketPath("fds");
  std::shared_ptr<FdRecorder> server;
  ClientHandle client;
  std::shared_ptr<IListeningPort> port;

  explicit FdPair(std::shared_ptr<Factory> factory = nullptr) {
    if (!factory) {
      factory = factoryOf([this](const Address&) {
        server = std::make_shared<FdRecorder>();
        return server;
      });
    }
    port = reactor.listenUNIX(path, factory);
    client->greeting = "";
    reactor.connectUNIX(path, client);
    runUntil(reactor, [&] { return client->protocol && client->protocol->connected(); });
  }
  IUNIXTransport& out() { return *dynamic_cast<IUNIXTransport*>(client->protocol->transport()); }
};

TEST(UNIXDescriptors, EachArrivesNoLaterThanTheByteItWasSentWith) {
  FdPair p;
  ASSERT_TRUE(p.client->protocol);
  ITransport* t = p.client->protocol->transport();
  ASSERT_NE(dynamic_cast<IUNIXTransport*>(t), nullptr);
  Pipe a, b;
  t->write("a");
  p.out().sendFileDescriptor(a.w);
  t->write("b");
  p.out().sendFileDescriptor(b.w);
  p.out().sendFileDescriptor(b.w);
  t->write("cd");
  ASSERT_TRUE(runUntil(p.reactor, [&] { return p.server && p.server->data == "abcd"; }));
  // Each before its byte; the kernel may hand bytes written before it in the same read.
  EXPECT_EQ(p.server->descriptorsBefore('b'), 1) << p.server->events;
  EXPECT_EQ(p.server->descriptorsBefore('c'), 3) << p.server->events;
  ASSERT_EQ(p.server->fds.size(), 3u);
  // They are working descriptors: what the server writes into them comes out of our pipes.
  ASSERT_EQ(::write(p.server->fds[0], "A", 1), 1);
  ASSERT_EQ(::write(p.server->fds[2], "B", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(a.r, &c, 1), 1);
  EXPECT_EQ(c, 'A');
  ASSERT_EQ(::read(b.r, &c, 1), 1);
  EXPECT_EQ(c, 'B');
  // Close-on-exec, as everything twist opens.
  EXPECT_TRUE(::fcntl(p.server->fds[1], F_GETFD) & FD_CLOEXEC);
}

TEST(UNIXDescriptors, TheSenderKeepsItsOwnAndMoreThanOneMessageHoldsArriveInOrder) {
  FdPair p;
  Pipe a;
  // 300 descriptors (more than the 253 one message may carry), one per byte.
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    p.out().sendFileDescriptor(a.w);
    p.client->protocol->transport()->write("x");
    bytes += 'x';
  }
  ASSERT_TRUE(runUntil(p.reactor, [&] { return p.server && p.server->data == bytes; }));
  EXPECT_EQ(p.server->fds.size(), 300u);
  // The i-th byte never comes before the i-th descriptor.
  int fds = 0, byteIndex = 0;
  for (size_t i = 0; i + 1 < p.server->events.size(); i += 2) {
    if (p.server->events.compare(i, 2, "f|") == 0) {
      ++fds;
    } else {
      ++byteIndex;
      EXPECT_GE(fds, byteIndex) << "byte " << byteIndex << " came before its descriptor";
      i += 2;  // "d:x|"
    }
  }
  EXPECT_EQ(fds, 300);
  // Ours is still open.
  EXPECT_EQ(::write(a.w, "k", 1), 1);
}

TEST(UNIXDescriptors, AProtocolThatDoesNotWantThemHasThemClosed) {
  LogCaptureScope logs;
  Reactor reactor(quietOptions());
  std::string path = socketPath("unwanted");
  auto port = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>());
  int fd = rawConnect(path);
  ASSERT_GE(fd, 0);
  Pipe pipe;
  // Send the pipe's write end; then drop ours: only the server's copy keeps the pipe open.
  char byte = 'z';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pipe.w, sizeof(int));
  ASSERT_EQ(::sendmsg(fd, &msg, 0), 1);
  ::close(pipe.w);
  pipe.w = -1;
  std::string echoed;
  ASSERT_TRUE(runUntil(reactor, [&] {
    char buf[8];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) echoed.append(buf, static_cast<size_t>(n));
    return echoed == "z";
  }));
  // The server closed its copy: the pipe has no writer left.
  char buf[1];
  EXPECT_EQ(::read(pipe.r, buf, 1), 0);
  EXPECT_EQ(logs->count("not an IFileDescriptorReceiver"), 1);
  ::close(fd);
  port->stopListening();
}

TEST(UNIXDescriptors, OutOfDescriptorsTheBytesStillComeAndItIsLogged) {
  LogCaptureScope logs;
  FdPair p;
  ASSERT_TRUE(p.client->protocol);
  ASSERT_TRUE(runUntil(p.reactor, [&] { return p.server != nullptr; }));
  // A hostile peer sends more descriptors than this process may still open.
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(probe, 0);
  ::close(probe);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(probe) + 5;  // room for a few, not for 50
  Pipe a;
  for (int i = 0; i < 50; ++i) p.out().sendFileDescriptor(a.w);
  p.client->protocol->transport()->write("payload");
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  bool arrived = runUntil(p.reactor, [&] { return p.server->data == "payload"; });
  ::setrlimit(RLIMIT_NOFILE, &old);
  ASSERT_TRUE(arrived) << "the bytes did not arrive";
  EXPECT_LT(p.server->fds.size(), 50u);
  EXPECT_GE(logs->count("were dropped (MSG_CTRUNC)"), 1);
  EXPECT_TRUE(p.server->connected()) << "the connection goes on";
}

TEST(UNIXDescriptors, MisuseIsRefusedAndNothingLeaks) {
  FdPair p;
  EXPECT_THROW(p.out().sendFileDescriptor(-1), std::system_error);
  Pipe a;
  // Too many waiting (no byte written after them): refused, not hoarded.
  for (size_t i = 0; i < IUNIXTransport::kMaxPendingDescriptors; ++i)
    p.out().sendFileDescriptor(a.w);
  EXPECT_THROW(p.out().sendFileDescriptor(a.w), std::length_error);
  // Dropping the connection closes the duplicates it held: afterwards, only our pipe end holds
  // the pipe open.
  p.client->protocol->transport()->abortConnection();
  ASSERT_TRUE(runUntil(p.reactor, [&] { return p.client->protocol->reason.has_value(); }));
  ::close(a.w);
  a.w = -1;
  char buf[1];
  EXPECT_EQ(::read(a.r, buf, 1), 0) << "a duplicate was leaked";
  // After the connection ended: ignored.
  Pipe b;
  p.client->protocol->transport()->write("late");
  // The closed transport is not a UNIX one any more; the Server was: nothing to call.

  // A TCP connection is not an IUNIXTransport.
  Reactor reactor(quietOptions());
  auto tcp = reactor.listenTCP(0, Factory::forProtocol<wire::Echo>(), {.interface = "127.0.0.1"});
  ClientHandle factory;
  reactor.connectTCP("127.0.0.1", tcp->getHost().port(), factory);
  ASSERT_TRUE(
      runUntil(reactor, [&] { return factory->protocol && factory->protocol->connected(); }));
  EXPECT_EQ(dynamic_cast<IUNIXTransport*>(factory->protocol->transport()), nullptr);
}

TEST(UNIXDescriptors, AWrapperPassesThemThrough) {
  // ThrottlingFactory-style wrappers sit between the socket and the protocol.
  std::shared_ptr<FdRecorder> inner;
  auto wrapped = factoryOf([&](const Address&) {
    inner = std::make_shared<FdRecorder>();
    return inner;
  });
  FdPair p(std::make_shared<WrappingFactory>(wrapped));
  Pipe a;
  p.out().sendFileDescriptor(a.w);
  p.client->protocol->transport()->write("w");
  ASSERT_TRUE(runUntil(p.reactor, [&] { return inner && inner->data == "w"; }));
  EXPECT_EQ(inner->events, "f|d:w|");
}

// ---- TLS over a UNIX socket, and real clients ----

TEST(UNIX, TLSOverAUNIXSocket) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("tls");
  auto serverFactory = std::make_shared<tls::TLSFactory>(Factory::forProtocol<wire::Echo>(),
                                                         testing::serverContext(),
                                                         tls::LayerOptions{.clock = &reactor});
  auto port = reactor.listenUNIX(path, serverFactory);
  auto client = std::make_shared<testing::TLSRecorder>();
  client->greeting = "over tls";
  client->closeAfter = 8;
  auto clientFactory = std::make_shared<tls::TLSFactory>(
      factoryOf([&](const Address&) { return client; }), testing::clientContext(),
      tls::LayerOptions{.clock = &reactor, .serverName = "localhost"});
  reactor.connectUNIX(path, clientFactory);
  ASSERT_TRUE(runUntil(reactor, [&] { return client->reason.has_value(); }));
  EXPECT_EQ(client->data, "over tls");
  EXPECT_TRUE(client->handshakeDoneAtMade);
  EXPECT_FALSE(client->version.empty());
  port->stopListening();
}

TEST(UNIX, PythonClientsTalkToIt) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("python");
  auto port = reactor.listenUNIX(path, Factory::forProtocol<wire::Echo>());
  std::thread runner;
  int status = -1;
  std::string out;
  std::atomic<bool> done{false};
  runner = std::thread([&] {
    out = testing::python(
        "import socket\n"
        "for i in range(20):\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    s.connect('" +
            path +
            "')\n"
            "    msg = b'x' * (1000 * (i + 1))\n"
            "    s.sendall(msg)\n"
            "    s.shutdown(socket.SHUT_WR)\n"
            "    got = b''\n"
            "    while True:\n"
            "        d = s.recv(65536)\n"
            "        if not d: break\n"
            "        got += d\n"
            "    assert got == msg, (len(got), len(msg))\n"
            "    s.close()\n"
            "print('ok')\n",
        &status);
    done = true;
  });
  ASSERT_TRUE(runUntil(
      reactor, [&] { return done.load(); }, 60));
  runner.join();
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "ok\n");
  port->stopListening();
}

TEST(UNIX, APeerThatResetsOrVanishesEndsTheConnection) {
  Reactor reactor(quietOptions());
  std::string path = socketPath("reset");
  std::shared_ptr<Client> server;
  auto port = reactor.listenUNIX(path, factoryOf([&](const Address&) {
                                   server = std::make_shared<Client>("");
                                   return server;
                                 }));
  int fd = rawConnect(path);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(runUntil(reactor, [&] { return server && server->connected(); }));
  // The peer goes away with unread data in its receive queue: the kernel resets the pair.
  server->transport()->write(std::string(1000, 'q'));
  ASSERT_TRUE(testing::sendAll(fd, "bye"));
  ASSERT_TRUE(runUntil(reactor, [&] { return server->data == "bye"; }));
  ::close(fd);
  ASSERT_TRUE(runUntil(reactor, [&] { return server->reason.has_value(); }));
  // Writing after the end is ignored.
  server->transport()->write("after");
  port->stopListening();
}

}  // namespace
}  // namespace twist
