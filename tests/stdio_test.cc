// StandardIO: a protocol on a pair of pipes in-process (input, half-close, EOF, a reader that
// goes away, a reader that never reads), and examples/stdio_lines driven as a real child
// process: interactively through spawnProcess, from a regular file, and into `head`.
#include "twist/transports/stdio.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "tests/subprocess.h"
#include "tests/test_util.h"
#include "twist/protocols/basic.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/process.h"
#include "twist/reactor/reactor.h"

namespace twist {
namespace {

using testing::quietOptions;
using testing::runUntil;

bool writeAll(int fd, std::string_view data) {
  return ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
}

// Two pipes: we write `toIn`, StandardIO reads `in`; StandardIO writes `out`, we read `fromOut`.
struct Pipes {
  int in, toIn, out, fromOut;
  Pipes() {
    int a[2], b[2];
    EXPECT_EQ(::pipe2(a, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(b, O_CLOEXEC), 0);
    in = a[0];
    toIn = a[1];
    fromOut = b[0];
    out = b[1];
    ::fcntl(fromOut, F_SETFL, O_NONBLOCK);
  }
  ~Pipes() {
    for (int fd : {in, toIn, out, fromOut}) {
      if (fd >= 0) ::close(fd);
    }
  }
  // What has come out so far.
  std::string drain() {
    std::string got;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fromOut, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    return got;
  }
};

class Upper : public LineReceiver, public IHalfCloseableProtocol {
 public:
  Upper() { setDelimiter("\n"); }
  void lineReceived(std::string_view line) override {
    std::string s(line);
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    sendLine(s);
  }
  void readConnectionLost() override {
    sendLine("bye");
    transport()->loseConnection();
  }
  void connectionLost(const Failure& r) override { reason = r; }
  std::optional<Failure> reason;
};

TEST(StandardIO, LinesInAnswersOutHalfCloseThenEnd) {
  Reactor reactor(quietOptions());
  Pipes p;
  auto proto = std::make_shared<Upper>();
  StandardIO::start(reactor, proto, p.in, p.out);
  ASSERT_TRUE(writeAll(p.toIn, "hello\nwor"));
  std::string got;
  ASSERT_TRUE(runUntil(reactor, [&] { return (got += p.drain()) == "HELLO\n"; }));
  ASSERT_TRUE(writeAll(p.toIn, "ld\n"));
  ::close(p.toIn);
  p.toIn = -1;
  ASSERT_TRUE(runUntil(reactor, [&] { return proto->reason.has_value(); }));
  got += p.drain();
  EXPECT_EQ(got, "HELLO\nWORLD\nbye\n");
  EXPECT_TRUE(proto->reason->check<ConnectionDone>()) << proto->reason->toString();
  // Its end of the output pipe is gone: we read EOF (the descriptor now points at /dev/null).
  char c;
  EXPECT_EQ(::read(p.fromOut, &c, 1), 0);
  EXPECT_EQ(reactor.selectableCount(), 0u);
}

class Plain : public Protocol {
 public:
  void dataReceived(std::string_view d) override { data.append(d); }
  void connectionLost(const Failure& r) override { reason = r; }
  std::string data;
  std::optional<Failure> reason;
};

TEST(StandardIO, EndOfInputEndsAProtocolThatIsNotHalfCloseable) {
  Reactor reactor(quietOptions());
  Pipes p;
  auto proto = std::make_shared<Plain>();
  StandardIO::start(reactor, proto, p.in, p.out);
  ASSERT_TRUE(writeAll(p.toIn, "abc"));
  ::close(p.toIn);
  p.toIn = -1;
  ASSERT_TRUE(runUntil(reactor, [&] { return proto->reason.has_value(); }));
  EXPECT_EQ(proto->data, "abc");
  EXPECT_TRUE(proto->reason->check<ConnectionDone>());
}

TEST(StandardIO, AReaderThatGoesAwayIsAConnectionLostNotASignal) {
  Reactor reactor(quietOptions());
  Pipes p;
  auto proto = std::make_shared<Plain>();
  auto io = StandardIO::start(reactor, proto, p.in, p.out);
  ::close(p.fromOut);
  p.fromOut = -1;
  proto->transport()->write("nobody reads this");
  ASSERT_TRUE(runUntil(reactor, [&] { return proto->reason.has_value(); }));
  EXPECT_TRUE(proto->reason->check<ConnectionLost>()) << proto->reason->toString();
}

TEST(StandardIO, AReaderThatNeverReadsIsCutOffAtTheCap) {
  testing::LogCaptureScope logs;
  Reactor reactor(quietOptions());
  Pipes p;
  auto proto = std::make_shared<Plain>();
  StandardIO::start(reactor, proto, p.in, p.out);
  WriteBufferLimits limits;
  limits.hardCap = 1 << 20;
  proto->transport()->setWriteBufferLimits(limits);
  std::string chunk(64 * 1024, 'x');
  for (int i = 0; i < 40 && !proto->transport()->disconnecting(); ++i) {
    proto->transport()->write(chunk);
  }
  ASSERT_TRUE(runUntil(reactor, [&] { return proto->reason.has_value(); }));
  EXPECT_TRUE(proto->reason->check<WriteBufferFullError>()) << proto->reason->toString();
  EXPECT_EQ(logs->count("stdout is not being read"), 1);
}

// ---- the example, as a real process ----

class Conversation : public ProcessProtocol {
 public:
  void outReceived(std::string_view d) override { out.append(d); }
  void processEnded(const Failure& r) override { reason = r; }
  std::string out;
  std::optional<Failure> reason;
};

TEST(StandardIOExample, AnswersEachLineAsItComes) {
  Reactor reactor(quietOptions());
  auto talk = std::make_shared<Conversation>();
  auto child = reactor.spawnProcess(talk, "examples/stdio_lines", {"stdio_lines"});
  child->write("first\n");
  ASSERT_TRUE(runUntil(reactor, [&] { return talk->out == "1: first\n"; }))
      << "not answered before the end of input: " << talk->out;
  child->write("second\n");
  ASSERT_TRUE(runUntil(reactor, [&] { return talk->out == "1: first\n2: second\n"; }));
  child->closeStdin();
  ASSERT_TRUE(runUntil(reactor, [&] { return talk->reason.has_value(); }));
  EXPECT_EQ(talk->out, "1: first\n2: second\n2 lines\n");
  EXPECT_TRUE(talk->reason->check<ProcessDone>()) << talk->reason->toString();
}

TEST(StandardIOExample, FilesAndPipelines) {
  int status = -1;
  std::string out = testing::shell(
      "printf 'x\\ny\\nz' > \"$TEST_TMPDIR/in.txt\"; examples/stdio_lines < "
      "\"$TEST_TMPDIR/in.txt\"",
      &status);
  EXPECT_EQ(out, "1: x\n2: y\n2 lines\n");  // "z" never ended its line
  EXPECT_EQ(status, 0);
  out = testing::shell("examples/stdio_lines < /dev/null", &status);
  EXPECT_EQ(out, "0 lines\n");
  // The reader goes away early: the example exits cleanly, not by SIGPIPE.
  out = testing::shell(
      "bash -c 'seq 1 200000 | examples/stdio_lines | head -2; echo \"${PIPESTATUS[1]}\"'",
      &status);
  EXPECT_EQ(out, "1: 1\n2: 2\n0\n");
}

}  // namespace
}  // namespace twist
